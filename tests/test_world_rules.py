"""The component model's rules for entering and leaving instances, and the table limit.

Reentrance: no call enters an instance that is running a call, unless from inside it (its
own child calling back). may_leave: an instance running a post-return or a realloc may not
call out, make or drop handles. Lockdown: a trap that escapes an instance leaves it
unusable. Table limit: 2**28-1 handles. Each refusal is a trap with its own reason that
names both instances and changes nothing; under proposal-2021 and transparent semantics
reentrance and lockdown do not apply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from worldkit import Agent, Exported, FilesWorld, caught

from virtwasi.world import (
    BoundFunc,
    Context,
    Exports,
    Instance,
    ResourceType,
    Semantics,
    Trap,
    TrapReason,
    World,
    given,
    lent,
    value,
)
from virtwasi.world.resources import HandleTable

CM = Semantics.COMPONENT_MODEL
OTHERS = [Semantics.PROPOSAL_2021, Semantics.TRANSPARENT]


def state(world: World) -> list[tuple[Any, ...]]:
    """Everything a refused operation must leave as it was: every instance's holdings, the
    live resources of every type, which instances are locked and which are running."""
    return [(inst.name, inst.holdings(), inst.trapped is not None, inst.active,
             tuple((t.name, t.live_count) for t in (*inst.types.values(),)))
            for inst in (world.host, *world.instances)]


def function(exports: Exports, name: str) -> BoundFunc:
    bound = exports[name]
    assert isinstance(bound, BoundFunc)
    return bound


def trap_of(attempt: Callable[[], Any]) -> Trap:
    with pytest.raises(Trap) as trap:
        attempt()
    return trap.value


class Caller:
    """A client that exports ``call(fn)``, which runs ``fn`` as its own code, and keeps its
    context; ``back`` is what its ``callback`` export runs."""

    def __init__(self) -> None:
        self.ctx: Context
        self.back: Callable[[], Any] = lambda: "called back"

    def __call__(self, ctx: Context) -> Exported:
        self.ctx = ctx
        return {"call": ctx.func(lambda fn: fn(), [value], [value], "call"),
                "callback": ctx.func(lambda: self.back(), [], [value], "callback")}


def pair(semantics: Semantics) -> tuple[World, Caller, Instance, Caller, Instance]:
    """Two clients, 'a' and 'b', each importing the other's exports as the test wires them."""
    world = World(semantics)
    a, b = Caller(), Caller()
    a_inst = world.instantiate("a", a)
    b_inst = world.instantiate("b", b)
    return world, a, a_inst, b, b_inst


# -- reentrance --------------------------------------------------------------------------


def test_a_call_back_into_an_instance_on_the_stack_traps_reentrance() -> None:
    world, a, a_inst, b, b_inst = pair(CM)
    back = b.ctx.connect(a_inst).callback
    seen: list[Any] = []

    def in_b() -> Any:
        before = state(world)
        seen.append(trap_of(back))
        seen.append(state(world) == before)  # refused before anything ran or changed
        return "b done"

    assert a.ctx.connect(b_inst).call(in_b) == "b done"
    trap, unchanged = seen
    assert trap.reason is TrapReason.REENTRANCE and trap.instance == "b"
    assert "'b' cannot call a.callback" in trap.message and "'a' is already running" in trap.message
    assert unchanged
    # b caught it: nothing escaped, nothing is locked, and a may be called again later.
    assert a_inst.trapped is None and b_inst.trapped is None
    assert back() == "called back"


@pytest.mark.parametrize("semantics", OTHERS)
def test_other_semantics_let_an_instance_be_called_back(semantics: Semantics) -> None:
    _, a, a_inst, b, b_inst = pair(semantics)
    back = b.ctx.connect(a_inst).callback
    assert a.ctx.connect(b_inst).call(lambda: back()) == "called back"


