"""Each scenario runs in-process, holds all its claims, and tells the story it promises."""

from __future__ import annotations

import contextlib
import io

from virtwasi import scenario


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
    # component-model: the move kills the sender's index; a lent handle cannot be dropped.
    assert "carol.take(1) -> trap invalid-handle (moved)" in out
    assert "progress: drops her handle 1 -> trap handle-lent" in out
    # proposal-2021: the count goes up with each copy and the destructor runs at zero.
    for shown in ("count 2", "count 3", "still open, count 2", "still open, count 1",
                  "count 0: closed /reports/q1"):
        assert shown in out
    assert row(out, "q1's destructor ran", "at alice's drop", "at bob's drop", "at carol's drop")
    assert row(out, "alice closes q2 while lent", "closed under bob", "trap handle-lent",
               "open until the call ends")


def test_explicit_destroy_nulls_the_copy_and_the_callee_traps() -> None:
    code, out = transcript("explicit-destroy")
    assert code == 0, out
    assert "[FAILS]" not in out and "All 6 claims held." in out
    assert "still in his table, now null" in out
    assert row(out, "bob reads it", "'dear diary;'", "'started;'", "trap null-handle in 'files'")
    assert "resource.destroy(1) -> trap unsupported in 'alice'" in out
    assert "progress: drops handle 1 -> trap handle-lent in 'alice'" in out
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
               "trap invalid-handle in 'app'", "prevented")
    assert "use of moved value" in out


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
    assert row(out, "implementation.mkdir_at(h, 'cast')", "trap: type-mismatch",
               "trap: type-mismatch", "it worked")
    assert row(out, "folder unchanged", "yes", "yes", "NO")
