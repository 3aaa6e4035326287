"""The fixture cases every runtime and every backend is compared on: a module, its
arguments, the initial tree (made by ``prepare`` in an empty folder) and its stdin."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple


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
