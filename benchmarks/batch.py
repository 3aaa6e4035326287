"""Batches: virtwasi map's throughput at one and two workers, on the process pool and on a
Dask cluster, what an item costs beyond a single run, the storage requests an item makes,
and a projection of a batch of a million items.

The tool is upcase.wasm (one small input upper-cased into one output), whose own work is
a fraction of a millisecond, so an item's time is almost all of it what virtwasi spends
around the guest: a fresh world, the input served, the output published, the row. Each
engine runs batches of two sizes over a host folder into another; the difference of their
median wall times, divided by the difference of their sizes, is the time per item free of
start-up (workers spawned, module compiled or loaded); items per second are its inverse.
The single run it is compared with is the same item through ``virtwasi.run`` in this
process (the same Session, mounts and module cache), and ``virtwasi run`` as a process,
as a shell loop would run it. Requests per item are counted by a proxy in front of a moto
S3 server, for a batch from a bucket into the bucket. Run with ``make bench``.
"""

from __future__ import annotations

import contextlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from machine import describe, publish

import virtwasi
from virtwasi.runtime import run
from virtwasi.storage.loopback import counting_proxy, s3_filesystem, s3_options, s3_server
from virtwasi.storage.memfs import MemoryStorage

ROOT = Path(__file__).resolve().parent.parent
UPCASE = str(ROOT / "tests" / "fixtures" / "upcase.wasm")
SIZES = (100, 400)
REPEATS = 3
S3_ITEMS = 40
PUT_PER_PREFIX, GET_PER_PREFIX = 3500, 5500  # S3's request rates per second per prefix
MILLION = 1_000_000


def inputs(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"item{i:05}.txt").write_text(f"line {i} of a small input\n" * 4)


def timed_batch(folder: Path, out: Path, count: int, engine: dict[str, Any]) -> float:
    start = time.perf_counter()
    batch = virtwasi.map(UPCASE, str(folder), ["/in/{name}", "/out.txt"],
                         outputs={"/out.txt": f"{out}/{{stem}}.txt"}, progress=False,
                         **engine)
    took = time.perf_counter() - start
    if batch.ok != count:
        failed = next(item for item in batch.items if item.status != "ok")
        raise RuntimeError(f"{batch.summary()}; first: {failed.error}")
    return took


def per_item(work: Path, engine: dict[str, Any]) -> tuple[float, float, float]:
    """Seconds per item free of start-up, the start-up, and this process's CPU seconds
    per item (what the driver itself spends: the pool's ceiling on one machine)."""
    medians, cpu = [], []
    for count in SIZES:
        folder = work / f"in-{count}"
        if not folder.exists():
            inputs(folder, count)
        times = []
        for repeat in range(REPEATS):
            before = resource.getrusage(resource.RUSAGE_SELF)
            times.append(timed_batch(folder, work / f"out-{count}-{repeat}", count, engine))
            after = resource.getrusage(resource.RUSAGE_SELF)
            cpu.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
                        count))
        medians.append(statistics.median(times))
    slope = (medians[1] - medians[0]) / (SIZES[1] - SIZES[0])
    large = [seconds for seconds, count in cpu if count == SIZES[1]]
    small = [seconds for seconds, count in cpu if count == SIZES[0]]
    driver = (statistics.median(large) - statistics.median(small)) / (SIZES[1] - SIZES[0])
    return slope, medians[0] - SIZES[0] * slope, driver


def single_runs(work: Path) -> tuple[float, float]:
    """One item through virtwasi.run in this process, and virtwasi run as a process."""
    data = b"line 1 of a small input\n" * 4
    times = []
    for _ in range(60):
        tree = MemoryStorage()
        tree.fs.pipe("/item.txt", data)
        start = time.perf_counter()
        result = run(UPCASE, ["/in/item.txt", "/out.txt"], mounts={"/": "mem://", "/in": tree},
                     read_only=["/in"])
        times.append(time.perf_counter() - start)
        assert result.exit_code == 0
    folder = work / "single"
    inputs(folder, 1)
    processes = []
    for _ in range(7):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "virtwasi", "run", "--dir", f"{folder}::/in",
                        "--mount", "/=mem://", UPCASE, "/in/item00000.txt", "/out.txt"],
                       check=True, capture_output=True)
        processes.append(time.perf_counter() - start)
    return statistics.median(times[10:]), statistics.median(processes)


