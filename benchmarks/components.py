"""Components: a WASI 0.2 command's whole run on virtwasi, against wasmtime's built-in WASI 0.2.

The programs are the project's preview 1 fixtures wrapped into components by jco's preview 1
adapter (``wasm-tools component new --adapt``): ``fileops`` (one each of the filesystem
calls, printing every outcome) and ``blocktool`` (a 4 MiB file written and checked back in blocks).
Each run makes a fresh world (virtwasi) or store (wasmtime), instantiates the component
(compiled once, beforehand) and runs ``wasi:cli/run``, in this process, alternating:

- virtwasi over a host folder and over the in-memory default, the component's WASI 0.2 calls
  served by the implementation through the canonical ABI;
- wasmtime-py's built-in WASI 0.2 (``add_wasip2``) over a host folder: the reference;
- the same program as a preview 1 module on virtwasi, in memory: what the component's
  adapter and the canonical ABI add to the same work.

Median wall time; ratios against the reference measured in the same run.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import wasmtime
import wasmtime.component as wc
from machine import describe, publish

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from componentkit import componentize  # noqa: E402

from virtwasi.runtime import Session  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
PROGRAMS = {"fileops": [],
            "blocktool": ["fill", "/data.bin", "4194304", "check", "/data.bin", "4194304"]}
RUNS = 15


def wasmtime_runner(component: Path, argv: list[str]) -> Callable[[], None]:
    engine = wasmtime.Engine()
    compiled = wc.Component(engine, component.read_bytes())
    linker = wc.Linker(engine)
    linker.add_wasip2()

    def run() -> None:
        with tempfile.TemporaryDirectory(prefix="virtwasi-bench-") as folder:
            store = wasmtime.Store(engine)
            config = wasmtime.WasiConfig()
            config.argv = [component.name, *argv]
            config.preopen_dir(folder, "/")
            store.set_wasi(config)
            instance = linker.instantiate(store, compiled)
            interface = instance.get_export_index(store, "wasi:cli/run@0.2.12")
            index = instance.get_export_index(store, "run", interface)
            func = None if index is None else instance.get_func(store, index)
            assert func is not None
            func(store)

    return run


def virtwasi_runner(program: Path, argv: list[str], on_folder: bool) -> Callable[[], None]:
    def run() -> None:
        with tempfile.TemporaryDirectory(prefix="virtwasi-bench-") as folder:
            mounts = {"/": folder} if on_folder else None
            with Session(program, argv, mounts=mounts) as session:
                session.start()

    return run


def median_ms(run: Callable[[], None], samples: list[float]) -> None:
    start = time.perf_counter()
    run()
    samples.append((time.perf_counter() - start) * 1000)


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory(prefix="virtwasi-components-") as scratch:
        for name, argv in PROGRAMS.items():
            module = FIXTURES / f"{name}.wasm"
            component = Path(scratch) / f"{name}.component.wasm"
            componentize(module, component)
            runners = {
                "wasmtime": wasmtime_runner(component, argv),
                "virtwasi, folder": virtwasi_runner(component, argv, True),
                "virtwasi, memory": virtwasi_runner(component, argv, False),
                "module on virtwasi": virtwasi_runner(module, argv, False),
            }
            for run in runners.values():
                run()  # compiled and cached before anything is timed
            samples: dict[str, list[float]] = {key: [] for key in runners}
            for _ in range(RUNS):
                for key, run in runners.items():
                    median_ms(run, samples[key])
            medians = {key: statistics.median(values) for key, values in samples.items()}
            reference = medians["wasmtime"]
            rows.append(
                f"| {name} | {reference:.1f} | {medians['virtwasi, folder']:.1f} "
                f"({medians['virtwasi, folder'] / reference:.2f}x) | "
                f"{medians['virtwasi, memory']:.1f} "
                f"({medians['virtwasi, memory'] / reference:.2f}x) | "
                f"{medians['module on virtwasi']:.1f} "
                f"({medians['virtwasi, memory'] / medians['module on virtwasi']:.2f}x) |")
    section = "\n".join([
        "## Components: a WASI 0.2 command's run",
        "",
        f"Machine: {describe()}. Command: `python benchmarks/components.py`. "
        f"Median wall time of {RUNS} runs each, alternating, in one process, the "
        "component compiled beforehand.",
        "",
        "| program | wasmtime built-in 0.2, folder (ms) | virtwasi, folder (ms, x wasmtime) | "
        "virtwasi, memory (ms, x wasmtime) | preview 1 module on virtwasi, memory "
        "(ms; the component in memory is x this) |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ])
    return publish(section)


if __name__ == "__main__":
    sys.exit(main())
