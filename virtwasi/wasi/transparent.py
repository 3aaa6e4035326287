"""The preview 1 adapter under transparent semantics: "take one" of the 2021 notes.

With transparent types a descriptor is a bare integer indexing the implementation's own
table, and nothing mediates it. This adapter models that honestly at the preview 1 level:
it keeps no private table for descriptors. fd N (N >= 3) *is* the implementation's index
N - 2 (index 0 of a table is never valid, so fd 2 would be index 0 and stdio keeps 0-2);
only stdin, stdout and stderr stay per client. So every client of one implementation shares
one fd namespace: a number another client guesses reaches that client's file, and a number
one client closes is handed out again by the next open of any client (the table reuses
freed slots, most recently freed first).

What preview 1 keeps per fd (the position, the append flag) is kept here per number; the
rest is asked of the implementation each time, since the file behind a number can change
under this client. A number the implementation's table does not hold is found out by the
implementation itself, whose lookup raises the world's ``invalid-handle`` trap; the engine
answers that one trap with ``EBADF`` (:func:`answer`), so the guest sees what a POSIX
process sees for a closed fd. Every other trap still ends the guest.
"""

from __future__ import annotations

from typing import BinaryIO

from ..world import Context, Exports, Trap, TrapReason
from .abi import Errno
from .errnos import ANSWERED as PREVIEW1_ANSWERED
from .errnos import WasiError, errno_of
from .fdtable import Entry, Opened
from .preview1 import Preview1

STDIO = 3  # fds 0-2: the client's own streams
OFFSET = STDIO - 1  # fd = index + 2: the table's index 1 is fd 3


def fd_of(index: int) -> int:
    """The fd number every client uses for the implementation's table index ``index``."""
    return index + OFFSET


def index_of(fd: int) -> int:
    """The implementation's table index that fd ``fd`` (>= 3) names."""
    return fd - OFFSET


ANSWERED: tuple[type[BaseException], ...] = (*PREVIEW1_ANSWERED, Trap)
"""What the engine answers with an errno for a transparent client (see :func:`answer`)."""


def answer(exc: BaseException) -> int:
    """The errno for ``exc``: ``EBADF`` for a number the implementation's table does not
    hold. Any other trap is raised again, and ends the guest as it would anywhere else."""
    if isinstance(exc, Trap):
        if exc.reason is TrapReason.INVALID_HANDLE:
            return Errno.BADF
        raise exc
    return errno_of(exc)


class TransparentPreview1(Preview1):
    """The imports of one client whose fds are the implementation's own indices."""

    def __init__(self, wasi: Exports, client: Context, args: list[str], env: list[str],
                 stdin: BinaryIO | None, stdout: BinaryIO | None,
                 stderr: BinaryIO | None) -> None:
        super().__init__(wasi, client, args, env, stdin, stdout, stderr)
        # The preopens were just made in the shared table, wherever it had room: their fds
        # are their indices, not the next numbers of a private table.
        self._known: dict[int, Opened] = {
            fd_of(entry.handle): entry for fd, entry in self.table.items()
            if fd >= STDIO and isinstance(entry, Opened)}
        self.preopens = sorted(self._known)
        del self.table.slots[STDIO:]
        self.place = self._place_known
        self._free = None  # numbers are not this adapter's to pick

    # -- the fd namespace: stdio is the client's, everything else the implementation's ---
    def entry(self, fd: int) -> Entry:
        if fd < STDIO:
            return super().entry(fd)
        # Asked afresh (an invalid number traps in the implementation: EBADF); while the
        # number still names a descriptor of the same type, what this client knew of it
        # (its position, its flags, its preopen name) still holds.
        fresh = self._described(index_of(fd))
        known = self._known.get(fd)
        if known is not None and known.filetype == fresh.filetype:
            return known
        self._adopt_preopen(fresh)
        self._known[fd] = fresh
        return fresh

    def _adopt_preopen(self, fresh: Opened) -> None:
        """A number in the shared namespace that is one of this client's preopened
        directories under another client's number: wasi-libc finds preopens by asking fd
        3, 4, ... in turn, so a client that joins after others adopts their preopens of
        the same mounts (one namespace) and never reaches its own. Harmless, and honest."""
        for known in list(self._known.values()):
            if known.preopen is not None and self.wasi.is_same_object(fresh.handle,
                                                                      known.handle):
                fresh.preopen = known.preopen
                fresh.rights, fresh.inheriting = known.rights, known.inheriting
                return

    def _place_known(self, opened: Opened) -> int:
        fd = fd_of(opened.handle)  # the number is the implementation's index: nothing to pick
        self._known[fd] = opened
        return fd

    def fd_close(self, fd: int) -> None:
        if fd < STDIO:
            super().fd_close(fd)
            return
        # Frees slot fd - 2 of the shared table, whoever opened it: a double close, or a
        # close of a guessed number, closes whatever file holds that number now.
        known = self._known.pop(fd, None)
        if known is not None:
            self._end_listing(known)
        self._client.end(self._descriptor, index_of(fd))

    def fd_renumber(self, fd: int, to: int) -> None:
        # Under take one a number is a slot of the implementation's table, and which file
        # sits in which slot is the implementation's business: its interface has no call to
        # move a file to another slot, and the adapter could only fake one by keeping a
        # private table of its own again, which is exactly what this mode does without.
        # So, like a runtime that does not offer it, answer ENOTSUP.
        raise WasiError(Errno.NOTSUP)
