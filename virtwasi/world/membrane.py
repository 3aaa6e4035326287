"""The membrane: what the world does to handles when one instance calls another.

A call lifts each handle argument out of the caller's table and lowers it into the callee's,
runs the callee, then moves handle results back the other way. Arguments are checked in full
before anything moves, so a call that traps on its arguments changes nothing. Whatever a call
lent is given back when it ends, normally or by a trap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import entry, handles
from .resources import Handle, HandleKind, Resource
from .trap import Trap, TrapReason
from .types import Func, Lift

if TYPE_CHECKING:
    from .instance import Instance


class Frame:
    """The bookkeeping of one call in progress."""

    __slots__ = ("borrows", "lenders", "scoped")

    def __init__(self) -> None:
        self.borrows = 0  # borrow handles the callee still holds
        self.lenders: list[Handle] = []  # the caller's handles lent to this call
        self.scoped: list[tuple[int, Handle]] = []  # callee handles that end with the call


def call(caller: Instance, func: Func, args: tuple[Any, ...]) -> Any:
    callee = func._instance
    ancestors: tuple[Instance, ...] = ()  # of the callee, entered with it
    # The caller is on the stack as much as the callee: neither may be torn down under it.
    caller.active += 1
    try:
        if caller.restricted or callee.restricted or callee.active or callee.parent is not None:
            ancestors = entry.require_may_call(caller, callee, f"call {callee.name}.{func.name}")
            for inst in ancestors:
                inst.active += 1
        if len(args) != len(func.params):
            raise Trap(
                TrapReason.BAD_CALL,
                f"{callee.name}.{func.name} takes {len(func.params)} arguments, "
                f"{caller.name!r} passed {len(args)}",
                instance=caller.name,
            )
        if func.makes is not None or func.handle_results:
            _require_room_for_results(caller, func)
        if func.rep_only and not func.handle_results:
            result = _call_with_reps(caller, callee, func, args)
        else:
            result = _call_with_frame(caller, callee, func, args)
        if func.makes is not None:  # a representation: its new handle goes to the caller
            return _made(caller, callee, func, result)
        return result
    except BaseException as exc:
        if ancestors and callee.trapped is exc:  # they stay locked with the callee
            for inst in ancestors:
                entry.lock(inst, exc)
        entry.reached(caller, exc, 1, callee)
        raise
    finally:
        caller.active -= 1
        if ancestors:
            for inst in ancestors:
                inst.active -= 1


def _require_room_for_results(caller: Instance, func: Func) -> None:
    """Trap, before the callee runs, if the handles ``func`` returns could not fit into
    ``caller``'s table: that is the caller's trap, not the callee's."""
    if func.makes is not None:
        handles.holding_table(caller, func.makes).require_room(1, func.makes)
    else:
        caller.table.require_room(len(func.handle_results), func.handle_results[0][2])


def _made(caller: Instance, callee: Instance, func: Func, rep: Any) -> Any:
    """The handle made in ``caller``'s table of the representation ``rep`` the callee
    answered; if it makes none (a wrong answer), the trap is the callee's."""
    try:
        return handles.maker(caller, func)(rep)
    except BaseException as exc:
        entry.escaped(callee, exc, func._raises)
        raise


