"""Instance lifetimes: teardown, calls into destroyed instances, instances as resources."""

from __future__ import annotations

from typing import Any

import pytest
from worldkit import Agent, Exported, FileLib, FilesWorld, caught

from virtwasi.world import Context, Instance, Semantics, Trap, TrapReason, World, own, value

TYPED = [Semantics.COMPONENT_MODEL, Semantics.PROPOSAL_2021]


def files_world(semantics: Semantics) -> tuple[FilesWorld, FileLib, Agent, Instance]:
    """The file library and one client of it, named 'client'."""
    world = FilesWorld(semantics)
    client, inst = world.client("client")
    return world, world.lib, client, inst


@pytest.mark.parametrize("semantics", TYPED)
def test_teardown_drops_every_handle_the_instance_holds(semantics: Semantics) -> None:
    _, lib, client, inst = files_world(semantics)
    for name in ("/a", "/b", "/c"):
        h = client.ctx.imports["files"].open(name)
        client.ctx.imports["files"].write(h, "data of " + name)
    inst.destroy()
    assert sorted(c["path"] for c in lib.closed) == ["/a", "/b", "/c"]
    assert all(c["data"] == "data of " + c["path"] for c in lib.closed)
    assert lib.file.live_count == 0


@pytest.mark.parametrize("semantics", list(Semantics))
def test_calls_into_and_from_a_destroyed_instance_trap(semantics: Semantics) -> None:
    _, lib, client, inst = files_world(semantics)
    inst.destroy()
    with pytest.raises(Trap) as caught:
        inst.exports.run(lambda: None)
    assert caught.value.reason is TrapReason.INSTANCE_DESTROYED
    with pytest.raises(Trap) as caught:
        client.ctx.imports["files"].open("/late")
    assert caught.value.reason is TrapReason.INSTANCE_DESTROYED
    with pytest.raises(Trap) as caught:
        client.ctx.resource_type("zombie")
    assert caught.value.reason is TrapReason.INSTANCE_DESTROYED
    assert lib.file.live_count == 0


@pytest.mark.parametrize("semantics", TYPED)
def test_handles_to_a_destroyed_definers_resources_go_null(semantics: Semantics) -> None:
    world, lib, client, inst = files_world(semantics)
    h = client.ctx.imports["files"].open("/a")
    world.files.destroy()
    assert [c["path"] for c in lib.closed] == ["/a"]  # the definer cleaned up as it died
    trap = caught(inst, lambda: client.ctx.imports["files"].read(h))
    assert trap is not None and trap.reason is TrapReason.INSTANCE_DESTROYED
    client.ctx.resource_drop(lib.file, h)  # a null handle drops without a second destructor
    assert len(lib.closed) == 1


def test_an_instance_cannot_be_destroyed_while_it_runs() -> None:
    world, lib, _client, inst = files_world(Semantics.COMPONENT_MODEL)
    with pytest.raises(Trap) as caught:
        inst.exports.run(inst.destroy)
    assert caught.value.reason is TrapReason.INSTANCE_BUSY
    assert not inst.destroyed
    assert world.world.host.handle_count == 0 and lib.file.live_count == 0


def test_a_definer_cannot_be_destroyed_while_its_resource_is_lent() -> None:
    world, lib, client, _inst = files_world(Semantics.COMPONENT_MODEL)
    helper, helper_inst = world.client("helper")
    files = world.files
    h = client.ctx.imports["files"].open("/a")
    outcome: list[TrapReason] = []

    def during(lent: int) -> None:
        try:
            files.destroy()
        except Trap as trap:
            outcome.append(trap.reason)
        helper.ctx.resource_drop(lib.file, lent)

    helper.during = during
    client.ctx.connect(helper_inst).hold(h)
    assert outcome == [TrapReason.HANDLE_LENT]
    assert not files.destroyed and lib.closed == []


def child_definition(lib: FileLib) -> Any:
    def definition(ctx: Context) -> Exported:
        def work(path: str) -> None:
            ctx.imports["files"].open(path)

        return {"work": ctx.func(work, [value], [])}

    return definition