def test_a_parent_is_entered_by_its_own_child_but_not_from_outside() -> None:
    world = World(CM)
    parent, outsider = Caller(), Caller()
    parent.back = lambda: "parent ran"
    parent_inst = world.instantiate("p", parent)
    outsider_inst = world.instantiate("q", outsider)

    def child(ctx: Context) -> Exported:
        up = ctx.imports["parent"].callback  # its parent's export: donut wrapping
        return {"work": ctx.func(lambda: up(), [], [value], "work")}

    handle = parent_inst.exports.call(
        lambda: parent.ctx.instantiate("c", child, {"parent": parent_inst}))
    child_inst = world.instances[-1]
    assert child_inst.parent is parent_inst and child_inst.lineage == (child_inst, parent_inst)
    work = parent.ctx.child(handle).work
    # The parent, running, calls its child, which calls back into the parent: allowed.
    assert parent_inst.exports.call(lambda: work()) == "parent ran"

    # While the parent runs, entering its child from outside enters the parent too.
    def in_q() -> Trap:
        return trap_of(outsider.ctx.connect(child_inst).work)  # q's own code catches it

    trap = parent_inst.exports.call(lambda: parent.ctx.connect(outsider_inst).call(in_q))
    assert trap.reason is TrapReason.REENTRANCE
    assert trap.message.startswith("'q' cannot call c.work: 'p' ('c' is in it) is already")
    assert all(inst.trapped is None and inst.active == 0 for inst in world.instances)
    assert outsider.ctx.connect(child_inst).work() == "parent ran"  # the parent idle: fine


@pytest.mark.parametrize("destructor", [True, False])
def test_a_drop_that_ends_a_resource_enters_its_running_definer(destructor: bool) -> None:
    world = World(CM)
    ended: list[Any] = []
    client = Agent()
    holder: dict[str, Any] = {}

    def lib(ctx: Context) -> Exported:
        thing = ctx.resource_type("thing", ended.append if destructor else None)
        holder["thing"], holder["ctx"] = thing, ctx
        return {"thing": thing,
                "make": ctx.func(lambda: ctx.resource_new(thing, ["rep"]), [], [given(thing)],
                                 "make"),
                "run": ctx.func(lambda fn: fn(), [value], [value], "run")}

    lib_inst = world.instantiate("lib", lib)
    lib_ctx: Context = holder["ctx"]
    client_inst = world.instantiate("client", client, {"lib": lib_inst})
    thing = holder["thing"]
    h = client.ctx.imports["lib"].make()

    def while_lib_runs() -> Any:
        before = state(world)
        trap = caught(client_inst, lambda: client.ctx.resource_drop(thing, h))
        return trap, state(world) == before

    trap, unchanged = lib_inst.exports.run(while_lib_runs)
    assert trap is not None and trap.reason is TrapReason.REENTRANCE
    assert "'client' cannot drop handle 1 of 'thing', which enters 'lib'" in trap.message
    assert unchanged and ended == [] and client_inst.held(h).alive
    # Once the definer is no longer running, the same drop ends it.
    client.ctx.resource_drop(thing, h)
    assert thing.live_count == 0 and ended == ([["rep"]] if destructor else [])
    # The definer dropping a handle of its own type enters nothing: allowed while it runs.
    lib_inst.exports.run(lambda: lib_ctx.resource_drop(thing, lib_ctx.resource_new(thing, [1])))
    assert ended == ([["rep"], [1]] if destructor else []) and lib_inst.trapped is None


def test_tearing_down_a_holder_enters_the_definers_of_what_it_holds() -> None:
    s = FilesWorld(CM)
    client, client_inst = s.client("client")
    client.ctx.imports["files"].open("/a")
    with s.world.entering(s.files):  # the library runs a call meanwhile
        before = state(s.world)
        trap = trap_of(client_inst.destroy)
        assert state(s.world) == before
    assert trap.reason is TrapReason.REENTRANCE
    assert "'client' cannot be torn down: ending its handle 1 of 'file' enters 'files'" in str(trap)
    assert not client_inst.destroyed and s.lib.closed == [] and s.files.trapped is None
    client_inst.destroy()  # the library no longer runs: the teardown closes the file
    assert [c["path"] for c in s.lib.closed] == ["/a"]


# -- may_leave -------------------------------------------------------------------------------


