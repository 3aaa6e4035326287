"""Wasmer (through wasmer-sdk) against wasmtime's built-in WASI, on what compares.

Wasmer's guest sees the sandbox root at ``/`` and the tree at ``/workspace``; so the
reference runs with its tree in a folder ``workspace`` under its ``/``, the guests are given
``/workspace/...`` paths, and only ``/workspace`` is compared. wasmer-sdk is part of the
``dev`` extra: without it these tests fail, they do not skip.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import wasmtime
from conftest import FIXTURES, load_adapter

from virtwasi.compare.diff import DESCRIPTIONS, OPTIONAL, RUNTIMES, compare, default_runtimes
from virtwasi.compare.result import RunResult
from virtwasi.storage.hostdir import HostDirStorage
from virtwasi.storage.tree import Snapshot, snapshot

W = "/workspace"
Prepare = Callable[[Path], None]


def wasmer() -> ModuleType:
    try:
        return load_adapter("wasmer_wasi")
    except ImportError as exc:
        pytest.fail(f"the wasmer runtime cannot load: {exc}. wasmer-sdk is in the dev extra: "
                    "reinstall with `make test` or `.venv/bin/pip install -e '.[dev]'`")


def small_tree(root: Path) -> None:
    (root / "in.txt").write_text("input")
    (root / "d").mkdir()
    (root / "d" / "g").write_text("y")
    (root / "empty").mkdir()


def on_wasmer(module: Path, args: list[str], tmp: Path, prepare: Prepare | None = None,
              stdin: bytes = b"", env: dict[str, str] | None = None,
              ) -> tuple[RunResult, Snapshot]:
    root = tmp / "wasmer"
    root.mkdir()
    if prepare is not None:
        prepare(root)
    result: RunResult = wasmer().run(module, args, root, env=env, stdin=stdin)
    with HostDirStorage(root) as tree:
        return result, snapshot(tree)


def on_wasmtime(module: Path, args: list[str], tmp: Path, prepare: Prepare | None = None,
                stdin: bytes = b"", env: dict[str, str] | None = None, *,
                outside: tuple[str, ...] = ()) -> tuple[RunResult, Snapshot]:
    """The reference, with the tree at /workspace as Wasmer's guest sees it; the guest may
    write only the names ``outside`` beside it (Wasmer keeps no such file)."""
    root = tmp / "wasmtime"
    (root / "workspace").mkdir(parents=True)
    if prepare is not None:
        prepare(root / "workspace")
    result: RunResult = load_adapter("wasmtime_wasi").run(module, args, root, env=env,
                                                          stdin=stdin)
    assert sorted(p.name for p in root.iterdir()) == sorted(["workspace", *outside])
    with HostDirStorage(root / "workspace") as tree:
        return result, snapshot(tree)


def test_wasmer_sdk_is_installed_and_the_runtime_is_optional() -> None:
    assert wasmer().run is not None
    assert RUNTIMES["wasmer"] == ("wasmer_wasi", "run") and "wasmer" in DESCRIPTIONS
    assert "wasmer" in OPTIONAL and "wasmer" not in default_runtimes()


def test_hello_prints_the_same_on_wasmer_and_its_file_lands_outside(tmp_path: Path) -> None:
    args = ["a", "two words", ""]
    got, tree = on_wasmer(FIXTURES / "hello.wasm", args, tmp_path)
    expected, _ = on_wasmtime(FIXTURES / "hello.wasm", args, tmp_path,
                              outside=("greeted.txt",))
    assert got == expected
    assert got.stdout == b"hello, a\nhello, two words\nhello, \n"
    # hello writes greeted.txt in the working directory, /: Wasmer's root, not /workspace.
    assert tree == {}


def test_echo_reads_the_same_stdin_on_wasmer(tmp_path: Path) -> None:
    stdin = b"one\ntwo\n\nno newline at the end"
    got = on_wasmer(FIXTURES / "echo.wasm", [], tmp_path, stdin=stdin)
    assert got == on_wasmtime(FIXTURES / "echo.wasm", [], tmp_path, stdin=stdin)
    assert got[0].stdout == stdin


def test_fstool_changes_the_workspace_alike_on_wasmer(tmp_path: Path) -> None:
    args = [
        "cat", f"{W}/in.txt", "cat", f"{W}/missing", "ls", W, "ls", f"{W}/d",
        "put", f"{W}/out.txt", "made", "append", f"{W}/out.txt", " more",
        "append", f"{W}/new.txt", "fresh", "mkdir", f"{W}/sub", "mkdir", f"{W}/sub",
        "mv", f"{W}/d/g", f"{W}/sub/g", "rm", f"{W}/in.txt", "rm", f"{W}/missing",
        "rm", f"{W}/empty", "stat", f"{W}/out.txt", "stat", f"{W}/missing", "ls", W,
    ]
    got = on_wasmer(FIXTURES / "fstool.wasm", args, tmp_path, small_tree)
    expected = on_wasmtime(FIXTURES / "fstool.wasm", args, tmp_path, small_tree)
    assert got == expected
    assert got[0].exit_code == 1  # the errors in the middle are the same errors
    assert got[1]["sub/g"] == ("regular", b"y") and "in.txt" not in got[1]


def test_a_file_left_open_reaches_the_workspace_on_wasmer(tmp_path: Path) -> None:
    args = [f"{W}/kept.txt"]
    got = on_wasmer(FIXTURES / "noclose.wasm", args, tmp_path)
    assert got == on_wasmtime(FIXTURES / "noclose.wasm", args, tmp_path)
    assert got[0].exit_code == 3
    assert got[1] == {"kept.txt": ("regular", b"written, never closed\n")}


def test_arguments_environment_and_clocks_answer_alike_on_wasmer(tmp_path: Path) -> None:
    # calls.wasm goes on to the preopen and stdio, where the two differ (adapters/README.md).
    args, env = ["one", "two words", ""], {"GREETING": "hi there", "EMPTY": ""}
    got, _ = on_wasmer(FIXTURES / "calls.wasm", args, tmp_path, env=env)
    expected, _ = on_wasmtime(FIXTURES / "calls.wasm", args, tmp_path, env=env,
                              outside=("f", "g"))
    first = expected.stdout.splitlines()[:7]
    assert first[:2] == [b"argc 4: [one] [two words] []", b"HOME=(unset) GREETING=hi there"]
    assert got.stdout.splitlines()[:7] == first


def test_a_trap_is_exit_134_keeping_what_came_before(tmp_path: Path) -> None:
    module = tmp_path / "trap.wasm"
    module.write_bytes(wasmtime.wat2wasm("""
    (module
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 100) "before\\n")
      (func (export "_start")
        (i32.store (i32.const 8) (i32.const 100))
        (i32.store (i32.const 12) (i32.const 7))
        (drop (call $w (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 0)))
        unreachable))
    """))
    got, _ = on_wasmer(module, [], tmp_path)
    expected, _ = on_wasmtime(module, [], tmp_path)
    assert (got.exit_code, got.stdout) == (expected.exit_code, expected.stdout) == (
        134, b"before\n")
    assert b"unreachable" in got.stderr


def test_a_symlink_the_guest_makes_comes_back_without_its_target(tmp_path: Path) -> None:
    module = tmp_path / "symlink.wasm"
    module.write_bytes(wasmtime.wat2wasm("""
    (module
      (import "wasi_snapshot_preview1" "path_symlink"
        (func $symlink (param i32 i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (data (i32.const 100) "in.txt")
      (data (i32.const 200) "workspace/link")
      (func (export "_start")
        (call $exit (call $symlink (i32.const 100) (i32.const 6) (i32.const 3)
                                   (i32.const 200) (i32.const 14)))))
    """))
    got = on_wasmer(module, [], tmp_path, small_tree)
    expected = on_wasmtime(module, [], tmp_path, small_tree)
    assert got[0].exit_code == expected[0].exit_code == 0
    assert expected[1]["link"] == ("symlink", "in.txt")
    # The sandbox's filesystem API lists a symlink as a file it cannot read.
    assert got[1]["link"] == ("symlink", "?wasmer-sdk cannot read link targets (6 bytes)")


def test_what_the_sandbox_cannot_take_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    (tmp_path / "link").symlink_to("f")
    with pytest.raises(ValueError, match="link: wasmer-sdk's sandbox cannot hold a symlink"):
        wasmer().run(FIXTURES / "hello.wasm", [], tmp_path)
    (tmp_path / "link").unlink()
    with pytest.raises(ValueError, match="cannot serve imports from Python"):
        wasmer().run(FIXTURES / "hello.wasm", [], tmp_path, imports={"env": {"f": print}})


def test_diff_compares_wasmer_only_when_named(tmp_path: Path) -> None:
    wasmer()
    comparison = compare(FIXTURES / "echo.wasm", runtimes=["wasmer"], stdin=b"hi\n",
                         workdir=tmp_path / "work")
    assert list(comparison.observations) == ["wasmtime", "wasmer"] and comparison.same
    assert comparison.observations["wasmer"].stdout == b"hi\n"
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "in.txt").write_text("input")
    done = subprocess.run(
        [sys.executable, "-m", "virtwasi", "diff", "--runtime", "wasmer", "--tree", str(tree),
         str(FIXTURES / "hello.wasm"), "x"],
        capture_output=True, text=True, timeout=300)
    # hello's greeted.txt lands in wasmtime's tree and outside Wasmer's workspace.
    assert done.returncode == 1, done.stdout + done.stderr
    assert "differs from wasmtime: wasmer" in done.stdout
    assert "-greeted.txt: regular b'1\\n'" in done.stdout
