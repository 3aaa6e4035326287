"""What epoch interruption (and fuel) costs a guest: the same loops on engines with and
without them.

Epoch checks are compiled into every loop back-edge and function entry; fuel metering into
every basic block. Two workloads: a pure compute loop (the worst case for a check per
iteration) and the WASI-call loop of ``wasi_calls.py`` (a host call per iteration). Run with
``PYTHONPATH=. python benchmarks/interrupts.py``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import wasmtime

sys.path.insert(0, str(Path(__file__).parent))
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


def main() -> None:
    plain = compute_loop(False, False)
    epochs = compute_loop(True, False)
    fuel = compute_loop(False, True)
    print(f"compute loop: {plain:.3f} ns/iter plain, {epochs:.3f} with epochs "
          f"(x{epochs / plain:.3f}), {fuel:.3f} with fuel (x{fuel / plain:.3f})")
    off, on = wasi_loop(()), wasi_loop((2, 15))
    print(f"fd_fdstat_get loop: {off:.3f} us/call without epochs, {on:.3f} with "
          f"(x{on / off:.3f})")
    off, on = call_overhead(()), call_overhead((2, 15))
    print(f"Session.call of an empty export: {off:.1f} us without signals, {on:.1f} with")


if __name__ == "__main__":
    main()
