"""Signatures: how a function's parameters and results cross the membrane."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .resources import HandleKind, ResourceType
from .semantics import Semantics

if TYPE_CHECKING:
    from .instance import Instance


@dataclass(frozen=True)
class HandleParam:
    """A parameter or result that carries a handle of ``rtype``, held as ``kind``."""

    rtype: ResourceType
    kind: HandleKind


@dataclass(frozen=True)
class Value:
    """A plain value (number, string, bytes...): passed unchanged, never mediated."""


value = Value()


def own(rtype: ResourceType) -> HandleParam:
    """component-model: a unique handle that moves to the receiver."""
    return HandleParam(rtype, HandleKind.OWN)


def borrow(rtype: ResourceType) -> HandleParam:
    """component-model: a handle lent to the callee for the duration of one call."""
    return HandleParam(rtype, HandleKind.BORROW)


def shared(rtype: ResourceType) -> HandleParam:
    """proposal-2021: a copyable handle to a ref-counted resource.

    As a parameter the callee gets its own copy, dropped when the call returns unless the
    callee dropped it first (keep one with ``Context.resource_clone``). As a result the
    callee's handle moves to the caller.
    """
    return HandleParam(rtype, HandleKind.SHARED)


@dataclass(frozen=True)
class HandleIntent:
    """A handle parameter or result named by what it means rather than how it is held:
    :func:`lent` or :func:`given`. The :class:`Func` made with it holds the concrete
    :class:`HandleParam` the world's semantics gives it (see ``_RESOLVE``)."""

    rtype: ResourceType
    role: str  # "lent" or "given"


def lent(rtype: ResourceType) -> HandleIntent:
    """'Use it during this call', under any semantics: a borrow under component-model, a
    shared copy under proposal-2021 (a bare index under transparent, where nothing is lent).
    The callee reads the representation with ``Context.rep_of``."""
    return HandleIntent(rtype, "lent")


def given(rtype: ResourceType) -> HandleIntent:
    """'This handle is yours now', under any semantics: own under component-model, a shared
    copy under proposal-2021 (a bare index under transparent). A callee that keeps a given
    parameter beyond the call keeps ``Context.keep(rtype, h)``; it ends it with
    ``Context.end``."""
    return HandleIntent(rtype, "given")


ValType = HandleParam | Value
"""A parameter or result type as a :class:`Func` holds it."""

Signature = HandleParam | Value | HandleIntent
"""A parameter or result type as ``Context.func`` takes it."""

_RESOLVE: dict[Semantics, dict[str, HandleKind]] = {
    Semantics.COMPONENT_MODEL: {"lent": HandleKind.BORROW, "given": HandleKind.OWN},
    Semantics.PROPOSAL_2021: {"lent": HandleKind.SHARED, "given": HandleKind.SHARED},
    Semantics.TRANSPARENT: {"lent": HandleKind.BORROW, "given": HandleKind.OWN},
}


def _resolved(types: Sequence[Signature], semantics: Semantics) -> tuple[ValType, ...]:
    kinds = _RESOLVE[semantics]
    return tuple(HandleParam(t.rtype, kinds[t.role]) if isinstance(t, HandleIntent) else t
                 for t in types)


_ALLOWED: dict[Semantics, tuple[frozenset[HandleKind], frozenset[HandleKind]]] = {
    # (kinds allowed as parameters, kinds allowed as results)
    Semantics.COMPONENT_MODEL: (
        frozenset({HandleKind.OWN, HandleKind.BORROW}),
        frozenset({HandleKind.OWN}),
    ),
    Semantics.PROPOSAL_2021: (frozenset({HandleKind.SHARED}), frozenset({HandleKind.SHARED})),
    Semantics.TRANSPARENT: (frozenset(HandleKind), frozenset(HandleKind)),
}

HandleSlot = tuple[int, HandleKind, ResourceType]


class Lift:
    """How the membrane treats one handle parameter, decided once when the Func is made."""

    REP = 0  # a borrow passed to its type's definer: the representation itself
    BORROW = 1  # a borrow passed to anyone else: a call-scoped borrow handle
    OWN = 2  # moves from the caller's table to the callee's
    SHARED = 3  # copied into the callee's table for the call


