"""What every policy layer shares: private types wrapping the lower ones, and derived exports.

A layer imports the WASI-like interface as ``lower`` and exports the same interface. For each
resource type below (``descriptor``, ``directory-stream``) it defines a private counterpart
(``<prefix>-descriptor``...), exported under the same name, whose representation holds the
lower handle: the layer keeps that handle in its own table and never hands it out. The
type's destructor drops the lower handle, so closing through the layer, or tearing down a
client that left something open, closes it below. Each lower function is exported again with
its signature's types swapped; a policy decides, function by function, what the exported one
does, from the building blocks here: forward, refuse, close.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..wasi.abi import Errno
from ..wasi.errors import WasiError
from ..world import (
    BoundFunc,
    Context,
    Func,
    HandleParam,
    ResourceType,
    Semantics,
    Trap,
    TrapReason,
    Value,
)

Rule = Callable[[BoundFunc], Callable[..., Any]]
"""Makes the exported function for one lower function (given as bound for the layer)."""


@dataclass(eq=False, slots=True)
class Wrapped:
    """The representation behind a layer's handle: the lower handle, held by the layer.
    A policy that keeps more per handle subclasses it (and passes the subclass as
    ``rep_type``): every handle of one layer has a representation of that one class."""

    lower: int


class Wrapping:
    """One layer instance's private types and its view of the interface below.

    ``before_release`` runs with a representation and its type's exported name just before
    its lower handle is dropped (a handle closed through the layer, or left open by a client
    torn down).
    """

    def __init__(self, ctx: Context, prefix: str, rep_type: type[Wrapped] = Wrapped,
                 before_release: Callable[[Any, str], None] | None = None) -> None:
        self.ctx = ctx
        self.rep_type = rep_type
        self.below = ctx.imports["lower"]
        self.types: dict[str, ResourceType] = {}  # exported name -> the layer's own type
        self.ours: dict[ResourceType, ResourceType] = {}  # lower type -> the layer's own
        self.functions: dict[str, BoundFunc] = {}  # the lower functions, called as the layer
        for name in self.below:
            item = self.below[name]
            if isinstance(item, ResourceType):
                self.ours[item] = self.types[name] = self._wrapper_type(
                    prefix, name, item, before_release)
            else:
                self.functions[name] = item

        def rep_of(h: Any, rtype: ResourceType) -> Any:
            # Under the component model a borrow reaches its definer as the rep itself.
            return h if type(h) is rep_type else ctx.resource_rep(rtype, h)

        def lower_of(h: Any, rtype: ResourceType) -> Any:
            rep: Wrapped = h if type(h) is rep_type else ctx.resource_rep(rtype, h)
            return rep.lower

        self.rep_of = rep_of
        self.lower_of = lower_of

    def _wrapper_type(self, prefix: str, name: str, lower_type: ResourceType,
                      before_release: Callable[[Any, str], None] | None) -> ResourceType:
        ctx = self.ctx

        def release(rep: Wrapped) -> None:
            try:
                if before_release is not None:
                    before_release(rep, name)
                ctx.resource_drop(lower_type, rep.lower)
            except Trap as trap:
                # Tearing the layer down drops every handle it holds before ending its
                # resources: the lower one is gone already and its slot is empty.
                if trap.reason is not TrapReason.INVALID_HANDLE:
                    raise

        return ctx.resource_type(f"{prefix}-{name}", destructor=release)

    # -- reading signatures ------------------------------------------------------------------
    def handle_slots(self, bound: BoundFunc) -> tuple[tuple[int, ResourceType], ...]:
        """(position, the layer's type) of every handle parameter of a lower function."""
        return tuple((i, self.ours[p.rtype]) for i, p in enumerate(bound.params)
                     if isinstance(p, HandleParam))

    def result_type(self, bound: BoundFunc) -> ResourceType | None:
        """The layer's type of the handle a lower function returns, if it returns one (no
        function of the interface returns two)."""
        results = [self.ours[r.rtype] for r in bound.results if isinstance(r, HandleParam)]
        return results[0] if results else None

    def _retyped(self, types: Sequence[HandleParam | Value]) -> list[HandleParam | Value]:
        return [HandleParam(self.ours[t.rtype], t.kind) if isinstance(t, HandleParam) else t
                for t in types]

    # -- building blocks -----------------------------------------------------------------
    def wrap(self, rtype: ResourceType, rep: Wrapped) -> int:
        """A new handle of the layer's ``rtype`` around ``rep`` (whose lower handle the layer
        now holds)."""
        return self.ctx.resource_new(rtype, rep)

    def forward(self, bound: BoundFunc) -> Callable[..., Any]:
        """Passes the call below with each handle swapped for the lower one it wraps, and
        wraps a returned handle in the layer's own type."""
        call_below = bound.lowered
        lower_of = self.lower_of
        slots = self.handle_slots(bound)
        wrap_as = self.result_type(bound)
        if len(slots) == 1 and slots[0][0] == 0 and wrap_as is None:
            rtype = slots[0][1]

            def first(h: Any, *args: Any) -> Any:  # the hot shape: one handle, first
                return call_below(lower_of(h, rtype), *args)

            return first
        ctx, rep_type = self.ctx, self.rep_type

        def general(*args: Any) -> Any:
            lowered = list(args)
            for i, rtype in slots:
                lowered[i] = lower_of(args[i], rtype)
            result = call_below(*lowered)
            return result if wrap_as is None else ctx.resource_new(wrap_as, rep_type(result))

        return general

    def refuse(self, bound: BoundFunc, errno: Errno) -> Callable[..., Any]:
        """Answers ``errno`` without calling below (a bad handle still traps first)."""
        slots = self.handle_slots(bound)
        lower_of = self.lower_of

        def refused(*args: Any) -> Any:
            for i, rtype in slots:
                lower_of(args[i], rtype)  # a closed or null handle traps, as it would below
            raise WasiError(errno)

        return refused

    def close(self, bound: BoundFunc) -> Callable[..., Any]:
        """Ends the caller's handle: the destructor then drops the lower one."""
        ((_, rtype),) = self.handle_slots(bound)
        ctx = self.ctx
        # 2021: close is the explicit destroy the proposal gives WASI resources; dropping
        # only the callee's copy would leave the caller's open.
        end = ctx.resource_destroy if ctx.semantics is Semantics.PROPOSAL_2021 else (
            ctx.resource_drop)

        def closed(h: int) -> None:
            end(rtype, h)

        return closed

    def close_below(self, name: str, h: int) -> None:
        """Close ``h``, a lower handle the layer made for itself, with the lower function
        ``name`` (``close``, ``close_directory``)."""
        bound = self.functions[name]
        bound(h)
        if self.ctx.semantics is Semantics.PROPOSAL_2021:
            # The close destroyed the resource; the layer's own copy stays, null, until dropped.
            (param,) = bound.params
            assert isinstance(param, HandleParam)
            self.ctx.resource_drop(param.rtype, h)

    def exports(self, rules: Mapping[str, Rule], default: Rule) -> dict[str, Func | ResourceType]:
        """The layer's exports: its types, and for each lower function the one its rule
        (``default`` for a function without one) makes, under the lower function's name."""
        exported: dict[str, Func | ResourceType] = dict(self.types)
        for name, bound in self.functions.items():
            fn = rules.get(name, default)(bound)
            exported[name] = self.ctx.func(fn, self._retyped(bound.params),
                                           self._retyped(bound.results), name=name)
        return exported


def rules_for(names: frozenset[str], rule: Rule) -> dict[str, Rule]:
    """The same rule for each of ``names``."""
    return dict.fromkeys(names, rule)
