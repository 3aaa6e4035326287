"""A read-only view of the WASI interface, written as an unprivileged layer: attenuation.

The layer imports the interface as ``lower`` and exports the same interface, with a private
resource type of its own in place of each lower one (``ro-descriptor`` for ``descriptor``,
``ro-directory-stream`` for ``directory-stream``), exported under the same name. The
representation of each read-only handle is the lower handle it wraps, which the layer holds
in its own table and never hands out; the type's destructor drops that lower handle, so
closing a file through the layer (or tearing down a client that left it open) closes the
file below. The exports are derived from the lower instance's: each function keeps its
signature with the types swapped, and its name decides its rule.

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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..wasi.abi import Errno, Fdflags, Oflags, Rights
from ..wasi.errors import WasiError
from ..world import (
    BoundFunc,
    Context,
    Definition,
    Func,
    HandleParam,
    ResourceType,
    Semantics,
    Trap,
    TrapReason,
    Value,
)

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


@dataclass(eq=False, slots=True)
class ReadOnly:
    """The representation behind a read-only handle: the lower handle, held by the layer."""

    lower: int


def read_only_layer() -> Definition:
    """The definition of a read-only layer; instantiate it with the interface as ``lower``.

    Every resource type the lower interface exports (``descriptor``, ``directory-stream``)
    gets a private counterpart here (``ro-descriptor``, ``ro-directory-stream``), exported
    under the same name, and every function its counterpart with the types swapped.
    """

    def definition(ctx: Context) -> dict[str, Func | ResourceType]:
        below = ctx.imports["lower"]
        exports: dict[str, Func | ResourceType] = {}
        ours: dict[ResourceType, ResourceType] = {}  # lower type -> the layer's own
        for name in below:
            lower_type = below[name]
            if isinstance(lower_type, ResourceType):
                ours[lower_type] = exports[name] = _wrapper_type(ctx, lower_type)

        def lower_of(h: Any, rtype: ResourceType) -> Any:
            # Under the component model a borrow reaches its definer as the rep itself.
            rep: ReadOnly = h if type(h) is ReadOnly else ctx.resource_rep(rtype, h)
            return rep.lower

        def retyped(types: Sequence[HandleParam | Value]) -> list[HandleParam | Value]:
            return [HandleParam(ours[t.rtype], t.kind) if isinstance(t, HandleParam) else t
                    for t in types]

        def forward(bound: BoundFunc) -> Callable[..., Any]:
            call_below = bound.lowered
            slots = _handle_slots(bound.func, ours)
            results = [ours[r.rtype] for r in bound.func.results if isinstance(r, HandleParam)]
            wrap_as = results[0] if results else None  # no function returns two handles
            if len(slots) == 1 and slots[0][0] == 0 and wrap_as is None:
                rtype = slots[0][1]

                def first(h: Any, *args: Any) -> Any:  # the hot shape: one handle, first
                    return call_below(lower_of(h, rtype), *args)

                return first

            def general(*args: Any) -> Any:
                lowered = list(args)
                for i, rtype in slots:
                    lowered[i] = lower_of(args[i], rtype)
                result = call_below(*lowered)
                return result if wrap_as is None else ctx.resource_new(wrap_as, ReadOnly(result))

            return general

        def refuse(bound: BoundFunc, errno: Errno) -> Callable[..., Any]:
            slots = _handle_slots(bound.func, ours)

            def refused(*args: Any) -> Any:
                for i, rtype in slots:
                    lower_of(args[i], rtype)  # a closed or null handle traps, as it would below
                raise WasiError(errno)

            return refused

        def close(bound: BoundFunc) -> Callable[..., Any]:
            ((_, rtype),) = _handle_slots(bound.func, ours)

            def closed(h: int) -> None:
                # 2021: close is the explicit destroy the proposal gives WASI resources;
                # dropping only the callee's copy would leave the caller's open.
                if ctx.semantics is Semantics.PROPOSAL_2021:
                    ctx.resource_destroy(rtype, h)
                else:
                    ctx.resource_drop(rtype, h)

            return closed

        def open_at(bound: BoundFunc) -> Callable[..., Any]:
            opened = forward(bound)
            ((_, rtype),) = _handle_slots(bound.func, ours)

            def checked(h: Any, path: str, follow: bool, oflags: int, fdflags: int,
                        rights: int, inheriting: int) -> Any:
                if oflags & WRITE_OFLAGS or fdflags & _APPEND or rights & WRITE_RIGHTS:
                    lower_of(h, rtype)  # a bad handle traps first
                    raise WasiError(Errno.ROFS)
                return opened(h, path, follow, oflags, fdflags, rights, inheriting)

            return checked

        def fdstat(bound: BoundFunc) -> Callable[..., Any]:
            stat_below = forward(bound)

            def attenuated(h: Any) -> tuple[int, int, int, int]:
                filetype, flags, rights, inheriting = stat_below(h)
                return filetype, flags, rights & ~MUTATING_RIGHTS, inheriting & ~MUTATING_RIGHTS

            return attenuated

        for name in below:
            bound = below[name]
            if isinstance(bound, ResourceType):
                continue
            if name in READS:
                fn = forward(bound)
            elif name in MUTATIONS:
                fn = refuse(bound, Errno.ROFS)
            elif name in WRITES:
                fn = refuse(bound, Errno.BADF)
            elif name in CLOSES:
                fn = close(bound)
            elif name == "open_at":
                fn = open_at(bound)
            elif name == "fdstat":
                fn = fdstat(bound)
            else:  # a function this layer has no rule for: a read-only view fails closed
                fn = refuse(bound, Errno.NOTSUP)
            exports[name] = ctx.func(fn, retyped(bound.func.params),
                                     retyped(bound.func.results), name=name)
        return exports

    return definition


def _wrapper_type(ctx: Context, lower_type: ResourceType) -> ResourceType:
    """The layer's private counterpart of ``lower_type``: dropping one drops the lower."""

    def release(rep: ReadOnly) -> None:
        try:
            ctx.resource_drop(lower_type, rep.lower)
        except Trap as trap:
            # Tearing this layer down drops every handle it holds before ending its
            # resources: the lower one is gone already and its slot is empty.
            if trap.reason is not TrapReason.INVALID_HANDLE:
                raise

    return ctx.resource_type(f"ro-{lower_type.name}", destructor=release)


def _handle_slots(func: Func, ours: dict[ResourceType, ResourceType]
                  ) -> tuple[tuple[int, ResourceType], ...]:
    """(position, the layer's type) of every handle parameter of a lower function."""
    return tuple((i, ours[p.rtype]) for i, p in enumerate(func.params)
                 if isinstance(p, HandleParam))
