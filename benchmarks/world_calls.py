"""What a call across the membrane costs, against a plain Python call of the same function.

Every WASI call a guest makes will cross the membrane once, so the lift of a borrowed handle
must stay a table lookup and an identity check. Run with ``make bench``; results go to
BENCHMARKS.md.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from machine import describe

from virtwasi.world import Context, Func, ResourceType, Semantics, World, borrow, given, lent

CALLS = 20_000
REPEATS = 7


def median_us(fn: Callable[[], Any]) -> float:
    """Median over REPEATS runs of the per-call time of ``fn`` (which makes CALLS calls)."""
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) / CALLS * 1e6)
    return statistics.median(samples)


class Library:
    """The file library. It keeps the last ``size`` it exported, which the reference calls
    directly."""

    size: Callable[[Any], int]

    def __call__(self, ctx: Context) -> dict[str, Func | ResourceType]:
        file = ctx.resource_type("file", destructor=lambda rep: None)

        def size(h: Any) -> int:
            rep = h if isinstance(h, list) else ctx.resource_rep(file, h)
            return len(rep)

        self.size = size
        return {
            "file": file,
            "open": ctx.func(lambda: ctx.resource_new(file, [0] * 8), [], [given(file)],
                             "open"),
            "size": ctx.func(size, [lent(file)], []),
            "close": ctx.func(lambda h: ctx.resource_drop(file, h), [given(file)], [],
                              "close"),
        }


library = Library()


class Middle:
    """A non-defining instance that receives the handle as its own borrow and drops it."""

    def __call__(self, ctx: Context) -> dict[str, Func | ResourceType]:
        file = ctx.imports["lib"]["file"]
        assert isinstance(file, ResourceType)
        self.ctx = ctx
        return {"touch": ctx.func(lambda h: ctx.resource_drop(file, h), [borrow(file)], [],
                                  "touch")}


def measure() -> list[tuple[str, float]]:
    rows: list[tuple[str, float]] = []
    # The reference: the very function the library exports, called directly with its rep.
    World(Semantics.COMPONENT_MODEL).instantiate("lib", library)
    plain = library.size
    rep = [0] * 8

    def reference() -> None:
        for _ in range(CALLS):
            plain(rep)

    rows.append(("reference: the exported function called directly", median_us(reference)))

    for semantics in (Semantics.COMPONENT_MODEL, Semantics.PROPOSAL_2021, Semantics.TRANSPARENT):
        rows += measure_semantics(semantics)
    return rows


def measure_semantics(semantics: Semantics) -> list[tuple[str, float]]:
    world = World(semantics)
    lib = world.instantiate("lib", library)
    size, opener, closer = lib.exports.size, lib.exports.open, lib.exports.close
    h = opener()

    def lifted() -> None:
        for _ in range(CALLS):
            size(h)

    def open_close() -> None:
        for _ in range(CALLS):
            closer(opener())

    rows = [
        (f"{semantics.value}: size(handle) across the membrane", median_us(lifted)),
        (f"{semantics.value}: open() then close()", median_us(open_close)),
    ]
    if semantics is Semantics.COMPONENT_MODEL:
        touch = world.instantiate("middle", Middle(), {"lib": lib}).exports.touch

        def lent_on() -> None:
            for _ in range(CALLS):
                touch(h)

        rows.append(("component-model: borrow into a non-definer, dropped there",
                     median_us(lent_on)))
    world.close()
    return rows


def report(rows: list[tuple[str, float]]) -> str:
    reference = rows[0][1]
    lines = [
        "# Benchmarks",
        "",
        "## World: a call across the membrane",
        "",
        f"Machine: {describe()}  ",
        "Command: `make bench` (`python benchmarks/world_calls.py`)  ",
        f"Each figure is the median of {REPEATS} runs of {CALLS:,} calls; the ratio is against "
        "the plain Python call measured in the same process.",
        "",
        "| what | us/call | ratio |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {us:.2f} | {us / reference:.1f}x |" for name, us in rows]
    return "\n".join(lines) + "\n"


def main() -> int:
    text = report(measure())
    print(text)
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    if out is not None:
        out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
