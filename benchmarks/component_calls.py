"""Per-call cost of the WASI 0.2 calls behind preview 1's: a component on virtwasi, against
the same guest as a preview 1 module on virtwasi and against wasmtime's built-in WASI 0.2.

The guest is :mod:`wasi_calls`' preview 1 benchmark guest, its loops exported through a WIT
world and wrapped into a component by jco's preview 1 adapter, so each preview 1 call of the
loop becomes the WASI 0.2 calls the adapter makes for it (listed in the table). It runs as a
component on virtwasi (in memory) and on wasmtime-py's built-in WASI 0.2 (``add_wasip2``,
over a temporary host folder), and as the preview 1 module itself on virtwasi (in memory),
all in this process; virtwasi's loops and an empty host call take turns, as in
:mod:`wasi_calls`. Run with ``make bench``.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import wasi_calls
import wasmtime
import wasmtime.component as wc
from machine import describe, publish
from wasi_calls import BIG_FILE, CHUNK, EMPTY, empty_host_call, loop_us

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from componentkit import preview1_adapter, wasi_world, wasm_tools  # noqa: E402

from virtwasi.runtime import Session  # noqa: E402
from virtwasi.storage.memfs import MemoryStorage  # noqa: E402

CALLS = 5_000
REPEATS = 5
ROUNDS = 9
# The preview 1 guest's exports, by the component's (WIT) names for them.
EXPORTS = {"setup": "setup", "setup_read": "setup-read", "read_all": "read-all",
           "fd_fdstat_get": "fd-fdstat-get", "fd_write_16": "fd-write-sixteen",
           "path_filestat_get": "path-filestat-get", "open_close": "open-close"}
WORLD = """package virtwasi:bench;
world calls {
  include wasi:cli/imports@0.2.12;
  export setup: func() -> s32;
  export setup-read: func() -> s32;
  export read-all: func() -> s64;
  export fd-fdstat-get: func(n: u32) -> s32;
  export fd-write-sixteen: func(n: u32) -> s32;
  export path-filestat-get: func(n: u32) -> s32;
  export open-close: func(n: u32) -> s32;
}
"""
WORKLOADS = ["fd_fdstat_get", "fd_write_16", "path_filestat_get", "open_close"]
# What jco's adapter calls for each (counted on virtwasi's host functions).
BEHIND = {
    "fd_fdstat_get": "descriptor.get-type + get-flags",
    "fd_write_16": "output-stream.blocking-write-and-flush",
    "path_filestat_get": "descriptor.stat-at + metadata-hash-at",
    "open_close": "descriptor.open-at + get-type, descriptor drop",
}
READ_CALLS = "input-stream.blocking-read (read-via-stream once)"


def component_guest(scratch: Path) -> bytes:
    """The preview 1 benchmark guest as a component of the world above."""
    wit = wasi_world("wasi:cli/imports", scratch)
    (wit / "main.wit").write_text(WORLD)
    text = wasi_calls.GUEST_TEXT
    for module_name, wit_name in EXPORTS.items():
        text = text.replace(f'(export "{module_name}")', f'(export "{wit_name}")')
    core, embedded = scratch / "guest.wasm", scratch / "embedded.wasm"
    core.write_bytes(wasm_tools("parse", "-", stdin=text.encode()))
    wasm_tools("component", "embed", wit, core, "--world", "calls", "-o", embedded)
    out = scratch / "guest.component.wasm"
    wasm_tools("component", "new", embedded, "--adapt",
               f"wasi_snapshot_preview1={preview1_adapter()}", "-o", out)
    return out.read_bytes()


def gb_per_s(read_all: Callable[[], object]) -> float:
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        got = read_all()
        samples.append(BIG_FILE / (time.perf_counter() - start) / 1e9)
        assert got == BIG_FILE, f"the guest read {got} bytes"
    return statistics.median(samples)


def measure_wasmtime(component: bytes, root: Path) -> dict[str, float]:
    engine = wasmtime.Engine()
    linker = wc.Linker(engine)
    linker.add_wasip2()
    store = wasmtime.Store(engine)
    config = wasmtime.WasiConfig()
    config.preopen_dir(str(root), "/")
    store.set_wasi(config)
    instance = linker.instantiate(store, wc.Component(engine, component))

    def export(name: str) -> Callable[..., object]:
        index = instance.get_export_index(store, EXPORTS[name])
        func = None if index is None else instance.get_func(store, index)
        assert func is not None, f"the component exports no {EXPORTS[name]}"
        return partial(func, store)

    assert export("setup")() == 0 and export("setup_read")() == 0
    found = {w: statistics.median(loop_us(export(w), CALLS)[0] for _ in range(REPEATS))
             for w in WORKLOADS}
    found["read"] = gb_per_s(export("read_all"))
    return found


def measure_virtwasi(component: bytes, data: bytes
                     ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Median us/call of each workload as a component ("0.2") and as the preview 1 module
    ("p1"), and each in empty host calls (least CPU time over the empty call's), the three
    taking turns loop by loop; and the read throughputs in GB/s."""
    found: dict[str, dict[str, float]] = {"0.2": {}, "p1": {}}
    units: dict[str, dict[str, float]] = {"0.2": {}, "p1": {}}
    sessions = {}
    for kind, guest in (("0.2", component), ("p1", wasi_calls.GUEST)):
        memory = MemoryStorage()
        with memory.open("big.bin", create=True, writable=True) as file:
            file.write(data, 0)
        sessions[kind] = session = Session(guest, mounts={"/": memory})
        names = EXPORTS if kind == "0.2" else {w: w for w in EXPORTS}
        assert session.call(names["setup"]) == 0 and session.call(names["setup_read"]) == 0
    try:
        with empty_host_call() as empty:
            loops: dict[tuple[str, str], Callable[[int], object]] = {("", EMPTY): empty}
            for kind, session in sessions.items():
                names = EXPORTS if kind == "0.2" else {w: w for w in EXPORTS}
                loops |= {(kind, w): partial(session.call, names[w]) for w in WORKLOADS}
            rounds = [{key: loop_us(call, CALLS) for key, call in loops.items()}
                      for _ in range(ROUNDS)]
        least = {key: min(r[key][1] for r in rounds) for key in loops}
        for kind, w in loops:
            if kind:
                found[kind][w] = statistics.median(r[(kind, w)][0] for r in rounds)
                units[kind][w] = least[(kind, w)] / least[("", EMPTY)]
        found[""] = {EMPTY: statistics.median(r[("", EMPTY)][0] for r in rounds)}
        for kind, session in sessions.items():
            found[kind]["read"] = gb_per_s(partial(
                session.call, EXPORTS["read_all"] if kind == "0.2" else "read_all"))
    finally:
        for session in sessions.values():
            session.close()
    return found, units