class Func:
    """A function an instance exports, with the signature the membrane enforces.

    ``params`` and ``results`` are concrete (a :func:`lent` or :func:`given` is resolved
    here, once, under the world's semantics). The instance it belongs to and the Python
    function it runs are private: only the membrane calls it.
    """

    __slots__ = (
        "_fn",
        "_instance",
        "_on_reps",
        "_raises",
        "handle_params",
        "handle_results",
        "lifts",
        "makes",
        "name",
        "params",
        "rep_only",
        "results",
    )

    def __init__(
        self,
        instance: Instance,
        name: str,
        fn: Callable[..., Any],
        params: Sequence[Signature],
        results: Sequence[Signature],
        representations: bool = False,
        raises: tuple[type[BaseException], ...] = (),
    ) -> None:
        semantics = instance.world.semantics
        param_kinds, result_kinds = _ALLOWED[semantics]
        for types in (params, results):
            for t in types:
                if not isinstance(t, HandleParam | Value | HandleIntent):
                    raise TypeError(f"{name}: {t!r} is not a value type")
        concrete_params = _resolved(params, semantics)
        concrete_results = _resolved(results, semantics)
        for where, concrete, allowed in (("parameter", concrete_params, param_kinds),
                                         ("result", concrete_results, result_kinds)):
            for t in concrete:
                if isinstance(t, HandleParam) and t.kind not in allowed:
                    raise TypeError(
                        f"{name}: a {t.kind.value} {where} is not part of "
                        f"{semantics.value} semantics"
                    )
        self._instance = instance
        self.name = name
        self._fn = fn
        self._raises = raises  # what fn raises as answers, not as traps
        self.params = concrete_params
        self.results = concrete_results
        # Transparent handles are bare integers: nothing to lift, so no slot to visit.
        mediated = semantics is not Semantics.TRANSPARENT
        self.handle_params: tuple[HandleSlot, ...] = tuple(
            (i, t.kind, t.rtype)
            for i, t in enumerate(self.params)
            if mediated and isinstance(t, HandleParam)
        )
        self.lifts: tuple[tuple[int, int, ResourceType], ...] = tuple(
            (i, _lift_of(kind, rtype, instance), rtype) for i, kind, rtype in self.handle_params
        )
        # The hot path of a virtualizer: every handle is a borrow of its own type.
        self.rep_only = all(op == Lift.REP for _, op, _ in self.lifts)
        # What takes the representations themselves (the membrane may hand them over).
        self._on_reps = fn if representations else None
        if representations:
            self._fn = _taking_representations(fn, instance, self.params, self.lifts)
        # With representations, a first result that is a handle of a type this instance
        # defined (the others plain values) is returned as a representation: the world
        # makes the handle, in the caller's table.
        self.makes: ResourceType | None = None
        if (representations and self.results and isinstance(self.results[0], HandleParam)
                and self.results[0].rtype._definer is instance
                and all(isinstance(t, Value) for t in self.results[1:])):
            self.makes = self.results[0].rtype
        self.handle_results: tuple[HandleSlot, ...] = tuple(
            (i, t.kind, t.rtype)
            for i, t in enumerate(self.results)
            if mediated and isinstance(t, HandleParam) and self.makes is None
        )

    def __repr__(self) -> str:
        return f"<Func {self._instance.name}.{self.name}>"


def _taking_representations(fn: Callable[..., Any], instance: Instance,
                            params: tuple[ValType, ...],
                            lifts: tuple[tuple[int, int, ResourceType], ...]
                            ) -> Callable[..., Any]:
    """``fn``, reached with the representation of every lent parameter of a type
    ``instance`` defined. Where the membrane already passes one (a borrow to its definer)
    nothing is added; otherwise (a shared copy, a bare index) it is read here, with the
    traps of ``resource_rep``, in the callee."""
    from .handles import rep

    given_as_rep = {i for i, op, _ in lifts if op == Lift.REP}
    slots = [(i, t.rtype) for i, t in enumerate(params)
             if isinstance(t, HandleParam) and t.kind is not HandleKind.OWN
             and t.rtype._definer is instance and i not in given_as_rep]
    if not slots:
        return fn
    if len(slots) == 1 and slots[0][0] == 0:
        rtype = slots[0][1]

        def first(h: Any, *args: Any) -> Any:
            return fn(rep(instance, rtype, h), *args)

        return first

    def each(*args: Any) -> Any:
        lifted = list(args)
        for i, rtype in slots:
            lifted[i] = rep(instance, rtype, args[i])
        return fn(*lifted)

    return each


def _lift_of(kind: HandleKind, rtype: ResourceType, callee: Instance) -> int:
    if kind is HandleKind.OWN:
        return Lift.OWN
    if kind is HandleKind.SHARED:
        return Lift.SHARED
    return Lift.REP if rtype._definer is callee else Lift.BORROW
