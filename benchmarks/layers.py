"""Per-call cost of the policy layers: quota, audit and read-only, against no layer.

The WAT guest of wasi_calls.py calls one import N times in a loop, on the in-memory default,
with one layer stacked on the implementation or none. All four run in this process, side by
side: each round times one loop of each call through each, so that whatever else the machine
does falls on all of them alike. Run with ``make bench``; it writes (or replaces) its own
section of BENCHMARKS.md.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from machine import describe, publish
from wasi_calls import GUEST

from virtwasi.client import Client
from virtwasi.layers import audit_layer, quota_layer, read_only_layer
from virtwasi.runtime import WasiWorld
from virtwasi.storage.memfs import MemoryStorage
from virtwasi.world import Definition

CALLS = 5_000  # per loop
ROUNDS = 15  # loops of each call through each stack
TITLE = "## Layers: the per-call cost of a policy instance"
LABELS = {
    "fd_fdstat_get": "fd_fdstat_get",
    "fd_write_16": "fd_write, 16 B",
    "path_filestat_get": "path_filestat_get",
}
WORKLOADS = list(LABELS)  # the WASI calls benchmark's guest, its calls a layer sees


def client_through(stack: ExitStack, layers: list[tuple[str, Definition]], writes: bool
                   ) -> Client:
    """The guest, ready, with ``layers`` between it and a fresh in-memory tree."""
    tree = MemoryStorage()
    tree.fs.pipe("/bench.txt", b"")
    world = stack.enter_context(WasiWorld({"/": tree}, layers=layers))
    client = world.client(GUEST)
    if writes:  # opens bench.txt for writing
        assert client.call("setup") == 0
    return client


def measure(log: Path) -> dict[str, dict[str, float]]:
    """Median us/call of each workload through each stack (fd_write where it can write)."""
    stacks: dict[str, tuple[list[tuple[str, Definition]], bool]] = {
        "no layer": ([], True),
        "quota": ([("quota", quota_layer(max_bytes=1 << 40, max_inodes=1 << 20))], True),
        "audit": ([("audit", audit_layer(log))], True),
        # Nothing is open for writing through a read-only view: fd_write is refused.
        "read-only": ([("read-only", read_only_layer())], False),
    }
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in stacks}
    with ExitStack() as stack:
        clients = {name: client_through(stack, layers, writes)
                   for name, (layers, writes) in stacks.items()}
        for _ in range(ROUNDS):
            for workload in WORKLOADS:
                for name, client in clients.items():
                    if workload == "fd_write_16" and not stacks[name][1]:
                        continue
                    start = time.perf_counter()
                    errors = client.call(workload, CALLS)
                    elapsed = time.perf_counter() - start
                    assert errors == 0, f"{name}: the guest saw an error"
                    samples[name].setdefault(workload, []).append(elapsed / CALLS * 1e6)
    return {name: {w: statistics.median(times) for w, times in found.items()}
            for name, found in samples.items()}


def report() -> str:
    with tempfile.TemporaryDirectory(prefix="virtwasi-bench-") as tmp:
        log = Path(tmp) / "audit.jsonl"
        results = measure(log)
        log_lines = sum(1 for _ in log.open())
        log_bytes = log.stat().st_size
    base = results["no layer"]
    names = list(results)
    lines = [
        TITLE,
        "",
        f"Machine: {describe()}  ",
        "Command: `make bench` (`python benchmarks/layers.py`)  ",
        f"The guest of the WASI calls benchmark calls one import {CALLS:,} times in a loop, "
        "on the in-memory default, with one layer stacked on the implementation or none; "
        f"{ROUNDS} rounds each time one loop of every call through every stack, in turn, in "
        "this process. Each cell is the median us/call, then the ratio to no layer. The "
        "quota has limits it never reaches (so it counts, checks and passes); the audit "
        "writes one JSON line per call to a local file, each line written out at once; the "
        "read-only view opens nothing for writing, so it has no fd_write to time.",
        "",
        "| call | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for workload in WORKLOADS:
        cells = []
        for name in names:
            value = results[name].get(workload)
            ratio = "" if name == "no layer" or value is None else (
                f" ({value / base[workload]:.2f}x)")
            cells.append("—" if value is None else f"{value:.2f}{ratio}")
        lines.append(f"| {LABELS[workload]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"The audit log of that run: {log_lines:,} lines, {log_bytes / log_lines:.0f} bytes "
        "a line on average. fd_fdstat_get never reaches a layer: the preview 1 adapter "
        "answers it from its own fd table, so that row measures the adapter alone (any "
        "difference is noise). A write through the quota makes one more call below than the "
        "write itself: it asks for the file's size first, so that a write that would not fit "
        "is refused before any of it lands.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(publish(report()))
