"""Per-call cost of WASI preview 1 imports: virtwasi (in memory) against wasmtime's own WASI.

A WAT guest calls one import N times in a loop, so start-up is excluded. Both runtimes run in
this process, one after the other, on the same machine. Run with ``make bench``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import wasmtime

from virtwasi.runtime import Session

CALLS = 20_000
REPEATS = 5
GUEST = bytes(wasmtime.wat2wasm(r"""
(module
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fdstat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_filestat_get"
    (func $pstat (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "bench.txt")
  (data (i32.const 200) "0123456789abcdef")
  (data (i32.const 300) "\c8\00\00\00\10\00\00\00")
  (global $fd (mut i32) (i32.const -1))
  (func (export "_start"))
  (func (export "setup") (result i32)
    (local $e i32)
    (local.set $e (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 9)
      (i32.const 9) (i64.const 0x3fffffff) (i64.const 0x3fffffff) (i32.const 0) (i32.const 400)))
    (global.set $fd (i32.load (i32.const 400)))
    (local.get $e))
  (func (export "fd_fdstat_get") (param $n i32) (result i32) (local $e i32)
    (block (loop (br_if 1 (i32.eqz (local.get $n)))
      (local.set $e (i32.or (local.get $e) (call $fdstat (i32.const 3) (i32.const 512))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1))) (br 0)))
    (local.get $e))
  (func (export "fd_write_16") (param $n i32) (result i32) (local $e i32)
    (block (loop (br_if 1 (i32.eqz (local.get $n)))
      (local.set $e (i32.or (local.get $e)
        (call $write (global.get $fd) (i32.const 300) (i32.const 1) (i32.const 600))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1))) (br 0)))
    (local.get $e))
  (func (export "path_filestat_get") (param $n i32) (result i32) (local $e i32)
    (block (loop (br_if 1 (i32.eqz (local.get $n)))
      (local.set $e (i32.or (local.get $e)
        (call $pstat (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 9) (i32.const 768))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1))) (br 0)))
    (local.get $e)))
"""))
WORKLOADS = ["fd_fdstat_get", "fd_write_16", "path_filestat_get"]


def per_call_us(call: object) -> float:
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        errors = call(CALLS)  # type: ignore[operator]
        samples.append((time.perf_counter() - start) / CALLS * 1e6)
        assert errors == 0, "the guest saw an error"
    return statistics.median(samples)


def measure_virtwasi() -> dict[str, float]:
    with Session(GUEST) as session:
        assert session.call("setup") == 0
        return {w: per_call_us(lambda n, w=w: session.call(w, n)) for w in WORKLOADS}


def measure_wasmtime(root: Path) -> dict[str, float]:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    config = wasmtime.WasiConfig()
    config.preopen_dir(str(root), "/")
    store.set_wasi(config)
    exports = linker.instantiate(store, wasmtime.Module(engine, GUEST)).exports(store)

    def call(name: str, *args: int) -> object:
        func = exports[name]
        assert isinstance(func, wasmtime.Func)
        return func(store, *args)

    assert call("setup") == 0
    return {w: per_call_us(lambda n, w=w: call(w, n)) for w in WORKLOADS}


def report() -> str:
    with tempfile.TemporaryDirectory() as root:
        reference = measure_wasmtime(Path(root))
    ours = measure_virtwasi()
    lines = [
        "## WASI calls: virtwasi (in-memory default) against wasmtime's built-in WASI",
        "",
        "Command: `make bench` (`python benchmarks/wasi_calls.py`)  ",
        f"A WAT guest calls the import {CALLS:,} times in a loop; median of {REPEATS} loops. "
        "wasmtime's WASI serves a temporary host folder (page cache), virtwasi its in-memory "
        "default; the ratio is virtwasi's time over wasmtime's, measured in the same process.",
        "",
        "| call | wasmtime us/call | virtwasi us/call | ratio |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {w} | {reference[w]:.2f} | {ours[w]:.2f} | {ours[w] / reference[w]:.2f}x |"
              for w in WORKLOADS]
    return "\n".join(lines) + "\n"


def main() -> int:
    text = report()
    print(text)
    if len(sys.argv) > 1:
        with open(sys.argv[1], "a") as out:
            out.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
