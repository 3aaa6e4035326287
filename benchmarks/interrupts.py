"""What epoch interruption (and fuel) costs a guest: the same loops on engines with and
without them.

Epoch checks are compiled into every loop back-edge and function entry; fuel metering into
every basic block. Two workloads: a pure compute loop (the worst case for a check per
iteration) and the WASI-call loop of ``wasi_calls.py`` (a host call per iteration); and the
cost of entering an export with signal handlers installed. ``make bench`` runs it.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import wasmtime

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe, publish
from wasi_calls import GUEST

from virtwasi.client import make_engine
from virtwasi.runtime import Session
from virtwasi.storage.memfs import MemoryStorage

REPEATS = 9
LOOP = bytes(wasmtime.wat2wasm(r"""
(module
  (func (export "spin") (param $n i32) (result i32) (local $x i32)
    (block (loop (br_if 1 (i32.eqz (local.get $n)))
      (local.set $x (i32.add (i32.mul (local.get $x) (i32.const 1103515245))
                             (i32.const 12345)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1))) (br 0)))
    (local.get $x)))
"""))
ITERATIONS = 50_000_000
CALLS = 20_000


def median_seconds(run: object) -> float:
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def compute_loop(epochs: bool, fuel: bool) -> float:
    engine = make_engine(epochs, fuel)
    store = wasmtime.Store(engine)
    if epochs:
        store.set_epoch_deadline(1)
    if fuel:
        store.set_fuel(1 << 62)
    spin = wasmtime.Instance(store, wasmtime.Module(engine, LOOP), []).exports(store)["spin"]
    assert isinstance(spin, wasmtime.Func)
    return median_seconds(lambda: spin(store, ITERATIONS)) / ITERATIONS * 1e9  # ns/iteration


def wasi_loop(signals: tuple[int, ...]) -> float:
    with Session(GUEST, mounts={"/": MemoryStorage()}, signals=signals) as session:
        return median_seconds(lambda: session.call("fd_fdstat_get", CALLS)) / CALLS * 1e6


def call_overhead(signals: tuple[int, ...]) -> float:
    """us for one Session.call of an export that returns at once (handlers set per call)."""
    with Session(GUEST, mounts={"/": MemoryStorage()}, signals=signals) as session:
        return median_seconds(lambda: [session.call("fd_fdstat_get", 0)
                                       for _ in range(1000)]) / 1000 * 1e6


def report() -> str:
    plain, epochs, fuel = (compute_loop(False, False), compute_loop(True, False),
                           compute_loop(False, True))
    calls_off, calls_on = wasi_loop(()), wasi_loop((2, 15))
    enter_off, enter_on = call_overhead(()), call_overhead((2, 15))
    lines = [
        "## Interrupts and limits: what epoch checks and fuel cost a guest",
        "",
        f"Machine: {describe()}  ",
        "Command: `make bench` (`python benchmarks/interrupts.py`)  ",
        f"A compute loop of {ITERATIONS:,} iterations (a multiply and an add each), on engines "
        "without and with epoch interruption (what Ctrl-C, SIGTERM and --timeout use) and "
        f"fuel (--fuel); then the fd_fdstat_get loop of the WASI calls benchmark ({CALLS:,} "
        "calls), and entering an export that returns at once, without and with signal "
        f"handling. Medians of {REPEATS} runs; ratios against the plain engine in the same "
        "run. The command line always handles signals, so it always compiles epoch checks; "
        "the Python API compiles them only when a timeout or signals are asked for.",
        "",
        "| what | plain | with epochs | ratio | with fuel | ratio |",
        "|---|---:|---:|---:|---:|---:|",
        f"| compute loop (ns/iteration) | {plain:.2f} | {epochs:.2f} | {epochs / plain:.2f}x "
        f"| {fuel:.2f} | {fuel / plain:.2f}x |",
        f"| fd_fdstat_get loop (us/call) | {calls_off:.2f} | {calls_on:.2f} | "
        f"{calls_on / calls_off:.2f}x | — | — |",
        f"| entering an export (us) | {enter_off:.1f} | {enter_on:.1f} | "
        f"{enter_on / enter_off:.2f}x | — | — |",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(publish(report()))
