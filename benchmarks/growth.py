"""Costs that must stay flat as things grow: open fds, entries in a directory, path depth.

A super-linear cost shows as a rising row. Each figure is the median us per operation of
the preview 1 adapter of a real client (a WAT module with a memory, its imports called
from Python, so the wasm crossing, a constant, is left out), on the in-memory default:

- open + close of one file while N other files are held open (the fd table's allocation);
- path_filestat_get of one name in a directory of N entries (the lookup);
- fd_readdir of a whole directory of N entries, per entry (the listing);
- path_filestat_get of a file D directories deep, per component (the walk), on the
  in-memory default and on a host folder.

The ratio is against the smallest size in the same run. Then whole runs of the C program
tests/fixtures/deep.c making, checking and removing a chain of N nested directories on a
host folder, virtwasi against wasmtime's built-in WASI in the same run.
"""

from __future__ import annotations

import os
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import wasmtime
from machine import describe, publish

from virtwasi.compare.diff import remove_folder, runner
from virtwasi.runtime import Session
from virtwasi.storage.base import Storage
from virtwasi.storage.hostdir import HostDirStorage
from virtwasi.storage.memfs import MemoryStorage
from virtwasi.wasi.abi import Oflags, Rights

GUEST = bytes(wasmtime.wat2wasm('(module (memory (export "memory") 16) (func (export "_start")))'))
RW = int(Rights.FD_READ | Rights.FD_WRITE | Rights.FD_SEEK)
NAME, OUT, STAT, BUF = 1024, 8000, 8192, 16384
REPEATS = 5
DEEP = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "deep.wasm"
CHAINS = [1_000, 2_000, 10_000]


def median_us(action: Callable[[], None], count: int) -> float:
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(count):
            action()
        samples.append((time.perf_counter() - start) / count * 1e6)
    return statistics.median(samples)


def put_name(session: Session, text: str) -> int:
    raw = text.encode()
    session.write_memory(NAME, raw)
    return len(raw)


def open_close(held: int) -> float:
    tree = MemoryStorage()
    with Session(GUEST, mounts={"/": tree}) as session:
        adapter = session.adapter
        for i in range(held):
            length = put_name(session, f"held{i}")
            adapter.path_open(3, 0, NAME, length, int(Oflags.CREAT), RW, RW, 0, OUT)
        length = put_name(session, "probe")
        adapter.path_open(3, 0, NAME, length, int(Oflags.CREAT), RW, RW, 0, OUT)
        adapter.fd_close(struct.unpack("<I", session.read_memory(OUT, 4))[0])

        def once() -> None:
            adapter.path_open(3, 0, NAME, length, 0, RW, RW, 0, OUT)
            adapter.fd_close(struct.unpack("<I", session.read_memory(OUT, 4))[0])

        return median_us(once, 2000)


def directory_of(entries: int) -> MemoryStorage:
    """A tree whose directory ``d`` holds ``entries`` empty files."""
    tree = MemoryStorage()
    tree.mkdir("d")
    for i in range(entries):
        tree.open(f"d/f{i}", create=True).close()
    return tree


def lookup(entries: int) -> float:
    with Session(GUEST, mounts={"/": directory_of(entries)}) as session:
        adapter = session.adapter
        length = put_name(session, f"d/f{entries // 2}")
        return median_us(lambda: adapter.path_filestat_get(3, 0, NAME, length, STAT), 5000)


def listing(entries: int) -> float:
    with Session(GUEST, mounts={"/": directory_of(entries)}) as session:
        adapter = session.adapter
        length = put_name(session, "d")
        readdir = int(Rights.FD_READ | Rights.FD_READDIR)
        adapter.path_open(3, 0, NAME, length, int(Oflags.DIRECTORY), readdir, readdir, 0, OUT)
        fd = struct.unpack("<I", session.read_memory(OUT, 4))[0]

        def whole() -> None:
            cookie = 0
            while True:
                adapter.fd_readdir(fd, BUF, 4096, cookie, OUT)
                used = struct.unpack("<I", session.read_memory(OUT, 4))[0]
                data = session.read_memory(BUF, used)
                at, last = 0, cookie
                while at + 24 <= used:
                    next_cookie, _, namelen, _ = struct.unpack_from("<QQIB", data, at)
                    if at + 24 + namelen > used:
                        break
                    last, at = next_cookie, at + 24 + namelen
                if used < 4096 or last == cookie:
                    return
                cookie = last

        return median_us(whole, 3) / (entries + 2)


