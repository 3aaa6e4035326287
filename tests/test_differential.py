"""Every fixture behaves the same on wasmtime's built-in WASI and on virtwasi.

Each case runs on the reference (a temporary host folder), on virtwasi's virtual
implementation over a host folder and over the in-memory default, and on the native
implementation over a host folder; exit code, stdout, stderr and the final file tree must
all be equal.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from conftest import FIXTURES

from virtwasi.diff import REFERENCE, Comparison, default_runtimes, report, run_on


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
RUNTIMES = [name for name in default_runtimes() if name != REFERENCE]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_same_behaviour_as_wasmtime(case: str, runtime: str, tmp_path: Path) -> None:
    module, args, prepare, stdin = CASES[case]
    comparison = Comparison(FIXTURES / module, args)
    for name in (REFERENCE, runtime):
        comparison.outcomes[name] = run_on(name, FIXTURES / module, args, tmp_path / name,
                                           env=ENV, stdin=stdin, prepare=prepare)
    assert comparison.same, report(comparison)
