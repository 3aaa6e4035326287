"""Rules every semantics shares: private types, per-instance tables, type checks."""

from __future__ import annotations

from functools import partial

import pytest
from worldkit import Agent, FileLib, FilesWorld, caught

from virtwasi.world import (
    Context,
    Func,
    HandleKind,
    HandleParam,
    HeldHandle,
    ResourceType,
    Semantics,
    Trap,
    TrapReason,
    World,
    given,
    lent,
    own,
)

ALL = list(Semantics)
TYPED = [Semantics.COMPONENT_MODEL, Semantics.PROPOSAL_2021]


def setup(semantics: Semantics) -> tuple[FilesWorld, FileLib, Agent]:
    """A world with the file library and one client of it, named 'thief'."""
    world = FilesWorld(semantics)
    thief, _ = world.client("thief")
    return world, world.lib, thief


@pytest.mark.parametrize("semantics", ALL)
def test_only_the_definer_can_create_a_handle(semantics: Semantics) -> None:
    _, lib, thief = setup(semantics)
    with pytest.raises(Trap) as caught:
        thief.ctx.resource_new(lib.file, {"path": "/etc/forged"})
    assert caught.value.reason is TrapReason.NOT_DEFINER
    assert caught.value.instance == "thief"
    assert "'file'" in caught.value.message and "'files'" in caught.value.message
    assert lib.file.live_count == 0


@pytest.mark.parametrize("semantics", ALL)
def test_only_the_definer_can_read_a_representation(semantics: Semantics) -> None:
    _, lib, thief = setup(semantics)
    files = thief.ctx.imports["files"]
    handle = files.open("/secret")
    with pytest.raises(Trap) as caught:
        thief.ctx.resource_rep(lib.file, handle)
    assert caught.value.reason is TrapReason.NOT_DEFINER
    assert "'thief'" in caught.value.message and "'file'" in caught.value.message


@pytest.mark.parametrize("semantics", ALL)
def test_index_zero_never_names_a_handle(semantics: Semantics) -> None:
    for bad in (0, -1, 99, "1", None):  # each in a world of its own: a trap locks the library
        _, lib, _ = setup(semantics)
        lib.ctx.resource_new(lib.file, {"path": "a", "data": ""})
        with pytest.raises(Trap) as trap:
            lib.ctx.resource_rep(lib.file, bad)  # type: ignore[arg-type]
        assert trap.value.reason is TrapReason.INVALID_HANDLE


@pytest.mark.parametrize("semantics", ALL)
def test_freed_slots_are_reused_last_freed_first(semantics: Semantics) -> None:
    _, lib, _ = setup(semantics)
    ctx = lib.ctx
    first, second, third = (ctx.resource_new(lib.file, {"path": p}) for p in "abc")
    assert (first, second, third) == (1, 2, 3)
    ctx.resource_drop(lib.file, first)
    ctx.resource_drop(lib.file, third)
    assert ctx.resource_new(lib.file, {"path": "d"}) == third
    assert ctx.resource_new(lib.file, {"path": "e"}) == first
    assert ctx.resource_new(lib.file, {"path": "f"}) == 4


@pytest.mark.parametrize("semantics", TYPED)
def test_a_handle_means_nothing_in_another_table(semantics: Semantics) -> None:
    world, lib, _ = setup(semantics)
    thief, thief_inst = world.client("thief too")
    victim = Agent(lib.file)
    world.client("victim", victim)
    secret = victim.ctx.imports["files"].open("/secret")
    assert secret == 1
    # The thief holds nothing: the victim's index 1 is not a handle in the thief's table.
    trap = caught(thief_inst, lambda: thief.ctx.imports["files"].path(secret))
    assert trap is not None and trap.reason is TrapReason.INVALID_HANDLE
    # Once the thief holds its own handle 1, index 1 reaches the thief's file, not the victim's.
    own_file = thief.ctx.imports["files"].open("/mine")
    assert own_file == secret
    assert thief.ctx.imports["files"].path(own_file) == "/mine"