def requests_per_item() -> Counter[str]:
    """Requests by kind for a batch of S3_ITEMS items from a bucket into the bucket."""
    with s3_server() as endpoint, counting_proxy(endpoint) as (proxy, log):
        fs = s3_filesystem(endpoint)
        fs.mkdir("batch")
        fs.pipe({f"batch/in/item{i:03}.txt": b"a small input\n" for i in range(S3_ITEMS)})
        batch = virtwasi.map(UPCASE, "s3://batch/in/*.txt", ["/in/{name}", "/out.txt"],
                             outputs={"/out.txt": "s3://batch/out/{stem}.txt"},
                             storage_options={"s3": s3_options(proxy)}, workers=1,
                             progress=False)
        assert batch.ok == S3_ITEMS, batch.summary()
        kinds: Counter[str] = Counter()
        for line in log:
            method, _, target = line.partition(" ")
            kinds["LIST" if "list-type" in target else method] += 1
    return kinds


@contextlib.contextmanager
def dask_cluster(workers: int, folder: Path) -> Iterator[Any]:
    """A Dask scheduler and ``workers`` worker processes (one thread each), each in
    processes of their own as on a real cluster; a client of it."""
    from distributed import Client

    address = folder / f"scheduler-{workers}.json"
    quiet = subprocess.DEVNULL
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                                  "--scheduler-file", str(address), "--port", "0",
                                  "--no-dashboard"], stdout=quiet, stderr=quiet)
    started = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker",
                                "--scheduler-file", str(address), "--nworkers", str(workers),
                                "--nthreads", "1", "--no-dashboard"], stdout=quiet,
                               stderr=quiet)
    try:
        while not address.exists():
            time.sleep(0.05)
        with Client(scheduler_file=str(address)) as client:
            client.wait_for_workers(workers)
            yield client
    finally:
        for process in (started, scheduler):
            process.terminate()
            process.wait()


def scheduler_cpu(client: Any) -> float:
    usage = client.run_on_scheduler(lambda: resource.getrusage(resource.RUSAGE_SELF))
    return float(usage.ru_utime + usage.ru_stime)


def on_dask(work: Path, workers: int) -> tuple[float, float, float, float]:
    """per_item on a Dask cluster of ``workers``, and the scheduler's CPU per item."""
    with dask_cluster(workers, work) as client:
        before = scheduler_cpu(client)
        slope, startup, driver = per_item(work, {"client": client})
        items = REPEATS * sum(SIZES)
        return slope, startup, driver, (scheduler_cpu(client) - before) / items


