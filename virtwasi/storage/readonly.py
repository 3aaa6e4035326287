"""Read-only mounts: any storage seen through a view that answers ``EROFS`` to every change.

This wrapper is the only way a storage is read-only. Backends carry no writable flag:
whoever serves a mount read-only (``--ro``, or a source that cannot be written: an
archive, a web server, a caching layer; see :mod:`virtwasi.storage.mounts`) wraps its storage in
:class:`ReadOnlyStorage`, and :func:`is_read_only` is how anyone asks.

Its answers, the same for every backend below it: every change is ``EROFS`` before
anything is looked up (opening with ``create``, ``truncate`` or for writing included, as
the checks of a read-only mount come first); setting no time at all succeeds, as on a
read-only Linux mount (``utimensat`` with both ``UTIME_OMIT``); files opened through it
answer ``EROFS`` to writing, truncating and setting a time.
"""

from __future__ import annotations

import errno

from .base import DirEntry, File, Stat, Storage, posix_error


def is_read_only(storage: Storage) -> bool:
    """Whether ``storage`` refuses every change (it is seen through :class:`ReadOnlyStorage`)."""
    return isinstance(storage, ReadOnlyStorage)


class ReadOnlyFile:
    """A file opened through a :class:`ReadOnlyStorage`: reads pass straight through."""

    __slots__ = ("_inner", "close", "path", "readinto", "stat", "sync")

    def __init__(self, inner: File, path: str) -> None:
        self._inner = inner
        self.path = path  # the name it was opened by, for messages only
        # Bound once: reading through the view costs no extra call.
        self.readinto = inner.readinto
        self.stat = inner.stat
        self.sync = inner.sync
        self.close = inner.close

    def __repr__(self) -> str:
        return f"ReadOnlyFile({self._inner!r})"

    def write(self, data: memoryview | bytes, offset: int) -> int:
        raise posix_error(errno.EROFS, self.path)

    def truncate(self, size: int) -> None:
        raise posix_error(errno.EROFS, self.path)

    def set_times(self, atime_ns: int | None, mtime_ns: int | None) -> None:
        if atime_ns is None and mtime_ns is None:
            self._inner.stat()  # setting nothing succeeds (and a closed file is still EBADF)
            return
        raise posix_error(errno.EROFS, self.path)


class ReadOnlyStorage:
    """``inner`` seen through a view that can read everything and change nothing."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.supports_symlinks = inner.supports_symlinks
        self.supports_hardlinks = inner.supports_hardlinks

    def __repr__(self) -> str:
        return f"ReadOnlyStorage({self.inner!r})"

    def close(self) -> None:
        """Release the storage below: a read-only mount owns what it wraps."""
        self.inner.close()

    def lstat(self, path: str) -> Stat:
        return self.inner.lstat(path)

    def open(self, path: str, *, create: bool = False, exclusive: bool = False,
             truncate: bool = False, writable: bool = False) -> File:
        if create or truncate or writable:
            raise posix_error(errno.EROFS, path)
        return ReadOnlyFile(self.inner.open(path), path)

    def listdir(self, path: str) -> list[DirEntry]:
        return self.inner.listdir(path)

    def readlink(self, path: str) -> str:
        return self.inner.readlink(path)

    def mkdir(self, path: str) -> None:
        raise posix_error(errno.EROFS, path)

    def rmdir(self, path: str) -> None:
        raise posix_error(errno.EROFS, path)

    def unlink(self, path: str) -> None:
        raise posix_error(errno.EROFS, path)

    def rename(self, src: str, dst: str) -> None:
        raise posix_error(errno.EROFS, src)

    def symlink(self, target: str, path: str) -> None:
        raise posix_error(errno.EROFS, path)

    def link(self, src: str, dst: str) -> None:
        raise posix_error(errno.EROFS, dst)

    def set_times(self, path: str, atime_ns: int | None, mtime_ns: int | None) -> None:
        if atime_ns is None and mtime_ns is None:
            self.inner.lstat(path)  # setting nothing succeeds, as on a read-only Linux mount
            return
        raise posix_error(errno.EROFS, path)