@pytest.mark.parametrize("semantics", list(Semantics))
def test_an_instance_forbidden_to_leave_cannot_call_out_nor_make_or_drop_handles(
        semantics: Semantics) -> None:
    s = FilesWorld(semantics)
    lib = s.lib
    client, client_inst = s.client("client")
    files = client.ctx.imports["files"]
    h = files.open("/a")
    mine = lib.ctx.resource_new(lib.file, {"path": "/lib", "data": ""})
    attempts: dict[str, Callable[[], Any]] = {
        "call": lambda: files.read(h),
        "call, fast path": lambda: function(files, "read").lowered(h),
        "drop": lambda: client.ctx.resource_drop(lib.file, h),
        "end": lambda: client.ctx.end(lib.file, h),
        "bound ender": lambda: client.ctx.ender(lib.file)(h),
        "make a child": lambda: client.ctx.instantiate("kid", Agent()),
    }
    definer_attempts: dict[str, Callable[[], Any]] = {
        "new": lambda: lib.ctx.resource_new(lib.file, {"path": "/x"}),
        "drop its own": lambda: lib.ctx.resource_drop(lib.file, mine),
    }
    for inst, tries in ((client_inst, attempts), (s.files, definer_attempts)):
        with s.world.entering(inst), s.world.forbidding_leave(inst):  # a post-return, say
            before = state(s.world)
            for name, attempt in tries.items():
                trap = trap_of(attempt)  # caught by its own code: nothing escapes
                assert trap.reason is TrapReason.MAY_NOT_LEAVE, name
                assert f"instance {inst.name!r} cannot" in trap.message, name
                assert "post-return or a realloc" in trap.message
            assert state(s.world) == before and lib.closed == []
            if inst is s.files:  # reading its own representation leaves nothing
                assert lib.ctx.resource_rep(lib.file, mine)["path"] == "/lib"
    assert client_inst.trapped is None and s.files.trapped is None
    # After the block both may leave again.
    assert files.read(h) == ""
    client.ctx.resource_drop(lib.file, h)
    assert [c["path"] for c in lib.closed] == ["/a"]


def test_a_trap_that_escapes_a_post_return_locks_the_instance() -> None:
    world, a, a_inst, _, b_inst = pair(CM)
    b_calls = a.ctx.connect(b_inst).callback
    with pytest.raises(Trap) as trap, world.entering(a_inst), world.forbidding_leave(a_inst):
        b_calls()
    assert trap.value.reason is TrapReason.MAY_NOT_LEAVE
    assert "'b'" not in trap.value.message or "b.callback" in trap.value.message
    assert a_inst.trapped is trap.value and b_inst.trapped is None
    assert a_inst.leave_forbidden == 0 and a_inst.active == 0 and b_inst.active == 0


# -- lockdown ---------------------------------------------------------------------------------


def failing(semantics: Semantics, fail: Callable[[Context, ResourceType], Any],
            raises: tuple[type[BaseException], ...] = ()) -> tuple[FilesWorld, Agent, Instance,
                                                                    Instance, int]:
    """The file library with a client, and 'svc', a library instance whose ``fail(h)``
    (h: a file the client lends it) runs ``fail``; the client holds file 1."""
    s = FilesWorld(semantics)
    client, client_inst = s.client("client")

    def svc(ctx: Context) -> Exported:
        file = s.lib.file
        return {"fail": ctx.func(lambda h: fail(ctx, file), [lent(file)], [value], "fail",
                                 raises=raises),
                "ok": ctx.func(lambda: "ok", [], [value], "ok")}

    svc_inst = s.world.instantiate("svc", svc, {"files": s.files})
    h = client.ctx.imports["files"].open("/a")
    return s, client, client_inst, svc_inst, h


def rep_of_foreign(ctx: Context, file: ResourceType) -> Any:
    return ctx.resource_rep(file, 1)  # not the definer: a trap


def raise_runtime(ctx: Context, file: ResourceType) -> Any:
    raise RuntimeError("a bug in svc")