def chain_path(levels: int) -> str:
    # One letter a level: 1,000 levels stay under PATH_MAX, past which nothing is looked up.
    return "/".join(chr(ord("a") + i % 26) for i in range(levels))


def stat_deep(tree: Storage, levels: int) -> float:
    """us per component of path_filestat_get of ``tree``'s file ``levels`` deep."""
    with Session(GUEST, mounts={"/": tree}) as session:
        adapter = session.adapter
        length = put_name(session, f"{chain_path(levels)}/f")
        return median_us(lambda: adapter.path_filestat_get(3, 0, NAME, length, STAT),
                         2000) / (levels + 1)


def depth(levels: int) -> float:
    tree = MemoryStorage()
    for i in range(1, levels + 1):
        tree.mkdir(chain_path(i))
    tree.open(f"{chain_path(levels)}/f", create=True).close()
    return stat_deep(tree, levels)


def host_depth(levels: int) -> float:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch, "root")
        root.mkdir()
        with HostDirStorage(root) as tree:
            for i in range(1, levels + 1):
                tree.mkdir(chain_path(i))
            tree.open(f"{chain_path(levels)}/f", create=True).close()
            try:
                return stat_deep(tree, levels)
            finally:
                remove_folder(root)


def chain_run(runtime: str, levels: int) -> tuple[float, str]:
    """Seconds for deep.c to make, check and remove ``levels`` nested directories in a
    fresh host folder on ``runtime``, and the last line it printed."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch, "root")
        root.mkdir()
        start = time.perf_counter()
        result = runner(runtime)(DEEP, ["/c", str(levels), "make", "check", "rm"], root)
        took = time.perf_counter() - start
        if os.listdir(root):
            remove_folder(root)
            root.mkdir()
    return took, result.stdout.decode().strip().splitlines()[-1]


ROWS: list[tuple[str, Callable[[int], float], list[int]]] = [
    ("open + close, N files held open (us)", open_close, [10, 1_000, 10_000, 30_000]),
    ("stat of a name in a directory of N entries (us)", lookup, [10, 1_000, 100_000]),
    ("listing a directory of N entries (us per entry)", listing, [10, 1_000, 100_000]),
    ("stat of a file N directories deep (us per component)", depth, [1, 10, 100, 1_000]),
    ("the same on a host folder (us per component)", host_depth, [1, 10, 100, 1_000]),
]


def report() -> str:
    lines = [
        "## Growth: costs that must stay flat as things grow",
        "",
        f"Machine: {describe()}  ",
        "Command: `make bench` (`python benchmarks/growth.py`)  ",
        "The preview 1 adapter of a real client on the in-memory default, its imports called "
        f"from Python; median of {REPEATS} runs. Each cell: the cost at that size, then the "
        "ratio to the smallest size in the same run (a flat cost stays near 1.0x).",
        "",
        "| operation | sizes: cost (ratio) |",
        "|---|---|",
    ]
    for label, measure, sizes in ROWS:
        costs = [measure(size) for size in sizes]
        cells = ", ".join(f"N={size:,}: {cost:.2f} ({cost / costs[0]:.2f}x)"
                          for size, cost in zip(sizes, costs, strict=True))
        lines.append(f"| {label} | {cells} |")
    lines += [
        "",
        "A chain of N nested directories on a host folder: tests/fixtures/deep.c makes it "
        "(mkdir of each level by its full path, as wasi-libc names it), creates, stats, "
        "reads and lists the file at the bottom, and removes it all, once per runtime "
        "(`virtwasi run --dir`, against wasmtime's built-in WASI). The host kernel walks "
        "every path from the preopen for both, so both grow with N squared. A path of "
        "4 KiB or more is `ENAMETOOLONG` on both (past about 2,048 levels), so at 10,000 "
        "both stop there; the last lines say where.",
        "",
        "| N | virtwasi (s) | wasmtime (s) | ratio | virtwasi's last line | wasmtime's last line |",
        "|---|---|---|---|---|---|",
    ]
    for levels in CHAINS:
        ours, we_said = chain_run("virtual-host", levels)
        theirs, said = chain_run("wasmtime", levels)
        lines.append(f"| {levels:,} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.1f}x | "
                     f"{we_said} | {said} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(publish(report()))
