"""The handle rules: creating, reading, dropping, destroying and copying handles.

Every rule that decides whether a handle operation is allowed lives here, so the context an
instance uses (:mod:`.instance`), the call membrane (:mod:`.membrane`) and teardown
(:mod:`.world`) all enforce the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import entry
from .resources import Handle, HandleKind, HandleTable, Resource, ResourceType
from .semantics import Semantics
from .trap import Trap, TrapReason

if TYPE_CHECKING:
    from .instance import Instance
    from .types import Func


def require_definer(rtype: ResourceType, inst: Instance, action: str) -> None:
    if rtype._definer is not inst:
        raise Trap(
            TrapReason.NOT_DEFINER,
            f"instance {inst.name!r} cannot {action} resource type {rtype.name!r}: "
            f"only its defining instance {rtype.definer_name!r} can",
            instance=inst.name,
        )


def lookup(table: HandleTable, index: int, rtype: ResourceType) -> Handle:
    """The handle at ``index`` in ``table``, which must be of type ``rtype``."""
    handle = table.get(index)
    if handle.rtype is not rtype:
        raise Trap(
            TrapReason.TYPE_MISMATCH,
            f"handle {index} of instance {table.owner!r} is a {handle.rtype.name!r} "
            f"(defined by {handle.rtype.definer_name!r}), not a {rtype.name!r} "
            f"(defined by {rtype.definer_name!r})",
            instance=table.owner,
        )
    return handle


def holding_table(inst: Instance, rtype: ResourceType) -> HandleTable:
    """Where ``inst``'s integers for ``rtype`` point: its own table, or under transparent
    semantics the definer's table, which every client shares."""
    if inst.world.semantics is Semantics.TRANSPARENT:
        return rtype._definer.table
    return inst.table


def is_handle(value: Any) -> bool:
    """Whether ``value`` is a handle index: an ``int`` that is not a ``bool``. No
    representation is one (:func:`new` refuses them), so :func:`rep_of` can tell a lent
    handle from a lent representation."""
    return isinstance(value, int) and not isinstance(value, bool)


def new(inst: Instance, rtype: ResourceType, rep: Any) -> int:
    require_definer(rtype, inst, "create handles of")
    require_representation(rtype, rep)
    return grant(inst, rtype, rep)[0]


def require_representation(rtype: ResourceType, rep: Any) -> None:
    if is_handle(rep):
        raise TypeError(
            f"instance {rtype.definer_name!r}: an int cannot be the representation of a "
            f"{rtype.name!r} (it would read as a handle); wrap it in an object"
        )


def grant(holder: Instance, rtype: ResourceType, rep: Any) -> tuple[int, Resource]:
    """Make a resource and give ``holder`` the first handle to it (no privilege check:
    :func:`new` checks for instances, the world uses this directly for instance handles)."""
    resource = Resource(rtype, rep)
    index = holding_table(holder, rtype).add(Handle(resource, first_kind(holder)))
    rtype._live.add(resource)  # after the table took it: a full table changes nothing
    return index, resource


def first_kind(holder: Instance) -> HandleKind:
    """How the first handle to a new resource is held."""
    if holder.world.semantics is Semantics.PROPOSAL_2021:
        return HandleKind.SHARED
    return HandleKind.OWN


def maker(holder: Instance, func: Func) -> Callable[[Any], Any]:
    """What a call into ``rtype``'s definer that returns a representation (a ``Func`` that
    ``makes``) does with it: :func:`new` in the definer and the move of the handle to
    ``holder`` in one step, that is :func:`grant`, with the table and the kind decided
    once. With more than one result, the representation is the first of a tuple of
    them, and the handle takes its place."""
    rtype = func.makes
    assert rtype is not None
    kind = first_kind(holder)
    table = holding_table(holder, rtype)
    add, slots, free = table.add, table._slots, table._free
    live = rtype._live
    count = len(func.results)

    def make(rep: Any) -> int:
        if isinstance(rep, int) and not isinstance(rep, bool):
            require_representation(rtype, rep)
        resource = Resource(rtype, rep)
        index = add(Handle(resource, kind))
        live.add(resource)  # after the table took it: a full table changes nothing
        return index

    if count == 1:
        return make

    def make_first(results: Any) -> tuple[Any, ...]:
        if type(results) is not tuple or len(results) != count:
            callee = rtype._definer
            raise Trap(
                TrapReason.BAD_CALL,
                f"{callee.name}.{func.name} must return {count} result(s), returned "
                f"{results!r}",
                instance=callee.name,
            )
        rep = results[0]
        if isinstance(rep, int):  # a bool passes: require_representation says which
            require_representation(rtype, rep)
        resource = Resource(rtype, rep)  # make's steps, inline: an open runs them each time
        handle = Handle(resource, kind)
        if free:  # HandleTable.add, inline
            index = free.pop()
            slots[index] = handle
        else:
            index = len(slots)
            if index > table.MAX_LENGTH:
                raise table.full(rtype)
            slots.append(handle)
        live.add(resource)
        return (index, *results[1:])

    return make_first