@pytest.mark.parametrize("fail", [rep_of_foreign, raise_runtime])
def test_a_trap_that_escapes_an_instance_locks_it_for_good(
        fail: Callable[[Context, ResourceType], Any]) -> None:
    s, client, client_inst, svc_inst, h = failing(CM, fail)
    other, other_inst = s.client("other")
    with pytest.raises(Exception) as first:
        client_inst.exports.run(lambda: client.ctx.connect(svc_inst).fail(h))
    # It escaped svc, then the client: both are locked, and say by what.
    assert svc_inst.trapped is first.value and client_inst.trapped is first.value
    assert "trapped" in repr(svc_inst)
    assert client_inst.held(h).lends == 0  # the call gave back what it borrowed
    before = state(s.world)
    later = trap_of(other.ctx.connect(svc_inst).ok)
    assert later.reason is TrapReason.INSTANCE_TRAPPED and later.__cause__ is first.value
    assert later.instance == "other"
    assert later.message.startswith("'other' cannot call svc.ok: 'svc' trapped before (")
    assert state(s.world)[:-1] == before[:-1]  # only 'other', which trapped, changed
    assert other_inst.trapped is later  # the test ran other's code: the trap escaped it
    # The rest of the world carries on, and tearing the locked instances down works.
    third, _ = s.client("third")
    third.ctx.imports["files"].close(third.ctx.imports["files"].open("/b"))
    client_inst.destroy()
    svc_inst.destroy()
    assert [c["path"] for c in s.lib.closed] == ["/b", "/a"]


def test_a_declared_answer_is_no_trap() -> None:
    def lookup_error(ctx: Context, file: ResourceType) -> Any:
        raise KeyError("no such thing")

    _, client, client_inst, svc_inst, h = failing(CM, lookup_error, raises=(LookupError,))
    fail = function(client.ctx.connect(svc_inst), "fail")
    for call in (fail, fail.lowered):
        with pytest.raises(KeyError):
            call(h)
    assert svc_inst.trapped is None and client_inst.trapped is None
    assert client.ctx.connect(svc_inst).ok() == "ok"


def test_a_trap_is_never_an_answer() -> None:
    world = World(CM)

    def lib(ctx: Context) -> Exported:
        ctx.func(lambda: None, [], [], "f", raises=(Exception,))
        return {}

    with pytest.raises(TypeError, match="a Trap is never an answer"):
        world.instantiate("lib", lib)
    with pytest.raises(TypeError, match="raises must be a tuple of exception classes"):
        world.instantiate("lib", lambda ctx: {"f": ctx.func(
            lambda: None, [], [], "f", raises=ValueError)})  # type: ignore[arg-type]


def test_a_trap_caught_inside_the_instance_locks_nothing() -> None:
    _, client, client_inst, svc_inst, h = failing(CM, rep_of_foreign)
    trap = caught(client_inst, lambda: client.ctx.connect(svc_inst).fail(h))
    assert trap is not None and trap.reason is TrapReason.NOT_DEFINER
    assert svc_inst.trapped is trap and client_inst.trapped is None  # svc let it escape
    assert client.ctx.imports["files"].read(h) == ""


def test_code_the_embedder_runs_for_an_instance_outside_any_call_is_locked_by_its_trap() -> None:
    s = FilesWorld(CM)
    mallory, mallory_inst = s.client("mallory")
    first = trap_of(lambda: mallory.ctx.imports["files"].read(1))  # holds nothing: forged
    assert first.reason is TrapReason.INVALID_HANDLE and mallory_inst.trapped is first
    for attempt in (lambda: mallory.ctx.imports["files"].open("/x"),
                    lambda: mallory.ctx.resource_rep(s.lib.file, 1),
                    lambda: mallory_inst.exports.run(lambda: None)):
        later = trap_of(attempt)
        assert later.reason is TrapReason.INSTANCE_TRAPPED and later.__cause__ is first
    assert s.lib.file.live_count == 0


def test_a_locked_definer_runs_no_code_again() -> None:
    s = FilesWorld(CM)
    client, client_inst = s.client("client")
    files = client.ctx.imports["files"]
    a, b = files.open("/a"), files.open("/b")
    with pytest.raises(RuntimeError), s.world.entering(s.files):
        raise RuntimeError("the library's own code failed")
    assert isinstance(s.files.trapped, RuntimeError)
    before = state(s.world)
    trap = caught(client_inst, lambda: client.ctx.resource_drop(s.lib.file, a))
    assert trap is not None and trap.reason is TrapReason.INSTANCE_TRAPPED
    assert "'client' cannot drop handle 1 of 'file', which enters 'files': 'files' trapped " \
        "before (RuntimeError: the library's own code failed)" in trap.message
    assert state(s.world) == before and s.lib.closed == []
    # Teardown still ends what the client held, without running the locked destructor...
    client_inst.destroy()
    assert s.lib.file.live_count == 0 and s.lib.closed == []
    # ...and the locked instance itself is torn down like any other.
    other, _ = s.client("other")
    s.files.destroy()
    assert b and s.files.destroyed and other.ctx.handle_count == 0


