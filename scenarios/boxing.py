"""Boxing: private handles add one level of indirection, and cost no more than native's.

From the 2021 notes: "These private types have to be boxed. Actually no worse than the
native implementation to have one level of indirection." With transparent types the fd a
program holds is the implementation's own index: one lookup reaches the descriptor. With
private types it indexes the client's own fd table, whose entry is a handle in the client's
own handle table, which leads to the descriptor: one more level, the box. The native
implementation has the same level: the client's fd table, whose entry is a host file
descriptor. This scenario times a wasm hot loop of small reads through each: a WAT program
that opens a file and then calls fd_read 20,000 times, 16 bytes each.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime

from virtwasi.client import Client
from virtwasi.demo.narrate import Narration
from virtwasi.runtime import WasiWorld
from virtwasi.storage.memfs import MemoryStorage
from virtwasi.world import Semantics

CALLS = 20_000
CHUNK = 16
ROUNDS = 7  # timed runs per mode, interleaved; the median is reported
RIGHTS = 0x1FFFFFFF
DATA = bytes(range(256)) * (CALLS * CHUNK // 256)
# open() -> fd or -errno; reads(fd, n): seek to 0, then n fd_reads of 16 bytes -> total bytes.
GUEST = f"""
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_seek" (func $fd_seek (param i32 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "data.bin")
  (func (export "open") (result i32) (local $e i32)
    (local.set $e (call $path_open (i32.const 3) (i32.const 1) (i32.const 0) (i32.const 8)
      (i32.const 0) (i64.const {RIGHTS}) (i64.const {RIGHTS}) (i32.const 0) (i32.const 16)))
    (if (result i32) (local.get $e)
      (then (i32.sub (i32.const 0) (local.get $e)))
      (else (i32.load (i32.const 16)))))
  (func (export "reads") (param $fd i32) (param $n i32) (result i32)
    (local $total i32) (local $e i32)
    (i32.store (i32.const 32) (i32.const 64))       ;; one iovec: 16 bytes at 64
    (i32.store (i32.const 36) (i32.const {CHUNK}))
    (local.set $e (call $fd_seek (local.get $fd) (i64.const 0) (i32.const 0) (i32.const 56)))
    (if (local.get $e) (then (return (i32.sub (i32.const 0) (local.get $e)))))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $e (call $fd_read (local.get $fd) (i32.const 32) (i32.const 1) (i32.const 48)))
        (if (local.get $e) (then (return (i32.sub (i32.const 0) (local.get $e)))))
        (local.set $total (i32.add (local.get $total) (i32.load (i32.const 48))))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $total)))
"""


@dataclass
class Mode:
    name: str
    semantics: Semantics
    impl: str
    path: str  # what one fd_read goes through to reach the file
    client: Client | None = None
    fd: int = 0
    totals: list[int] = field(default_factory=list)  # bytes each timed run read
    us_per_call: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.us_per_call)


MODES = [
    Mode("private", Semantics.COMPONENT_MODEL, "virtual",
         "fd -> own fd table -> own handle table -> descriptor"),
    Mode("transparent", Semantics.TRANSPARENT, "virtual",
         "fd = index in the implementation's table -> descriptor"),
    Mode("native", Semantics.COMPONENT_MODEL, "native",
         "fd -> own fd table -> host fd"),
]


def main() -> int:
    say = Narration("boxing: the cost of private handles, beside transparent ones and native")
    say.say(__doc__.split("\n\n", 1)[1] if __doc__ else "")
    guest = wasmtime.wat2wasm(GUEST)
    with tempfile.TemporaryDirectory(prefix="virtwasi-boxing-") as folder:
        (Path(folder) / "data.bin").write_bytes(DATA)
        worlds = []
        try:
            say.section("setting up")
            for mode in MODES:
                tree = MemoryStorage()
                tree.fs.pipe("/data.bin", DATA)
                host = WasiWorld({"/": folder if mode.impl == "native" else tree},
                                 semantics=mode.semantics, impl=mode.impl)
                worlds.append(host)
                mode.client = host.client(bytes(guest), name="reader")
                mode.fd = mode.client.call("open")
                mode.client.call("reads", mode.fd, 500)  # warm up
            say.columns(["mode", "implementation", "file", "one fd_read goes"],
                        [[m.name, m.impl if m.impl == "native" else
                          f"virtual, {m.semantics.value}", f"fd {m.fd}", m.path]
                         for m in MODES])
            say.section(f"timing: {ROUNDS} rounds of {CALLS:,} fd_reads of {CHUNK} bytes")
            for _ in range(ROUNDS):  # interleaved, so a busy moment hits every mode alike
                for mode in MODES:
                    assert mode.client is not None
                    start = time.perf_counter()
                    mode.totals.append(mode.client.call("reads", mode.fd, CALLS))
                    mode.us_per_call.append((time.perf_counter() - start) * 1e6 / CALLS)
        finally:
            for host in worlds:
                host.close()

    private, transparent, native = MODES
    say.columns(
        ["mode", "us per fd_read (median)", "fastest", "slowest", "/ transparent", "/ native"],
        [[m.name, f"{m.median:.2f}", f"{min(m.us_per_call):.2f}", f"{max(m.us_per_call):.2f}",
          f"{m.median / transparent.median:.2f}x", f"{m.median / native.median:.2f}x"]
         for m in MODES],
    )

    say.section("what this shows")
    say.claim(f"every run of every mode read all {CALLS * CHUNK:,} bytes, {CHUNK} at a time",
              all(t == CALLS * CHUNK for m in MODES for t in m.totals))
    ratio = private.median / transparent.median
    say.say(f"The box costs a table lookup and an identity check on the descriptor's type, "
            f"inside a call that crosses from wasm into the host: measured here, private "
            f"handles cost {ratio:.2f}x what transparent ones do. "
            + ("(In this simulator they even come out ahead: " if ratio < 1 else "(Why it is "
               "this close: ")
            + "a borrow of the implementation's own type takes a lifting path specialized "
            "once per client and function, while a transparent integer takes the general "
            "route, the implementation's own resource_rep with its checks. The claim below "
            "is only a bound, generous enough for a busy machine.)")
    say.claim("private handles cost no more than 1.5x transparent ones per call", ratio <= 1.5)
    versus = private.median / native.median
    say.say(f"Against the host's own WASI, which keeps the same one level (its fd table), "
            f"private handles in an unprivileged library measured {versus:.2f}x native: "
            + ("no worse than native, as the notes say. " if versus <= 1.05 else
               "close to native. ")
            + "The claim below is again a generous bound, not the measurement.")
    say.claim("the virtual implementation with private handles costs no more than 2x native",
              versus <= 2.0)
    return say.finish()


if __name__ == "__main__":
    sys.exit(main())
