"""A client's fd table: preview 1's numbers for stdio streams and the client's handles.

What preview 1 keeps per fd and ``wasi:filesystem`` does not, lives here: the position a
file is read and written at, the append and non-blocking flags, the rights it reports, the
guest path of a preopen, and the listing ``fd_readdir`` is reading. Numbers are handed out
as wasmtime hands them out: the highest free number first, otherwise one past the highest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from heapq import heappop, heappush
from typing import BinaryIO

from .abi import Errno
from .errnos import WasiError

Dirent = tuple[bytes, int, int]  # (name, inode, filetype)


@dataclass(eq=False)
class Stdio:
    """fd 0, 1 or 2: a byte stream of the embedder's, not a descriptor of the implementation."""

    reader: BinaryIO | None
    writer: BinaryIO | None
    rights: int


@dataclass(eq=False, slots=True)
class Listing:
    """A directory being read by ``fd_readdir``: the stream, the cookie after the last
    entry handed out whole, and what the stream gave from that entry on (``entries[0]``
    is the entry of cookie ``first``; "." and ".." come first). What was handed out whole
    goes: a call that reads on starts at ``next_cookie``, any other starts a new listing."""

    stream: int
    entries: list[Dirent]
    ended: bool = False
    next_cookie: int = 0
    first: int = 0


@dataclass(eq=False, slots=True)
class Opened:
    """An fd naming a descriptor handle in the client's table."""

    handle: int
    filetype: int
    rights: int
    inheriting: int
    position: int = 0
    append: bool = False
    nonblock: bool = False
    preopen: str | None = None
    listing: Listing | None = field(default=None)


Entry = Stdio | Opened


class FdTable:
    """One client's fds. Every lookup answers ``EBADF`` for a number that holds nothing."""

    __slots__ = ("free", "slots")

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self.slots: list[Entry | None] = list(entries)
        # The free numbers below the top, negated: a heap whose top is the highest. (An
        # open and a close take and give back numbers here themselves: see Preview1.)
        self.free: list[int] = []

    def get(self, fd: int) -> Entry:
        try:
            entry = self.slots[fd] if fd >= 0 else None
        except IndexError:
            entry = None
        if entry is None:
            raise WasiError(Errno.BADF)
        return entry

    def add(self, entry: Entry) -> int:
        slots, free = self.slots, self.free
        if free:  # it holds exactly the free numbers below the top: remove pushes each
            fd = -heappop(free)
            slots[fd] = entry
            return fd
        slots.append(entry)
        return len(slots) - 1

    def remove(self, fd: int) -> Entry:
        slots = self.slots
        try:  # get's lookup, inline: every close removes
            entry = slots[fd] if fd >= 0 else None
        except IndexError:
            entry = None
        if entry is None:
            raise WasiError(Errno.BADF)
        slots[fd] = None
        heappush(self.free, -fd)
        return entry

    def put(self, fd: int, entry: Entry) -> None:
        """Place ``entry`` at ``fd``, which holds something now (fd_renumber's target)."""
        self.get(fd)
        self.slots[fd] = entry

    def items(self) -> Iterator[tuple[int, Entry]]:
        for fd, entry in enumerate(self.slots):
            if entry is not None:
                yield fd, entry
