"""Entering and leaving instances: reentrance, may_leave, and the lockdown after a trap.

The component model's rules for when execution may pass into or out of an instance
(CanonicalABI.md: ``may_enter_from`` and ``entering_set``, ``may_leave`` around a post-return
or a realloc; Explainer.md, component invariants 1 and 2):

- **reentrance**: a call enters the callee and its ancestors, less those the caller is
  already inside (itself and its own ancestors), and none of those may be running a call
  already. So an instance on the call stack is entered again only from inside it: by
  itself, or by a descendant (its child, called by it, calling back). Dropping the handle
  that ends a resource enters the resource's definer the same way, with or without a
  destructor (``canon resource.drop`` lifts a no-op destructor where there is none);
- **may_leave**: while the embedder runs a post-return or a realloc in an instance
  (``World.forbidding_leave``), that instance may not call out, nor make or drop handles;
- **lockdown**: a trap that escapes an instance leaves it unusable: every later call into
  it, every drop that would run its code and every act of its own traps, naming that trap.

A trap is a :class:`Trap`, or any exception leaving an instance's function or destructor
that it does not declare among its answers (``Context.func(raises=...)``, the Python form
of a result's error case). Code of an instance that the embedder runs outside any call
into it (a client acting through its context, a core module's adapter) runs as if the
embedder had called it: a trap it meets there goes straight back to the embedder, and
locks it at once.

Reentrance and lockdown are component-model rules: the 2021 proposal had neither, and
transparent semantics checks nothing, so under those two they do not apply. may_leave
holds under every semantics: it is only in force where the embedder asks for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .semantics import Semantics
from .trap import Trap, TrapReason

if TYPE_CHECKING:
    from .instance import Instance
    from .types import Func

Answers = tuple[type[BaseException], ...]
"""The exceptions a function or destructor raises as answers, not as traps."""


def entering_set(callee: Instance, caller: Instance) -> tuple[Instance, ...]:
    """The instances a call from ``caller`` enters: ``callee`` and its ancestors, less those
    ``caller`` is already inside. The host is the embedder: nothing enters it."""
    inside = caller.lineage
    if len(callee.lineage) == 1:  # a top-level instance: the usual case
        return () if callee in inside else callee.lineage
    return tuple(inst for inst in callee.lineage if inst not in inside)


def enters_ancestors(callee: Instance, caller: Instance) -> bool:
    """Whether a call from ``caller`` enters some ancestor of ``callee`` as well."""
    return any(inst not in caller.lineage for inst in callee.lineage[1:])


def require_may_call(caller: Instance, callee: Instance, what: str) -> tuple[Instance, ...]:
    """Trap, changing nothing, unless ``caller`` may ``what`` (a call into ``callee``) now;
    the ancestors of ``callee`` the call enters besides it (to mark as running)."""
    if callee.destroyed:
        raise Trap(
            TrapReason.INSTANCE_DESTROYED,
            f"call into instance {callee.name!r}, which has been destroyed",
            instance=callee.name,
        )
    if caller.destroyed:
        raise Trap(
            TrapReason.INSTANCE_DESTROYED,
            f"call from instance {caller.name!r}, which has been destroyed",
            instance=caller.name,
        )
    require_may_leave(caller, what)
    entered = require_may_enter(callee, caller, what)
    return tuple(inst for inst in entered if inst is not callee)


def require_may_enter(callee: Instance, caller: Instance, what: str,
                      *, locked_too: bool = True) -> tuple[Instance, ...]:
    """Trap, changing nothing, if ``caller``'s ``what`` would enter an instance that is
    running a call (reentrance) or, with ``locked_too``, one that trapped before; the
    instances it enters. Component-model only: otherwise nothing is checked or entered."""
    if callee.world.semantics is not Semantics.COMPONENT_MODEL:
        return ()
    entered = entering_set(callee, caller)
    for inst in entered:
        whom = repr(inst.name) if inst is callee else f"{inst.name!r} ({callee.name!r} is in it)"
        if locked_too and inst.trapped is not None:
            raise Trap(
                TrapReason.INSTANCE_TRAPPED,
                f"{caller.name!r} cannot {what}: {whom} trapped before "
                f"({describe(inst.trapped)}), and a trap leaves an instance unusable",
                instance=caller.name,
            ) from inst.trapped
        if inst.active:
            raise Trap(
                TrapReason.REENTRANCE,
                f"{caller.name!r} cannot {what}: {whom} is already running a call, and "
                "only an instance inside it (itself, or its child calling back) may "
                "enter it again",
                instance=caller.name,
            )
    return entered


def require_running(inst: Instance, what: str = "act") -> None:
    """Trap unless ``inst``'s own code may act (to ``what``): it is not destroyed (but for
    its destructors, during its teardown) and has not trapped."""
    if inst.destroyed and not inst.active:
        raise Trap(
            TrapReason.INSTANCE_DESTROYED,
            f"instance {inst.name!r} has been destroyed",
            instance=inst.name,
        )
    if inst.trapped is not None:
        raise Trap(
            TrapReason.INSTANCE_TRAPPED,
            f"instance {inst.name!r} cannot {what}: it trapped before "
            f"({describe(inst.trapped)}), and a trap leaves an instance unusable",
            instance=inst.name,
        ) from inst.trapped


def require_may_leave(inst: Instance, what: str) -> None:
    """Trap unless ``inst`` may act and may leave, to ``what``."""
    require_running(inst, what)
    if inst.leave_forbidden:
        raise Trap(
            TrapReason.MAY_NOT_LEAVE,
            f"instance {inst.name!r} cannot {what}: it may not leave while it runs a "
            "post-return or a realloc",
            instance=inst.name,
        )


def describe(exc: BaseException) -> str:
    """A trap in a few words, for the message of every later trap it causes."""
    return str(exc) if isinstance(exc, Trap) else f"{type(exc).__name__}: {exc}"


def lock(inst: Instance, exc: BaseException) -> None:
    """Leave ``inst`` unusable after the trap ``exc`` escaped it; the first trap is the one
    kept. Component-model only, and never the host."""
    if (inst.trapped is None and inst.lineage
            and inst.world.semantics is Semantics.COMPONENT_MODEL):
        inst.trapped = exc
        inst.restrict()


def escaped(inst: Instance, exc: BaseException, answers: Answers) -> None:
    """``exc`` left ``inst``'s function or destructor: a trap unless one of ``answers``."""
    if not isinstance(exc, answers):
        lock(inst, exc)