@pytest.mark.parametrize("semantics", TYPED)
def test_a_handle_of_one_type_cannot_pass_for_another(semantics: Semantics) -> None:
    _, lib, client = setup(semantics)
    files = client.ctx.imports["files"]
    folder = files.opendir("/tmp")
    with pytest.raises(Trap) as caught:
        files.read(folder)
    assert caught.value.reason is TrapReason.TYPE_MISMATCH
    assert "'dir'" in caught.value.message and "'file'" in caught.value.message
    # The same confusion inside the definer's own table traps as well.
    mine = lib.ctx.resource_new(lib.dir, {"path": "/x"})
    with pytest.raises(Trap) as caught:
        lib.ctx.resource_rep(lib.file, mine)
    assert caught.value.reason is TrapReason.TYPE_MISMATCH


def test_a_trap_changes_nothing_when_arguments_are_bad() -> None:
    world, lib, client = setup(Semantics.COMPONENT_MODEL)
    files = client.ctx.imports["files"]
    good = files.open("/a")
    receiver = Agent(
        lib.file, lambda ctx: {"two": ctx.func(lambda a, b: None, [own(lib.file)] * 2, [], "two")}
    )
    two = client.ctx.connect(world.client("receiver", receiver)[1]).two
    client_inst = next(i for i in world.world.instances if i.name == "thief")
    # The second argument is bad: the first, checked already, must not have moved. (The
    # client's own code catches each trap, so it carries on.)
    for second in (good + 10, good):
        trap = caught(client_inst, partial(two, good, second))
        assert trap is not None and trap.reason is TrapReason.INVALID_HANDLE
        assert client.ctx.handle_count == 1
        assert receiver.ctx.handle_count == 0
    assert files.path(good) == "/a"


def test_signatures_must_fit_the_semantics() -> None:
    from virtwasi.world import borrow, shared

    def make(semantics: Semantics, params: list[object], results: list[object]) -> None:
        world = World(semantics)

        def definition(ctx):  # type: ignore[no-untyped-def]
            rtype = ctx.resource_type("r")
            resolve = {"own": own, "borrow": borrow, "shared": shared}
            ctx.func(lambda *a: None, [resolve[p](rtype) for p in params],  # type: ignore[index]
                     [resolve[r](rtype) for r in results], name="f")  # type: ignore[index]
            return {}

        world.instantiate("x", definition)

    make(Semantics.COMPONENT_MODEL, ["own", "borrow"], ["own"])
    make(Semantics.PROPOSAL_2021, ["shared"], ["shared"])
    with pytest.raises(TypeError, match="borrow result"):
        make(Semantics.COMPONENT_MODEL, [], ["borrow"])
    with pytest.raises(TypeError, match="shared parameter"):
        make(Semantics.COMPONENT_MODEL, ["shared"], [])
    with pytest.raises(TypeError, match="own parameter"):
        make(Semantics.PROPOSAL_2021, ["own"], [])


@pytest.mark.parametrize(("semantics", "lent_kind", "given_kind"), [
    (Semantics.COMPONENT_MODEL, HandleKind.BORROW, HandleKind.OWN),
    (Semantics.PROPOSAL_2021, HandleKind.SHARED, HandleKind.SHARED),
    (Semantics.TRANSPARENT, HandleKind.BORROW, HandleKind.OWN),
])
def test_lent_and_given_mean_the_same_under_every_semantics(
    semantics: Semantics, lent_kind: HandleKind, given_kind: HandleKind
) -> None:
    made: list[tuple[ResourceType, Func]] = []

    def definition(ctx: Context) -> dict[str, Func | ResourceType]:
        rtype = ctx.resource_type("r")
        made.append((rtype, ctx.func(lambda a, b: b, [lent(rtype), given(rtype)],
                                     [given(rtype)], name="f")))
        return {}

    World(semantics).instantiate("x", definition)
    rtype, func = made[0]
    assert func.params == (HandleParam(rtype, lent_kind), HandleParam(rtype, given_kind))
    assert func.results == (HandleParam(rtype, given_kind),)


