"""proposal-2021 semantics: copyable shared handles, ref counts, explicit destroy."""

from __future__ import annotations

import pytest
from worldkit import FileLib, FilesWorld

from virtwasi.world import Semantics, Trap, TrapReason, World


def test_passing_a_handle_copies_it_and_both_reach_one_resource() -> None:
    s = FilesWorld(Semantics.PROPOSAL_2021)
    alice, _ = s.client("alice")
    bob, bob_inst = s.client("bob")
    h = alice.ctx.imports["files"].open("/a")
    alice.ctx.connect(bob_inst).take(h)
    alice.ctx.imports["files"].write(h, "from alice")
    assert bob.ctx.imports["files"].read(bob.kept[0]) == "from alice"
    assert alice.ctx.handle_count == 1 and bob.ctx.handle_count == 1


def test_the_destructor_runs_when_the_last_handle_drops() -> None:
    s = FilesWorld(Semantics.PROPOSAL_2021)
    alice, _ = s.client("alice")
    bob, bob_inst = s.client("bob")
    h = alice.ctx.imports["files"].open("/a")
    alice.ctx.connect(bob_inst).take(h)
    copy = alice.ctx.resource_clone(s.lib.file, h)
    alice.ctx.resource_drop(s.lib.file, h)
    alice.ctx.resource_drop(s.lib.file, copy)
    assert s.lib.closed == []  # bob still holds one
    bob.ctx.resource_drop(s.lib.file, bob.kept[0])
    assert [c["path"] for c in s.lib.closed] == ["/a"]
    assert s.lib.file.live_count == 0


def test_a_parameter_copy_lasts_for_the_call_unless_the_callee_keeps_it() -> None:
    s = FilesWorld(Semantics.PROPOSAL_2021)
    alice, _ = s.client("alice")
    bob, bob_inst = s.client("bob")
    h = alice.ctx.imports["files"].open("/a")
    bob.during = lambda lent: bob.ctx.handle_count
    assert alice.ctx.connect(bob_inst).hold(h) == 1  # bob held a copy during the call
    assert bob.ctx.handle_count == 0
    alice.ctx.resource_drop(s.lib.file, h)
    assert len(s.lib.closed) == 1  # no reference was left behind by the call


def test_explicit_destroy_nulls_every_other_handle_and_the_callee_traps() -> None:
    s = FilesWorld(Semantics.PROPOSAL_2021)
    alice, _ = s.client("alice")
    bob, bob_inst = s.client("bob")
    h = alice.ctx.imports["files"].open("/a")
    alice.ctx.connect(bob_inst).take(h)
    alice.ctx.resource_destroy(s.lib.file, h)
    assert [c["path"] for c in s.lib.closed] == ["/a"]  # at once, though bob holds a copy
    stale = bob.kept[0]
    # Passing the null handle is fine; the trap comes in the callee, where it reads the rep.
    with pytest.raises(Trap) as caught:
        bob.ctx.imports["files"].read(stale)
    assert caught.value.reason is TrapReason.NULL_HANDLE
    assert caught.value.instance == "files"
    # Destroying it again is a double close: a trap, and the destructor does not rerun.
    with pytest.raises(Trap) as caught:
        bob.ctx.resource_destroy(s.lib.file, stale)
    assert caught.value.reason is TrapReason.NULL_HANDLE
    bob.ctx.resource_drop(s.lib.file, stale)  # dropping a null handle just frees the slot
    assert bob.ctx.handle_count == 0 and len(s.lib.closed) == 1


def test_component_model_only_operations_are_refused_elsewhere() -> None:
    world = World(Semantics.COMPONENT_MODEL)
    lib = FileLib()
    files = world.instantiate("files", lib)
    h = lib.ctx.resource_new(lib.file, {"path": "/a"})
    with world.entering(files):  # the library's own code, which catches each trap
        for op in (lib.ctx.resource_clone, lib.ctx.resource_destroy):
            with pytest.raises(Trap) as caught:
                op(lib.file, h)
            assert caught.value.reason is TrapReason.UNSUPPORTED
    assert lib.closed == []