def lowered(caller: Instance, func: Func) -> Callable[..., Any]:
    """``func`` called by ``caller`` as a plain function, with exactly :func:`call`'s rules.

    The virtualizer's hot shape (its first parameter a borrow of the callee's own type, no
    other handle, no handle result, at most three parameters) gets a closure that lifts
    inline: one table index, one identity check on the type, one liveness check. So do the
    same shape returning a new handle made of a representation (``Func.makes``: an open),
    and, under proposal-2021, the same shapes with a shared copy of the callee's own type
    read as its representation, and under transparent semantics a call that makes a
    handle (it lifts nothing). Anything unusual (an instance torn down, a bad or foreign
    index, a null handle, no room for the handle it makes, a callee already running a
    call) goes through :func:`call`, which raises the exact trap. The caller must pass
    exactly the function's parameters (a wrong count, too, goes through :func:`call` for
    the shapes with any number of them, all but an open's five). A call that enters
    ancestors of the callee too always goes through :func:`call`.
    """
    if entry.enters_ancestors(func._instance, caller):
        return lambda *args: call(caller, func, args)
    lifts = func.lifts
    if (func.makes is not None and func.rep_only and len(lifts) == 1 and lifts[0][0] == 0
            and not func.handle_results):
        return _lowered_making(caller, func)
    if func.makes is not None and not lifts and not func.handle_results:
        return _lowered_unlifted_making(caller, func)
    if (len(lifts) == 1 and lifts[0][:2] == (0, Lift.SHARED) and func._on_reps is not None
            and lifts[0][2]._definer is func._instance and not func.handle_results):
        return _lowered_shared(caller, func)
    if (not func.rep_only or func.handle_results or func.makes is not None or len(lifts) != 1
            or lifts[0][0] != 0 or len(func.params) > 3):
        return lambda *args: call(caller, func, args)
    callee, rtype, fn, table = func._instance, lifts[0][2], func._fn, caller.table

    # Mirrors _call_with_reps: the caller and callee are busy, the handle lent, for the call.
    def lent(h: Any) -> Any:
        if (caller.restricted or callee.restricted or callee.active or type(h) is not int
                or h <= 0):
            return call(caller, func, (h,))
        try:
            handle = table._slots[h]
        except IndexError:
            handle = None
        if handle is None or handle.rtype is not rtype or not (resource := handle.resource).alive:
            return call(caller, func, (h,))
        caller.active += 1
        handle.lends += 1
        callee.active += 1
        try:
            return fn(resource.rep)
        except BaseException as exc:
            entry.unwound(caller, func, exc)
            raise
        finally:
            callee.active -= 1
            handle.lends -= 1
            caller.active -= 1

    def lent1(h: Any, a: Any) -> Any:
        if (caller.restricted or callee.restricted or callee.active or type(h) is not int
                or h <= 0):
            return call(caller, func, (h, a))
        try:
            handle = table._slots[h]
        except IndexError:
            handle = None
        if handle is None or handle.rtype is not rtype or not (resource := handle.resource).alive:
            return call(caller, func, (h, a))
        caller.active += 1
        handle.lends += 1
        callee.active += 1
        try:
            return fn(resource.rep, a)
        except BaseException as exc:
            entry.unwound(caller, func, exc)
            raise
        finally:
            callee.active -= 1
            handle.lends -= 1
            caller.active -= 1

    def lent2(h: Any, a: Any, b: Any) -> Any:
        if (caller.restricted or callee.restricted or callee.active or type(h) is not int
                or h <= 0):
            return call(caller, func, (h, a, b))
        try:
            handle = table._slots[h]
        except IndexError:
            handle = None
        if handle is None or handle.rtype is not rtype or not (resource := handle.resource).alive:
            return call(caller, func, (h, a, b))
        caller.active += 1
        handle.lends += 1
        callee.active += 1
        try:
            return fn(resource.rep, a, b)
        except BaseException as exc:
            entry.unwound(caller, func, exc)
            raise
        finally:
            callee.active -= 1
            handle.lends -= 1
            caller.active -= 1

    return (lent, lent1, lent2)[len(func.params) - 1]


