"""A model of a backend's declared limits: the in-memory tree, lacking exactly what the
backend says it lacks, answering the errno the storage protocol documents for each.

The backend suite compares every backend with this model of itself: where a backend
cannot do something, its answer must be precisely the declared one, and everywhere else it
must behave as the in-memory tree (which itself behaves as wasmtime). A backend that
answered ``EIO`` where it declared ``ENOTSUP``, or silently did nothing, fails.
"""

from __future__ import annotations

import errno
from enum import Enum

from virtwasi.storage.base import DirEntry, File, Stat, Storage, posix_error
from virtwasi.storage.readonly import ReadOnlyStorage, is_read_only


class Limit(Enum):
    """What a backend may declare it cannot do, and the errno it then answers."""

    READ_ONLY = errno.EROFS
    NO_SYMLINKS = errno.ENOTSUP
    NO_HARD_LINKS = errno.ENOTSUP
    NO_SET_TIMES = errno.ENOTSUP


def limits_of(storage: Storage) -> frozenset[Limit]:
    """The limits ``storage`` declares through the protocol's attributes."""
    found = set()
    if is_read_only(storage):
        found.add(Limit.READ_ONLY)
    if not storage.supports_symlinks:
        found.add(Limit.NO_SYMLINKS)
    if not storage.supports_hardlinks:
        found.add(Limit.NO_HARD_LINKS)
    if not getattr(storage, "supports_set_times", True):
        found.add(Limit.NO_SET_TIMES)
    return frozenset(found)


class _LimitedFile:
    def __init__(self, inner: File, set_times: bool) -> None:
        self._inner = inner
        self._set_times = set_times
        self.readinto = inner.readinto
        self.write = inner.write
        self.stat = inner.stat
        self.truncate = inner.truncate
        self.sync = inner.sync
        self.close = inner.close

    def set_times(self, atime_ns: int | None, mtime_ns: int | None) -> None:
        if not self._set_times and (atime_ns is not None or mtime_ns is not None):
            raise posix_error(errno.ENOTSUP, "")
        self._inner.set_times(atime_ns, mtime_ns)


class LimitedStorage:
    """``inner`` (writable) without symlinks, hard links or settable times, as declared."""

    def __init__(self, inner: Storage, limits: frozenset[Limit]) -> None:
        self._inner = inner
        self.supports_symlinks = Limit.NO_SYMLINKS not in limits
        self.supports_hardlinks = Limit.NO_HARD_LINKS not in limits
        self.supports_set_times = Limit.NO_SET_TIMES not in limits

    def close(self) -> None:
        self._inner.close()

    def lstat(self, path: str) -> Stat:
        return self._inner.lstat(path)

    def open(self, path: str, *, create: bool = False, exclusive: bool = False,
             truncate: bool = False, writable: bool = False) -> File:
        opened = self._inner.open(path, create=create, exclusive=exclusive,
                                  truncate=truncate, writable=writable)
        return _LimitedFile(opened, self.supports_set_times)

    def listdir(self, path: str) -> list[DirEntry]:
        return self._inner.listdir(path)

    def mkdir(self, path: str) -> None:
        self._inner.mkdir(path)

    def rmdir(self, path: str) -> None:
        self._inner.rmdir(path)

    def unlink(self, path: str) -> None:
        self._inner.unlink(path)

    def rename(self, src: str, dst: str) -> None:
        self._inner.rename(src, dst)

    def symlink(self, target: str, path: str) -> None:
        if not self.supports_symlinks:
            raise posix_error(errno.ENOTSUP, path)
        self._inner.symlink(target, path)

    def readlink(self, path: str) -> str:
        return self._inner.readlink(path)

    def link(self, src: str, dst: str) -> None:
        if not self.supports_hardlinks:
            raise posix_error(errno.ENOTSUP, dst)
        self._inner.link(src, dst)

    def set_times(self, path: str, atime_ns: int | None, mtime_ns: int | None) -> None:
        self._inner.lstat(path)  # a missing path is ENOENT before anything is refused
        if not self.supports_set_times and (atime_ns is not None or mtime_ns is not None):
            raise posix_error(errno.ENOTSUP, path)
        self._inner.set_times(path, atime_ns, mtime_ns)


def model_of(inner: Storage, limits: frozenset[Limit]) -> Storage:
    """``inner`` limited as declared; read-only is the read-only view, whatever else."""
    if Limit.READ_ONLY in limits:
        return ReadOnlyStorage(inner)
    return LimitedStorage(inner, limits)
