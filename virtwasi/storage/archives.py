"""Zip and tar archives as fsspec filesystems that read members in place.

fsspec's ``ZipFileSystem`` and ``TarFileSystem`` serve archives read-only. The subclasses
here keep their behaviour and fix what makes big archives slow or wrong:

* a zip member stored uncompressed (``ZIP_STORED``) is read at its offset in the archive.
  Through :mod:`zipfile` (before Python 3.12) a seek reads and discards everything up to
  the new position, and a seek backwards starts again from the member's first byte, so 16
  bytes at the end of a 64 MiB member cost 64 MiB of reading. A compressed member still
  decompresses from its start on a backward seek (deflate has no index). A tar member is
  read in place by :mod:`tarfile` already;
* listing a directory scanned every entry of the archive; here the entries are grouped by
  directory once, so walking a tree of N entries costs N, not N squared;
* tar symlinks are symlinks (fsspec serves each as a copy of its target), member names
  such as ``./a`` are ``a``, and names with a ``..`` component are left out;
* indexing a tar reads every member header (for a compressed tar, the whole archive): a
  progress bar shows it on a terminal when it takes long.

A compressed tar (``.tar.gz``, ``.tar.bz2``, ``.tar.xz``: the compression comes from the
name) works, but a seek backwards decompresses from the start of the archive again: fine
for reading files through, slow for random access.

:func:`open_archive` builds one of these from a URL (``zip::file:///a.zip``,
``tar://inner/dir::simplecache::s3://bucket/a.tar``).
"""

from __future__ import annotations

import errno
import io
import re
import stat
import struct
import threading
import zipfile
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any

import fsspec
import fsspec.core
from fsspec.implementations.tar import TarFileSystem
from fsspec.implementations.zip import ZipFileSystem
from fsspec.utils import infer_compression

from ..terminal.progress import progress
from .base import posix_error
from .network import chain_protocols, storage_options, tune

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # a zip member's local header (30 bytes)
_LOCAL_MAGIC = b"PK\x03\x04"
_ENCRYPTED = 0x1


class _StoredMember(io.RawIOBase):
    """An uncompressed zip member, read straight from the archive at its offset."""

    def __init__(self, archive: IO[bytes], start: int, size: int, lock: Any, name: str) -> None:
        super().__init__()
        self.name = name
        self.size = size  # fsspec's cat_file reads it to resolve negative offsets
        self._archive = archive
        self._start = start
        self._lock = lock
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}.get(whence)
        if base is None or base + offset < 0:
            raise ValueError(f"bad seek: offset {offset}, whence {whence}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(view.nbytes, self.size - self._pos)
        if n <= 0:
            return 0
        with self._lock:
            self._archive.seek(self._start + self._pos)
            data = self._archive.read(n)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


class _ByDirectory:
    """Directory listings from an index built once (fsspec's own ls scans every entry)."""

    dir_cache: dict[str, dict[str, Any]]
    _children: dict[str, dict[str, dict[str, Any]]] | None = None

    if TYPE_CHECKING:  # supplied by the archive filesystem this is mixed into
        root_marker: str

        def _parent(self, path: str) -> str: ...

        def _get_dirs(self) -> None: ...

        def _strip_protocol(self, path: str) -> str: ...

        def info(self, path: str, **kwargs: Any) -> dict[str, Any]: ...

    def _all_dirnames(self, paths: Iterable[str]) -> set[str]:
        """Every folder above ``paths``, found level by level in a loop (fsspec's own
        recurses once per level, and an archive's members may be deeper than that)."""
        found: set[str] = set()
        level = set(paths)
        while level:
            level = {self._parent(path) for path in level} - {self.root_marker} - found
            found |= level
        return found

    def _by_directory(self) -> dict[str, dict[str, dict[str, Any]]]:
        if self._children is None:
            self._get_dirs()
            children: dict[str, dict[str, dict[str, Any]]] = {}
            for key, info in self.dir_cache.items():
                name = key.rstrip("/")
                if name:
                    children.setdefault(name.rpartition("/")[0], {})[name] = info
            self._children = children
        return self._children

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path).strip("/")
        found = self._by_directory().get(path)
        if found is None:
            info = self.info(path)  # FileNotFoundError when missing; a file lists itself
            found = {} if info["type"] == "directory" else {info["name"]: info}
        names = sorted(found)
        return [found[name] for name in names] if detail else names


