"""Each scenario runs in-process, holds all its claims, and tells the story it promises."""

from __future__ import annotations

import contextlib
import io

from virtwasi.demo import runner as scenario


def transcript(name: str) -> tuple[int, str]:
    """Run scenario ``name``; its exit code and its transcript with whitespace collapsed."""
    found = scenario.find(name)
    assert found is not None, f"no scenario named {name!r}"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = found.run()
    return code, " ".join(out.getvalue().split())


def row(text: str, *cells: str) -> bool:
    """Whether a table row with exactly these cells, in order, appears in ``text``."""
    return " | ".join(cells) in text


def test_sharing_moves_counts_and_lends() -> None:
    code, out = transcript("sharing")
    assert code == 0, out
    assert "[FAILS]" not in out and "All 6 claims held." in out
    # component-model: the move kills the sender's index; the lender cannot even run while
    # her handle is lent (the callback traps reentrance), and the trap locks both out.
    assert "carol.take(1) -> trap invalid-handle (moved, caught)" in out
    assert "inspect: alice.progress() -> trap reentrance" in out
    assert "the trap escaped bob, then alice -> locked out for good: bob, alice" in out
    # proposal-2021: the count goes up with each copy and the destructor runs at zero.
    for shown in ("count 2", "count 3", "still open, count 2", "still open, count 1",
                  "count 0: closed /reports/q1"):
        assert shown in out
    assert row(out, "q1's destructor ran", "at alice's drop", "at bob's drop", "at carol's drop")
    assert row(out, "alice closes q2 while lent", "closed under bob",
               "cannot run: trap reentrance", "open until the call ends")


def test_explicit_destroy_nulls_the_copy_and_the_callee_traps() -> None:
    code, out = transcript("explicit-destroy")
    assert code == 0, out
    assert "[FAILS]" not in out and "All 6 claims held." in out
    assert "still in his table, now null" in out
    assert row(out, "bob reads it", "'dear diary;'", "'started;'", "trap null-handle in 'files'")
    assert "resource.destroy(1) -> trap unsupported in 'alice' (caught)" in out
    assert "inspect: calls alice.progress() -> trap reentrance in 'bob' (caught)" in out
    assert "files.read(1) -> 'dear diary;bob was here;'" in out


def test_child_instances_close_their_files_when_torn_down() -> None:
    code, out = transcript("child-instances")
    assert code == 0, out
    assert "[FAILS]" not in out and "All 6 claims held." in out
    assert row(out, "after both jobs ran", "5", "5", "5")
    assert row(out, "after the parent drops job-1", "5", "3", "3")
    assert row(out, "after the parent is destroyed", "5", "0", "0")
    assert row(out, "jobs alive at the end", "job-2", "none", "none")
    assert out.count("trap instance-destroyed") == 3
    assert out.count("files open / closed by the destructor -> 0 / 5") == 2


def test_hierarchy_ranks_undefined_trap_prevented() -> None:
    code, out = transcript("hierarchy")
    assert code == 0, out
    assert "[FAILS]" not in out and "All 4 claims held." in out
    assert row(out, "transparent", "silently wrote to other's file",
               "silently closed other's file", "undefined")
    assert row(out, "proposal-2021", "trap null-handle in 'files'",
               "trap null-handle in 'files'", "trap")
    assert row(out, "component-model", "trap invalid-handle in 'app'",
               "trap instance-trapped in 'app'", "prevented")
    assert "use of moved value" in out and "app is locked out for good" in out


def test_attenuation_read_only_layer_and_the_dynamic_cast() -> None:
    code, out = transcript("attenuation")
    assert code == 0, out
    assert "[FAILS]" not in out and "All 10 claims held." in out
    erofs = "errno 69 (Read-only file system)"
    assert row(out, "cat /notes.txt", "buy milk", "buy milk")
    for command in ("put /notes.txt 'buy eggs'", "mkdir /drafts", "rm /todo/monday.txt",
                    "mv /notes.txt /old-notes.txt"):
        assert row(out, command, "ok", erofs)
    assert row(out, "descriptors open below after", "0", "0")
    assert row(out, "implementation.create_directory_at(h, 'cast')", "trap: type-mismatch",
               "trap: type-mismatch", "it worked")
    assert row(out, "folder unchanged", "yes", "yes", "NO")