def _lowered_making(caller: Instance, func: Func) -> Callable[..., Any]:
    """:func:`lowered` for a call that lends a descriptor first and returns a new handle
    made of the representation the callee answers (``Func.makes``): the lending of
    ``lent``, then :func:`handles.maker`'s step, decided once for this caller."""
    callee, rtype, fn, table = func._instance, func.lifts[0][2], func._fn, caller.table
    make = handles.maker(caller, func)
    rest = len(func.params) - 1
    slots = table._slots
    makes, count = func.makes, len(func.results)
    assert makes is not None
    live, kind = makes._live, handles.first_kind(caller)
    made_in = handles.holding_table(caller, makes)
    slots_made, free = made_in._slots, made_in._free

    def making(h: Any, *args: Any) -> Any:
        if (caller.restricted or callee.restricted or callee.active or type(h) is not int
                or h <= 0 or len(args) != rest
                or not (free or len(slots_made) <= made_in.MAX_LENGTH)):
            return call(caller, func, (h, *args))
        try:
            handle = table._slots[h]
        except IndexError:
            handle = None
        if handle is None or handle.rtype is not rtype or not (resource := handle.resource).alive:
            return call(caller, func, (h, *args))
        caller.active += 1
        try:
            handle.lends += 1
            callee.active += 1
            try:
                rep = fn(resource.rep, *args)
            finally:
                callee.active -= 1
                handle.lends -= 1
            return make(rep)
        except BaseException as exc:  # from the callee, or its answer that makes no handle
            entry.unwound(caller, func, exc)
            raise
        finally:
            caller.active -= 1

    # An open's shape (a directory, path flags, a path, open flags, descriptor flags),
    # spelled out: packing and unpacking *args costs a tenth of a microsecond per call.
    def making4(h: Any, a: Any, b: Any, c: Any, d: Any) -> Any:
        if (caller.restricted or callee.restricted or callee.active or type(h) is not int
                or h <= 0 or not (free or len(slots_made) <= made_in.MAX_LENGTH)):
            return call(caller, func, (h, a, b, c, d))
        try:
            handle = slots[h]
        except IndexError:
            handle = None
        if handle is None or handle.rtype is not rtype or not (resource := handle.resource).alive:
            return call(caller, func, (h, a, b, c, d))
        caller.active += 1
        try:
            handle.lends += 1
            callee.active += 1
            try:
                results = fn(resource.rep, a, b, c, d)
            finally:
                callee.active -= 1
                handle.lends -= 1
            if (type(results) is not tuple or len(results) != count
                    or isinstance(results[0], int)):
                return make(results)  # one result, or anything make refuses
            # make's steps for the common case, inline: the resource, its first handle,
            # and the handle's place in the table (as HandleTable.add picks it).
            made = Resource(makes, results[0])
            first = Handle(made, kind)
            if free:
                index = free.pop()
                slots_made[index] = first
            else:
                index = len(slots_made)
                if index > made_in.MAX_LENGTH:
                    raise made_in.full(makes)  # before anything changed
                slots_made.append(first)
            live.add(made)
            if count == 3:  # an open's: the descriptor, its type and its flags
                return (index, results[1], results[2])
            return (index, *results[1:])
        except BaseException as exc:  # from the callee, or its answer that makes no handle
            entry.unwound(caller, func, exc)
            raise
        finally:
            caller.active -= 1

    return making4 if rest == 4 else making


def _lowered_unlifted_making(caller: Instance, func: Func) -> Callable[..., Any]:
    """:func:`lowered` for a call that lifts nothing (under transparent semantics every
    handle is a bare index) and returns a new handle made of a representation."""
    callee, fn = func._instance, func._fn
    make = handles.maker(caller, func)
    count = len(func.params)
    assert func.makes is not None
    made_in = handles.holding_table(caller, func.makes)
    slots_made, free = made_in._slots, made_in._free

    def making(*args: Any) -> Any:
        if (caller.restricted or callee.restricted or callee.active or len(args) != count
                or not (free or len(slots_made) <= made_in.MAX_LENGTH)):
            return call(caller, func, args)
        caller.active += 1
        try:
            callee.active += 1
            try:
                rep = fn(*args)
            finally:
                callee.active -= 1
            return make(rep)
        except BaseException as exc:  # from the callee, or its answer that makes no handle
            entry.unwound(caller, func, exc)
            raise
        finally:
            caller.active -= 1

    return making


