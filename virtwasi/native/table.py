"""The native implementation's fd table: guest fd numbers to real host file descriptors.

Entries are the embedder's stdio streams, open files and open directories. A file keeps its
own position (reads and writes are positional, as in wasmtime), its access mode and the
flags the guest set; a directory is just its host fd, with the guest path it was preopened
as. Numbers are handed out as wasmtime hands them out: the highest freed number first,
otherwise one past the highest in use.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass

from ..wasi.abi import Errno
from ..wasi.common import Stdio
from ..wasi.errors import WasiError


@dataclass(eq=False, slots=True)
class OpenFile:
    """A file (anything but a directory) open on the host."""

    fd: int
    filetype: int
    readable: bool
    writable: bool
    append: bool = False
    nonblock: bool = False
    position: int = 0


@dataclass(eq=False, slots=True)
class OpenDir:
    """A directory open on the host: the start of every path the guest resolves from it."""

    fd: int
    preopen: str | None = None


Entry = Stdio | OpenFile | OpenDir


class FdTable:
    """One client's fds. Every lookup answers ``EBADF`` for a number that holds nothing."""

    __slots__ = ("free", "used")

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self.used: dict[int, Entry] = dict(enumerate(entries))
        self.free: set[int] = set()

    def get(self, fd: int) -> Entry:
        entry = self.used.get(fd)
        if entry is None:
            raise WasiError(Errno.BADF)
        return entry

    def file(self, fd: int) -> OpenFile:
        entry = self.used.get(fd)
        if not isinstance(entry, OpenFile):
            raise WasiError(Errno.BADF)
        return entry

    def directory(self, fd: int) -> OpenDir:
        entry = self.used.get(fd)
        if not isinstance(entry, OpenDir):
            raise WasiError(Errno.BADF)
        return entry

    def seekable(self, fd: int) -> OpenFile:
        """A file; a stream is ``ESPIPE``, anything else ``EBADF``."""
        entry = self.get(fd)
        if isinstance(entry, Stdio):
            raise WasiError(Errno.SPIPE)
        if not isinstance(entry, OpenFile):
            raise WasiError(Errno.BADF)
        return entry

    def push(self, entry: Entry) -> int:
        if self.free:
            fd = max(self.free)
            self.free.remove(fd)
        else:
            fd = max(self.used, default=-1) + 1
        self.used[fd] = entry
        return fd

    def close(self, fd: int) -> None:
        entry = self.get(fd)
        del self.used[fd]
        self.free.add(fd)
        release(entry)

    def renumber(self, fd: int, to: int) -> None:
        """Move ``fd`` onto ``to`` (both must be open), closing what ``to`` held."""
        entry = self.get(fd)
        replaced = self.get(to)
        if fd == to:
            return
        self.used[to] = entry
        del self.used[fd]
        self.free.add(fd)
        release(replaced)

    def close_all(self) -> int:
        """Close every host fd in the table; returns how many there were."""
        closed = 0
        for entry in self.used.values():
            closed += release(entry)
        self.used.clear()
        self.free.clear()
        return closed


def release(entry: Entry) -> int:
    """Close the host fd behind ``entry``: 1 if there was one, 0 for a stream (the
    embedder's to close)."""
    if isinstance(entry, Stdio):
        return 0
    # Linux releases the fd even when close reports an error (EIO from a late write-back),
    # and a guest's close cannot do anything about it: as in wasmtime, it is not reported.
    with contextlib.suppress(OSError):
        os.close(entry.fd)
    return 1
