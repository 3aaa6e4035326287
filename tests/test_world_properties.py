"""Stateful property tests of the world: one hypothesis state machine per semantics.

Each machine links a definer instance ``lib`` (it defines the resource type ``R``; its
destructor logs each representation it ends) with three client agents, which may spawn
child agents. The test keeps every agent's context and acts as any of them. Random
sequences create, pass, fetch, lend, drop and (2021) destroy resources, read them through
the definer with valid, stale and forged indices, spawn and drop children, and tear agents
and the definer down, while a model records which table holds which handle.

After every step (and in the middle of every lending call) the machines check that:

* each destructor ran at most once, and exactly for the resources the model says ended;
* ``R.live_count``, every instance's handle count and the set of live instances match
  the model;
* no destructor ran while its resource was lent to a call in progress;
* a handle whose resource ended reaches no representation: reading it traps;
* a torn-down instance holds nothing, and what it held has ended unless a live instance
  still holds it (component model, 2021), whereas transparent mode leaks it;
* component model: exactly the agents a trap escaped are locked (the test acts as an agent
  from outside any call into it, so a trap it meets there escapes it), and a locked agent
  can neither act nor be called; a call back into an agent that is running one traps,
  unless it comes from the agent's own child.

At the end the agents are torn down and then ``world.close()``: under the component model
and 2021 every destructor has then run exactly once; in transparent mode tearing the
clients down runs none and tearing the definer down runs them all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, ClassVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from virtwasi.world import (
    Context,
    Definition,
    Func,
    HandleIntent,
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

Entry = int | str
"""A model table entry: an ``R`` handle (its resource id, which is also its representation)
or a handle to a child instance (the child's name)."""

CM = Semantics.COMPONENT_MODEL
P2021 = Semantics.PROPOSAL_2021
TRANSPARENT = Semantics.TRANSPARENT


def expect_trap(reason: TrapReason, attempt: Callable[[], object]) -> Trap:
    with pytest.raises(Trap) as caught:
        attempt()
    assert caught.value.reason is reason, caught.value
    return caught.value


# The three machines together take about 30 s on two cores.
SIZED = settings(max_examples=400, stateful_step_count=80, deadline=None)


class WorldMachine(RuleBasedStateMachine):
    """Rules and checks common to the three semantics; subclasses add the lending rule and
    what only their semantics has."""

    semantics: ClassVar[Semantics]
    TOP_AGENTS = 3
    MAX_AGENTS = 5
    DEFINER_MAY_DIE_AFTER = 40  # steps: tearing the definer down early makes a dull run

    def __init__(self) -> None:
        super().__init__()
        self.world = World(self.semantics)
        self.log: list[int] = []  # destructor calls, by representation
        self.lent: set[int] = set()  # resources lent to a component-model call in progress
        self.lent_at_destruction: list[int] = []
        self.ctxs: dict[str, Context] = {}
        self.insts: dict[str, Instance] = {}
        self.lib = self.world.instantiate("lib", self._define_lib)
        # The model: physical table owner -> index -> entry. Transparent R handles all live
        # in lib's table, and transparent instance handles in the host's.
        self.tables: dict[str, dict[int, Entry]] = {"host": {}, "lib": {}}
        self.transient: Counter[str] = Counter()  # borrow handles held during a call
        self.live: set[str] = set()  # live agents
        self.locked: set[str] = set()  # component model: agents a trap escaped
        self.parents: dict[str, str] = {}  # child agent -> the agent that made it
        self.children: set[str] = set()
        self.lib_live = True
        self.killed: set[int] = set()  # 2021: resources destroyed explicitly
        self.rids: set[int] = set()  # every resource ever made
        self.made_by: dict[int, str] = {}
        self.next_rid = 1000  # far above any table index, so the two are never confused
        self.steps = 0
        for i in range(self.TOP_AGENTS):
            name = f"a{i}"
            self.insts[name] = self.world.instantiate(name, self._define_agent(name))
            self.tables[name] = {}
            self.live.add(name)

    # -- the instances -------------------------------------------------------------------
    def _given(self) -> HandleIntent:
        return given(self.R)

    def _lent(self) -> HandleIntent:
        return lent(self.R)

    def _destructor(self, rep: tuple[int]) -> None:
        (rid,) = rep
        if rid in self.lent:
            self.lent_at_destruction.append(rid)
        self.log.append(rid)

    def _define_lib(self, ctx: Context) -> Mapping[str, Func | ResourceType]:
        self.R = rtype = ctx.resource_type("R", self._destructor)

        def make(rid: int) -> int:
            return ctx.resource_new(rtype, (rid,))  # an int cannot be a representation

        def get(h: Any) -> Any:
            return ctx.rep_of(rtype, h)[0]

        def get2(h1: Any, h2: Any) -> tuple[Any, Any]:
            return get(h1), get(h2)

        def peek(h: Any, during: Callable[[Any], Any]) -> Any:
            return during(h)

        return {
            "R": rtype,
            "make": ctx.func(make, [value], [self._given()]),
            "get": ctx.func(get, [self._lent()], [value]),
            "get2": ctx.func(get2, [self._lent(), self._lent()], [value, value]),
            "peek": ctx.func(peek, [self._lent(), value], [value]),
        }

    def _define_agent(self, name: str) -> Definition:
        def define(ctx: Context) -> Mapping[str, Func | ResourceType]:
            self.ctxs[name] = ctx
            rtype = self.R

            def take(h: int) -> int:
                # Under proposal-2021 a clone: the parameter is a copy for one call.
                return ctx.keep(rtype, h)

            def give(h: int) -> int:
                return h

            def hold(h: int, during: Callable[[int], Any]) -> Any:
                return during(h)

            def run(fn: Callable[[], Any]) -> Any:
                return fn()

            return {
                "take": ctx.func(take, [self._given()], [value]),
                "give": ctx.func(give, [value], [self._given()]),
                "hold": ctx.func(hold, [self._lent(), value], [value]),
                "run": ctx.func(run, [value], [value]),
            }

        return define

    # -- the model -----------------------------------------------------------------------
    def rtab(self, holder: str) -> str:
        """The table that holds ``holder``'s R handles."""
        return "lib" if self.semantics is TRANSPARENT else holder

    def itab(self, holder: str) -> str:
        """The table that holds ``holder``'s instance handles."""
        return "host" if self.semantics is TRANSPARENT else holder

    def record(self, table: str, index: int, entry: Entry) -> None:
        assert index not in self.tables[table], f"new handle {index} overwrote {table}'s"
        self.tables[table][index] = entry

    def rid_at(self, table: str, index: int) -> int:
        entry = self.tables[table][index]
        assert isinstance(entry, int)
        return entry

    def child_at(self, table: str, index: int) -> str:
        entry = self.tables[table][index]
        assert isinstance(entry, str)
        return entry

    def fresh_rid(self) -> int:
        self.next_rid += 1
        return self.next_rid

    def expected_alive(self) -> set[int]:
        if not self.lib_live:
            return set()
        owners = self.live | {"host", "lib"}
        held = {
            e
            for owner, table in self.tables.items()
            if owner in owners
            for e in table.values()
            if isinstance(e, int)
        }
        return held - self.killed

    def held(self, with_host: bool = False) -> list[tuple[str, int]]:
        """(holder, index) of every R handle a live agent (or the host) can use."""
        holders = self.acting() + (["host"] if with_host else [])
        return [
            (a, i)
            for a in holders
            for i, e in sorted(self.tables[self.rtab(a)].items())
            if isinstance(e, int)
        ]

    def child_handles(self) -> list[tuple[str, int]]:
        return [
            (a, i)
            for a in self.acting()
            for i, e in sorted(self.tables[self.itab(a)].items())
            if isinstance(e, str)
        ]

    def acting(self) -> list[str]:
        """The live agents that may still act and be called: those no trap locked, nor any
        of their ancestors (a call into a child enters its parent too)."""
        return sorted(a for a in self.live if not self.locked & {a, *self.ancestors(a)})

    def ancestors(self, agent: str) -> list[str]:
        found = []
        while agent in self.parents:
            agent = self.parents[agent]
            found.append(agent)
        return found

    def escaped(self, agent: str, reason: TrapReason, attempt: Callable[[], object]) -> Trap:
        """``attempt``, an act of ``agent``'s own made from outside any call into it, traps
        with ``reason``; under the component model that trap escapes it and locks it."""
        trap = expect_trap(reason, attempt)
        if self.semantics is CM:  # as a call from the embedder: its ancestors too
            self.locked |= {agent, *self.ancestors(agent)}
        return trap

    def entered(self, callee: str, caller: str) -> set[str]:
        """The agents a call from ``caller`` into ``callee`` enters."""
        return {callee, *self.ancestors(callee)} - {caller, *self.ancestors(caller)}

    def model_destroy(self, name: str) -> None:
        self.live.discard(name)
        if self.semantics is TRANSPARENT:
            return  # its handles are in other tables, where nothing drops them
        for entry in self.tables.pop(name).values():
            if isinstance(entry, str) and entry in self.live:
                self.model_destroy(entry)  # the only handle to a child: it goes too
        self.tables[name] = {}

    def caller(self, holder: str, target: Instance) -> Any:
        """``target``'s exports as called by ``holder`` (an agent, or the host)."""
        return target.exports if holder == "host" else self.ctxs[holder].connect(target)

    def check(self) -> None:
        alive = self.expected_alive()
        counts = Counter(self.log)
        twice = [rep for rep, n in counts.items() if n > 1]
        assert not twice, f"destructor ran more than once for {twice}"
        assert set(counts) == self.rids - alive, (counts, self.rids - alive)
        assert self.R.live_count == len(alive)
        assert not self.lent_at_destruction, "a destructor ran while its resource was lent"
        names = {inst.name for inst in self.world.instances}
        assert names == self.live | ({"lib"} if self.lib_live else set())
        assert self.world.instance_type.live_count == len(self.children & self.live)
        for name, inst in self.insts.items():
            held = len(self.tables[name]) + self.transient[name] if name in self.live else 0
            assert inst.handle_count == held, (name, inst.handle_count, held)
        assert self.lib.handle_count == (len(self.tables["lib"]) if self.lib_live else 0)
        assert self.world.host.handle_count == len(self.tables["host"])
        assert self.lib.trapped is None
        for name in self.live:
            assert (self.insts[name].trapped is not None) == (name in self.locked), name

    @invariant()
    def consistent(self) -> None:
        self.steps += 1
        self.check()

    # -- rules every semantics has -------------------------------------------------------
    @rule(data=st.data())
    def new(self, data: st.DataObject) -> None:
        """An agent (or the host) asks the definer for a new resource."""
        holder = data.draw(st.sampled_from(["host", *self.acting()]))
        rid = self.fresh_rid()
        make = self.caller(holder, self.lib).make
        if not self.lib_live:
            if holder == "host":
                expect_trap(TrapReason.INSTANCE_DESTROYED, lambda: make(rid))
            else:
                self.escaped(holder, TrapReason.INSTANCE_DESTROYED, lambda: make(rid))
            return
        self.record(self.rtab(holder), make(rid), rid)
        self.rids.add(rid)
        self.made_by[rid] = holder

    @precondition(lambda self: bool(self.acting()) and bool(self.held(with_host=True)))
    @rule(data=st.data())
    def pass_handle(self, data: st.DataObject) -> None:
        """A holder passes a handle to an agent's ``take``: a move (component model), a
        copy (2021) or a bare integer (transparent)."""
        src, h = data.draw(st.sampled_from(self.held(with_host=True)))
        dst = data.draw(st.sampled_from(self.acting()))
        rid = self.rid_at(self.rtab(src), h)
        k = self.caller(src, self.insts[dst]).take(h)
        if self.semantics is TRANSPARENT:
            assert k == h
            return
        if self.semantics is CM:
            del self.tables[src][h]
        self.record(dst, k, rid)

    @precondition(lambda self: bool(self.held()))
    @rule(data=st.data())
    def fetch(self, data: st.DataObject) -> None:
        """An agent's ``give`` returns one of its handles to a caller: the handle moves."""
        src, h = data.draw(st.sampled_from(self.held()))
        dst = data.draw(st.sampled_from(["host", *self.acting()]))
        rid = self.rid_at(self.rtab(src), h)
        k = self.caller(dst, self.insts[src]).give(h)
        if self.semantics is TRANSPARENT:
            assert k == h
            return
        del self.tables[src][h]
        self.record(dst, k, rid)

    @precondition(lambda self: bool(self.held()))
    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        """Drop a handle (in transparent mode any agent can drop any integer)."""
        holder, h = data.draw(st.sampled_from(self.held()))
        rid = self.rid_at(self.rtab(holder), h)
        alive = rid in self.expected_alive()
        self.ctxs[holder].resource_drop(self.R, h)
        del self.tables[self.rtab(holder)][h]
        if alive and self.semantics is not P2021:
            assert rid in self.log  # a unique handle: its drop ends the resource at once

    @precondition(lambda self: bool(self.acting()))
    @rule(data=st.data(), indices=st.lists(st.integers(-1, 12), min_size=1, max_size=2),
          inside=st.booleans())
    def read(self, data: st.DataObject, indices: list[int], inside: bool) -> None:
        """An agent reads one or two representations through the definer, with indices it
        holds, stale ones or made-up ones: it gets the model's answer or the model's trap,
        which its own code catches if it reads ``inside`` a call into it (its ``run``)."""
        agent = data.draw(st.sampled_from(self.acting()))
        table = self.tables[self.rtab(agent)]
        if len(table) > 0 and data.draw(st.booleans()):
            indices[0] = data.draw(st.sampled_from(sorted(table)))
        exports = self.ctxs[agent].connect(self.lib)
        if len(indices) == 1:
            get = partial(exports.get, indices[0])
        else:
            get = partial(exports.get2, *indices)
        entries = [table.get(i) for i in indices]
        trap = self.read_trap(entries)
        if trap is not None and inside:
            assert self.insts[agent].exports.run(lambda: expect_trap(trap, get).reason) is trap
        elif trap is not None:
            self.escaped(agent, trap, get)
        else:
            # Transparent: whoever made it, any agent's integer reaches it.
            result = get()
            assert (result if len(entries) == 2 else (result,)) == tuple(entries)

    def read_trap(self, entries: list[Entry | None]) -> TrapReason | None:
        """The trap that reading these model entries through the definer must raise."""
        if not self.lib_live:
            return TrapReason.INSTANCE_DESTROYED
        # Every handle is looked up, in order, before the definer reads any representation
        # (transparent integers have no nulls, so this order is theirs too).
        for entry in entries:
            if entry is None:
                return TrapReason.INVALID_HANDLE
            if isinstance(entry, str):
                return TrapReason.TYPE_MISMATCH
        if any(entry in self.killed for entry in entries):
            return TrapReason.NULL_HANDLE
        return None

    @precondition(lambda self: bool(self.acting()) and len(self.insts) < self.MAX_AGENTS)
    @rule(data=st.data())
    def spawn(self, data: st.DataObject) -> None:
        """An agent makes a child agent and holds the handle to it."""
        parent = data.draw(st.sampled_from(self.acting()))
        name = f"c{len(self.insts)}"
        h = self.ctxs[parent].instantiate(name, self._define_agent(name))
        self.insts[name] = self.world.instances[-1]
        assert self.insts[name].name == name
        self.record(self.itab(parent), h, name)
        self.tables[name] = {}
        self.live.add(name)
        self.children.add(name)
        self.parents[name] = parent

    @precondition(lambda self: bool(self.child_handles()))
    @rule(data=st.data())
    def call_child(self, data: st.DataObject) -> None:
        """Calling through an instance handle reaches the child while it lives."""
        holder, h = data.draw(st.sampled_from(self.child_handles()))
        child = self.child_at(self.itab(holder), h)

        def run() -> Any:
            return self.ctxs[holder].child(h).run(lambda: child)

        if child not in self.live:
            self.escaped(holder, TrapReason.NULL_HANDLE, run)
        elif child in self.locked:
            self.escaped(holder, TrapReason.INSTANCE_TRAPPED, run)
        else:
            assert run() == child

    @precondition(lambda self: bool(self.child_handles()))
    @rule(data=st.data())
    def drop_child(self, data: st.DataObject) -> None:
        """Dropping the instance handle tears the child down (if nothing else did)."""
        holder, h = data.draw(st.sampled_from(self.child_handles()))
        child = self.child_at(self.itab(holder), h)
        del self.tables[self.itab(holder)][h]
        ctx = self.ctxs[holder]
        ctx.resource_drop(ctx.instance_type, h)
        assert self.insts[child].destroyed
        if child in self.live:
            self.model_destroy(child)

    @precondition(lambda self: len(self.live) > 1)
    @rule(data=st.data())
    def destroy_agent(self, data: st.DataObject) -> None:
        """Tear an agent down: its handles drop (and its children go with them), except in
        transparent mode, where it held nothing of its own."""
        name = data.draw(st.sampled_from(sorted(self.live)))
        before = list(self.log)
        self.world.destroy(self.insts[name])
        self.model_destroy(name)
        if self.semantics is TRANSPARENT:
            assert self.log == before  # the leak: the definer never hears of it

    @precondition(lambda self: len(self.live) < len(self.insts))
    @rule(data=st.data())
    def use_dead_agent(self, data: st.DataObject) -> None:
        """A torn-down agent can neither act nor be called, and a call refused for that
        moves nothing."""
        dead = data.draw(st.sampled_from(sorted(set(self.insts) - self.live)))
        expect_trap(TrapReason.INSTANCE_DESTROYED, lambda: self.ctxs[dead].connect(self.lib))
        expect_trap(TrapReason.INSTANCE_DESTROYED, lambda: self.insts[dead].exports.run(int))
        if self.held():
            holder, h = data.draw(st.sampled_from(self.held()))
            take = self.ctxs[holder].connect(self.insts[dead]).take
            self.escaped(holder, TrapReason.INSTANCE_DESTROYED, lambda: take(h))

    @precondition(lambda self: bool(self.acting()))
    @rule(data=st.data())
    def no_privileges(self, data: st.DataObject) -> None:
        """Only the definer makes or reads R; outside 2021 there is no destroy or clone.
        The agent's own code (its ``run``) tries and catches each trap: none escapes it."""
        agent = data.draw(st.sampled_from(self.acting()))
        ctx = self.ctxs[agent]

        def attempts() -> None:
            expect_trap(TrapReason.NOT_DEFINER, lambda: ctx.resource_new(self.R, 0))
            expect_trap(TrapReason.NOT_DEFINER, lambda: ctx.resource_rep(self.R, 1))
            if self.semantics is not P2021:
                expect_trap(TrapReason.UNSUPPORTED, lambda: ctx.resource_destroy(self.R, 1))
                expect_trap(TrapReason.UNSUPPORTED, lambda: ctx.resource_clone(self.R, 1))

        self.insts[agent].exports.run(attempts)

    @precondition(lambda self: self.lib_live and self.steps > self.DEFINER_MAY_DIE_AFTER)
    @rule()
    def destroy_definer(self) -> None:
        """Tearing the definer down ends every resource it defined, whoever holds it."""
        self.world.destroy(self.lib)
        self.lib_live = False
        self.tables["lib"] = {}
        assert set(self.log) == self.rids

    def teardown(self) -> None:
        before = list(self.log)
        # Newest first, as world.close() does; the definer (oldest) goes last, in close().
        for name in reversed(list(self.insts)):
            if name in self.live:
                self.world.destroy(self.insts[name])
                self.model_destroy(name)
        self.check()
        if self.semantics is TRANSPARENT:
            assert self.log == before  # clients going away end nothing
        self.world.close()
        assert sorted(self.log) == sorted(self.rids)  # every destructor, exactly once
        assert self.R.live_count == 0 and self.world.instance_type.live_count == 0
        assert self.world.instances == []


@SIZED
class ComponentModelMachine(WorldMachine):
    semantics = CM

    @precondition(lambda self: self.lib_live and bool(self.held()))
    @rule(data=st.data(), lender_running=st.booleans())
    def lend(self, data: st.DataObject, lender_running: bool) -> None:
        """Lend a handle for one call, to an agent (which gets a borrow handle) or to the
        definer (which gets the representation). While it is lent the lender can neither
        drop nor move it, a borrower cannot give it away (nor even call the lender back,
        unless the lender is its ancestor), neither the borrower nor the definer can be
        torn down and the destructor does not run. However the call ends, the lend is over
        afterwards; a trap that ends it locks the borrower and the lender (the definer,
        which must stay usable for the machine, never traps)."""
        lender, h = data.draw(st.sampled_from(self.held()))
        borrower = data.draw(st.sampled_from(["lib", *self.acting()]))
        ending = data.draw(st.sampled_from(
            ["drop", "keep"] if borrower == "lib" else ["drop", "keep", "trap"]))
        rid = self.rid_at(lender, h)
        lender_ctx = self.ctxs[lender]
        lender_inst = self.insts[lender]
        to_definer = borrower == "lib"
        callee = self.lib if to_definer else self.insts[borrower]

        def refused_while_lent() -> None:
            expect_trap(TrapReason.HANDLE_LENT, lambda: lender_ctx.resource_drop(self.R, h))
            take = lender_ctx.connect(lender_inst).take
            expect_trap(TrapReason.HANDLE_LENT, lambda: take(h))
            expect_trap(TrapReason.INSTANCE_BUSY, lambda: self.world.destroy(callee))
            # A lender acting from outside its own code is not busy, and tearing it down
            # then ends the lent resource mid-call: a known library gap, not checked here.
            if lender_running:
                expect_trap(TrapReason.INSTANCE_BUSY, lambda: self.world.destroy(lender_inst))
            assert rid not in self.log

        def definer_during(rep: tuple[int]) -> int:
            assert rep == (rid,)
            refused_while_lent()
            self.check()  # every refused attempt changed nothing
            if ending == "trap":
                lender_ctx.resource_rep(self.R, h)  # not the definer: unwinds the call
            return rid

        def agent_during(b: int) -> int:
            ctx = self.ctxs[borrower]
            self.transient[borrower] += 1
            refused_while_lent()
            assert ctx.connect(self.lib).get(b) == rid
            give_away = ctx.connect(lender_inst).take
            inside = borrower == lender or lender in self.ancestors(borrower)
            expect_trap(TrapReason.NOT_OWNED if inside else TrapReason.REENTRANCE,
                        lambda: give_away(b))
            expect_trap(TrapReason.HANDLE_LENT, lambda: self.world.destroy(self.lib))
            self.check()
            if ending == "drop":
                ctx.resource_drop(self.R, b)
                self.transient[borrower] -= 1
            elif ending == "trap":
                ctx.resource_rep(self.R, b)  # not the definer: unwinds the call
            return rid

        def call() -> Any:
            exports = lender_ctx.connect(callee)
            if to_definer:
                return exports.peek(h, definer_during)
            return exports.hold(h, agent_during)

        outcome = call
        if lender_running:  # make the call from inside the lender's own code
            outcome = partial(lender_inst.exports.run, call)
        self.lent.add(rid)
        try:
            if ending == "trap":
                expect_trap(TrapReason.NOT_DEFINER, outcome)
            elif ending == "keep" and not to_definer:
                trap = expect_trap(TrapReason.BORROW_NOT_DROPPED, outcome)
                assert trap.instance == borrower
            else:
                assert outcome() == rid
                return
            # The trap escaped the borrower (and the ancestors the call entered), then the
            # lender, run by the embedder (with its ancestors).
            self.locked |= self.entered(borrower, lender) | {lender, *self.ancestors(lender)}
        finally:
            self.lent.discard(rid)
            self.transient[borrower] = 0

    @precondition(lambda self: len(self.acting()) > 1)
    @rule(data=st.data())
    def call_back(self, data: st.DataObject) -> None:
        """An agent, running a call, calls another, which calls back into it: refused
        (reentrance) unless the other is its descendant. The other catches the trap, so
        nothing escapes and nothing is locked."""
        x = data.draw(st.sampled_from(self.acting()))
        y = data.draw(st.sampled_from([a for a in self.acting() if a != x]))
        inside = x in self.ancestors(y)

        def in_y() -> Any:
            back = self.ctxs[y].connect(self.insts[x]).run
            if inside:
                return back(lambda: "back")
            return expect_trap(TrapReason.REENTRANCE, lambda: back(lambda: "back")).reason

        got = self.insts[x].exports.run(lambda: self.ctxs[x].connect(self.insts[y]).run(in_y))
        assert got == ("back" if inside else TrapReason.REENTRANCE)

    @precondition(lambda self: bool(self.live) and len(self.acting()) < len(self.live))
    @rule(data=st.data())
    def use_locked_agent(self, data: st.DataObject) -> None:
        """A locked agent (or the child of one) cannot be called; a locked one cannot act.
        A refused attempt changes nothing, and names the trap that locked it."""
        name = data.draw(st.sampled_from(sorted(self.live - set(self.acting()))))
        inst, ctx = self.insts[name], self.ctxs[name]
        expect_trap(TrapReason.INSTANCE_TRAPPED, lambda: inst.exports.run(int))
        if name in self.locked:
            trap = expect_trap(TrapReason.INSTANCE_TRAPPED, lambda: ctx.connect(self.lib))
            assert trap.__cause__ is inst.trapped
            for i, e in sorted(self.tables[self.rtab(name)].items()):
                if isinstance(e, int):
                    expect_trap(TrapReason.INSTANCE_TRAPPED,
                                partial(ctx.resource_drop, self.R, i))


@SIZED
class Proposal2021Machine(WorldMachine):
    semantics = P2021

    @precondition(lambda self: bool(self.held()))
    @rule(data=st.data())
    def clone(self, data: st.DataObject) -> None:
        holder, h = data.draw(st.sampled_from(self.held()))
        self.record(holder, self.ctxs[holder].resource_clone(self.R, h), self.tables[holder][h])

    @precondition(lambda self: bool(self.held()))
    @rule(data=st.data())
    def destroy_resource(self, data: st.DataObject) -> None:
        """An explicit destroy ends the resource at once; every other handle to it becomes
        null, and reading one traps in the definer."""
        holder, h = data.draw(st.sampled_from(self.held()))
        rid = self.rid_at(holder, h)
        ctx = self.ctxs[holder]
        if rid not in self.expected_alive():
            expect_trap(TrapReason.NULL_HANDLE, lambda: ctx.resource_destroy(self.R, h))
            return
        ctx.resource_destroy(self.R, h)
        del self.tables[holder][h]
        self.killed.add(rid)
        assert rid in self.log
        for other, k in self.held(with_host=True):
            if self.tables[other][k] == rid:
                expect_trap(TrapReason.NULL_HANDLE, partial(self.caller(other, self.lib).get, k))

    @precondition(lambda self: bool(self.held()))
    @rule(
        data=st.data(),
        lender_drops=st.booleans(),
        callee_keeps=st.booleans(),
        callee_destroys=st.booleans(),
        trap=st.booleans(),
    )
    def lend(
        self,
        data: st.DataObject,
        lender_drops: bool,
        callee_keeps: bool,
        callee_destroys: bool,
        trap: bool,
    ) -> None:
        """Pass a handle for one call. The callee's copy is a real reference: the lender may
        drop its own handle meanwhile, and the resource lives on until the copy goes when
        the call ends (or the callee keeps a clone, or destroys it)."""
        lender, h = data.draw(st.sampled_from(self.held()))
        borrower = data.draw(st.sampled_from(self.acting()))
        rid = self.rid_at(lender, h)
        lender_ctx, ctx = self.ctxs[lender], self.ctxs[borrower]
        copies: list[int] = []

        def during(c: int) -> None:
            self.record(borrower, c, rid)
            copies.append(c)
            self.check()
            get = ctx.connect(self.lib).get
            if not self.lib_live:
                expect_trap(TrapReason.INSTANCE_DESTROYED, lambda: get(c))
            elif rid in self.killed:
                expect_trap(TrapReason.NULL_HANDLE, lambda: get(c))
            else:
                assert get(c) == rid
            was_alive = rid in self.expected_alive()
            if lender_drops:
                lender_ctx.resource_drop(self.R, h)
                del self.tables[lender][h]
                assert was_alive == (rid not in self.log)  # the copy keeps it alive
                self.check()
            if callee_keeps:
                self.record(borrower, ctx.resource_clone(self.R, c), rid)
            if callee_destroys and was_alive:
                ctx.resource_destroy(self.R, c)
                del self.tables[borrower][c]
                self.killed.add(rid)
                assert rid in self.log
                self.check()
            elif callee_destroys:
                expect_trap(TrapReason.NULL_HANDLE, lambda: ctx.resource_destroy(self.R, c))
            if trap:
                ctx.resource_rep(self.R, c)  # not the definer: a trap that unwinds the call

        call = partial(lender_ctx.connect(self.insts[borrower]).hold, h, during)
        try:
            if trap:
                expect_trap(TrapReason.NOT_DEFINER, call)
            else:
                assert call() is None
        finally:
            # The callee's copy for the call is dropped when the call ends.
            for c in copies:
                self.tables[borrower].pop(c, None)


@SIZED
class TransparentMachine(WorldMachine):
    semantics = TRANSPARENT

    @precondition(lambda self: self.lib_live and bool(self.held()))
    @rule(data=st.data(), lender_drops=st.booleans())
    def lend(self, data: st.DataObject, lender_drops: bool) -> None:
        """"Lending" passes a bare integer and locks nothing: the lender can drop the handle
        mid-call, and the freed slot is reused at once, so the callee's integer comes to name
        another resource."""
        lender, h = data.draw(st.sampled_from(self.held()))
        borrower = data.draw(st.sampled_from(self.acting()))
        rid = self.rid_at("lib", h)
        lender_ctx, ctx = self.ctxs[lender], self.ctxs[borrower]

        def during(b: int) -> None:
            assert b == h  # nothing was lifted or lowered
            get = ctx.connect(self.lib).get
            assert get(b) == rid
            if lender_drops:
                lender_ctx.resource_drop(self.R, h)
                del self.tables["lib"][h]
                assert rid in self.log  # ended while "lent"
                expect_trap(TrapReason.INVALID_HANDLE, lambda: get(b))
                other = self.fresh_rid()
                k = ctx.connect(self.lib).make(other)
                self.record("lib", k, other)
                self.rids.add(other)
                self.made_by[other] = borrower
                assert k == b and get(b) == other  # the stale integer names a stranger
            self.check()

        lender_ctx.connect(self.insts[borrower]).hold(h, during)

    @precondition(lambda self: self.lib_live and bool(self.held()) and len(self.live) > 1)
    @rule(data=st.data(), also_drop=st.booleans())
    def forge(self, data: st.DataObject, also_drop: bool) -> None:
        """Any agent's integer reaches any other client's resource, to read or to drop."""
        h, rid = data.draw(st.sampled_from(sorted(self.tables["lib"].items())))
        assert isinstance(rid, int)
        thief = data.draw(st.sampled_from(sorted(self.live - {self.made_by[rid]})))
        ctx = self.ctxs[thief]
        assert ctx.connect(self.lib).get(h) == rid
        if also_drop:
            ctx.resource_drop(self.R, h)
            del self.tables["lib"][h]
            assert rid in self.log


TestComponentModel = ComponentModelMachine.TestCase
TestProposal2021 = Proposal2021Machine.TestCase
TestTransparent = TransparentMachine.TestCase
