"""Object stores: requests per guest operation, and a batch tool over a bucket.

Requests are counted by a proxy between the mount and a moto server on loopback
(:func:`virtwasi.storage.loopback.counting_proxy`): each operation runs as a whole guest
(fstool.wasm) on a mount opened for it, minus what opening the mount asks (a run with no
command). The in-memory default and host folders make no request at all.

The batch: batch.wasm upper-cases 100 small files of a bucket's folder into another
folder, through a mount of the bucket, against the obvious alternative: s3fs ``get`` of
the folder to a temporary one, the tool on wasmtime-py's own WASI with the folder
preopened (module compiled once, beforehand), s3fs ``put`` of the results. Each is the
median wall time of whole runs, interleaved; virtwasi's compiled module is cached.
Run with ``make bench``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import wasmtime
from machine import describe, publish

from virtwasi.runtime import run
from virtwasi.storage.loopback import counting_proxy, s3_filesystem, s3_options, s3_server
from virtwasi.storage.mounts import Remote

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
FSTOOL = FIXTURES / "fstool.wasm"
BATCH = FIXTURES / "batch.wasm"
REPEATS = 7
FILES = 100

OPERATIONS: list[tuple[str, list[str]]] = [
    ("read a small file", ["cat", "/small.txt"]),
    ("read a small file one folder down", ["cat", "/folder/f001"]),
    ("write a small new file", ["put", "/new.txt", "written"]),
    ("stat", ["stat", "/small.txt"]),
    ("list a folder of 100 files", ["ls", "/folder"]),
    ("stat 100 files after listing their folder", ["ls", "/folder", *[
        word for i in range(100) for word in ("stat", f"/folder/f{i:03}")]]),
    ("rename a small file", ["mv", "/small.txt", "/renamed.txt"]),
    ("remove a file", ["rm", "/small.txt"]),
]


def requests_per_operation(endpoint: str) -> list[tuple[str, int]]:
    fs = s3_filesystem(endpoint)
    rows = []
    with counting_proxy(endpoint) as (proxy, log):
        for number, (name, commands) in enumerate(OPERATIONS):
            bucket = f"requests-{number}"
            fs.mkdir(bucket)
            fs.pipe_file(f"{bucket}/small.txt", b"hello")
            fs.pipe({f"{bucket}/folder/f{i:03}": b"x" * i for i in range(100)})
            mount = Remote(f"s3://{bucket}", s3_options(proxy))
            start = len(log)
            run(FSTOOL, [], mounts={"/": mount})
            opening = len(log) - start
            start = len(log)
            result = run(FSTOOL, commands, mounts={"/": mount})
            if result.exit_code != 0:
                raise RuntimeError(f"{name}: {result.stdout.decode()}")
            rows.append((name, len(log) - start - opening))
    return rows


def fill(fs: Any, bucket: str) -> None:
    fs.mkdir(bucket)
    fs.pipe({f"{bucket}/in/file-{i:03}.txt": f"line {i} of a small file\n".encode() * 40
             for i in range(FILES)})


def through_mount(endpoint: str, bucket: str, out: str) -> float:
    mount = Remote(f"s3://{bucket}", s3_options(endpoint))
    start = time.perf_counter()
    result = run(BATCH, ["/data/in", f"/data/{out}"], mounts={"/data": mount})
    took = time.perf_counter() - start
    if result.stdout.decode().split(",")[0] != f"{FILES} files":
        raise RuntimeError(f"batch on the mount: {result.stdout.decode()}")
    return took


def copied(endpoint: str, bucket: str, out: str,
           compiled: tuple[wasmtime.Engine, wasmtime.Module]) -> float:
    engine, module = compiled
    fs = s3_filesystem(endpoint)
    fs.invalidate_cache()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="virtwasi-bench-") as tmp:
        fs.get(f"{bucket}/in/", f"{tmp}/in/", recursive=True)
        config = wasmtime.WasiConfig()
        config.argv = ["batch", "/data/in", f"/data/{out}"]
        config.preopen_dir(tmp, "/data")
        stdout = Path(tmp).parent / f"{Path(tmp).name}.out"
        config.stdout_file = str(stdout)
        store = wasmtime.Store(engine)
        store.set_wasi(config)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        instance = linker.instantiate(store, module)
        start_fn = instance.exports(store)["_start"]
        assert isinstance(start_fn, wasmtime.Func)
        try:
            start_fn(store)
        except wasmtime.ExitTrap as exit_:
            if exit_.code != 0:
                raise
        fs.put(f"{tmp}/{out}/", f"{bucket}/{out}/", recursive=True)
    took = time.perf_counter() - start
    said = stdout.read_text()
    stdout.unlink()
    if said.split(",")[0] != f"{FILES} files":
        raise RuntimeError(f"batch on wasmtime: {said}")
    return took


def batch(endpoint: str) -> tuple[float, float, int, int]:
    """Medians of the mount and of the copies, and the requests of one run of each."""
    fs = s3_filesystem(endpoint)
    fill(fs, "batch")
    engine = wasmtime.Engine()
    module = (engine, wasmtime.Module.from_file(engine, str(BATCH)))
    through_mount(endpoint, "batch", "warm")  # compiles and caches the module
    mounted, reference = [], []
    for i in range(REPEATS):
        mounted.append(through_mount(endpoint, "batch", f"mounted-{i}"))
        reference.append(copied(endpoint, "batch", f"copied-{i}", module))
    with counting_proxy(endpoint) as (proxy, log):
        through_mount(proxy, "batch", "counted-mount")
        mount_requests = len(log)
        copied(proxy, "batch", "counted-copy", module)
        copy_requests = len(log) - mount_requests
    return statistics.median(mounted), statistics.median(reference), mount_requests, \
        copy_requests


def report() -> str:
    with s3_server() as endpoint:
        rows = requests_per_operation(endpoint)
        mounted, reference, mount_requests, copy_requests = batch(endpoint)
    lines = [
        "## Object stores: requests per operation, and a batch over a bucket",
        "",
        f"Machine: {describe()}  ",
        "Command: `make bench` (`python benchmarks/object_store.py`)  ",
        "Requests each guest operation (fstool.wasm) makes to S3 (moto on loopback, counted by "
        "a proxy), each on a mount opened for it, minus the mount's own (one `HEAD` of the "
        "bucket); the in-memory default and host folders make none. Then batch.wasm "
        f"upper-cases {FILES} small files of a bucket's folder into another, through a mount, "
        "against s3fs `get` to a temporary folder, the tool on wasmtime-py's built-in WASI "
        "with the folder preopened (compiled beforehand), and s3fs `put` of the results: "
        f"median wall time of {REPEATS} whole runs each, interleaved, and the requests of one "
        "run; the ratio is against the copies.",
        "",
        "| operation | requests |",
        "|---|---:|",
        *[f"| {name} | {count} |" for name, count in rows],
        "",
        "| batch | ms | requests | ratio |",
        "|---|---:|---:|---:|",
        f"| get, wasmtime-py, put | {reference * 1000:.0f} | {copy_requests} | 1.00x |",
        f"| through a mount | {mounted * 1000:.0f} | {mount_requests} | "
        f"{mounted / reference:.2f}x |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(publish(report()))