def rep(inst: Instance, rtype: ResourceType, index: int) -> Any:
    require_definer(rtype, inst, "read the representation of")
    resource = lookup(inst.table, index, rtype).resource
    require_alive(resource, inst, index)
    return resource.rep


def rep_of(inst: Instance, rtype: ResourceType, lent: Any) -> Any:
    """The representation behind a lent parameter of ``inst``'s own ``rtype``: a handle
    (an int) is looked up with :func:`rep`; anything else already is the representation
    (a component-model borrow of the callee's own type, lifted by the membrane)."""
    return rep(inst, rtype, lent) if is_handle(lent) else lent


def require_alive(resource: Resource, holder: Instance, index: int) -> None:
    if not resource.alive:
        raise Trap(
            TrapReason.NULL_HANDLE,
            f"handle {index} of instance {holder.name!r} is null: its "
            f"{resource.rtype.name!r} resource was destroyed",
            instance=holder.name,
        )


def ends_resource(handle: Handle) -> bool:
    """Whether releasing ``handle`` would run its resource's destructor."""
    resource = handle.resource
    if handle.kind is HandleKind.BORROW or not resource.alive:
        return False
    return handle.kind is HandleKind.OWN or resource.refs == 1


def drop(inst: Instance, rtype: ResourceType, index: int) -> None:
    table = holding_table(inst, rtype)
    handle = lookup(table, index, rtype)
    if handle.lends:
        raise Trap(
            TrapReason.HANDLE_LENT,
            f"instance {inst.name!r} cannot drop handle {index}: it is lent to a call "
            "in progress",
            instance=inst.name,
        )
    # Ending it enters the definer, destructor or none (the component model's rule); only a
    # definer that is running, restricted or some instance's child may refuse.
    definer = rtype._definer
    entering = definer is not inst and (definer.restricted or definer.active
                                        or definer.parent is not None)
    if (entering or rtype._guard is not None) and ends_resource(handle):
        if entering:
            entry.require_may_enter(definer, inst, f"drop handle {index} of {rtype.name!r}, "
                                    f"which enters {definer.name!r}")
        if rtype._guard is not None:
            rtype._guard(handle.resource.rep)  # refuses (a trap) before anything has changed
    table.remove(index)
    release(handle)


def release(handle: Handle) -> None:
    """Account for a handle that has left its table: settle a borrow, or drop a reference
    and run the destructor if it was the last one."""
    if handle.kind is HandleKind.BORROW:
        assert handle.scope is not None
        handle.scope.borrows -= 1
        return
    resource = handle.resource
    if not resource.alive:
        return
    if handle.kind is HandleKind.SHARED:
        resource.refs -= 1
        if resource.refs:
            return
    run_destructor(resource)


def run_destructor(resource: Resource) -> None:
    """End a resource: it is no longer alive, its representation is unreachable, and its
    type's destructor runs once, inside the defining instance, unless a trap locked that
    instance: then no code of it runs again (only teardown ends such a resource: a drop
    traps first)."""
    rtype = resource.rtype
    rep_value = resource.rep
    resource.alive = False
    resource.rep = None
    rtype._live.discard(resource)
    definer = rtype._definer
    if rtype._destructor is not None and definer.trapped is None:
        definer.active += 1
        try:
            rtype._destructor(rep_value)
        except BaseException as exc:
            entry.escaped(definer, exc, rtype._raises)
            raise
        finally:
            definer.active -= 1