def _lowered_shared(caller: Instance, func: Func) -> Callable[..., Any]:
    """:func:`lowered` under proposal-2021 for a call whose one handle, first, is a shared
    copy of the callee's own type read as its representation: the copy is made in the
    callee's table for the call and dropped after it, as :func:`_call_with_frame` does,
    without the frame; the callee reads the representation it would read from the copy."""
    callee, rtype, on_reps = func._instance, func.lifts[0][2], func._on_reps
    assert on_reps is not None
    table, callee_table = caller.table, callee.table
    make = None if func.makes is None else handles.maker(caller, func)
    rest = len(func.params) - 1

    def shared(h: Any, *args: Any) -> Any:
        if (caller.restricted or callee.restricted or type(h) is not int or h <= 0
                or len(args) != rest):
            return call(caller, func, (h, *args))
        try:
            handle = table._slots[h]
        except IndexError:
            handle = None
        if handle is None or handle.rtype is not rtype or not (resource := handle.resource).alive:
            return call(caller, func, (h, *args))
        caller.active += 1
        try:
            copy = handles.share(handle)
            try:
                index = callee_table.add(copy)
            except Trap:  # a full table: the copy never existed
                handles.release(copy)
                raise
            callee.active += 1
            try:
                result = on_reps(resource.rep, *args)
            finally:
                callee.active -= 1
                if callee_table.peek(index) is copy:
                    callee_table.remove(index)
                    handles.release(copy)
            return result if make is None else make(result)
        finally:
            caller.active -= 1

    return shared


def _call_with_frame(caller: Instance, callee: Instance, func: Func, args: tuple[Any, ...]) -> Any:
    frame = Frame()
    lifted = _lift_args(caller, callee, func, args, frame)
    callee.active += 1
    try:
        result = func._fn(*lifted)
        if frame.borrows:
            raise Trap(
                TrapReason.BORROW_NOT_DROPPED,
                f"{callee.name}.{func.name} returned still holding {frame.borrows} "
                "borrowed handle(s); a borrow must be dropped before the call returns",
                instance=callee.name,
            )
        if func.handle_results:
            return _lower_results(caller, callee, func, result)
        return result
    except BaseException as exc:
        entry.escaped(callee, exc, func._raises)
        raise
    finally:
        callee.active -= 1
        _end_frame(callee, frame)


def _call_with_reps(caller: Instance, callee: Instance, func: Func, args: tuple[Any, ...]) -> Any:
    """A call whose handles are all borrows of the callee's own types (or none at all):
    each is lent for the call and arrives as its representation, so no frame is needed."""
    lifts = func.lifts
    if len(lifts) == 1:  # the virtualizer's hot path: one descriptor per call
        i, _, rtype = lifts[0]
        handle = handles.lookup(caller.table, args[i], rtype)
        handles.require_alive(handle.resource, caller, args[i])
        handle.lends += 1
        callee.active += 1
        try:
            return func._fn(*args[:i], handle.resource.rep, *args[i + 1:])
        except BaseException as exc:
            entry.escaped(callee, exc, func._raises)
            raise
        finally:
            callee.active -= 1
            handle.lends -= 1
    table = caller.table
    lent = [handles.lookup(table, args[i], rtype) for i, _, rtype in lifts]
    for (i, _, _), handle in zip(lifts, lent, strict=True):
        handles.require_alive(handle.resource, caller, args[i])
    if lent:
        lifted = list(args)
        for (i, _, _), handle in zip(lifts, lent, strict=True):
            handle.lends += 1
            lifted[i] = handle.resource.rep
        args = tuple(lifted)
    callee.active += 1
    try:
        return func._fn(*args)
    except BaseException as exc:
        entry.escaped(callee, exc, func._raises)
        raise
    finally:
        callee.active -= 1
        for handle in lent:
            handle.lends -= 1