def reached(inst: Instance, exc: BaseException, running: int = 0,
            source: Instance | None = None) -> None:
    """``exc`` reached ``inst``'s code from an act of its own, made while ``inst`` was
    running ``running`` calls (the act's own, for a call). If that is all it runs, the
    embedder runs its code, as a call into it (which enters its ancestors too): a trap goes
    straight back there, and locks them. A trap is a :class:`Trap`, or an exception that
    locked another instance on its way (``source``, the instance the act entered, if it
    entered one)."""
    if inst.active != running:
        return
    if isinstance(exc, Trap) or (
            source.trapped is exc if source is not None
            else any(other.trapped is exc for other in inst.world.instances)):
        for entered in inst.lineage:
            lock(entered, exc)


def unwound(caller: Instance, func: Func, exc: BaseException) -> None:
    """``exc`` left a call of ``func`` by ``caller``: a trap locks the callee, and the caller
    too if the embedder runs its code (see :func:`reached`)."""
    if not isinstance(exc, func._raises):
        lock(func._instance, exc)
        if caller.active == 1:
            for entered in caller.lineage:
                lock(entered, exc)


class Entering:
    """``World.entering``: a call into ``callee`` from ``caller`` made by the embedder, with
    the membrane's rules: checked on entry, the instances it enters marked as running for
    the block, and locked by any exception that leaves the block (wasm code has no answers:
    every exception is a trap)."""

    __slots__ = ("callee", "caller", "entered")

    def __init__(self, callee: Instance, caller: Instance) -> None:
        if not callee.lineage:
            raise ValueError("the host is the embedder: nothing enters it")
        self.callee = callee
        self.caller = caller
        self.entered: tuple[Instance, ...] = ()

    def __enter__(self) -> None:
        callee, caller = self.callee, self.caller
        caller.active += 1
        try:
            ancestors = require_may_call(caller, callee, f"call into {callee.name!r}")
        except BaseException as exc:
            reached(caller, exc, 1)
            caller.active -= 1
            raise
        self.entered = (callee, *ancestors)
        for inst in self.entered:
            inst.active += 1

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        caller = self.caller
        try:
            if exc is not None:
                for inst in self.entered:
                    lock(inst, exc)
                if caller.active == 1:
                    for inst in caller.lineage:
                        lock(inst, exc)
        finally:
            for inst in self.entered:
                inst.active -= 1
            caller.active -= 1


class ForbiddingLeave:
    """``World.forbidding_leave``: ``inst`` may not leave while the block runs."""

    __slots__ = ("inst",)

    def __init__(self, inst: Instance) -> None:
        self.inst = inst

    def __enter__(self) -> None:
        self.inst.leave_forbidden += 1
        self.inst.restrict()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        self.inst.leave_forbidden -= 1
        self.inst.restrict()