def report() -> str:
    data = os.urandom(BIG_FILE)
    with tempfile.TemporaryDirectory(prefix="virtwasi-bench-") as scratch:
        component = component_guest(Path(scratch))
        root = Path(scratch, "root")
        root.mkdir()
        Path(root, "big.bin").write_bytes(data)
        reference = measure_wasmtime(component, root)
    found, units = measure_virtwasi(component, data)
    ours, p1 = found["0.2"], found["p1"]
    mib, kib = BIG_FILE >> 20, CHUNK >> 10
    lines = [
        "## Component calls: WASI 0.2 behind preview 1's calls, per call",
        "",
        f"Machine: {describe()}  ",
        "Command: `make bench` (`python benchmarks/component_calls.py`)  ",
        "The preview 1 benchmark guest of the WASI calls section, its loops exported through "
        "a WIT world and wrapped into a component by jco's preview 1 adapter: each preview 1 "
        "call of a loop becomes the WASI 0.2 calls the adapter makes for it (second column). "
        f"A loop makes {CALLS:,} calls; the read pass reads a {mib} MiB file from start to "
        f"end in {kib} KiB fd_read calls into guest memory. The component runs on virtwasi "
        "(in-memory default) and on wasmtime-py's built-in WASI 0.2 (`add_wasip2`, a "
        "temporary host folder); the preview 1 column is the module itself on virtwasi "
        "(in memory), the target's reference. virtwasi's loops (both kinds) and an empty "
        f"host call take turns, one loop each per round for {ROUNDS} rounds (medians of "
        f"those loops); wasmtime's figures are medians of {REPEATS} loops. The ratios are "
        "of times measured in this process; the last two columns are the least CPU time of "
        "a loop over the least of the empty host call's loop (see the WASI calls section).",
        "",
        "| preview 1 call | WASI 0.2 calls behind it | wasmtime 0.2 | virtwasi 0.2 | "
        "virtwasi preview 1 | 0.2 / preview 1 | 0.2 / wasmtime | 0.2 in empty calls | "
        "preview 1 in empty calls |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in WORKLOADS:
        lines.append(
            f"| {wasi_calls.LABELS.get(w, w)} (us/call) | {BEHIND[w]} | {reference[w]:.2f} | "
            f"{ours[w]:.2f} | {p1[w]:.2f} | {ours[w] / p1[w]:.2f}x | "
            f"{ours[w] / reference[w]:.2f}x | {units['0.2'][w]:.1f} | {units['p1'][w]:.1f} |")
    lines.append(
        f"| fd_read {kib} KiB chunks, in memory (GB/s) | {READ_CALLS} | "
        f"{reference['read']:.2f} | {ours['read']:.2f} | {p1['read']:.2f} | "
        f"{p1['read'] / ours['read']:.2f}x | {reference['read'] / ours['read']:.2f}x | | |")
    lines += [
        "",
        f"For scale: the empty host call costs {found[''][EMPTY]:.2f} us. Targets: each "
        "call within 2x of its preview 1 equivalent; 64 KiB reads at least 2 GB/s.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(publish(report()))