def parent_world(semantics: Semantics) -> tuple[World, FileLib, Agent, Instance]:
    """The file library and a 'parent' instance that makes children using it."""
    world = FilesWorld(semantics)
    parent, inst = world.client("parent", Agent())
    return world.world, world.lib, parent, inst


@pytest.mark.parametrize("semantics", TYPED)
def test_dropping_the_handle_to_a_child_tears_the_child_down(semantics: Semantics) -> None:
    world, lib, parent, _ = parent_world(semantics)
    files = next(i for i in world.instances if i.name == "files")
    child = parent.ctx.instantiate("child", child_definition(lib), {"files": files})
    parent.ctx.child(child).work("/child-file")
    assert lib.closed == [] and [i.name for i in world.instances][-1] == "child"
    parent.ctx.resource_drop(parent.ctx.instance_type, child)
    assert [c["path"] for c in lib.closed] == ["/child-file"]
    assert "child" not in [i.name for i in world.instances]
    with pytest.raises(Trap) as caught:
        parent.ctx.child(child)
    assert caught.value.reason is TrapReason.INVALID_HANDLE


@pytest.mark.parametrize(
    ("semantics", "closed"),
    [
        (Semantics.COMPONENT_MODEL, ["/child-file"]),
        (Semantics.PROPOSAL_2021, ["/child-file"]),
        (Semantics.TRANSPARENT, []),
    ],
)
def test_destroying_a_parent_destroys_its_children(
    semantics: Semantics, closed: list[str]
) -> None:
    world, lib, parent, inst = parent_world(semantics)
    files = next(i for i in world.instances if i.name == "files")
    child = parent.ctx.instantiate("child", child_definition(lib), {"files": files})
    parent.ctx.child(child).work("/child-file")
    inst.destroy()
    # Transparent: the parent's integer named a slot in the host's table; nothing followed it.
    assert [c["path"] for c in lib.closed] == closed
    assert ("child" in [i.name for i in world.instances]) == (not closed)


def test_a_2021_child_lives_until_the_last_handle_to_it_drops() -> None:
    world, lib, parent, _ = parent_world(Semantics.PROPOSAL_2021)
    files = next(i for i in world.instances if i.name == "files")
    child = parent.ctx.instantiate("child", child_definition(lib), {"files": files})
    copy = parent.ctx.resource_clone(parent.ctx.instance_type, child)
    parent.ctx.resource_drop(parent.ctx.instance_type, child)
    parent.ctx.child(copy).work("/still-here")
    parent.ctx.resource_destroy(parent.ctx.instance_type, copy)
    assert [c["path"] for c in lib.closed] == ["/still-here"]


def test_a_trap_ends_the_guest_call_and_the_world_carries_on() -> None:
    world, lib, client, client_inst = files_world(Semantics.COMPONENT_MODEL)
    helper, helper_inst = world.client("helper")
    other, _ = world.client("other")
    h = client.ctx.imports["files"].open("/a")

    def during(lent: int) -> None:
        helper.ctx.resource_rep(lib.file, lent)  # not the definer: traps, deep in the call

    helper.during = during
    with pytest.raises(Trap) as trap:
        client.ctx.connect(helper_inst).hold(h)
    assert trap.value.reason is TrapReason.NOT_DEFINER
    # Everything the call had borrowed was given back.
    assert helper_inst.handle_count == 0 and client_inst.held(h).lends == 0
    # The trap escaped both instances on its way: each is locked out for good...
    assert helper_inst.trapped is trap.value and client_inst.trapped is trap.value
    with pytest.raises(Trap) as again:
        client.ctx.imports["files"].close(h)
    assert again.value.reason is TrapReason.INSTANCE_TRAPPED and again.value.__cause__ is trap.value
    # ...and the rest of the world carries on: the library serves others, and tearing the
    # client down still closes what it held.
    other.ctx.imports["files"].close(other.ctx.imports["files"].open("/b"))
    client_inst.destroy()
    assert [c["path"] for c in lib.closed] == ["/b", "/a"]


