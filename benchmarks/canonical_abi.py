"""The canonical ABI on 1 MiB values: virtwasi's lift and lower against wasmtime-py's.

The echo component of the canonical ABI tests (`tests/canonkit.py`) for `list<u8>` and for
`string`: `echo(x)` hands its core arguments to the host import `host-echo(x)`, which
answers `x`. One echo call is two lowers and two lifts of the value: into the guest,
out to the host import, back into the guest, out to the caller. virtwasi runs it over
wasmtime's core API with its own ABI on both sides; wasmtime-py runs it with its component
API (the host import a Python function there too). Between calls the guest's allocator is
reset, so memory stays the same size. The ratio is wasmtime-py's time over virtwasi's, in the
same process: above 1, virtwasi is faster.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from machine import describe, publish

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from canonkit import Oracle, Ours, echo_component

SIZE = 1 << 20
REPEATS = 7
CALLS = 5


def median_ms(action: Callable[[], Any], repeats: int = REPEATS, calls: int = CALLS) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            action()
        samples.append((time.perf_counter() - start) / calls * 1e3)
    return statistics.median(samples)


def rows() -> list[tuple[str, float, float]]:
    values: list[tuple[str, Any, Any]] = [
        ("list<u8>", ("list", "u8"), bytes(range(256)) * (SIZE // 256)),
        ("string, ASCII (utf8)", "string", "abcdefgh" * (SIZE // 8)),
        ("string, 3-byte chars (utf8)", "string", "\u2603" * (SIZE // 3)),
    ]
    found = []
    for label, t, value in values:
        binary = echo_component(t)
        ours, oracle = Ours(binary), Oracle(binary)

        def ours_echo(ours: Ours = ours, value: Any = value) -> None:
            assert ours.call("echo", value) == value
            ours.call("reset")

        def their_echo(oracle: Oracle = oracle, value: Any = value) -> None:
            assert oracle.call("echo", value) == value
            oracle.call("reset")

        # wasmtime-py converts a list<u8> one element at a time: seconds a call, so fewer
        slow = isinstance(value, bytes)
        theirs = median_ms(their_echo, 3, 1) if slow else median_ms(their_echo)
        found.append((label, theirs, median_ms(ours_echo)))
    return found


def main() -> int:
    about = " ".join(__doc__.split("\n\n")[1].split())
    lines = [
        "## Canonical ABI: 1 MiB values across a component boundary",
        "",
        f"Machine: {describe()}  ",
        "Command: `make bench` (`python benchmarks/canonical_abi.py`)  ",
        f"{about} Each figure is the median of {REPEATS} runs of {CALLS} echo calls "
        "(wasmtime-py's list<u8>: of 3 single calls), in ms a call.",
        "",
        "| value | wasmtime-py | virtwasi | ratio |",
        "|---|---:|---:|---:|",
        *(f"| {label} | {theirs:.2f} | {mine:.2f} | {theirs / mine:.1f}x |"
          for label, theirs, mine in rows()),
    ]
    return publish("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