def destroy(inst: Instance, rtype: ResourceType, index: int) -> None:
    """2021: end the resource now, whoever else holds it; their handles become null."""
    require_semantics(inst, Semantics.PROPOSAL_2021, "destroy a resource explicitly")
    handle = lookup(inst.table, index, rtype)
    if not handle.resource.alive:
        raise Trap(
            TrapReason.NULL_HANDLE,
            f"instance {inst.name!r} cannot destroy handle {index}: its {rtype.name!r} "
            "resource is already destroyed",
            instance=inst.name,
        )
    if rtype._guard is not None:
        rtype._guard(handle.resource.rep)
    inst.table.remove(index)
    run_destructor(handle.resource)


def end(inst: Instance, rtype: ResourceType, index: int) -> None:
    """End a handle ``inst`` holds: under proposal-2021 destroy its resource (other copies
    become null), otherwise drop it. A destructor's exception propagates."""
    if inst.world.semantics is Semantics.PROPOSAL_2021:
        destroy(inst, rtype, index)
    else:
        drop(inst, rtype, index)


def ender(inst: Instance, rtype: ResourceType, general: Callable[[int], None]
          ) -> Callable[[int], None]:
    """:func:`end` for ``inst``'s handles of ``rtype``, with the table and the semantics
    decided once. The common case (a live handle of that type, held as the first handle
    is, not lent, of a type without a guard, its instance live and unrestricted, its
    definer neither restricted nor running) is ended inline; anything else goes to
    ``general``, the full path, which raises the exact trap."""
    destroys = inst.world.semantics is Semantics.PROPOSAL_2021
    kind = first_kind(inst)
    table = holding_table(inst, rtype)
    slots, free = table._slots, table._free
    live, destructor, definer = rtype._live, rtype._destructor, rtype._definer
    raises = rtype._raises

    def end_one(index: int) -> None:
        if type(index) is int and index > 0 and not inst.restricted:
            try:
                handle = slots[index]
            except IndexError:
                handle = None
            if (handle is not None and handle.rtype is rtype and handle.kind is kind
                    and not handle.lends and rtype._guard is None
                    and not definer.restricted and not definer.active
                    and (resource := handle.resource).alive
                    and (destroys or resource.refs == 1)):
                slots[index] = None
                free.append(index)
                # run_destructor's steps, inline: a close runs them each time.
                rep_value = resource.rep
                resource.alive = False
                resource.rep = None
                live.discard(resource)
                if destructor is not None:
                    definer.active += 1
                    try:
                        destructor(rep_value)
                    except BaseException as exc:
                        entry.escaped(definer, exc, raises)
                        entry.reached(inst, exc, 0, definer)
                        raise
                    finally:
                        definer.active -= 1
                return
        general(index)

    return end_one


def keep(inst: Instance, rtype: ResourceType, index: int) -> int:
    """The handle to keep after the call from a given parameter: under proposal-2021 a
    clone (the parameter is a copy the call's end drops), otherwise the handle itself."""
    if inst.world.semantics is Semantics.PROPOSAL_2021:
        return clone(inst, rtype, index)
    return index


def clone(inst: Instance, rtype: ResourceType, index: int) -> int:
    """2021: a second handle to the same resource, in the same table."""
    require_semantics(inst, Semantics.PROPOSAL_2021, "copy a handle")
    handle = lookup(inst.table, index, rtype)
    inst.table.require_room(1, rtype)
    return inst.table.add(share(handle))


def share(handle: Handle) -> Handle:
    """A new shared handle to ``handle``'s resource (a null handle copies as null)."""
    resource = handle.resource
    if resource.alive:
        resource.refs += 1
    return Handle(resource, HandleKind.SHARED)


def require_semantics(inst: Instance, semantics: Semantics, action: str) -> None:
    if inst.world.semantics is not semantics:
        raise Trap(
            TrapReason.UNSUPPORTED,
            f"instance {inst.name!r} cannot {action}: not part of "
            f"{inst.world.semantics.value} semantics",
            instance=inst.name,
        )
