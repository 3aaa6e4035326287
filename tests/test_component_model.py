"""component-model semantics: own moves, borrow is lent for one call."""

from __future__ import annotations

from typing import Any

import pytest
from worldkit import Agent, FilesWorld

from virtwasi.world import (
    ResourceType,
    Semantics,
    Trap,
    TrapReason,
    World,
    borrow,
    own,
    value,
)


def test_own_moves_and_the_senders_index_dies() -> None:
    s = FilesWorld(Semantics.COMPONENT_MODEL)
    alice, _ = s.client("alice")
    bob, bob_inst = s.client("bob")
    h = alice.ctx.imports["files"].open("/a")
    alice.ctx.connect(bob_inst).take(h)
    assert alice.ctx.handle_count == 0 and bob.ctx.handle_count == 1
    with pytest.raises(Trap) as caught:
        alice.ctx.imports["files"].path(h)
    assert caught.value.reason is TrapReason.INVALID_HANDLE
    assert bob.ctx.imports["files"].path(bob.kept[0]) == "/a"
    assert s.lib.closed == []  # moving is not dropping


def test_borrow_gives_the_callee_its_own_index_for_one_call() -> None:
    s = FilesWorld(Semantics.COMPONENT_MODEL)
    alice, _ = s.client("alice")
    bob, bob_inst = s.client("bob")
    h = alice.ctx.imports["files"].open("/a")
    seen: list[tuple[int, str]] = []

    def during(lent: int) -> None:
        seen.append((lent, bob.ctx.imports["files"].path(lent)))
        bob.ctx.resource_drop(s.lib.file, lent)

    bob.during = during
    bob_h = bob.ctx.imports["files"].open("/bob")
    alice.ctx.connect(bob_inst).hold(h)
    assert seen == [(2, "/a")]  # bob's table already had its own 1
    assert bob.ctx.handle_count == 1 and alice.ctx.handle_count == 1
    assert s.lib.closed == []  # dropping a borrow runs no destructor
    assert bob_h == 1


def test_a_callee_must_drop_its_borrow_before_returning() -> None:
    s = FilesWorld(Semantics.COMPONENT_MODEL)
    alice, alice_inst = s.client("alice")
    bob, bob_inst = s.client("bob")
    h = alice.ctx.imports["files"].open("/a")
    bob.during = lambda lent: None  # keeps the borrow
    with pytest.raises(Trap) as caught:
        alice.ctx.connect(bob_inst).hold(h)
    assert caught.value.reason is TrapReason.BORROW_NOT_DROPPED
    assert caught.value.instance == "bob"
    # The trap ended the call: bob's borrow is gone, alice's handle is lent no more, and
    # the trap left both unusable. Tearing alice down closes her file.
    assert bob_inst.handle_count == 0 and alice_inst.held(h).lends == 0
    assert bob_inst.trapped is caught.value and alice_inst.trapped is caught.value
    alice_inst.destroy()
    assert [c["path"] for c in s.lib.closed] == ["/a"]


def test_a_lent_handle_can_be_neither_dropped_nor_moved() -> None:
    s = FilesWorld(Semantics.COMPONENT_MODEL)
    alice, _ = s.client("alice")
    bob, bob_inst = s.client("bob")
    carol, carol_inst = s.client("carol")
    h = alice.ctx.imports["files"].open("/a")
    attempts: list[TrapReason] = []

    def during(lent: int) -> None:
        for attempt in (
            lambda: alice.ctx.resource_drop(s.lib.file, h),
            lambda: alice.ctx.imports["files"].close(h),
            lambda: alice.ctx.connect(carol_inst).take(h),
        ):
            try:
                attempt()
            except Trap as trap:
                attempts.append(trap.reason)
        assert s.lib.closed == []
        bob.ctx.resource_drop(s.lib.file, lent)

    bob.during = during
    alice.ctx.connect(bob_inst).hold(h)
    assert attempts == [TrapReason.HANDLE_LENT] * 3
    assert carol.kept == []
    alice.ctx.imports["files"].close(h)
    assert len(s.lib.closed) == 1


