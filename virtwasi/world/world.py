"""The world: instances, their links, their lifetimes, under one handle semantics."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

from . import entry, handles
from .instance import Definition, Instance
from .linker import link
from .resources import ResourceType
from .semantics import Semantics
from .trap import Trap, TrapReason


class World:
    """A set of linked instances under one handle semantics.

    ``world.host`` is the embedder as an instance: handles returned to Python code that calls
    ``instance.exports`` land in its table. It defines ``world.instance_type``, the resource
    type of handles to child instances.

    Teardown (:meth:`destroy`) drops every handle the instance holds and runs the destructor
    of every resource it defined that is still alive; handles that others hold to those
    resources become null. Under ``component-model`` semantics this is an extension of this
    project: the final component model has no instance teardown.

    Calls between instances follow the component model's rules for entering and leaving
    them (:mod:`.entry`); an embedder that runs an instance's code itself (a component's
    core wasm) does so inside :meth:`entering`, and its post-return and realloc calls inside
    :meth:`forbidding_leave`. An instance a trap escaped is left unusable:
    ``Instance.trapped`` holds that trap.
    """

    def __init__(self, semantics: Semantics | str = Semantics.COMPONENT_MODEL) -> None:
        self.semantics = Semantics(semantics)
        self.instances: list[Instance] = []
        self.host = Instance(self, "host")
        self.host.lineage = ()  # the embedder: no call enters it, nothing is inside it
        self.instance_type = ResourceType("instance", self.host, self.destroy)
        self.instance_type._guard = self._check_destroyable
        self.host.defined_types.append(self.instance_type)

    def instantiate(
        self, name: str, definition: Definition, imports: Mapping[str, Instance] | None = None
    ) -> Instance:
        """A top-level instance, held by the embedder: it lives until :meth:`destroy`."""
        return link(self, name, definition, imports or {})

    def instantiate_child(
        self, parent: Instance, name: str, definition: Definition, imports: Mapping[str, Instance]
    ) -> int:
        """A child of ``parent``; returns ``parent``'s handle to it."""
        handles.holding_table(parent, self.instance_type).require_room(1, self.instance_type)
        child = link(self, name, definition, imports, parent)
        index, resource = handles.grant(parent, self.instance_type, child)
        child._self_resource = resource
        return index

    def instance_of(self, holder: Instance, handle: int) -> Instance:
        """The instance behind ``holder``'s instance handle."""
        table = handles.holding_table(holder, self.instance_type)
        resource = handles.lookup(table, handle, self.instance_type).resource
        if not resource.alive:
            raise Trap(
                TrapReason.NULL_HANDLE,
                f"instance handle {handle} of {holder.name!r} is null: the instance is gone",
                instance=holder.name,
            )
        inst: Instance = resource.rep
        return inst

    def entering(self, inst: Instance, caller: Instance | None = None) -> entry.Entering:
        """A call into ``inst`` from ``caller`` (the embedder, by default), made by the
        embedder itself: ``with world.entering(inst): ...`` runs the block as that call.

        Entry traps (changing nothing) as a call across the membrane would: into a destroyed
        instance, from one that may not leave, and under component-model semantics into one
        that trapped before (``instance-trapped``) or that is running a call the caller is
        not inside (``reentrance``). For the block, ``inst`` (and the ancestors the call
        enters) run a call. Under component-model semantics any exception that leaves the
        block is a trap that leaves ``inst`` unusable: ``inst.trapped`` keeps it, and every
        later call into it traps ``instance-trapped`` with it as the cause."""
        return entry.Entering(inst, self.host if caller is None else caller)

    def forbidding_leave(self, inst: Instance) -> entry.ForbiddingLeave:
        """``with world.forbidding_leave(inst): ...`` runs the block (a post-return or a
        realloc) with ``inst`` forbidden to leave: a call out of it, and its
        ``resource_new``, ``resource_drop`` (and every other act that makes, ends or passes
        a handle), trap ``may-not-leave``, changing nothing. Under every semantics: the rule
        is in force only where the embedder asks for it."""
        return entry.ForbiddingLeave(inst)

    def destroy(self, inst: Instance) -> None:
        """Tear ``inst`` down: drop its handles, end the resources it defined, refuse calls.

        Traps (and changes nothing) while the instance is running a call, or while a resource
        it defined is lent to a call in progress. Destroying twice does nothing.
        """
        if inst.destroyed:
            return
        self._check_destroyable(inst)
        inst.destroyed = True
        inst.restrict()
        own_resource = inst._self_resource
        if own_resource is not None and own_resource.alive:
            # Destroyed directly: the handles naming it go null, as for any ended resource.
            own_resource.alive = False
            own_resource.rep = None
            self.instance_type._live.discard(own_resource)
        failures: list[BaseException] = []
        for index, handle in list(inst.table.items()):
            inst.table.remove(index)
            try:
                handles.release(handle)
            except Exception as exc:  # one failing destructor must not stop the sweep
                failures.append(exc)
        for rtype in inst.defined_types:
            for resource in list(rtype._live):
                try:
                    handles.run_destructor(resource)
                except Exception as exc:
                    failures.append(exc)
        self.instances.remove(inst)
        if failures:
            raise failures[0]

    def _check_destroyable(self, inst: Instance) -> None:
        """Trap if tearing ``inst`` down now is refused; change nothing either way."""
        if inst.destroyed:
            return
        if inst is self.host:
            raise ValueError("the host instance lives as long as its world")
        if inst.active:
            raise Trap(
                TrapReason.INSTANCE_BUSY,
                f"instance {inst.name!r} cannot be destroyed while it is running a call",
                instance=inst.name,
            )
        for other in (self.host, *self.instances):
            for _, handle in other.table.items():
                if handle.lends and handle.rtype._definer is inst:
                    raise Trap(
                        TrapReason.HANDLE_LENT,
                        f"instance {inst.name!r} cannot be destroyed: its "
                        f"{handle.rtype.name!r} resource is lent to a call in progress",
                        instance=inst.name,
                    )
        for index, handle in inst.table.items():
            if not handles.ends_resource(handle):
                continue
            if handle.rtype is self.instance_type:  # a child it would tear down with it
                self._check_destroyable(handle.resource.rep)
            elif (definer := handle.rtype._definer).active or definer.parent is not None:
                # A drop that enters the definer, as if inst made it (a locked one: skipped).
                entry.require_may_enter(
                    definer, inst, f"be torn down: ending its handle {index} of "
                    f"{handle.rtype.name!r} enters {definer.name!r}", locked_too=False)

    def close(self) -> None:
        """Destroy every instance, newest first."""
        for inst in reversed(list(self.instances)):
            self.destroy(inst)

    def __enter__(self) -> World:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
