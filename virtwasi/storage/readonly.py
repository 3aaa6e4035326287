"""A read-only view of any storage: every mutation answers ``EROFS`` and touches nothing."""

from __future__ import annotations

import errno

from .base import DirEntry, File, Stat, Storage, posix_error


class ReadOnlyStorage:
    """``inner`` seen through a view that can read everything and change nothing."""

    writable = False

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.supports_symlinks = inner.supports_symlinks
        self.supports_hardlinks = inner.supports_hardlinks

    def __repr__(self) -> str:
        return f"ReadOnlyStorage({self.inner!r})"

    def close(self) -> None:
        """Release the storage below, for whoever opened it read-only (see mounts.py)."""
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def lstat(self, path: str) -> Stat:
        return self.inner.lstat(path)

    def open(self, path: str, *, create: bool = False, exclusive: bool = False,
             truncate: bool = False, writable: bool = False) -> File:
        if create or truncate or writable:
            raise posix_error(errno.EROFS, path)
        return self.inner.open(path)

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
