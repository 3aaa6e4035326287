"""Every fixture behaves the same on wasmtime's built-in WASI and on virtwasi.

Each case runs on the reference (a temporary host folder), on virtwasi's virtual
implementation over a host folder and over the in-memory default, and on the native
implementation over a host folder; exit code, stdout, stderr and the final file tree must
all be equal.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from conftest import FIXTURES, load_adapter

from virtwasi.storage.hostdir import HostDirStorage
from virtwasi.storage.tree import Snapshot, snapshot


def small_tree(root: Path) -> None:
    (root / "d").mkdir()
    (root / "f").write_text("x")
    (root / "d" / "g").write_text("y")


class Case(NamedTuple):
    module: str
    args: list[str]
    prepare: Callable[[Path], None] | None = None
    stdin: bytes = b""


CASES: dict[str, Case] = {
    "hello": Case("hello.wasm", ["a", "b"]),
    "fileops": Case("fileops.wasm", []),
    "noclose": Case("noclose.wasm", ["kept.txt"]),
    "calls": Case("calls.wasm", ["one", "two words", ""]),
    "pathprobe": Case("pathprobe.wasm",
                      ["f", "f/", "d/../f", "..", "../x", "d//g", "+f", "@d"], small_tree),
    "fdkinds": Case("fdkinds.wasm", [], small_tree, b"never read\n"),
    "times": Case("times.wasm", []),
    "rights": Case("rights.wasm", []),
    "dirs": Case("dirs.wasm", []),
    "opens": Case("opens.wasm", [], stdin=b"from stdin"),
    "poll": Case("poll.wasm", [], stdin=b"ready\n"),
    "echo": Case("echo.wasm", [], stdin=b"one\ntwo\n\nno newline at the end"),
}
ENV = {"GREETING": "hi there", "EMPTY": ""}
RUNTIMES = ["virtual-host", "virtual-memory", "native"]


def outcome(runner: Callable[..., object], case: str, tmp: Path) -> tuple[object, Snapshot]:
    module, args, prepare, stdin = CASES[case]
    root = tmp / "root"
    root.mkdir(parents=True)
    if prepare is not None:
        prepare(root)
    result = runner(FIXTURES / module, args, root, env=ENV, stdin=stdin)
    with HostDirStorage(root) as tree:
        return result, snapshot(tree)


def report(name: str, expected: object, got: object) -> str:
    return "".join(difflib.unified_diff(
        repr(expected).replace("\\n", "\\n\n").splitlines(True),
        repr(got).replace("\\n", "\\n\n").splitlines(True), "wasmtime", name))


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_same_behaviour_as_wasmtime(case: str, runtime: str, tmp_path: Path) -> None:
    reference = load_adapter("wasmtime_wasi").run
    virtual = load_adapter("virtwasi_virtual")
    runner = {"virtual-host": virtual.run, "virtual-memory": virtual.run_in_memory,
              "native": load_adapter("virtwasi_native").run}[runtime]
    expected = outcome(reference, case, tmp_path / "reference")
    got = outcome(runner, case, tmp_path / runtime)
    assert got == expected, report(runtime, expected, got)
