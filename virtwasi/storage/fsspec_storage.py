"""Any fsspec filesystem as a :class:`~virtwasi.storage.base.Storage`.

fsspec speaks Python exceptions and whole objects, not POSIX, and this module maps it
honestly rather than pretending:

* errors go through one table (:func:`_posix_error`) to host errnos;
* a directory is whatever fsspec's ``info()`` calls one; there are no symlinks or hard
  links (``ENOTSUP``), and times cannot be set (``ENOTSUP``);
* inode numbers are synthetic, stable per path for the storage's lifetime, and move with a
  rename;
* reads stream from ``fs.open(path, "rb")`` (a zip member is never loaded whole); writes go
  to a local spill (memory, then a temporary file) uploaded whole by ``sync()`` and
  ``close()``, because object stores cannot write in place. Until then other readers see
  the old content, and when two handles write one path the last to upload wins.
* ``rename`` is ``fs.mv``: copy then delete on most stores, so it is not atomic.

A failed upload raises ``EIO`` and keeps the spill and the file open, so a later ``sync()``
or ``close()`` can retry and nothing written is silently lost.

Serving a host folder through fsspec's ``file://`` would follow host symlinks: use
:class:`~virtwasi.storage.hostdir.HostDirStorage` for that.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import itertools
import os
import tempfile
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from glob import has_magic
from typing import Any

import fsspec
from fsspec.archive import AbstractArchiveFileSystem

from .base import DirEntry, FileKind, Stat, posix_error

# The one table: fsspec's exceptions to POSIX errnos (first match wins).
_ERRNOS: tuple[tuple[type[BaseException], int], ...] = (
    (FileNotFoundError, errno.ENOENT),
    (FileExistsError, errno.EEXIST),
    (IsADirectoryError, errno.EISDIR),
    (NotADirectoryError, errno.ENOTDIR),
    (PermissionError, errno.EACCES),
    (NotImplementedError, errno.ENOTSUP),
)

# Filesystems that can only be read, when the caller does not say (an archive opened to
# write cannot be read back, so it is no use as a mount either).
_READ_ONLY_PROTOCOLS = frozenset({"http", "https", "github", "git"})

# Keys of info() that carry a modification time, by store: local/sftp, S3, Azure, GCS,
# memory (only "created", refreshed on every write), zip (a local-time tuple).
_TIME_KEYS = ("mtime", "LastModified", "last_modified", "updated", "created", "date_time")

_SPILL_IN_MEMORY = 8 << 20  # a spill larger than this moves to a temporary file
_COPY_CHUNK = 1 << 20
_devices = itertools.count(0x7F5F0001)  # synthetic st_dev, one per storage


def _posix_error(exc: Exception, path: str) -> OSError:
    """An OSError with a host errno for whatever fsspec raised."""
    if isinstance(exc, OSError) and exc.errno:
        return exc  # already POSIX: ours, or a store backed by a real filesystem
    for kind, code in _ERRNOS:
        if isinstance(exc, kind):
            return posix_error(code, path)
    return OSError(errno.EIO, f"{os.strerror(errno.EIO)}: {exc!r}", path)


@contextmanager
def _posix_errors(path: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        error = _posix_error(exc, path)
        if error is exc:
            raise
        raise error from exc


def _time_ns(info: dict[str, Any]) -> int:
    """The first time info() reports, in ns since the epoch (0 when there is none)."""
    for key in _TIME_KEYS:
        value = info.get(key)
        try:
            if isinstance(value, str):
                value = datetime.fromisoformat(value)
            elif isinstance(value, tuple):
                value = datetime(*value)  # zip: naive local time, as zipfile writes it
            if isinstance(value, datetime):
                if value.tzinfo is None and key != "date_time":
                    value = value.replace(tzinfo=UTC)
                return int(value.timestamp() * 1_000_000) * 1000
            if isinstance(value, int | float) and not isinstance(value, bool):
                return int(value * 1_000_000_000)
        except (TypeError, ValueError, OverflowError, OSError):
            continue  # not a time after all
    return 0


def _kind(info: dict[str, Any]) -> FileKind:
    if info.get("islink"):  # fsspec's local filesystem: a host symlink it would follow
        return FileKind.SYMLINK
    return {"directory": FileKind.DIRECTORY, "file": FileKind.REGULAR}.get(
        info.get("type", ""), FileKind.UNKNOWN
    )


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def _guess_writable(fs: Any) -> bool:
    if isinstance(fs, AbstractArchiveFileSystem):
        return False
    protocols = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
    return not _READ_ONLY_PROTOCOLS.intersection(protocols)


class _Spill:
    """An open file's local content: a BytesIO, moved to a temporary file once large."""

    def __init__(self) -> None:
        self._memory: io.BytesIO | None = io.BytesIO()
        self._fd = -1
        self._path = ""
        self._size = 0
        self._release: weakref.finalize[Any, Any] | None = None

    @property
    def size(self) -> int:
        return self._size

    def _to_disk(self) -> None:
        assert self._memory is not None
        self._fd, self._path = tempfile.mkstemp(prefix="virtwasi-spill-")
        self._release = weakref.finalize(self, _remove_spill, self._fd, self._path)
        view = self._memory.getbuffer()
        try:
            done = 0
            while done < len(view):
                done += os.pwrite(self._fd, view[done:], done)
        finally:
            view.release()
        self._memory = None

    def write(self, data: memoryview | bytes, offset: int) -> int:
        view = memoryview(data).cast("B")
        end = offset + view.nbytes
        if self._memory is not None and end > _SPILL_IN_MEMORY:
            self._to_disk()
        if self._memory is not None:
            self._memory.seek(offset)
            self._memory.write(view)  # BytesIO fills a gap with zeros
        else:
            done = 0
            while done < view.nbytes:
                done += os.pwrite(self._fd, view[done:], offset + done)
        self._size = max(self._size, end)
        return view.nbytes

    def readinto(self, buf: memoryview, offset: int) -> int:
        if self._memory is not None:
            self._memory.seek(offset)
            return self._memory.readinto(buf)
        return os.preadv(self._fd, [buf], offset)

    def truncate(self, size: int) -> None:
        if self._memory is not None and size > _SPILL_IN_MEMORY:
            self._to_disk()
        if self._memory is not None:
            self._memory.truncate(size)
            if size > self._size:  # BytesIO.truncate never grows
                self._memory.seek(size - 1)
                self._memory.write(b"\0")
        else:
            os.ftruncate(self._fd, size)
        self._size = size

    def upload(self, fs: Any, full: str) -> None:
        if self._memory is not None:
            fs.pipe_file(full, self._memory.getvalue())
        else:
            fs.put_file(self._path, full)

    def close(self) -> None:
        self._memory = None
        if self._release is not None:
            self._release()