@pytest.mark.parametrize("semantics", ALL)
def test_an_int_cannot_be_a_representation(semantics: Semantics) -> None:
    _, lib, _ = setup(semantics)
    with pytest.raises(TypeError, match="int"):
        lib.ctx.resource_new(lib.file, 7)
    assert lib.file.live_count == 0 and lib.ctx.handle_count == 0
    # Anything else is a representation, handed back by rep_of as it is (a lifted borrow).
    rep = {"path": "/a"}
    assert lib.ctx.rep_of(lib.file, rep) is rep
    assert lib.ctx.rep_of(lib.file, lib.ctx.resource_new(lib.file, rep)) is rep


@pytest.mark.parametrize("semantics", ALL)
def test_rep_of_a_handle_keeps_the_rules_of_resource_rep(semantics: Semantics) -> None:
    _, lib, thief = setup(semantics)
    h = thief.ctx.imports["files"].open("/secret")
    with pytest.raises(Trap) as caught:
        thief.ctx.rep_of(lib.file, h)
    assert caught.value.reason is TrapReason.NOT_DEFINER
    with pytest.raises(Trap) as caught:
        lib.ctx.rep_of(lib.file, 99)
    assert caught.value.reason is TrapReason.INVALID_HANDLE


@pytest.mark.parametrize("semantics", ALL)
def test_end_ends_the_resource_under_every_semantics(semantics: Semantics) -> None:
    _, lib, _ = setup(semantics)
    ctx = lib.ctx
    h = ctx.resource_new(lib.file, {"path": "/a"})
    copy = ctx.resource_clone(lib.file, h) if semantics is Semantics.PROPOSAL_2021 else None
    ctx.end(lib.file, h)
    assert lib.closed == [{"path": "/a"}] and lib.file.live_count == 0
    if copy is not None:  # the explicit destroy of the proposal: the other copy is null
        with pytest.raises(Trap) as caught:
            ctx.resource_rep(lib.file, copy)
        assert caught.value.reason is TrapReason.NULL_HANDLE
    else:
        assert ctx.handle_count == 0


@pytest.mark.parametrize("semantics", ALL)
def test_end_lets_the_destructor_error_reach_the_caller(semantics: Semantics) -> None:
    made: list[tuple[Context, ResourceType, int]] = []

    def definition(ctx: Context) -> dict[str, Func | ResourceType]:
        def close(rep: object) -> None:
            raise OSError("disk full")

        rtype = ctx.resource_type("file", close)
        made.append((ctx, rtype, ctx.resource_new(rtype, "rep")))
        return {}

    World(semantics).instantiate("x", definition)
    ctx, rtype, h = made[0]
    with pytest.raises(OSError, match="disk full"):
        ctx.end(rtype, h)


@pytest.mark.parametrize("semantics", ALL)
def test_keep_keeps_a_given_handle_past_the_call(semantics: Semantics) -> None:
    world, lib, giver = setup(semantics)
    keeper = Agent(lib.file)
    _, keeper_inst = world.client("keeper", keeper)
    h = giver.ctx.imports["files"].open("/kept")
    giver.ctx.connect(keeper_inst).take(h)
    (kept,) = keeper.kept
    assert keeper.ctx.imports["files"].path(kept) == "/kept"


@pytest.mark.parametrize("semantics", TYPED)
def test_observers_read_what_an_instance_holds(semantics: Semantics) -> None:
    world, lib, _ = setup(semantics)
    client = Agent(lib.file)
    _, inst = world.client("client", client)
    h = client.ctx.imports["files"].open("/a")
    kind = HandleKind.SHARED if semantics is Semantics.PROPOSAL_2021 else HandleKind.OWN
    held = HeldHandle(h, "file", "files", kind, alive=True, refs=1, lends=0)
    assert inst.holdings() == (held,) and inst.held(h) == held
    assert inst.defines(lib.file) is False and world.files.defines(lib.file) is True
    assert lib.file.definer_name == "files"
    with pytest.raises(KeyError):
        inst.held(h + 1)
    client.ctx.resource_drop(lib.file, h)
    assert inst.holdings() == ()