def test_a_destructor_that_raises_locks_its_definer_unless_it_answers() -> None:
    for raises, locked in (((), True), ((OSError,), False)):
        world = World(CM)
        client = Agent()

        def lib(ctx: Context, raises: tuple[type[BaseException], ...] = raises) -> Exported:
            def close(rep: Any) -> None:
                raise OSError(5, "flush failed")

            thing = ctx.resource_type("thing", close, raises=raises)
            return {"thing": thing, "make": ctx.func(
                lambda: ctx.resource_new(thing, ["x"]), [], [given(thing)], "make")}

        lib_inst = world.instantiate("lib", lib)
        client_inst = world.instantiate("client", client, {"lib": lib_inst})
        thing = lib_inst.exports["thing"]
        assert isinstance(thing, ResourceType)
        h = client.ctx.imports["lib"].make()
        with pytest.raises(OSError):
            client.ctx.resource_drop(thing, h)  # the close's error reaches the dropper
        assert (lib_inst.trapped is not None) is locked
        assert (client_inst.trapped is not None) is locked  # its code got the trap, at top
        assert thing.live_count == 0


@pytest.mark.parametrize("semantics", OTHERS)
def test_other_semantics_lock_nothing(semantics: Semantics) -> None:
    s, client, client_inst, svc_inst, h = failing(semantics, raise_runtime)
    with pytest.raises(RuntimeError):
        client.ctx.connect(svc_inst).fail(h)
    with pytest.raises(Trap):
        client.ctx.resource_rep(s.lib.file, h)  # not the definer
    assert svc_inst.trapped is None and client_inst.trapped is None
    assert client.ctx.connect(svc_inst).ok() == "ok"


# -- World.entering --------------------------------------------------------------------------


def test_entering_checks_as_a_call_does_and_marks_the_instance_running() -> None:
    world, _, a_inst, _, b_inst = pair(CM)
    with world.entering(a_inst):
        assert a_inst.active == 1
        busy = trap_of(a_inst.destroy)
        assert busy.reason is TrapReason.INSTANCE_BUSY
        again = trap_of(lambda: world.entering(a_inst).__enter__())
        assert again.reason is TrapReason.REENTRANCE
        assert again.message.startswith("'host' cannot call into 'a': 'a' is already running")
        with world.entering(b_inst, caller=a_inst):  # a component calling another
            assert b_inst.active == 1 and a_inst.active == 2
    assert a_inst.active == 0 and b_inst.active == 0 and a_inst.trapped is None
    with pytest.raises(ValueError, match="nothing enters it"):
        world.entering(world.host)
    b_inst.destroy()
    gone = trap_of(lambda: world.entering(b_inst).__enter__())
    assert gone.reason is TrapReason.INSTANCE_DESTROYED


@pytest.mark.parametrize("semantics", list(Semantics))
def test_entering_locks_the_instance_an_exception_escapes(semantics: Semantics) -> None:
    world, _, a_inst, _, _ = pair(semantics)
    with pytest.raises(ZeroDivisionError), world.entering(a_inst):
        1 / 0  # noqa: B018 - wasm trapping, say
    assert (a_inst.trapped is not None) is (semantics is CM)
    if semantics is CM:
        for attempt in (lambda: world.entering(a_inst).__enter__(), a_inst.exports.callback):
            later = trap_of(attempt)
            assert later.reason is TrapReason.INSTANCE_TRAPPED
            assert "(ZeroDivisionError: division by zero)" in later.message
    else:
        assert a_inst.exports.callback() == "called back"


# -- the table limit -------------------------------------------------------------------------


