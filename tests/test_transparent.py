"""Transparent types ("take one"): what goes wrong when nothing mediates handles."""

from __future__ import annotations

from worldkit import FilesWorld

from virtwasi.world import Semantics, Trap, TrapReason


def test_any_client_can_forge_another_clients_handle() -> None:
    s = FilesWorld(Semantics.TRANSPARENT)
    victim, _ = s.client("victim")
    thief, _ = s.client("thief")
    secret = victim.ctx.imports["files"].open("/secret")
    victim.ctx.imports["files"].write(secret, "the password")
    stolen = []
    for guess in range(1, 5):
        try:
            stolen.append(thief.ctx.imports["files"].read(guess))
        except Trap as trap:
            assert trap.reason is TrapReason.INVALID_HANDLE  # an empty slot, nothing more
    assert stolen == ["the password"]
    assert secret == 1
    assert victim.ctx.handle_count == 0  # the integers never entered any client table


def test_nothing_closes_a_dead_clients_files() -> None:
    s = FilesWorld(Semantics.TRANSPARENT)
    client, inst = s.client("client")
    for name in ("/a", "/b", "/c"):
        client.ctx.imports["files"].open(name)
    inst.destroy()
    assert s.lib.closed == []
    assert s.lib.file.live_count == 3  # leaked: the library was never told


def test_a_stale_close_lands_on_someone_elses_file() -> None:
    s = FilesWorld(Semantics.TRANSPARENT)
    alice, _ = s.client("alice")
    bob, _ = s.client("bob")
    mine = alice.ctx.imports["files"].open("/alice")
    alice.ctx.imports["files"].close(mine)
    bobs = bob.ctx.imports["files"].open("/bob")
    assert bobs == mine  # the freed number is handed out again
    alice.ctx.imports["files"].close(mine)  # the double close succeeds...
    assert [c["path"] for c in s.lib.closed] == ["/alice", "/bob"]  # ...and closes bob's file


def test_destroying_the_library_itself_does_close_what_it_holds() -> None:
    s = FilesWorld(Semantics.TRANSPARENT)
    client, _ = s.client("client")
    client.ctx.imports["files"].open("/a")
    s.files.destroy()
    assert [c["path"] for c in s.lib.closed] == ["/a"]
