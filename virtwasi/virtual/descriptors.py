"""The virtual implementation's representations, and the calls on one descriptor.

A :class:`Descriptor` is what a ``descriptor`` handle stands for inside the implementation
instance (an open file or directory of one storage); no client ever sees one. The calls
here act on the descriptor itself: reading and writing at an offset (the client keeps its
own position), its status, flags, size and times. Which descriptors each call accepts, and
the error for the others, follow wasmtime's built-in WASI.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..filesystem.errors import ErrorCode, FsError
from ..filesystem.interface import (
    NOW,
    READ,
    WRITE,
    DirectoryEntry,
    DirectoryListing,
    NewTimestamp,
)
from ..storage.base import File, FileKind, Stat, Storage

# Positions are u64, but I/O must end by the largest off_t (Linux's EINVAL).
MAX_OFFSET = 2**63 - 1


@dataclass(eq=False, slots=True)
class Descriptor:
    """An open file or directory: the storage it lives in, its path there, and the
    descriptor flags it was opened with."""

    storage: Storage
    path: str
    kind: FileKind
    file: File | None  # None for a directory
    flags: int
    ino: int = 0  # a directory's, for its status once its path is gone

    def require_file(self) -> File:
        # wasmtime answers EBADF for a file operation on a directory.
        if self.file is None:
            raise FsError(ErrorCode.BAD_DESCRIPTOR, "a directory, not a file")
        return self.file

    def require_directory(self) -> None:
        # As wasmtime's wasi:filesystem (preview 1 answers EBADF before asking).
        if self.kind is not FileKind.DIRECTORY:
            raise FsError(ErrorCode.NOT_DIRECTORY, "a file, not a directory")


def close_descriptor(desc: Descriptor) -> None:
    """The destructor: flush and close the file (its error reaches whoever closed it)."""
    if desc.file is not None:
        file, desc.file = desc.file, None
        file.close()


def listing(d: Descriptor) -> DirectoryListing:
    """The directory's entries, listed when the first is asked for; a directory removed
    while open lists nothing."""
    d.require_directory()

    def load() -> list[DirectoryEntry]:
        try:
            return d.storage.listdir(d.path)  # its own records: see DirectoryEntry
        except FileNotFoundError:
            return []

    return DirectoryListing(load)


def timestamp(given: NewTimestamp) -> int | None:
    return time.time_ns() if given is NOW else given


# The hot calls take the representation as a borrow brings it (see Context.rep_of).
def read(d: Descriptor, buf: memoryview, offset: int) -> int:
    file = d.file
    if file is None:
        file = d.require_file()
    if offset > MAX_OFFSET:  # before the mode, as Linux's pread checks them
        raise FsError(ErrorCode.INVALID, "past the largest offset")
    if not d.flags & READ:
        raise FsError(ErrorCode.BAD_DESCRIPTOR, "not open for reading")
    if offset + buf.nbytes > MAX_OFFSET:
        raise FsError(ErrorCode.INVALID, "past the largest offset")
    return file.readinto(buf, offset)


def write(d: Descriptor, buf: memoryview, offset: int) -> int:
    file = d.file
    if file is None:
        file = d.require_file()
    if offset > MAX_OFFSET:  # before the mode, as Linux's pwrite checks them
        raise FsError(ErrorCode.INVALID, "past the largest offset")
    if not d.flags & WRITE:
        raise FsError(ErrorCode.BAD_DESCRIPTOR, "not open for writing")
    if offset + buf.nbytes > MAX_OFFSET:
        raise FsError(ErrorCode.INVALID, "past the largest offset")
    return file.write(buf, offset)


def append(d: Descriptor, buf: memoryview) -> int:
    return write(d, buf, d.require_file().stat().size)


def stat(d: Descriptor) -> Stat:
    if d.file is not None:
        return d.file.stat()
    try:
        return d.storage.lstat(d.path)
    except FileNotFoundError:  # a directory removed while open still answers, as on Linux
        return Stat(FileKind.DIRECTORY, 0, d.ino, 0, 0, 0, 0, 0)


def set_size(d: Descriptor, size: int) -> None:
    file = d.require_file()
    if not d.flags & WRITE:
        raise FsError(ErrorCode.INVALID, "not open for writing")  # Linux's ftruncate
    if size > MAX_OFFSET:
        raise FsError(ErrorCode.INVALID, "past the largest offset")
    file.truncate(size)


def set_times(d: Descriptor, atime: NewTimestamp, mtime: NewTimestamp) -> None:
    a, m = timestamp(atime), timestamp(mtime)
    if d.file is not None:
        d.file.set_times(a, m)
    else:
        d.storage.set_times(d.path, a, m)


def sync(d: Descriptor) -> None:
    if d.file is not None:  # a directory has nothing of its own to store
        d.file.sync()


def advise(d: Descriptor, offset: int, length: int, advice: int) -> None:
    d.require_file()  # advice is only advice: files take it and ignore it
    if length > MAX_OFFSET:  # but a length must fit off_t, as on Linux (any offset will do)
        raise FsError(ErrorCode.INVALID, "length past the largest offset")


def metadata_hash(d: Descriptor) -> tuple[int, int]:
    st = stat(d)
    return st.ino, st.dev


def is_same_object(d: Descriptor, other: Descriptor) -> bool:
    return d.storage is other.storage and metadata_hash(d) == metadata_hash(other)