def test_forging_wasm_clients_transparent_reads_the_secret_private_and_native_do_not() -> None:
    code, out = transcript("forging")
    assert code == 0, out
    assert "[FAILS]" not in out and "All 10 claims held." in out
    assert row(out, "fd 4", "ALICE'S SECRET", "her own file", "her own file", "her own file")
    assert row(out, "fd 6", "her own file", "EBADF", "EBADF", "EBADF")
    assert row(out, "fds 7-32", "EBADF", "EBADF", "EBADF", "EBADF")
    assert row(out, "alice's fd / mallory's fd", "4 / 6", "4 / 4", "4 / 4", "4 / 4")
    # Components, virtual then native: her first guess traps, and locks her out.
    assert out.count("descriptor.read(handle 2) -> her own file") == 2
    assert out.count("descriptor.read(handle 3) -> trap: invalid-handle") == 2
    assert out.count("-> trap: instance-trapped") == 4
    assert "ALICE'S SECRET" not in out.split("the same story with two components")[1]


def test_fd_reuse_stale_fd_lands_in_bobs_file_only_when_transparent() -> None:
    code, out = transcript("fd-reuse")
    assert code == 0, out
    assert "[FAILS]" not in out and "All 9 claims held." in out
    assert "open('/bob.txt') -> fd 5 (the number Alice freed)" in out
    assert row(out, "alice's stale write", "17 B", "EBADF", "EBADF", "EBADF")
    assert row(out, "alice's second close", "ok", "EBADF", "EBADF", "EBADF")
    assert row(out, "bob's next write", "EBADF", "16 B", "16 B", "16 B")
    assert row(out, "bob.txt at the end", "alice's, over bob's", "bob's 2 lines", "bob's 2 lines",
               "bob's 2 lines")
    refused = "(a buggy adapter) wasi.write(handle 2) -> trap invalid-handle in 'alice'"
    assert out.count(refused) == 3  # the native implementation too: same adapter, same world


def test_client_dies_three_ways_private_and_native_close_transparent_leaks() -> None:
    code, out = transcript("client-dies")
    assert code == 0, out
    assert "[FAILS]" not in out and "All 7 claims held." in out
    # The columns: native, component-model, proposal-2021, transparent, then a component
    # on native and on the virtual implementation.
    for death in ("exit", "torn down"):
        assert row(out, death, *["closed; 51/51 B"] * 3, "1 LEAKED; 0/51 B",
                   *["closed; 51/51 B"] * 2)
    # A trap may cut a write short: the virtual implementation keeps the line unsaved.
    assert row(out, "trap", "closed; 51/51 B", *["closed; 0/51 B, kept unsaved"] * 2,
               "1 LEAKED; 0/51 B", "closed; 51/51 B", "closed; 0/51 B, kept unsaved")
    assert out.count("exited with code 7") == 4
    assert out.count("exited with code 1") == 2  # a component's exit(error)
    assert out.count("trapped: `unreachable` executed") == 6
    # Virtual stores show nothing before teardown (the spill); native writes went through.
    assert out.count("holds, before any teardown -> 0 of 51 B; 1 open") == 12
    assert out.count("closes the whole world, implementation too -> 51 of 51 B, at last") == 3


def test_boxing_times_a_wasm_read_loop_under_each_mode() -> None:
    code, out = transcript("boxing")
    assert code == 0, out
    assert "[FAILS]" not in out and "All 3 claims held." in out
    assert "every run of every mode read all 320,000 bytes, 16 at a time" in out
    for mode in ("private", "transparent", "native"):
        assert f"{mode} | " in out


def test_policy_stack_each_layer_refuses_its_own_over_s3() -> None:
    code, out = transcript("policy-stack")
    assert code == 0, out
    assert "[FAILS]" not in out and "All 8 claims held." in out
    assert row(out, "append /notes.txt 'and eggs'", "ok", "ok", "ok", "EROFS")
    assert row(out, "append /notes.txt 'and flour, s...'", "ok", "ok", "EDQUOT", "EROFS")
    assert row(out, "symlink notes.txt /latest", "ok", "ENOTSUP", "ENOTSUP", "EROFS")
    assert row(out, "afterwards, notes.txt", "52 B", "52 B", "18 B", "9 B")
    assert "notes.txt in the bucket is now b'buy milk\\nand eggs\\n'" in out
    for holder, held in (("spacetool.wasm", "ro-descriptor"), ("read-only", "quota-descriptor"),
                         ("quota", "descriptor")):
        assert f"{holder} holds -> {held}" in out
