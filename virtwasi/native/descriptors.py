"""The native implementation's representations, and the calls on one descriptor.

A :class:`HostFile` or :class:`HostDirectory` is a real host file descriptor that the
native implementation opened; a ``descriptor`` handle of the native instance stands for one,
and its destructor closes it. Reads and writes are positional (``preadv``/``pwrite``
straight between guest memory and the page cache): the client keeps its own position.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from ..filesystem.errors import ErrorCode, FsError
from ..filesystem.interface import NewTimestamp
from ..storage.base import FileKind, Stat
from ..storage.hostdir import to_stat
from . import times

MAX_OFFSET = 2**63 - 1  # off_t is signed: wasmtime answers EINVAL beyond
_ADVICE = (os.POSIX_FADV_NORMAL, os.POSIX_FADV_SEQUENTIAL, os.POSIX_FADV_RANDOM,
           os.POSIX_FADV_WILLNEED, os.POSIX_FADV_DONTNEED, os.POSIX_FADV_NOREUSE)


@dataclass(eq=False, slots=True)
class HostFile:
    """Anything but a directory, open on the host."""

    fd: int
    kind: FileKind
    flags: int


@dataclass(eq=False, slots=True)
class HostDirectory:
    """A directory open on the host: the start of every path resolved from it."""

    fd: int
    flags: int
    kind: FileKind = FileKind.DIRECTORY


HostDescriptor = HostFile | HostDirectory


def close_descriptor(desc: HostDescriptor) -> None:
    """The destructor. Linux releases the fd even when close reports an error (EIO from a
    late write-back), and nothing can be done about it: as in wasmtime, not reported."""
    if desc.fd >= 0:
        fd, desc.fd = desc.fd, -1
        with contextlib.suppress(OSError):
            os.close(fd)


def file_of(d: HostDescriptor) -> HostFile:
    if type(d) is not HostFile:
        raise FsError(ErrorCode.BAD_DESCRIPTOR, "a directory, not a file")
    return d


def directory_of(d: HostDescriptor) -> HostDirectory:
    # As wasmtime's wasi:filesystem (preview 1 answers EBADF before asking).
    if type(d) is not HostDirectory:
        raise FsError(ErrorCode.NOT_DIRECTORY, "a file, not a directory")
    return d


def _offset(offset: int, length: int = 0) -> int:
    if offset + length > MAX_OFFSET:
        raise FsError(ErrorCode.INVALID, "past the largest offset")
    return offset


def read(d: HostDescriptor, buf: memoryview, offset: int) -> int:
    return os.preadv(file_of(d).fd, [buf], _offset(offset, buf.nbytes))


def write(d: HostDescriptor, buf: memoryview, offset: int) -> int:
    return os.pwrite(file_of(d).fd, buf, _offset(offset, buf.nbytes))


def append(d: HostDescriptor, buf: memoryview) -> int:
    fd = file_of(d).fd
    return os.pwrite(fd, buf, _offset(os.fstat(fd).st_size, buf.nbytes))


def advise(d: HostDescriptor, offset: int, length: int, advice: int) -> None:
    # The offset goes to the kernel as the bits it is (it takes any); a length past off_t
    # is EINVAL, as wasmtime answers it.
    signed = offset - 2**64 if offset > MAX_OFFSET else offset
    os.posix_fadvise(file_of(d).fd, signed, _offset(length), _ADVICE[advice])


def sync(d: HostDescriptor) -> None:
    os.fsync(d.fd)  # a directory too, as wasmtime's wasi:filesystem syncs one


def sync_data(d: HostDescriptor) -> None:
    os.fdatasync(d.fd)


def set_size(d: HostDescriptor, size: int) -> None:
    os.ftruncate(file_of(d).fd, _offset(size))


def set_times(d: HostDescriptor, atime: NewTimestamp, mtime: NewTimestamp) -> None:
    times.set_times_fd(d.fd, times.times(atime, mtime))


def stat(d: HostDescriptor) -> Stat:
    return to_stat(os.fstat(d.fd))


def metadata_hash(d: HostDescriptor) -> tuple[int, int]:
    st = os.fstat(d.fd)
    return st.st_ino, st.st_dev


def is_same_object(d: HostDescriptor, other: HostDescriptor) -> bool:
    return metadata_hash(d) == metadata_hash(other)
