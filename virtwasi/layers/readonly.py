"""A read-only view of the WASI interface, written as an unprivileged layer: attenuation.

The layer imports the interface as ``lower`` and exports the same interface, with a private
resource type of its own in place of each lower one (``ro-descriptor`` for ``descriptor``,
``ro-directory-stream`` for ``directory-stream``), exported under the same name, built by
:mod:`.wrapping`: each read-only handle wraps a lower one that the layer holds and never
hands out, and closing it (or tearing down a client that left it open) closes the file
below. Each lower function is exported again with its types swapped; its name decides its
rule.

What a client can do through the layer:

- every read path passes through: ``preopen*``, ``stat``, ``stat_at``, ``read``, ``pread``,
  ``seek``, the directory streams, ``readlink_at``, and ``advise``, ``sync`` and
  ``set_flags`` (none changes the tree); ``fdstat`` too, with every right that could change
  the tree taken out; ``open_at`` of an existing file or directory for reading;
- ``open_at`` that asks to write (the rights wasi-libc asks for only when writing), or
  with ``CREAT``, ``TRUNC`` or ``APPEND``, answers ``EROFS``, as does every call that would
  change the tree (make, remove, rename, link or symlink an entry, set times);
- no descriptor of the layer is open for writing, so ``write``, ``pwrite``, ``set_size`` and
  ``allocate`` answer ``EBADF``, as for any file opened read-only on Linux;
- a function of the lower interface that the layer has no rule for is refused with
  ``ENOTSUP``: a read-only view fails closed.

The errno is Linux's for a read-only mount, and what ``virtwasi run --ro`` answers.
wasmtime's built-in WASI answers ``EPERM`` for a preopen it serves without mutation.

Under ``component-model`` and ``proposal-2021`` semantics the read-only types are really
private: a read-only handle passed where the lower ``descriptor`` is expected traps with
``TYPE_MISMATCH`` at the membrane, so whoever is given one cannot cast it back to a writable
descriptor. Under ``transparent`` semantics the layer still works for a client that plays
fair, but by definition a private type cannot be carried: handles are bare integers that
nothing checks, so the number of a read-only handle, presented to the implementation
itself, names whatever writable descriptor sits at that index of its table. (Nothing
closes a dead client's files there either, with or without the layer.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..wasi.abi import Errno, Fdflags, Oflags, Rights
from ..wasi.errors import WasiError
from ..world import BoundFunc, Context, Definition, Func, ResourceType
from .wrapping import Rule, Wrapping, rules_for

READS = frozenset({
    "preopen_count", "preopen", "preopen_name", "stat", "stat_at", "read", "pread", "seek",
    "advise", "sync", "set_flags", "open_directory", "read_directory", "readlink_at",
})
"""Passed through unchanged: they read, or change only the descriptor's own state."""

MUTATIONS = frozenset({
    "mkdir_at", "rmdir_at", "unlink_at", "rename_at", "symlink_at", "link_at", "set_times",
    "set_times_at",
})
"""Would change the tree: ``EROFS``."""

WRITES = frozenset({"write", "pwrite", "set_size", "allocate"})
"""Write through a descriptor, none of which the layer opened for writing: ``EBADF``."""

CLOSES = frozenset({"close", "close_directory"})
"""End the caller's handle: the layer ends its own, whose destructor drops the lower one."""

DECIDED = frozenset({"open_at", "fdstat"})
"""Each with its own rule below."""

RULES = READS | MUTATIONS | WRITES | CLOSES | DECIDED

# The rights wasi-libc asks for only when a file is opened for writing.
WRITE_RIGHTS = int(Rights.FD_WRITE | Rights.FD_ALLOCATE | Rights.FD_FILESTAT_SET_SIZE)
# Every right that could change the tree: fdstat never reports one through the layer.
MUTATING_RIGHTS = WRITE_RIGHTS | int(
    Rights.FD_FILESTAT_SET_TIMES | Rights.PATH_CREATE_DIRECTORY | Rights.PATH_CREATE_FILE
    | Rights.PATH_LINK_SOURCE | Rights.PATH_LINK_TARGET | Rights.PATH_RENAME_SOURCE
    | Rights.PATH_RENAME_TARGET | Rights.PATH_FILESTAT_SET_SIZE
    | Rights.PATH_FILESTAT_SET_TIMES | Rights.PATH_SYMLINK | Rights.PATH_REMOVE_DIRECTORY
    | Rights.PATH_UNLINK_FILE
)
WRITE_OFLAGS = int(Oflags.CREAT | Oflags.TRUNC)
_APPEND = int(Fdflags.APPEND)


def read_only_layer() -> Definition:
    """The definition of a read-only layer; instantiate it with the interface as ``lower``.

    Every resource type the lower interface exports (``descriptor``, ``directory-stream``)
    gets a private counterpart here (``ro-descriptor``, ``ro-directory-stream``), exported
    under the same name, and every function its counterpart with the types swapped.
    """

    def definition(ctx: Context) -> dict[str, Func | ResourceType]:
        layer = Wrapping(ctx, "ro")
        lower_of = layer.lower_of

        def refusing(errno: Errno) -> Rule:
            return lambda bound: layer.refuse(bound, errno)

        def open_at(bound: BoundFunc) -> Callable[..., Any]:
            opened = layer.forward(bound)
            ((_, rtype),) = layer.handle_slots(bound)

            def checked(h: Any, path: str, follow: bool, oflags: int, fdflags: int,
                        rights: int, inheriting: int) -> Any:
                if oflags & WRITE_OFLAGS or fdflags & _APPEND or rights & WRITE_RIGHTS:
                    lower_of(h, rtype)  # a bad handle traps first
                    raise WasiError(Errno.ROFS)
                return opened(h, path, follow, oflags, fdflags, rights, inheriting)

            return checked

        def fdstat(bound: BoundFunc) -> Callable[..., Any]:
            stat_below = layer.forward(bound)

            def attenuated(h: Any) -> tuple[int, int, int, int]:
                filetype, flags, rights, inheriting = stat_below(h)
                return filetype, flags, rights & ~MUTATING_RIGHTS, inheriting & ~MUTATING_RIGHTS

            return attenuated

        rules = {
            **rules_for(READS, layer.forward),
            **rules_for(MUTATIONS, refusing(Errno.ROFS)),
            **rules_for(WRITES, refusing(Errno.BADF)),
            **rules_for(CLOSES, layer.close),
            "open_at": open_at,
            "fdstat": fdstat,
        }
        # A function this layer has no rule for: a read-only view fails closed.
        return layer.exports(rules, default=refusing(Errno.NOTSUP))

    return definition
