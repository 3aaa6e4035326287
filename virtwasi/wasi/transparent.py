"""The preview 1 adapter under transparent semantics: "take one" of the 2021 notes.

With transparent types a descriptor is a bare integer indexing the virtualizer's own table,
and nothing mediates it. This adapter models that honestly at the preview 1 level: it keeps
no private table for descriptors. fd N (N >= 3) *is* the virtualizer's index N - 2 (index 0
of a table is never valid, so fd 2 would be index 0 and stdio keeps 0-2); only stdin,
stdout and stderr stay per client. So every client of one virtualizer shares one fd
namespace: a number another client guesses reaches that client's file, and a number one
client closes is handed out again by the next open of any client (the virtualizer's table
reuses freed slots, most recently freed first).

It is chosen by :class:`~virtwasi.client.Client` when the world's semantics is transparent.
The hot calls of :class:`~virtwasi.wasi.preview1.Preview1` are inherited untouched: their
private table holds only stdio here, so for any other fd they fall back to :meth:`entry`,
which answers the virtualizer's index without looking anything up. A number the
virtualizer's table does not hold is found out by the virtualizer itself, whose lookup
raises the world's ``invalid-handle`` trap; the engine answers that one trap with ``EBADF``
(:func:`answer`), so the guest sees what a POSIX process sees for a closed fd. Every other
trap still ends the guest.
"""

from __future__ import annotations

from typing import BinaryIO

from ..world import Context, Exports, Trap, TrapReason
from .abi import Errno, Rights
from .common import Stdio
from .errors import WasiError, check_flags, errno_of
from .preview1 import FdEntry, Preview1

STDIO = 3  # fds 0-2: the client's own streams
OFFSET = STDIO - 1  # fd = index + 2: the table's index 1 is fd 3


def fd_of(index: int) -> int:
    """The fd number every client uses for the virtualizer's table index ``index``."""
    return index + OFFSET


def index_of(fd: int) -> int:
    """The virtualizer's table index that fd ``fd`` (>= 3) names."""
    return fd - OFFSET


ANSWERED: tuple[type[BaseException], ...] = (WasiError, OSError, Trap)
"""What the engine answers with an errno for a transparent client (see :func:`answer`)."""


def answer(exc: BaseException) -> int:
    """The errno for ``exc``: ``EBADF`` for a number the virtualizer's table does not hold.
    Any other trap is raised again, and ends the guest as it would anywhere else."""
    if isinstance(exc, Trap):
        if exc.reason is TrapReason.INVALID_HANDLE:
            return Errno.BADF
        raise exc
    return errno_of(exc)


class TransparentPreview1(Preview1):
    """The imports of one client whose fds are the virtualizer's own indices."""

    def __init__(
        self,
        wasi: Exports,
        args: list[str],
        env: list[str],
        stdin: BinaryIO | None,
        stdout: BinaryIO | None,
        stderr: BinaryIO | None,
        client: Context | None = None,
    ) -> None:
        super().__init__(wasi, args, env, stdin, stdout, stderr, client)
        # The preopens were just made in the shared table, wherever it had room: their fds
        # are their indices, not the next numbers of a private table. wasi-libc finds
        # preopens by asking fd 3, 4, ... until one is not a preopen, so a client that joins
        # after others may adopt the first client's preopens of the same mounts (one
        # namespace) and never find its own, which then sit unused: harmless, and honest.
        self.preopens = [fd_of(index) for index in self.fds[STDIO:] if isinstance(index, int)]
        del self.fds[STDIO:]

    # -- the fd namespace: stdio is the client's, everything else is the virtualizer's ----
    def entry(self, fd: int) -> FdEntry:
        if fd < STDIO:
            return super().entry(fd)
        return fd - OFFSET  # no lookup: the virtualizer finds out (EBADF) if it holds nothing

    def allocate(self, entry: FdEntry) -> int:
        if isinstance(entry, Stdio):
            raise WasiError(Errno.NOTSUP)
        return fd_of(entry)  # the number is the virtualizer's index: nothing to allocate

    def fd_close(self, fd: int) -> None:
        if fd < STDIO:
            super().fd_close(fd)
            return
        # Frees slot fd - 2 of the shared table, whoever opened it: a double close, or a
        # close of a guessed number, closes whatever file holds that number now.
        self.wasi.close(index_of(fd))
        self._drop_stream(fd)

    def fd_renumber(self, fd: int, to: int) -> None:
        # Under take one a number is a slot of the virtualizer's table, and which file sits
        # in which slot is the virtualizer's business: its interface has no call to move a
        # file to another slot, and the adapter could only fake one by keeping a private
        # table of its own again, which is exactly what this mode does without. So, like a
        # runtime that does not offer it, answer ENOTSUP.
        raise WasiError(Errno.NOTSUP)

    def fd_fdstat_set_rights(self, fd: int, base: int, inheriting: int) -> None:
        check_flags("Rights", base, Rights)
        check_flags("Rights", inheriting, Rights)
        if fd >= STDIO:
            self._fdstat(index_of(fd))  # EBADF, not ENOTSUP, for a number that holds nothing
        super().fd_fdstat_set_rights(fd, base, inheriting)