def test_dropping_an_own_runs_the_destructor_once_in_the_definer_with_the_original_rep() -> None:
    world = World(Semantics.COMPONENT_MODEL)
    original = {"path": "/a"}
    calls: list[tuple[Any, TrapReason | None]] = []

    def lib(ctx):  # type: ignore[no-untyped-def]
        def destructor(rep: Any) -> None:
            # Running inside the definer: it cannot be torn down under its own destructor.
            try:
                world.destroy(inst)
                busy = None
            except Trap as trap:
                busy = trap.reason
            calls.append((rep, busy))

        rtype = ctx.resource_type("file", destructor)
        return {
            "file": rtype,
            "make": ctx.func(lambda: ctx.resource_new(rtype, original), [], [own(rtype)], "make"),
        }

    inst = world.instantiate("lib", lib)
    alice = Agent()
    world.instantiate("alice", alice, {"lib": inst})
    h = alice.ctx.imports["lib"].make()
    rtype = inst.exports["file"]
    assert isinstance(rtype, ResourceType)
    alice.ctx.resource_drop(rtype, h)
    assert len(calls) == 1
    assert calls[0][0] is original and calls[0][1] is TrapReason.INSTANCE_BUSY
    with pytest.raises(Trap) as caught:
        alice.ctx.resource_drop(rtype, h)
    assert caught.value.reason is TrapReason.INVALID_HANDLE
    assert len(calls) == 1 and rtype.live_count == 0 and not inst.destroyed


def test_borrowing_from_a_borrow_locks_the_borrow_too() -> None:
    s = FilesWorld(Semantics.COMPONENT_MODEL)
    alice, _ = s.client("alice")
    bob, bob_inst = s.client("bob")
    carol, carol_inst = s.client("carol")
    h = alice.ctx.imports["files"].open("/a")
    outcome: list[str] = []

    def carol_during(lent: int) -> None:
        try:
            bob.ctx.resource_drop(s.lib.file, bob_lent[0])
        except Trap as trap:
            outcome.append(trap.reason.value)
        outcome.append(carol.ctx.imports["files"].path(lent))
        carol.ctx.resource_drop(s.lib.file, lent)

    bob_lent: list[int] = []

    def bob_during(lent: int) -> None:
        bob_lent.append(lent)
        bob.ctx.connect(carol_inst).hold(lent)
        bob.ctx.resource_drop(s.lib.file, lent)

    bob.during, carol.during = bob_during, carol_during
    alice.ctx.connect(bob_inst).hold(h)
    assert outcome == ["handle-lent", "/a"]


def test_the_definer_receives_a_borrow_as_the_representation() -> None:
    world = World(Semantics.COMPONENT_MODEL)
    received: list[Any] = []

    def lib(ctx):  # type: ignore[no-untyped-def]
        rtype = ctx.resource_type("thing")
        return {
            "thing": rtype,
            "make": ctx.func(lambda: ctx.resource_new(rtype, ["rep"]), [], [own(rtype)], "make"),
            "look": ctx.func(received.append, [borrow(rtype)], [], "look"),
        }

    inst = world.instantiate("lib", lib)
    h = inst.exports.make()
    inst.exports.look(h)
    assert received == [["rep"]]
    assert world.host.handle_count == 1  # still the host's; nothing was left to drop


def test_a_borrow_cannot_be_given_away_or_returned() -> None:
    s = FilesWorld(Semantics.COMPONENT_MODEL)
    alice, _ = s.client("alice")
    bob, bob_inst = s.client("bob")
    carol, carol_inst = s.client("carol")
    h = alice.ctx.imports["files"].open("/a")
    reasons: list[TrapReason] = []

    def during(lent: int) -> None:
        try:
            bob.ctx.connect(carol_inst).take(lent)
        except Trap as trap:
            reasons.append(trap.reason)
        bob.ctx.resource_drop(s.lib.file, lent)

    bob.during = during
    alice.ctx.connect(bob_inst).hold(h)
    assert reasons == [TrapReason.NOT_OWNED]
    assert carol.kept == []


def test_plain_values_pass_unchanged() -> None:
    world = World(Semantics.COMPONENT_MODEL)
    inst = world.instantiate(
        "echo", lambda ctx: {"echo": ctx.func(lambda x: x, [value], [value], "echo")}
    )
    payload = {"any": ["python", "value"]}
    assert inst.exports.echo(payload) is payload
