"""The storage capability: what a WASI virtualizer may ask of a filesystem.

A backend speaks POSIX: it raises ``OSError`` with a host ``errno`` code, and the WASI layer
maps those codes to WASI errnos in one table. Paths are relative POSIX strings inside the
mount: ``""`` is the mount's root, components are never empty, ``.`` or ``..``, and every
symlink in a parent component has already been resolved by the caller (the virtualizer walks
a path one component at a time with :meth:`Storage.lstat` and :meth:`Storage.readlink`, so
nothing can lead outside the mount). A backend must still never follow a symlink itself:
operations act on the last component as it is (``lstat``, not ``stat``), ``open`` of a
symlink fails with ``ELOOP``, and a call on a path whose parent is not a directory (a
symlink included) fails (``ENOTDIR``, ``ELOOP`` or ``ENOENT``): the virtualizer checks all
the parents of a plain path with one ``lstat`` of the whole path.

Every backend decides an open by the same rules (:func:`.opening.open_rule`). Read-only is
not a property of a backend: a read-only mount is any storage seen through
:class:`~.readonly.ReadOnlyStorage`, which answers ``EROFS`` to every change
(:func:`~.readonly.is_read_only` tells whether a storage is one).
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

NAME_MAX = 255
"""Bytes in one path component, as on Linux."""
PATH_MAX = 4096
"""Bytes in a path with its terminating NUL, as on Linux: a longer one is never looked up."""


def is_clean(path: str) -> bool:
    """Whether ``path`` is plain components (none empty, ``.`` or ``..``, no NUL), as a
    backend is promised, checked at C speed rather than one step per component."""
    if path in ("", ".", "..") or "\0" in path:
        return False
    return "/" not in path or not (
        path[0] == "/" or path[-1] == "/" or "//" in path or "/./" in path or "/../" in path
        or path.startswith(("./", "../")) or path.endswith(("/.", "/..")))


def posix_error(code: int, path: str) -> OSError:
    """The OSError a backend raises for ``code``; OSError(code, ...) builds the matching
    subclass (FileNotFoundError for ENOENT, and so on)."""
    return OSError(code, os.strerror(code), path)


class UploadError(OSError):
    """Written data that a remote store could not take (``EIO``); it waits in its spill for
    a retry: another ``sync()`` or ``close()`` of the file, or the storage's
    ``retry_uploads()``."""


class FileKind(enum.Enum):
    REGULAR = "regular"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    CHARACTER_DEVICE = "character-device"
    BLOCK_DEVICE = "block-device"
    SOCKET = "socket"
    FIFO = "fifo"
    UNKNOWN = "unknown"

    # Members are singletons: hashing by identity finds them in a dict without the Python
    # call Enum's own hash costs (a kind is looked up on every open and stat).
    __hash__ = object.__hash__


# A value: never change one. Not declared frozen only because a frozen dataclass costs
# 0.5 us more to make, and every stat makes one; it stays hashable as if it were frozen.
@dataclass(slots=True, unsafe_hash=True)
class Stat:
    kind: FileKind
    size: int
    ino: int
    nlink: int
    dev: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int


# A value, as Stat is: hashable, never changed, not frozen (listing makes one per entry).
@dataclass(slots=True, unsafe_hash=True)
class DirEntry:
    name: str
    ino: int
    kind: FileKind


@runtime_checkable
class File(Protocol):
    """An open regular file. Reads and writes are positional: the virtualizer keeps the
    offset. ``data``/``buf`` may be memoryviews over guest memory: copy from/into them
    directly, never keep a reference after returning."""

    def readinto(self, buf: memoryview, offset: int) -> int:
        """Fill ``buf`` from ``offset``; returns the bytes read (0 at or past the end)."""
        ...

    def write(self, data: memoryview | bytes, offset: int) -> int:
        """Write all of ``data`` at ``offset``, growing the file (with zeros) as needed."""
        ...

    def stat(self) -> Stat:
        """The open file's status, even if its name has since been unlinked or renamed."""
        ...

    def truncate(self, size: int) -> None: ...

    def set_times(self, atime_ns: int | None, mtime_ns: int | None) -> None:
        """Set either time (None leaves it unchanged)."""
        ...

    def sync(self) -> None:
        """Make every byte written so far durable in the backend."""
        ...

    def close(self) -> None:
        """Sync, then release. Closing twice does nothing."""
        ...


@runtime_checkable
class Storage(Protocol):
    """A mounted filesystem, addressed by paths relative to its root (see the module doc)."""

    supports_symlinks: bool
    supports_hardlinks: bool

    def lstat(self, path: str) -> Stat: ...

    def open(
        self,
        path: str,
        *,
        create: bool = False,
        exclusive: bool = False,
        truncate: bool = False,
        writable: bool = False,
    ) -> File:
        """Open a regular file, deciding as :func:`.opening.open_rule` does (``EISDIR`` for
        a directory, ``ELOOP`` for a symlink, ...)."""
        ...

    def listdir(self, path: str) -> list[DirEntry]:
        """The entries of a directory, without ``.`` and ``..``, in a stable order."""
        ...

    def mkdir(self, path: str) -> None: ...

    def rmdir(self, path: str) -> None: ...

    def unlink(self, path: str) -> None: ...

    def rename(self, src: str, dst: str) -> None:
        """POSIX rename: atomically replaces ``dst`` (a file, or an empty directory when
        ``src`` is a directory)."""
        ...

    def symlink(self, target: str, path: str) -> None: ...

    def readlink(self, path: str) -> str: ...

    def link(self, src: str, dst: str) -> None: ...

    def set_times(self, path: str, atime_ns: int | None, mtime_ns: int | None) -> None: ...

    def close(self) -> None:
        """Release what the storage holds (host fds, connections, spills once uploaded).
        Closing twice does nothing more; what it cannot save it raises."""
        ...