def _remove_spill(fd: int, path: str) -> None:
    os.close(fd)
    os.unlink(path)


class FsspecFile:
    """An open regular file of a :class:`FsspecStorage` (see the module doc)."""

    def __init__(self, storage: FsspecStorage, path: str, *, writable: bool, empty: bool) -> None:
        self.path: str | None = path  # None once unlinked: nowhere left to upload
        self._storage = storage
        self._writable = writable
        self._empty = empty  # the stored content is known to be empty: nothing to copy
        self._reader: Any = None
        self._spill: _Spill | None = None
        self._dirty = False
        self._mtime_ns = 0
        self._closed = False
        self._last = storage.lstat(path)

    def _name(self) -> str:
        return "<unlinked>" if self.path is None else self.path

    def _check_open(self) -> None:
        if self._closed:
            raise posix_error(errno.EBADF, self._name())

    def _check_mutable(self) -> None:
        self._check_open()
        if not self._storage.writable:
            raise posix_error(errno.EROFS, self._name())
        if not self._writable:
            raise posix_error(errno.EBADF, self._name())

    def _open_reader(self) -> Any:
        if self._reader is None:
            if self.path is None:
                raise posix_error(errno.ENOENT, self._name())
            self._reader = self._storage.fs.open(self._storage._full(self.path), "rb")
        return self._reader

    def _drop_reader(self) -> None:
        """Forget the reader: the stored content changed, so reopen on the next read."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def _detach(self) -> None:
        """The name was unlinked: keep what can still be read, and never upload again."""
        if self._spill is None and not self._empty:
            # If this fails, reads fail later as the store says; the unlink goes on.
            with suppress(Exception):
                self._open_reader()
        self.path = None

    def _ensure_spill(self, *, copy: bool = True) -> _Spill:
        if self._spill is not None:
            return self._spill
        spill = _Spill()
        if copy and not self._empty:
            chunk = memoryview(bytearray(_COPY_CHUNK))
            offset = 0
            while n := self.readinto(chunk, offset):
                spill.write(chunk[:n], offset)
                offset += n
        self._drop_reader()
        self._spill = spill
        return spill

    def readinto(self, buf: memoryview, offset: int) -> int:
        self._check_open()
        if offset < 0:
            raise posix_error(errno.EINVAL, self._name())
        if self._spill is not None:
            return self._spill.readinto(buf, offset)
        if self._empty:
            return 0
        try:
            reader = self._open_reader()
            reader.seek(offset)
            got = reader.readinto(buf) or 0
            while 0 < got < buf.nbytes:  # some file objects return short reads
                n = reader.readinto(buf[got:]) or 0
                if n == 0:
                    break
                got += n
            return int(got)
        except Exception as exc:
            error = _posix_error(exc, self._name())
            if error is exc:
                raise
            raise error from exc

    def write(self, data: memoryview | bytes, offset: int) -> int:
        self._check_mutable()
        if offset < 0:
            raise posix_error(errno.EINVAL, self._name())
        n = self._ensure_spill().write(data, offset)
        self._dirty = True
        self._mtime_ns = time.time_ns()
        return n

    def truncate(self, size: int) -> None:
        self._check_mutable()
        if size < 0:
            raise posix_error(errno.EINVAL, self._name())
        self._ensure_spill(copy=size > 0).truncate(size)
        self._dirty = True
        self._mtime_ns = time.time_ns()

    def stat(self) -> Stat:
        self._check_open()
        if self.path is not None and not self._dirty:
            with suppress(OSError):  # gone behind our back: report what we last knew
                self._last = self._storage.lstat(self.path)
        if self._spill is None:
            return self._last
        mtime_ns = self._mtime_ns if self._dirty else self._last.mtime_ns
        return dataclasses.replace(self._last, size=self._spill.size, mtime_ns=mtime_ns)

    def set_times(self, atime_ns: int | None, mtime_ns: int | None) -> None:
        self._check_open()
        if not self._storage.writable:
            raise posix_error(errno.EROFS, self._name())
        raise posix_error(errno.ENOTSUP, self._name())

    def sync(self) -> None:
        self._check_open()
        if not self._dirty or self.path is None or self._spill is None:
            return
        full = self._storage._full(self.path)
        try:
            self._spill.upload(self._storage.fs, full)
        except Exception as exc:
            raise OSError(
                errno.EIO, f"upload failed, written data kept for a retry: {exc!r}", self.path
            ) from exc
        self._dirty = False
        self._storage._changed(self.path, writer=self)

    def close(self) -> None:
        if self._closed:
            return
        self.sync()  # on failure stay open, spill and all, so close() can be retried
        self._closed = True
        self._drop_reader()
        if self._spill is not None:
            self._spill.close()
        self._storage._files.discard(self)


class FsspecStorage:
    """The directory ``root`` of the fsspec filesystem ``fs``.

    ``writable=None`` guesses: archives (zip, tar) and web filesystems are read-only,
    anything else is writable. A read-only storage raises ``EROFS`` for every mutation.
    The root always exists (an object store's empty prefix lists as an empty directory).
    """

    supports_symlinks = False
    supports_hardlinks = False

    def __init__(
        self, fs: fsspec.AbstractFileSystem, root: str, *, writable: bool | None = None
    ) -> None:
        self.fs = fs
        self.writable = _guess_writable(fs) if writable is None else writable
        self._root: str = fs._strip_protocol(root).rstrip("/")
        self._dev = next(_devices)
        self._inos: dict[str, int] = {}
        self._next_ino = itertools.count(1)
        self._files: weakref.WeakSet[FsspecFile] = weakref.WeakSet()
        self._ino("")

    @property
    def open_files(self) -> int:
        """How many files opened through this storage are open now (not yet closed)."""
        return len(self._files)

    # -- bookkeeping ---------------------------------------------------------------------

    def _full(self, path: str) -> str:
        if not path:
            return self._root
        return f"{self._root}/{path}" if self._root else path

    def _ino(self, path: str) -> int:
        ino = self._inos.get(path)
        if ino is None:
            ino = self._inos[path] = next(self._next_ino)
        return ino

    def _forget(self, path: str) -> None:
        self._inos.pop(path, None)
        for f in list(self._files):
            if f.path == path:
                f._detach()

    def _moved(self, src: str, dst: str) -> None:
        """Inode numbers and open files follow a rename, as they would on a disk."""

        def under_src(p: str) -> bool:
            return p == src or p.startswith(src + "/")

        moved = {dst + p[len(src) :]: ino for p, ino in self._inos.items() if under_src(p)}
        self._inos = {p: ino for p, ino in self._inos.items() if not under_src(p)} | moved
        for f in list(self._files):
            if f.path is not None and under_src(f.path):
                f.path = dst + f.path[len(src) :]

    def _changed(self, path: str, writer: FsspecFile | None = None) -> None:
        """The stored content of ``path`` changed: other handles reading it must reopen."""
        for f in list(self._files):
            if f is not writer and f.path == path:
                f._drop_reader()
                f._empty = False

    def _check_writable(self, path: str) -> None:
        if not self.writable:
            raise posix_error(errno.EROFS, path)

    # -- fsspec's view of one path -------------------------------------------------------

    def _info(self, path: str) -> dict[str, Any]:
        try:
            with _posix_errors(path):
                info: dict[str, Any] = self.fs.info(self._full(path))
                return info
        except FileNotFoundError:
            if path == "":
                return {"name": self._root, "type": "directory", "size": 0}
            # POSIX says ENOTDIR when a parent is a file; fsspec just says "not found".
            parent = _parent(path)
            if _kind(self._info(parent)) is not FileKind.DIRECTORY:
                raise posix_error(errno.ENOTDIR, path) from None
            raise

    def _lookup(self, path: str) -> dict[str, Any] | None:
        try:
            return self._info(path)
        except FileNotFoundError:
            return None

    def _require_dir(self, path: str) -> None:
        if _kind(self._info(path)) is not FileKind.DIRECTORY:
            raise posix_error(errno.ENOTDIR, path)

    def _make_stat(self, path: str, info: dict[str, Any]) -> Stat:
        kind = _kind(info)
        t = _time_ns(info)
        size = 0
        if kind is FileKind.REGULAR:
            size = int(info.get("size") or 0)
        elif kind is FileKind.SYMLINK:
            size = len(os.fsencode(str(info.get("destination", ""))))
        return Stat(kind, size, self._ino(path), 1, self._dev, t, t, t)

    # -- reading -------------------------------------------------------------------------

    def lstat(self, path: str) -> Stat:
        return self._make_stat(path, self._info(path))

    def open(
        self,
        path: str,
        *,
        create: bool = False,
        exclusive: bool = False,
        truncate: bool = False,
        writable: bool = False,
    ) -> FsspecFile:
        if create or truncate or writable:
            self._check_writable(path)
        if path == "":
            raise posix_error(errno.EISDIR, path)
        info = self._lookup(path) if create else self._info(path)
        with _posix_errors(path):
            if info is None:
                self._require_dir(_parent(path))
                self.fs.pipe_file(self._full(path), b"")  # O_CREAT: the name exists now
                self._changed(path)
            else:
                if create and exclusive:
                    raise posix_error(errno.EEXIST, path)
                kind = _kind(info)
                if kind is FileKind.DIRECTORY:
                    raise posix_error(errno.EISDIR, path)
                if kind is FileKind.SYMLINK:
                    raise posix_error(errno.ELOOP, path)
                if truncate:
                    self.fs.pipe_file(self._full(path), b"")
                    self._changed(path)
            f = FsspecFile(self, path, writable=writable, empty=info is None or truncate)
        self._files.add(f)
        return f

    def listdir(self, path: str) -> list[DirEntry]:
        """Entries sorted by name (code point order)."""
        if _kind(self._info(path)) is not FileKind.DIRECTORY:
            raise posix_error(errno.ENOTDIR, path)
        full = self._full(path)
        try:
            with _posix_errors(path):
                listed: list[dict[str, Any]] = self.fs.ls(full, detail=True)
        except FileNotFoundError:
            if path:
                raise
            listed = []  # an empty root of an object store
        itself = self.fs._strip_protocol(full).rstrip("/")
        entries: dict[str, DirEntry] = {}
        for info in listed:
            fullname = str(info["name"]).rstrip("/")
            name = fullname.rpartition("/")[2]
            # Some stores list the directory itself, or a marker object for it.
            if fullname == itself or name in ("", ".", ".."):
                continue
            child = f"{path}/{name}" if path else name
            entries[name] = DirEntry(name, self._ino(child), _kind(info))
        return [entries[name] for name in sorted(entries)]

    def readlink(self, path: str) -> str:
        info = self._info(path)
        if _kind(info) is not FileKind.SYMLINK:
            raise posix_error(errno.EINVAL, path)
        if "destination" not in info:
            raise posix_error(errno.ENOTSUP, path)
        return str(info["destination"])  # fsspec's local filesystem tells the target

    # -- mutating ------------------------------------------------------------------------

    def mkdir(self, path: str) -> None:
        self._check_writable(path)
        if path == "" or self._lookup(path) is not None:
            raise posix_error(errno.EEXIST, path)
        self._require_dir(_parent(path))
        with _posix_errors(path):
            self.fs.mkdir(self._full(path), create_parents=False)

    def rmdir(self, path: str) -> None:
        self._check_writable(path)
        if path == "":
            raise posix_error(errno.EBUSY, path)
        if self.listdir(path):
            raise posix_error(errno.ENOTEMPTY, path)
        with _posix_errors(path):
            self.fs.rmdir(self._full(path))
        self._forget(path)

    def unlink(self, path: str) -> None:
        self._check_writable(path)
        if path == "" or _kind(self._info(path)) is FileKind.DIRECTORY:
            raise posix_error(errno.EISDIR, path)
        self._forget(path)  # open handles keep their reader first
        with _posix_errors(path):
            self.fs.rm_file(self._full(path))

    def rename(self, src: str, dst: str) -> None:
        self._check_writable(src)
        if src == "" or dst == "":
            raise posix_error(errno.EBUSY, src or dst)
        is_dir = _kind(self._info(src)) is FileKind.DIRECTORY
        self._require_dir(_parent(dst))
        if src == dst:
            return
        if dst.startswith(src + "/"):
            raise posix_error(errno.EINVAL, dst)
        target = self._lookup(dst)
        with _posix_errors(dst):
            if target is not None:
                target_is_dir = _kind(target) is FileKind.DIRECTORY
                if is_dir and not target_is_dir:
                    raise posix_error(errno.ENOTDIR, dst)
                if target_is_dir and not is_dir:
                    raise posix_error(errno.EISDIR, dst)
                if target_is_dir:
                    if self.listdir(dst):
                        raise posix_error(errno.ENOTEMPTY, dst)
                    self.fs.rmdir(self._full(dst))  # fsspec would move src *into* it
                self._forget(dst)
            self._move(self._full(src), self._full(dst), is_dir)
        self._moved(src, dst)

    def _move(self, src: str, dst: str, is_dir: bool) -> None:
        if not (has_magic(src) or has_magic(dst)):
            self.fs.mv(src, dst, recursive=is_dir)
            return
        # fsspec's generic mv globs its arguments: "f[1]" would move "f1". Copy literally.
        if not is_dir:
            self.fs.cp_file(src, dst)
            self.fs.rm_file(src)
            return
        found = {
            str(name).rstrip("/"): info
            for name, info in self.fs.find(src, withdirs=True, detail=True).items()
        }
        base = self.fs._strip_protocol(src).rstrip("/")
        below = sorted(name for name in found if name != base)
        self.fs.mkdir(dst, create_parents=False)
        for name in below:  # sorted: every directory before what it holds
            target = dst + name[len(base) :]
            if found[name]["type"] == "directory":
                self.fs.mkdir(target, create_parents=False)
            else:
                self.fs.cp_file(name, target)
        for name in reversed(below):
            if found[name]["type"] != "directory":
                self.fs.rm_file(name)
            elif self.fs.exists(name):  # a directory implied by its files is gone with them
                self.fs.rmdir(name)
        if self.fs.exists(base):
            self.fs.rmdir(base)

    def symlink(self, target: str, path: str) -> None:
        self._check_writable(path)
        raise posix_error(errno.ENOTSUP, path)

    def link(self, src: str, dst: str) -> None:
        self._check_writable(dst)
        raise posix_error(errno.ENOTSUP, dst)

    def set_times(self, path: str, atime_ns: int | None, mtime_ns: int | None) -> None:
        self._check_writable(path)
        self._info(path)
        if atime_ns is not None or mtime_ns is not None:
            raise posix_error(errno.ENOTSUP, path)  # fsspec has no way to set a time
