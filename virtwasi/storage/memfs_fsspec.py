"""A :class:`MemoryStorage` tree as an fsspec filesystem, to fill it before a run and read
the results after.

Paths may be absolute or relative: ``"/a/b"``, ``"a/b"`` and ``"memtree://a/b"`` name the same
entry, ``.`` and ``..`` are resolved lexically (``..`` stops at the root), and listings name
entries ``"/a/b"`` (the root is ``""``, as in fsspec's memory filesystem). Unlike the
:class:`~.base.Storage` protocol, the facade follows symlinks the way a host filesystem does
(in every parent component, and in the last one for ``open``/``cat``/``info``/``ls``;
``rm``, ``rmdir`` and ``mv`` act on the link itself); an absolute target starts at the tree's
root, so nothing leads outside it.

Writing a file creates its missing parent directories (``auto_mkdir=False`` turns that off),
as fsspec's memory filesystem and object stores behave. Every operation goes straight to the
storage: there is no listing cache, and instances are never cached or shared
(``cachable = False``): each wraps the one tree it was built with.
"""

from __future__ import annotations

import errno
import io
import os
from collections import deque
from datetime import UTC, datetime
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.utils import stringify_path, tokenize

from .base import FileKind, Stat
from .memfs import MemoryFile, MemoryStorage

__all__ = ["MemoryTreeFileSystem"]

_MAX_SYMLINK_HOPS = 40  # Linux's MAXSYMLINKS
_TYPES = {FileKind.REGULAR: "file", FileKind.DIRECTORY: "directory"}


class MemoryTreeFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """fsspec view of one :class:`MemoryStorage` (a new, empty one when none is given).

    Registered with fsspec as ``mem`` (an entry point of the package), so
    ``fsspec.filesystem("mem")`` is a private tree of its own, unlike fsspec's
    ``memory``, which is one store for the whole process."""

    protocol = ("mem", "memtree")
    root_marker = "/"
    cachable = False  # fsspec would otherwise hand back one instance for equal arguments

    def __init__(
        self, storage: MemoryStorage | None = None, auto_mkdir: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.storage = storage if storage is not None else MemoryStorage()
        self.auto_mkdir = auto_mkdir  # writing a file creates its missing parents

    @property
    def _fs_token(self) -> str:
        # fsspec compares and hashes filesystems by this token: one per tree, so two facades
        # are equal exactly when they show the same storage.
        return str(tokenize(type(self), self.storage.dev))

    def _parents_for_writing(self, path: str) -> None:
        parent = self._parent(path)
        if self.auto_mkdir and parent.strip("/"):
            self.makedirs(parent, exist_ok=True)

    # -- paths -----------------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        if isinstance(path, list | tuple):
            return [cls._strip_protocol(p) for p in path]  # type: ignore[return-value]
        text: str = stringify_path(path)
        for prefix in ("mem://", "memtree://"):
            text = text.removeprefix(prefix)
        parts: list[str] = []
        for name in text.split("/"):
            if name == "..":
                if parts:
                    parts.pop()
            elif name not in ("", "."):
                parts.append(name)
        return "/" + "/".join(parts) if parts else ""

    def _resolve(self, path: str, follow: bool) -> str:
        """The storage path of ``path`` with every symlink in a parent component followed,
        and the last one too when ``follow``."""
        todo = deque(self._strip_protocol(path).split("/"))
        done: list[str] = []
        hops = 0
        while todo:
            name = todo.popleft()
            if name in ("", "."):
                continue
            if name == "..":
                if done:
                    done.pop()
                continue
            last = not any(n not in ("", ".") for n in todo)
            candidate = "/".join([*done, name])
            if last and not follow:
                done.append(name)
                break
            try:
                st = self.storage.lstat(candidate)
            except OSError:
                if not last:
                    raise
                done.append(name)  # a missing last component: the caller may create it
                break
            if st.kind is not FileKind.SYMLINK:
                done.append(name)
                continue
            hops += 1
            if hops > _MAX_SYMLINK_HOPS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
            target = self.storage.readlink(candidate)
            if target.startswith("/"):
                done = []
            todo.extendleft(reversed(target.split("/")))
        return "/".join(done)

    # -- information -----------------------------------------------------------------------

    def _details(self, name: str, st: Stat, link: str | None) -> dict[str, Any]:
        return {
            "name": name,
            "size": st.size,
            "type": _TYPES.get(st.kind, "other"),
            "ino": st.ino,
            "nlink": st.nlink,
            "mtime": st.mtime_ns / 1e9,
            "islink": link is not None,
            "destination": link,
        }

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """Status of what ``path`` leads to (a dangling symlink is FileNotFoundError, so
        ``exists`` is False for it and ``lexists`` True, as with fsspec's local files)."""
        return self._info(self._strip_protocol(path), dangling_ok=False)

    def _info(self, name: str, dangling_ok: bool) -> dict[str, Any]:
        own = self._resolve(name, follow=False)
        st = self.storage.lstat(own)
        if st.kind is not FileKind.SYMLINK:
            return self._details(name, st, None)
        link = self.storage.readlink(own)
        try:
            return self._details(name, self.storage.lstat(self._resolve(name, True)), link)
        except OSError:
            if not dangling_ok:
                raise
            return self._details(name, st, link)  # listed as the link itself: type "other"

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        name = self._strip_protocol(path)
        real = self._resolve(name, follow=True)
        if self.storage.lstat(real).kind is not FileKind.DIRECTORY:
            found = [self.info(name)]
        else:
            entries = self.storage.listdir(real)
            found = [self._info(f"{name}/{e.name}", dangling_ok=True) for e in entries]
        return found if detail else [f["name"] for f in found]

    def lexists(self, path: str, **kwargs: Any) -> bool:
        try:
            self.storage.lstat(self._resolve(path, follow=False))
        except OSError:
            return False
        return True

    def modified(self, path: str) -> datetime:
        st = self.storage.lstat(self._resolve(path, follow=True))
        return datetime.fromtimestamp(st.mtime_ns / 1e9, tz=UTC)

    def created(self, path: str) -> datetime:
        # No birth time is kept; the status change time is the nearest thing, as in os.stat.
        st = self.storage.lstat(self._resolve(path, follow=True))
        return datetime.fromtimestamp(st.ctime_ns / 1e9, tz=UTC)

    # -- contents --------------------------------------------------------------------------

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> MemoryTreeFile:
        plain = mode.replace("b", "")
        if plain not in ("r", "r+", "w", "w+", "a", "a+", "x", "x+"):
            raise ValueError(f"unsupported mode {mode!r}")
        kind = plain[0]
        if kind != "r":
            self._parents_for_writing(path)
        handle = self.storage.open(
            self._resolve(path, follow=kind != "x"),
            create=kind != "r",
            exclusive=kind == "x",
            truncate=kind == "w",
            writable=kind != "r" or "+" in plain,
        )
        return MemoryTreeFile(handle, self._strip_protocol(path), mode, append=kind == "a")

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        with self.storage.open(self._resolve(path, follow=True)) as handle:
            first, stop, _ = slice(start, end).indices(handle.stat().size)
            buf = bytearray(max(0, stop - first))
            n = handle.readinto(memoryview(buf), first)
            return bytes(buf[:n])

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        self._parents_for_writing(path)
        with self.storage.open(
            self._resolve(path, follow=True),
            create=True,
            exclusive=mode == "create",
            truncate=True,
            writable=True,
        ) as handle:
            handle.write(memoryview(value), 0)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        self.pipe_file(path2, self.cat_file(path1))

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        real = self._resolve(path, follow=True)
        if truncate or not self.lexists(real):
            self.storage.open(real, create=True, truncate=truncate, writable=True).close()
        else:
            now = self.storage._clock()
            self.storage.set_times(real, now, now)

    # -- the tree --------------------------------------------------------------------------

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        if create_parents:
            if self.lexists(path):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path)
            self.makedirs(path, exist_ok=True)
        else:
            self.storage.mkdir(self._resolve(path, follow=False))

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        parts = [p for p in self._strip_protocol(path).split("/") if p]
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            try:
                self.storage.mkdir(self._resolve(sub, follow=False))
            except FileExistsError:
                if not self.isdir(sub):
                    raise
                if i == len(parts) and not exist_ok:
                    raise

    def rmdir(self, path: str) -> None:
        self.storage.rmdir(self._resolve(path, follow=False))

    def rm_file(self, path: str) -> None:
        # fsspec's rm expands a recursive delete into paths, children first, and removes each
        # here: directories among them are empty by the time they come.
        real = self._resolve(path, follow=False)
        if self.storage.lstat(real).kind is FileKind.DIRECTORY:
            self.storage.rmdir(real)
        else:
            self.storage.unlink(real)

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def mv(
        self, path1: str, path2: str, recursive: bool = False, maxdepth: Any = None, **kwargs: Any
    ) -> None:
        """Rename, atomically. As with ``shutil.move`` (what fsspec's local filesystem
        does), an existing directory ``path2`` receives ``path1`` inside it."""
        if self._strip_protocol(path1) == self._strip_protocol(path2):
            return
        src = self._resolve(path1, follow=False)
        if self.isdir(path2):
            dst = self._resolve(f"{self._strip_protocol(path2)}/{src.rsplit('/', 1)[-1]}", True)
        else:
            dst = self._resolve(path2, follow=False)
        if src != dst:
            self.storage.rename(src, dst)


class MemoryTreeFile(io.RawIOBase):
    """An fsspec-side file: a :class:`MemoryFile` plus a position (``a`` modes write at the
    end every time, as O_APPEND does)."""

    def __init__(self, handle: MemoryFile, path: str, mode: str, append: bool) -> None:
        super().__init__()
        self.handle = handle
        self.path = path
        self.mode = mode
        self._append = append
        self._readable = mode.startswith("r") or "+" in mode
        self._pos = 0

    @property
    def size(self) -> int:
        return self.handle.stat().size

    def readable(self) -> bool:
        return self._readable

    def writable(self) -> bool:
        return self.handle.writable

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._readable:
            raise io.UnsupportedOperation("not readable")
        n = self.handle.readinto(memoryview(buffer).cast("B"), self._pos)
        self._pos += n
        return n

    def write(self, data: Any) -> int:
        if self._append:
            self._pos = self.handle.stat().size
        view = memoryview(data)
        n = self.handle.write(view, self._pos)
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), self.path)
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def truncate(self, size: int | None = None) -> int:
        self.handle.truncate(self._pos if size is None else size)
        return self._pos if size is None else size

    def close(self) -> None:
        if not self.closed:
            self.handle.close()
        super().close()
