"""What every policy layer shares: private types wrapping the lower ones, and derived exports.

A layer imports the implementation interface as ``lower`` and exports the same interface
(:mod:`virtwasi.filesystem.interface`). For each resource type below (``descriptor``,
``directory-entry-stream``) it defines a private counterpart (``<prefix>-descriptor``...),
exported under the same name, whose representation holds the lower handle: the layer keeps
that handle in its own table and never hands it out. The type's destructor drops the lower
handle, so closing through the layer, or tearing down a client that left something open,
closes it below. Each function of the interface is exported again; a policy decides what
each does, from its declared category and a few rules of its own, with the building blocks
here: forward, refuse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..filesystem.errors import ANSWERS, ErrorCode, FsError
from ..filesystem.interface import FUNCTIONS, Category, Function, Slot, export
from ..world import Context, Func, ResourceType, Trap, TrapReason

Rule = Callable[[Function], Callable[..., Any]]
"""Makes the exported function for one function of the interface."""


@dataclass(eq=False, slots=True)
class Wrapped:
    """The representation behind a layer's handle: the lower handle, held by the layer.
    A policy that keeps more per handle subclasses it (and passes the subclass as
    ``rep_type``): every handle of one layer has a representation of that one class."""

    lower: int


class Wrapping:
    """One layer instance's private types and its view of the interface below.

    ``before_release`` runs with a representation and its type's interface name just
    before its lower handle is dropped (a handle ended through the layer, or left open by
    a client torn down).
    """

    def __init__(self, ctx: Context, prefix: str, rep_type: type[Wrapped] = Wrapped,
                 before_release: Callable[[Any, str], None] | None = None) -> None:
        self.ctx = ctx
        self.rep_type = rep_type
        self.below = ctx.imports["lower"]
        self.lower_types: dict[str, ResourceType] = {}  # interface name -> the lower type
        self.types: dict[str, ResourceType] = {}  # interface name -> the layer's own type
        for slot in (Slot.DESCRIPTOR, Slot.STREAM):
            lower = self.below[slot.value]
            assert isinstance(lower, ResourceType)
            self.lower_types[slot.value] = lower
            self.types[slot.value] = self._wrapper_type(prefix, slot.value, lower,
                                                        before_release)
        rep_of = ctx.rep_of

        def lower_of(h: Any, rtype: ResourceType) -> Any:
            rep: Wrapped = rep_of(rtype, h)
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

        # A close's error from below is the layer's close's error too.
        return ctx.resource_type(f"{prefix}-{name}", destructor=release, raises=ANSWERS)

    # -- reading the declaration ---------------------------------------------------------
    def handle_slots(self, function: Function) -> tuple[tuple[int, ResourceType], ...]:
        """(position, the layer's type) of every handle parameter of ``function``."""
        return tuple((i, self.types[name]) for i, name in function.handles)

    def result_type(self, function: Function) -> ResourceType | None:
        """The layer's type of the handle ``function`` returns, if it returns one (first,
        before any other result)."""
        result = function.result
        return None if result in (None, Slot.VALUE) else self.types[result.value]

    def call_below(self, name: str) -> Callable[..., Any]:
        """The lower function ``name``, called as the layer (handles: the lower ones)."""
        bound = self.below[name]
        return bound.lowered  # type: ignore[union-attr]

    def end_below(self, name: str, h: int) -> None:
        """End ``h``, a lower handle of type ``name`` the layer made for itself."""
        self.ctx.end(self.lower_types[name], h)

    # -- building blocks -----------------------------------------------------------------
    def wrap(self, rtype: ResourceType, rep: Wrapped) -> int:
        """A new handle of the layer's ``rtype`` around ``rep`` (whose lower handle the layer
        now holds)."""
        return self.ctx.resource_new(rtype, rep)

    def forward(self, function: Function) -> Callable[..., Any]:
        """Passes the call below with each handle swapped for the lower one it wraps, and
        wraps a returned handle in the layer's own type."""
        call_below = self.call_below(function.name)
        lower_of = self.lower_of
        slots = self.handle_slots(function)
        wrap_as = self.result_type(function)
        if len(slots) == 1 and slots[0][0] == 0 and wrap_as is None:
            rtype = slots[0][1]

            def first(h: Any, *args: Any) -> Any:  # the hot shape: one handle, first
                return call_below(lower_of(h, rtype), *args)

            return first
        ctx, rep_type = self.ctx, self.rep_type
        more = len(function.results) > 1  # open_at: the handle, then its type and flags

        def general(*args: Any) -> Any:
            lowered = list(args)
            for i, rtype in slots:
                lowered[i] = lower_of(args[i], rtype)
            result = call_below(*lowered)
            if wrap_as is None:
                return result
            if more:
                return (ctx.resource_new(wrap_as, rep_type(result[0])), *result[1:])
            return ctx.resource_new(wrap_as, rep_type(result))

        return general

    def refuse(self, function: Function, code: ErrorCode) -> Callable[..., Any]:
        """Answers ``code`` without calling below (a bad handle still traps first)."""
        slots = self.handle_slots(function)
        lower_of = self.lower_of

        def refused(*args: Any) -> Any:
            for i, rtype in slots:
                lower_of(args[i], rtype)  # a closed or null handle traps, as it would below
            raise FsError(code)

        return refused

    def exports(self, rules: Mapping[str, Rule], by_category: Mapping[Category, Rule]
                ) -> dict[str, Func | ResourceType]:
        """The layer's exports: its types, and for each function of the interface the one
        its own rule makes, or else the rule of its category. A category without a rule
        fails closed: a function added to the interface is refused (``unsupported``) by a
        layer that has not decided about it."""

        def unsupported(function: Function) -> Callable[..., Any]:
            return self.refuse(function, ErrorCode.UNSUPPORTED)

        return export(self.ctx, self.types, {
            name: rules.get(name, by_category.get(function.category, unsupported))(function)
            for name, function in FUNCTIONS.items()})