class ZipArchive(_ByDirectory, ZipFileSystem):  # type: ignore[misc]
    """A zip archive, read-only; stored members are read in place (see the module doc)."""

    def __init__(self, fo: Any, **kwargs: Any) -> None:
        super().__init__(fo=fo, mode="r", **kwargs)
        self._starts: dict[str, int] = {}
        # zipfile's own reads of compressed members seek the same file object under this
        # lock, so in-place reads take it too and the two never interleave.
        self._lock = getattr(self.zip, "_lock", None) or threading.RLock()

    def close(self) -> None:
        """Close the archive and the file it is read from (fsspec's own close leaves the
        file open until the filesystem is collected). Closing twice does nothing more."""
        super().close()
        if isinstance(self.of, fsspec.core.OpenFile):
            self.of.close()
        else:
            self.fo.close()

    def _get_dirs(self) -> None:
        if self.dir_cache is not None:
            return
        super()._get_dirs()
        for member in self.zip.infolist():
            if stat.S_ISLNK(member.external_attr >> 16):  # Info-ZIP's `zip -y` symlinks
                info = self.dir_cache[member.filename.rstrip("/")]
                target = self.zip.read(member).decode("utf-8", "surrogateescape")
                info.update(type="other", islink=True, destination=target)

    def _data_start(self, member: zipfile.ZipInfo) -> int:
        start = self._starts.get(member.filename)
        if start is None:
            with self._lock:
                self.fo.seek(member.header_offset)
                header = self.fo.read(_LOCAL_HEADER.size)
            if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_MAGIC:
                raise posix_error(errno.EIO, member.filename)
            fields = _LOCAL_HEADER.unpack(header)
            start = member.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1]
            self._starts[member.filename] = start
        return start

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if mode == "rb":
            name = self._strip_protocol(path)
            try:
                member = self.zip.getinfo(name)
            except KeyError:
                member = None  # missing, or a directory: zipfile answers as it should
            if (member is not None and member.compress_type == zipfile.ZIP_STORED
                    and not member.flag_bits & _ENCRYPTED and not member.is_dir()):
                return _StoredMember(self.fo, self._data_start(member), member.file_size,
                                     self._lock, name)
        return super()._open(path, mode, **kwargs)


def _member_name(name: str) -> str | None:
    """A tar member's name as a path inside the archive (None: not addressable)."""
    parts = [p for p in re.split("/+", name) if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


class TarArchive(_ByDirectory, TarFileSystem):  # type: ignore[misc]
    """A tar archive, read-only (see the module doc). ``fo`` is the archive's raw file;
    ``label`` and ``size`` (its length, 0 if unknown) are for the progress bar."""

    index: dict[str, tuple[dict[str, Any], int, str]]  # name -> (info, data offset, member)

    def __init__(self, fo: IO[bytes], *, compression: str | None, label: str = "tar",
                 size: int = 0) -> None:
        # TarFileSystem indexes inside its __init__, so set what _index needs first.
        self._raw = fo
        self._label = label
        self._size = size
        super().__init__(fo=fo, compression=compression)

    def close(self) -> None:
        """Close the archive and the file it is read from. Closing twice does nothing more."""
        super().close()
        self._raw.close()

    def _index(self) -> None:
        with progress(f"indexing {self._label}", total=self._size) as bar:
            for _ in self.tar:  # tarfile keeps the members: fsspec's index reuses them
                position = self._raw.tell()
                bar.advance(position - bar.done)
            bar.advance(max(self._size - bar.done, 0))  # the padding after the last member
        super()._index()
        kept: dict[str, tuple[dict[str, Any], int, str]] = {}
        for key, (info, offset, original) in self.index.items():
            name = _member_name(key)
            if name is not None:
                info["name"] = name
                kept[name] = (info, offset, original)
        self.index = kept
        for member in self.tar.getmembers():
            name = _member_name(member.name)
            entry = kept.get(name) if name is not None else None
            if entry is None or entry[1] != member.offset_data:
                continue  # a later member of the same name won
            if member.issym():
                entry[0].update(type="other", islink=True, destination=member.linkname)
            elif member.ischr() or member.isblk() or member.isfifo():
                entry[0]["type"] = "other"


def _archive_size(opened: Any) -> int:
    try:
        return int(opened.fs.size(opened.path) or 0)
    except Exception:  # only the progress bar needs it
        return 0


def open_archive(url: str, options: dict[str, Any] | None = None,
                 ) -> tuple[fsspec.AbstractFileSystem, str] | None:
    """``(filesystem, root inside the archive)`` for a ``zip::``/``tar::`` URL; None for
    any other URL. The archive itself may be behind any fsspec URL, chained ones too;
    ``options`` under a protocol's name go to that filesystem (``{"s3": {...}}``)."""
    head, sep, target = url.partition("::")
    protocol, _, inner = head.partition("://")
    if not sep or not target or protocol not in ("zip", "tar"):
        return None
    chain = chain_protocols(target)
    given = {key: value for key, value in (options or {}).items() if key in chain}
    opened = fsspec.open(target, "rb", **storage_options(target, given))
    tune(opened.fs)
    if protocol == "zip":
        return ZipArchive(opened), inner.strip("/")
    raw = opened.open()
    try:
        archive = TarArchive(raw, compression=infer_compression(target),
                             label=target.rpartition("/")[2], size=_archive_size(opened))
    except BaseException:
        raw.close()
        raise
    archive.of = raw  # closed with the filesystem, as fsspec's own archives do
    return archive, inner.strip("/")
