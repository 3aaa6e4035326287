"""The quota layer: an unprivileged instance that refuses growth past a limit.

spacetool.wasm (a C file tool, one command after another) writes, truncates, links and
removes through the layer; what it prints is what the guest saw, and the tree below shows
whether anything was left behind.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES
from probekit import script

from virtwasi.filesystem.interface import FUNCTIONS
from virtwasi.layers import audit_layer, quota_layer, read_only_layer
from virtwasi.runtime import WasiWorld
from virtwasi.storage.memfs import MemoryStorage
from virtwasi.storage.tree import snapshot
from virtwasi.wasi.abi import Rights
from virtwasi.world import ResourceType, Semantics

SPACETOOL = str(FIXTURES / "spacetool.wasm")
EDQUOT = "errno 19 (Quota exceeded)"
ENOSPC = "errno 51 (No space left on device)"


def spacetool(tree: MemoryStorage, *args: str, semantics: Semantics = Semantics.COMPONENT_MODEL,
              **limits: int) -> list[str]:
    """What spacetool printed, line by line, run through a quota layer over ``tree``."""
    errno = "ENOSPC" if limits.pop("enospc", 0) else "EDQUOT"
    with WasiWorld({"/": tree}, semantics=semantics,
                   layers=[("quota", quota_layer(**limits, errno=errno))]) as world:
        client = world.client(SPACETOOL, list(args))
        client.start()
        assert client.stderr == b""
        return client.stdout.decode().splitlines()


def a_tree(**files: bytes) -> MemoryStorage:
    tree = MemoryStorage()
    for name, data in files.items():
        tree.fs.pipe(f"/{name}", data)
    return tree


@pytest.mark.parametrize("semantics", list(Semantics))
def test_a_write_past_the_limit_is_refused_whole_and_the_file_is_unchanged(
        semantics: Semantics) -> None:
    tree = a_tree(notes=b"buy milk\n")  # 9 bytes of a 20-byte quota
    out = spacetool(tree, "append", "/notes", "and eggs, bread", "append", "/notes", "and bread.",
                    "append", "/notes", "!", "append", "/notes", "?", semantics=semantics,
                    max_bytes=20)
    assert out == [f"append /notes: {EDQUOT}", "append /notes: ok", "append /notes: ok",
                   f"append /notes: {EDQUOT}"]
    assert tree.fs.cat("/notes") == b"buy milk\nand bread.!"  # 20 bytes, nothing partial


@pytest.mark.parametrize(("chunk", "written"), [(1, 1000), (64, 960), (1000, 1000), (999, 999)])
def test_filling_stops_at_the_last_whole_write_that_fits(chunk: int, written: int) -> None:
    tree = MemoryStorage()
    out = spacetool(tree, "fill", "/big", str(chunk), "5000", max_bytes=1000)
    assert out == [f"fill /big: {written} bytes, then {EDQUOT}"]
    assert tree.lstat("big").size == written == tree.used_bytes


def test_enospc_instead_of_edquot() -> None:
    out = spacetool(MemoryStorage(), "fill", "/big", "100", "5000", max_bytes=250, enospc=1)
    assert out == [f"fill /big: 200 bytes, then {ENOSPC}"]


def test_what_the_tree_already_holds_counts_and_a_hard_link_counts_once() -> None:
    tree = a_tree(a=b"x" * 300)
    tree.mkdir("d")
    tree.fs.pipe("/d/b", b"y" * 100)
    tree.link("a", "d/also-a")  # the same 300 bytes under a second name
    out = spacetool(tree, "fill", "/new", "1", "5000", max_bytes=1000)
    assert out == [f"fill /new: 600 bytes, then {EDQUOT}"]


def test_the_quota_covers_every_mount_together() -> None:
    home, data = a_tree(a=b"x" * 100), a_tree(b=b"y" * 200)
    with WasiWorld({"/": home, "/data": data},
                   layers=[("quota", quota_layer(max_bytes=1000))]) as world:
        client = world.client(SPACETOOL, ["fill", "/data/new", "1", "5000"])
        client.start()
        assert client.stdout.decode() == f"fill /data/new: 700 bytes, then {EDQUOT}\n"


def test_after_any_mix_of_changes_the_count_is_what_the_tree_holds() -> None:
    tree = a_tree(seed=b"s" * 40)
    out = spacetool(tree, "write", "/a", "0", "x" * 50, "link", "/a", "/b",
                    "write", "/c", "0", "y" * 30, "mv", "/c", "/a",  # /b keeps the 50 bytes
                    "truncate", "/b", "20", "write", "/d", "5", "zzz", "orphan", "/d", "64",
                    "rm", "/seed", "mkdir", "/e", "symlink", "b", "/e/l", "mv", "/b", "/e/b",
                    "fill", "/last", "1", "100000", max_bytes=400)
    assert out[-1] == f"fill /last: 350 bytes, then {EDQUOT}"
    assert tree.used_bytes == 400  # filled to exactly the limit: the count never drifted


def test_a_tree_already_past_the_limit_may_shrink_but_not_grow() -> None:
    tree = a_tree(big=b"x" * 500)
    out = spacetool(tree, "append", "/big", "!", "truncate", "/big", "450", "write", "/big",
                    "0", "overwritten", "truncate", "/big", "10", "append", "/big", "!",
                    max_bytes=100)
    assert out == [f"append /big: {EDQUOT}", "truncate /big: ok", "write /big: ok",
                   "truncate /big: ok", "append /big: ok"]
    assert tree.fs.cat("/big") == b"overwritte!"


def test_overwriting_in_place_consumes_nothing_and_a_hole_counts() -> None:
    tree = a_tree(f=b"0123456789")
    out = spacetool(tree, "write", "/f", "0", "abcdefghij", "write", "/f", "5", "ABCDE",
                    "write", "/f", "15", "!!!!!!", "write", "/f", "14", "!!!!!!",
                    max_bytes=20)
    # 15 + 6 = 21 bytes would not fit; 14 + 6 = 20 does, the hole included.
    assert out == ["write /f: ok", "write /f: ok", f"write /f: {EDQUOT}", "write /f: ok"]
    assert tree.fs.cat("/f") == b"abcdeABCDE\0\0\0\0!!!!!!"


def test_truncating_growth_is_refused_and_truncating_at_open_gives_space_back() -> None:
    tree = a_tree(f=b"x" * 80)
    out = spacetool(tree, "truncate", "/f", "101", "truncate", "/f", "100",
                    "fill", "/f", "10", "5000",  # opens with O_TRUNC: the 100 bytes are free
                    max_bytes=100)
    assert out == [f"truncate /f: {EDQUOT}", "truncate /f: ok",
                   f"fill /f: 100 bytes, then {EDQUOT}"]


def test_removing_gives_space_back_only_with_the_last_name() -> None:
    tree = a_tree(a=b"x" * 60)
    out = spacetool(tree, "link", "/a", "/b", "rm", "/a",  # /b still holds the 60 bytes
                    "fill", "/c", "1", "5000", "rm", "/b", "fill", "/d", "1", "5000",
                    max_bytes=100)
    assert out == ["link /b: ok", "rm /a: ok", f"fill /c: 40 bytes, then {EDQUOT}",
                   "rm /b: ok", f"fill /d: 60 bytes, then {EDQUOT}"]


def test_renaming_over_a_file_frees_the_one_replaced() -> None:
    tree = a_tree(old=b"x" * 70, new=b"y" * 20)
    out = spacetool(tree, "mv", "/new", "/old", "fill", "/more", "1", "5000", max_bytes=100)
    assert out == ["mv /new: ok", f"fill /more: 80 bytes, then {EDQUOT}"]
    assert tree.fs.cat("/old") == b"y" * 20


def test_an_open_file_whose_name_is_gone_counts_until_it_is_closed() -> None:
    tree = a_tree(a=b"x" * 50)
    # orphan: open /a, unlink it, write 80 bytes over it from the start (30 more), close it.
    out = spacetool(tree, "orphan", "/a", "80", "fill", "/b", "1", "5000", max_bytes=100)
    # The 80 bytes were freed at the close, not at the unlink: all 100 are free again.
    assert out == ["orphan /a: 80 bytes", f"fill /b: 100 bytes, then {EDQUOT}"]
    # Unlinked but open, its 50 bytes still count: 51 more would not fit.
    out = spacetool(a_tree(a=b"x" * 50), "orphan", "/a", "101", max_bytes=100)
    assert out == [f"orphan /a: 0 bytes, then {EDQUOT}"]


def test_inodes_files_directories_and_symlinks_count_hard_links_do_not() -> None:
    tree = a_tree(a=b"")
    out = spacetool(tree, "mkdir", "/d", "symlink", "a", "/l", "touch", "/t", "mkdir", "/e",
                    "link", "/a", "/d/a2", "rm", "/l", "rmdir", "/d", "touch", "/t",
                    "touch", "/u", max_inodes=3)
    assert out == ["mkdir /d: ok", "symlink /l: ok", f"touch /t: {EDQUOT}",
                   f"mkdir /e: {EDQUOT}", "link /d/a2: ok", "rm /l: ok",
                   "rmdir /d: errno 55 (Directory not empty)", "touch /t: ok",
                   f"touch /u: {EDQUOT}"]
    assert sorted(snapshot(tree)) == ["a", "d", "d/a2", "t"]


def test_allocate_passes_through_to_what_the_implementation_answers() -> None:
    out = spacetool(MemoryStorage(), "fallocate", "/f", "4096", max_bytes=10)
    assert out == ["fallocate /f: errno 58 (Not supported)"]


def test_no_limit_refuses_nothing() -> None:
    tree = MemoryStorage()
    out = spacetool(tree, "fill", "/f", "4096", "100000", "mkdir", "/d")
    assert out == ["fill /f: 100000 bytes", "mkdir /d: ok"]


def test_a_write_on_a_descriptor_not_open_for_writing_answers_ebadf_not_edquot() -> None:
    # A descriptor opened for reading only, then written to: a path_open probe.
    module = script([("path_open", (3, 0, 1024, 1, 0, int(Rights.FD_READ), 0, 0, 2000)),
                     ("fd_write", (4, 2048, 1, 2004))],
                    {1024: b"f", 2048: (4096).to_bytes(4, "little") + (50).to_bytes(4, "little")})
    tree = a_tree(f=b"x" * 10)
    with WasiWorld({"/": tree}, layers=[("quota", quota_layer(max_bytes=20))]) as world:
        client = world.client(module)
        assert client.start() == 0
        assert list(client.stdout[:2]) == [0, 8]  # EBADF, as without the layer


@pytest.mark.parametrize("semantics", [Semantics.COMPONENT_MODEL, Semantics.PROPOSAL_2021])
def test_the_layer_types_are_its_own_and_teardown_closes_below(semantics: Semantics) -> None:
    tree = MemoryStorage()
    with WasiWorld({"/": tree}, semantics=semantics,
                   layers=[("quota", quota_layer(max_bytes=100))]) as world:
        below, above = world.implementation, world.wasi
        assert {t.name for t in above.types.values()} == {
            "quota-descriptor", "quota-directory-entry-stream"}
        assert set(above.functions) == set(below.functions)
        client = world.client(SPACETOOL, ["fill", "/f", "10", "50"])
        assert client.start() == 0
        descriptor = below.types["descriptor"]
        assert isinstance(descriptor, ResourceType)
        assert descriptor.live_count == 1  # the client's preopen
        client.close()
        assert descriptor.live_count == 0 and above.handle_count == 0


def test_the_layer_serves_every_function_of_the_interface() -> None:
    with WasiWorld(layers=[("quota", quota_layer(max_bytes=1))]) as world:
        assert set(world.wasi.functions) == set(world.implementation.functions) == set(FUNCTIONS)


def test_stacked_under_read_only_the_view_refuses_first() -> None:
    tree = a_tree(f=b"hello")
    before = snapshot(tree)
    layers = [("quota", quota_layer(max_bytes=10)), ("read-only", read_only_layer())]
    with WasiWorld({"/": tree}, layers=layers) as world:
        client = world.client(SPACETOOL, ["size", "/f", "append", "/f", "x", "mkdir", "/d"])
        assert client.start() == 1
        assert client.stdout.decode().splitlines() == [
            "size /f: 5", "append /f: errno 69 (Read-only file system)",
            "mkdir /d: errno 69 (Read-only file system)"]
        assert [i.name for i in world.stack] == ["wasi-virtual", "quota", "read-only"]
    assert snapshot(tree) == before


@pytest.mark.parametrize(("limits", "message"), [
    ({"max_bytes": -1}, "max_bytes must be a whole number"),
    ({"max_inodes": 2.5}, "max_inodes must be a whole number"),
    ({"max_bytes": True}, "max_bytes must be a whole number"),
    ({"errno": "EPERM"}, "errno must be one of EDQUOT, ENOSPC"),
])
def test_bad_limits_are_a_clear_error(limits: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        quota_layer(**limits)  # type: ignore[arg-type]


def test_the_command_line_quota() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "virtwasi", "run", "--quota", "1000:2", SPACETOOL,
         "fill", "/a", "300", "5000", "touch", "/b", "touch", "/c"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [f"fill /a: 900 bytes, then {EDQUOT}", "touch /b: ok",
                                        f"touch /c: {EDQUOT}"]


@pytest.mark.parametrize("spec", ["lots", "10:x", "-5", "1:2:3"])
def test_a_bad_command_line_quota_is_a_clear_error(spec: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "virtwasi", "run", "--quota", spec, SPACETOOL],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("virtwasi: --quota") and "Traceback" not in done.stderr


def test_an_audit_below_the_quota_never_sees_what_the_quota_refused(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    tree = MemoryStorage()
    with WasiWorld({"/": tree}, layers=[("audit", audit_layer(log)),
                                        ("quota", quota_layer(max_bytes=25))]) as world:
        client = world.client(SPACETOOL, ["fill", "/f", "10", "100"])
        assert client.start() == 1
    # The audit sits below the quota: the refused write never reached it.
    assert '"errno":"EDQUOT"' not in log.read_text()
    assert tree.lstat("f").size == 20