def report() -> str:
    with tempfile.TemporaryDirectory(prefix="virtwasi-bench-batch-") as tmp:
        work = Path(tmp)
        single, process = single_runs(work)
        rows: list[Row] = []
        for workers in (1, 2):
            slope, startup, driver = per_item(work, {"workers": workers})
            rows.append(Row(f"process pool, {workers} worker{'s' if workers > 1 else ''}",
                            workers, slope, startup, driver, None))
        for workers in (1, 2):
            slope, startup, driver, scheduler = on_dask(work, workers)
            rows.append(Row(f"Dask, {workers} worker process{'es' if workers > 1 else ''}",
                            workers, slope, startup, driver, scheduler))
    kinds = requests_per_item()
    gets, puts = kinds["GET"] / S3_ITEMS, kinds["PUT"] / S3_ITEMS
    pool1, pool2, dask1, dask2 = rows
    lines = [
        "## Batches: virtwasi map at one and two workers, and a million items on paper",
        "",
        f"Machine: {describe()}  ",
        "Command: `make bench` (`python benchmarks/batch.py`)  ",
        "upcase.wasm (one small input upper-cased into one output, a fraction of a "
        "millisecond of guest work) over a host folder into another. Each engine runs "
        f"batches of {SIZES[0]} and {SIZES[1]} items, {REPEATS} times each; the time per "
        "item is the difference of the median wall times over the difference of the sizes "
        "(free of start-up), items/s its inverse, and start-up what is left of the smaller "
        "batch. Efficiency is items/s over the same engine's 1-worker rate times the "
        "workers. Driver CPU is the CPU time per item of the process that runs the batch "
        "(the pool's parent, or the Dask client); the Dask scheduler runs in a process of "
        "its own, as on a cluster, and its CPU per item is counted apart. The machine has 2 "
        "cores, shared by all of them (and by whatever else ran then).",
        "",
        "| engine | items/s | ms per item | efficiency | start-up s | driver CPU ms/item "
        "| scheduler CPU ms/item |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        base = pool1 if row.name.startswith("process") else dask1
        scheduler_ms = "" if row.scheduler is None else f"{row.scheduler * 1000:.2f}"
        lines.append(f"| {row.name} | {1 / row.slope:.0f} | {row.slope * 1000:.2f} | "
                     f"{base.slope / (row.workers * row.slope):.2f} | {row.startup:.2f} | "
                     f"{row.driver * 1000:.2f} | {scheduler_ms} |")
    lines += [
        "",
        "What an item costs beyond a single run of it (medians):",
        "",
        "| | ms per item | ratio |",
        "|---|---:|---:|",
        f"| `virtwasi.run` of one item in this process | {single * 1000:.2f} | 1.00x |",
        f"| `virtwasi map`, process pool, 1 worker | {pool1.slope * 1000:.2f} | "
        f"{pool1.slope / single:.2f}x |",
        f"| `virtwasi map`, Dask, 1 worker | {dask1.slope * 1000:.2f} | "
        f"{dask1.slope / single:.2f}x |",
        f"| `virtwasi run` as a process (a shell loop) | {process * 1000:.0f} | "
        f"{process / single:.1f}x |",
        "",
        f"Requests a batch of {S3_ITEMS} items from a bucket into it made (moto, counted by "
        "a proxy): " + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        + f": per item {gets:g} GET (its input) and {puts:g} PUT (its output); the rest "
        "is the listing of the inputs (one request per 1,000) and the bucket's own.",
        "",
    ]
    lines += projection(pool1, pool2, dask2, gets, puts)
    return "\n".join(lines)


class Row(NamedTuple):
    name: str
    workers: int
    slope: float
    startup: float
    driver: float
    scheduler: float | None


def projection(pool1: Row, pool2: Row, dask2: Row, gets: float, puts: float) -> list[str]:
    """A million items on N workers: the time each limit alone allows, and which binds."""
    rate = 1 / pool1.slope
    efficiency = pool1.slope / (2 * pool2.slope)
    store = min(PUT_PER_PREFIX / puts, GET_PER_PREFIX / gets)
    driver = 1 / pool2.driver
    coordinator = 1 / max(dask2.driver, dask2.scheduler or 0.0)
    fixed = {"S3, one prefix": store, "pool's driver": driver,
             "Dask's client and scheduler": coordinator}
    lines = [
        f"A million such items on N workers: the seconds each limit alone allows (the "
        f"largest binds). Workers: {rate:.0f} items/s each (the pool's at one worker), at "
        f"the {efficiency:.2f} efficiency the pool measured at two. The store: S3 takes "
        "3,500 PUT and 5,500 GET per second per prefix, so one output prefix and one input "
        f"prefix allow {store:.0f} items/s at {puts:g} PUT and {gets:g} GET an item. One "
        f"coordinator: the pool's driver, {pool2.driver * 1000:.2f} ms of CPU an item, "
        f"allows {driver:.0f} items/s; Dask's client and scheduler, "
        f"{dask2.driver * 1000:.2f} and {(dask2.scheduler or 0) * 1000:.2f} ms an item, "
        f"{coordinator:.0f} (Dask's own documentation puts a task's overhead at about "
        "1 ms).",
        "",
        "| workers | workers alone | " + " | ".join(fixed) + " | binds: pool | binds: Dask |",
        "|---:|---:|---:|---:|---:|---|---|",
    ]
    for workers in (1, 2, 8, 64, 512, 4096):
        alone = MILLION / (workers * rate * (efficiency if workers > 1 else 1.0))
        bounds = {"the workers": alone, **{k: MILLION / v for k, v in fixed.items()}}
        pool = max(("the workers", "S3, one prefix", "pool's driver"), key=bounds.__getitem__)
        dask = max(("the workers", "S3, one prefix", "Dask's client and scheduler"),
                   key=bounds.__getitem__)
        lines.append(f"| {workers} | {alone:,.0f} | "
                     + " | ".join(f"{MILLION / v:,.0f}" for v in fixed.values())
                     + f" | {pool} | {dask} |")
    order = sorted(fixed.items(), key=lambda kv: kv[1])
    moves = "; then ".join(f"{name} at about {limit / (rate * efficiency):.0f} workers "
                           f"({limit:.0f} items/s)" for name, limit in order)
    lines += [
        "",
        f"Where the bottleneck moves: first the workers, whose {1000 / rate:.1f} ms an item "
        "here is virtwasi's own (a fresh world, the module instantiated, its 46 imports "
        "defined, the input read and the output stored), not the guest's; a real tool's "
        "work adds to it and moves every later limit further out. Then, at these speeds: "
        f"{moves}. A coordinator's limit is lifted by splitting the inputs between several "
        "batches (`--input-list`), each with its own driver or scheduler; the store's, by "
        "spreading outputs over K prefixes (`s3://out/{stem:.2}/{name}`, or by `{index}`), "
        "which raises it K-fold.",
        "",
    ]
    return lines


if __name__ == "__main__":
    sys.exit(publish(report()))