@pytest.fixture
def small_tables(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """Tables of 3 handles: the real limit, 2**28-1, would take gigabytes to reach."""
    assert HandleTable.MAX_LENGTH == 2**28 - 1
    monkeypatch.setattr(HandleTable, "MAX_LENGTH", 3)
    yield 3


@pytest.mark.parametrize("semantics", list(Semantics))
def test_a_full_table_traps_and_changes_nothing(semantics: Semantics, small_tables: int) -> None:
    s = FilesWorld(semantics)
    lib = s.lib
    made = [lib.ctx.resource_new(lib.file, {"path": p}) for p in "abc"]
    assert made == [1, 2, 3]
    before = state(s.world)
    with s.world.entering(s.files):  # its own code catches the trap
        trap = trap_of(lambda: lib.ctx.resource_new(lib.file, {"path": "d"}))
    assert trap.reason is TrapReason.TABLE_FULL and state(s.world) == before
    assert "the handle table of instance 'files' is full (3 handles)" in trap.message
    assert "'file' handle (defined by 'files')" in trap.message
    lib.ctx.resource_drop(lib.file, made[1])  # a freed slot is taken again
    assert lib.ctx.resource_new(lib.file, {"path": "e"}) == 2


@pytest.mark.parametrize("semantics", [CM, Semantics.PROPOSAL_2021])
def test_a_handle_that_would_not_fit_the_receivers_table_moves_nowhere(
        semantics: Semantics, small_tables: int) -> None:
    s = FilesWorld(semantics)
    sender, sender_inst = s.client("sender")
    full, full_inst = s.client("full")
    files_s, files_f = sender.ctx.imports["files"], full.ctx.imports["files"]
    for p in "abc":
        files_f.open(p)
    h = files_s.open("/given")
    before = state(s.world)
    into_full = caught(sender_inst, lambda: sender.ctx.connect(full_inst).take(h))
    assert into_full is not None and into_full.reason is TrapReason.TABLE_FULL
    assert "instance 'full' is full" in into_full.message
    assert state(s.world) == before  # the own (or the copy) stayed where it was
    back = caught(full_inst, lambda: files_f.open("/d"))  # a result that would not fit
    assert back is not None and back.reason is TrapReason.TABLE_FULL
    assert s.lib.file.live_count == 4 and s.files.handle_count == 0


def test_a_made_handle_that_would_not_fit_is_never_made(small_tables: int) -> None:
    """An open answers a representation, of which the world makes the handle in the
    caller's table: into a full table it traps before the implementation runs."""
    from virtwasi.filesystem import interface
    from virtwasi.runtime import WasiWorld

    with WasiWorld() as world:
        descriptor = world.implementation.types["descriptor"]
        assert isinstance(descriptor, ResourceType)
        found: list[Any] = []

        def app(ctx: Context) -> Exported:
            wasi = ctx.imports["wasi"]
            root = wasi.preopen(0)
            for name in "ab":
                wasi.open_at(root, 0, name, interface.CREATE, interface.READ)
            found.append(descriptor.live_count)  # the preopen and two files: the table is full
            open_at = function(wasi, "open_at")
            for call in (open_at, open_at.lowered):
                found.append(caught_here(partial(call, root, 0, "c", interface.CREATE,
                                                 interface.READ)))
            found.append(descriptor.live_count)
            return {}

        app_inst = world.world.instantiate("app", _as_run(app), {"wasi": world.wasi})
        app_inst.exports.run(lambda: None)
        assert found[0] == found[-1] == 3 and app_inst.handle_count == 3
        assert [t.reason for t in found[1:3]] == [TrapReason.TABLE_FULL] * 2
        assert str(found[1]) == str(found[2])
        assert world.implementation.trapped is None and app_inst.trapped is None


def caught_here(attempt: Callable[[], Any]) -> Trap:
    try:
        attempt()
    except Trap as trap:
        return trap
    raise AssertionError("no trap")


def _as_run(definition: Callable[[Context], Exported]) -> Callable[[Context], Exported]:
    """``definition``, run as the instance's ``run`` export instead of at instantiation."""

    def define(ctx: Context) -> Exported:
        return {"run": ctx.func(lambda fn: (definition(ctx), fn())[1], [value], [value], "run")}

    return define