def test_a_failed_instantiation_leaves_nothing_behind() -> None:
    world = World(Semantics.COMPONENT_MODEL)
    lib = FileLib()
    files = world.instantiate("files", lib)

    def broken(ctx: Context) -> Exported:
        ctx.imports["files"].open("/opened-before-failing")
        raise RuntimeError("definition failed")

    with pytest.raises(RuntimeError):
        world.instantiate("broken", broken, {"files": files})
    assert [i.name for i in world.instances] == ["files"]
    assert [c["path"] for c in lib.closed] == ["/opened-before-failing"]


def test_closing_the_world_ends_every_resource() -> None:
    with World(Semantics.PROPOSAL_2021) as world:
        lib = FileLib()
        files = world.instantiate("files", lib)
        client = Agent(lib.file)
        world.instantiate("client", client, {"files": files})
        client.ctx.imports["files"].open("/a")
    assert world.instances == [] and lib.file.live_count == 0 and len(lib.closed) == 1


def test_a_caller_cannot_be_torn_down_while_its_handle_is_lent() -> None:
    world, lib, client, inst = files_world(Semantics.COMPONENT_MODEL)
    helper, helper_inst = world.client("helper")
    h = client.ctx.imports["files"].open("/a")
    reasons: list[TrapReason] = []

    def during(lent: int) -> None:
        try:
            inst.destroy()  # client is mid-call, lending h: refused, nothing closes
        except Trap as trap:
            reasons.append(trap.reason)
        assert lib.closed == []
        assert helper.ctx.imports["files"].path(lent) == "/a"
        helper.ctx.resource_drop(lib.file, lent)

    helper.during = during
    client.ctx.connect(helper_inst).hold(h)
    assert reasons == [TrapReason.INSTANCE_BUSY] and not inst.destroyed


def test_a_refused_drop_of_a_busy_childs_handle_changes_nothing() -> None:
    world, _lib, parent, _ = parent_world(Semantics.COMPONENT_MODEL)
    child = parent.ctx.instantiate("child", lambda ctx: {
        "call": ctx.func(lambda fn: fn(), [value], [value], "call"),
    })
    reasons: list[TrapReason] = []

    def drop_own_parent_handle() -> None:
        try:
            parent.ctx.resource_drop(parent.ctx.instance_type, child)
        except Trap as trap:
            reasons.append(trap.reason)

    parent.ctx.child(child).call(drop_own_parent_handle)
    assert reasons == [TrapReason.INSTANCE_BUSY]
    assert parent.ctx.handle_count == 1 and world.instance_type.live_count == 1
    parent.ctx.resource_drop(parent.ctx.instance_type, child)  # once idle, it goes
    assert world.instance_type.live_count == 0
    assert "child" not in [i.name for i in world.instances]


def test_a_caller_torn_down_mid_call_never_receives_a_result() -> None:
    world = World(Semantics.COMPONENT_MODEL)
    ended: list[str] = []

    def maker(ctx: Context) -> Exported:
        rtype = ctx.resource_type("thing", destructor=ended.append)

        def make(during: Any) -> int:
            handle = ctx.resource_new(rtype, "thing")
            during()
            return handle

        return {"thing": rtype, "make": ctx.func(make, [value], [own(rtype)])}

    lib = world.instantiate("lib", maker)
    caller = Agent()
    caller_inst = world.instantiate("caller", caller, {"lib": lib})
    outcome: list[TrapReason] = []

    def tear_down_caller() -> None:
        try:
            caller_inst.destroy()
        except Trap as trap:
            outcome.append(trap.reason)

    handle = caller.ctx.imports["lib"].make(tear_down_caller)
    assert outcome == [TrapReason.INSTANCE_BUSY] and not caller_inst.destroyed
    assert caller.ctx.handle_count == 1
    caller_inst.destroy()
    assert ended == ["thing"] and handle == 1