def _lift_args(
    caller: Instance, callee: Instance, func: Func, args: tuple[Any, ...], frame: Frame
) -> list[Any]:
    held = [handles.lookup(caller.table, args[i], rtype) for i, _, rtype in func.lifts]
    for (i, op, _), handle in zip(func.lifts, held, strict=True):
        if op == Lift.OWN:
            if handle.kind is not HandleKind.OWN:
                raise Trap(
                    TrapReason.NOT_OWNED,
                    f"{caller.name!r} cannot give away handle {args[i]}: it only borrows it",
                    instance=caller.name,
                )
            if handle.lends:
                raise Trap(
                    TrapReason.HANDLE_LENT,
                    f"{caller.name!r} cannot move handle {args[i]}: it is lent to a call "
                    "in progress",
                    instance=caller.name,
                )
            if sum(1 for j, _, _ in func.lifts if args[j] == args[i]) > 1:
                raise Trap(
                    TrapReason.INVALID_HANDLE,
                    f"{caller.name!r} passed handle {args[i]} twice to {func.name}, once as "
                    "own: after it moves there is nothing left to pass",
                    instance=caller.name,
                )

    table = callee.table
    if len(table._slots) + len(func.lifts) > table.MAX_LENGTH:  # near the limit: room for
        # every handle that arrives, before anything moves
        table.require_room(sum(op != Lift.REP for _, op, _ in func.lifts), func.lifts[0][2])
    lifted = list(args)
    for (i, op, _), handle in zip(func.lifts, held, strict=True):
        if op == Lift.OWN:
            caller.table.remove(args[i])
            lifted[i] = callee.table.add(handle)
        elif op == Lift.REP:
            handles.require_alive(handle.resource, caller, args[i])
            handle.lends += 1
            frame.lenders.append(handle)
            lifted[i] = handle.resource.rep
        elif op == Lift.BORROW:
            handle.lends += 1
            frame.lenders.append(handle)
            lent = Handle(handle.resource, HandleKind.BORROW, frame)
            lifted[i] = callee.table.add(lent)
            frame.borrows += 1
            frame.scoped.append((lifted[i], lent))
        else:
            copy = handles.share(handle)
            lifted[i] = callee.table.add(copy)
            frame.scoped.append((lifted[i], copy))
    return lifted


def _lower_results(caller: Instance, callee: Instance, func: Func, result: Any) -> Any:
    count = len(func.results)
    values: list[Any]
    if count == 0:
        values = []
    elif count == 1:
        values = [result]
    else:
        values = list(result) if isinstance(result, tuple) else [result]
    if len(values) != count:
        raise Trap(
            TrapReason.BAD_CALL,
            f"{callee.name}.{func.name} must return {count} result(s), returned {result!r}",
            instance=callee.name,
        )
    if not func.handle_results:
        return result
    held = [handles.lookup(callee.table, values[i], rtype) for i, _, rtype in func.handle_results]
    for (i, _, _), handle in zip(func.handle_results, held, strict=True):
        if handle.kind is HandleKind.BORROW:
            raise Trap(
                TrapReason.NOT_OWNED,
                f"{callee.name}.{func.name} cannot return handle {values[i]}: it only "
                "borrows it",
                instance=callee.name,
            )
        if handle.lends:
            raise Trap(
                TrapReason.HANDLE_LENT,
                f"{callee.name}.{func.name} cannot return handle {values[i]}: it is lent",
                instance=callee.name,
            )
    if len({values[i] for i, _, _ in func.handle_results}) < len(func.handle_results):
        raise Trap(
            TrapReason.INVALID_HANDLE,
            f"{callee.name}.{func.name} returned the same handle twice",
            instance=callee.name,
        )
    caller.table.require_room(len(held), held[0].rtype)
    for (i, _, _), handle in zip(func.handle_results, held, strict=True):
        callee.table.remove(values[i])
        values[i] = caller.table.add(handle)
    return values[0] if count == 1 else tuple(values)


def _end_frame(callee: Instance, frame: Frame) -> None:
    """Give back what the call was lent and drop the callee's call-scoped handles."""
    for handle in frame.lenders:
        handle.lends -= 1
    for index, handle in frame.scoped:
        if callee.table.peek(index) is handle:
            callee.table.remove(index)
            handles.release(handle)
