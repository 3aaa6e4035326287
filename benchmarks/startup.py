"""Start-up: a small program's whole run, virtwasi against wasmtime-py's built-in WASI.

Each run is a fresh Python process, as a user starts it from a shell: ``virtwasi run
hello.wasm`` on the in-memory default, against a one-line script that runs the same module
on wasmtime-py's built-in WASI over a temporary folder (the program leaves a file behind).
virtwasi finds the compiled module in its cache; the wasmtime-py script compiles hello.wasm
(20 KB, a few milliseconds). Median wall time of the runs; the ratio is virtwasi's over
wasmtime-py's, measured in the same run, alternating.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe, publish

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "tests" / "fixtures" / "hello.wasm"
RUNS = 15
SCRATCH = tempfile.mkdtemp(prefix="virtwasi-startup-")  # where wasmtime's run leaves its file
WASMTIME_SCRIPT = f"""
import wasmtime
engine = wasmtime.Engine()
store = wasmtime.Store(engine)
linker = wasmtime.Linker(engine)
linker.define_wasi()
config = wasmtime.WasiConfig()
config.argv = ["hello.wasm", "startup"]
config.inherit_stdout()
config.preopen_dir({SCRATCH!r}, "/")
store.set_wasi(config)
module = wasmtime.Module.from_file(engine, {str(MODULE)!r})
linker.instantiate(store, module).exports(store)["_start"](store)
"""
COMMANDS = {
    "wasmtime-py built-in WASI": [sys.executable, "-c", WASMTIME_SCRIPT],
    "virtwasi run": [sys.executable, "-m", "virtwasi", "run", str(MODULE), "startup"],
    "python -c pass (the interpreter alone)": [sys.executable, "-c", "pass"],
}


# As an installed package runs: with its bytecode cached (pip compiles it at install time;
# the warm-up run writes it here even where PYTHONDONTWRITEBYTECODE is set).
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def wall_ms(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, check=False, env=ENV)
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise SystemExit(f"{command[:3]} failed: {done.stderr.decode()[-500:]}")
    return elapsed


def report() -> str:
    for command in COMMANDS.values():  # warm the caches (compiled module, page cache)
        wall_ms(command)
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(RUNS):
        for name, command in COMMANDS.items():
            samples[name].append(wall_ms(command))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    reference = medians["wasmtime-py built-in WASI"]
    lines = [
        "## Start-up: a small program's whole run",
        "",
        f"Machine: {describe()}  ",
        "Command: `make bench` (`python benchmarks/startup.py`)  ",
        f"Each row is a fresh Python process running `hello.wasm` ({MODULE.stat().st_size:,} "
        f"bytes) to its end, median of {RUNS} runs taken in turn, bytecode cached as after a "
        "pip install; the ratio is against wasmtime-py's built-in WASI measured in the same "
        "run.",
        "",
        "| run | ms | ratio |",
        "|---|---:|---:|",
    ]
    for name, value in medians.items():
        lines.append(f"| {name} | {value:.0f} | {value / reference:.2f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(publish(report()))
