"""Trailing slashes, path_open's flag checks and a missing stdin answer as in wasmtime.

``slashes.wasm`` calls every path_* function that creates, removes or renames a name with
and without trailing slashes, on files, directories, dangling and other symlinks and
missing names, each on a fresh tree, and prints one line per call (see slashes.c). It runs
through the differential harness on wasmtime's built-in WASI and on each of virtwasi's
runtimes (native, virtual over a host folder, virtual over memory); every one must print
what wasmtime prints. ``slashes.expected`` holds wasmtime's output, so that a wasmtime
upgrade that answers otherwise is noticed rather than followed silently.

``nostdin.wasm`` reads fd 0 in a run given no stdin at all, which wasmtime serves as an
empty stream. The harness cannot express that run (its adapters always pass a stream), so
it is made here directly, with ``stdin=None`` on virtwasi's side.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import wasmtime
from conftest import FIXTURES

from virtwasi.compare.diff import REFERENCE, RUNTIMES, Comparison, Observation, report, run_on
from virtwasi.engine import compile_module
from virtwasi.runtime import run
from virtwasi.storage.hostdir import HostDirStorage

SLASHES = FIXTURES / "slashes.wasm"
EXPECTED = FIXTURES / "slashes.expected"
COMPARED = ["native", "virtual-host", "virtual-memory"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Observation:
    return run_on(REFERENCE, SLASHES, [], tmp_path_factory.mktemp("slashes") / REFERENCE)


def differing_lines(want: bytes, got: bytes) -> list[str]:
    """The calls answered otherwise, as "call: wasmtime says A, got B"."""
    pairs = zip(want.decode().splitlines(), got.decode().splitlines(), strict=False)
    out = []
    for expected, actual in pairs:
        if expected != actual:
            call, _, answer = expected.rpartition(" -> ")
            out.append(f"{call}: {REFERENCE} says {answer}, got {actual.rpartition(' -> ')[2]}")
    return out


def test_wasmtime_still_answers_as_recorded(reference: Observation) -> None:
    assert (reference.exit_code, reference.stderr) == (0, b"")
    assert reference.stdout.decode() == EXPECTED.read_text()


def test_the_compared_runtimes_are_the_harness_own() -> None:
    assert set(COMPARED) <= set(RUNTIMES)


@pytest.mark.parametrize("runtime", COMPARED)
def test_trailing_slashes_answer_as_in_wasmtime(runtime: str, reference: Observation,
                                                 tmp_path: Path) -> None:
    comparison = Comparison(SLASHES, [])
    comparison.observations[REFERENCE] = reference
    comparison.observations[runtime] = got = run_on(runtime, SLASHES, [], tmp_path / runtime)
    lines = differing_lines(reference.stdout, got.stdout)
    assert comparison.same, "\n".join([*lines, "", report(comparison)])


# -- fd_read(0) with no stdin given ------------------------------------------------------
NOSTDIN = FIXTURES / "nostdin.wasm"
# An empty stream: end of file at once, and no seeking in it.
NOSTDIN_EXPECTED = (b"fd_read 0 (bytes) -> OK 0\n"
                    b"fd_read 0 again (bytes) -> OK 0\n"
                    b"fd_pread 0 at 0 (bytes) -> ESPIPE\n"
                    b"fd_fdstat_get 0 (filetype) -> OK 0\n")


def nostdin_on_wasmtime(root: Path) -> bytes:
    """The module on wasmtime's WASI whose config names no stdin (an empty stream)."""
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    with tempfile.TemporaryDirectory(prefix="virtwasi-oracle-") as scratch:
        out = Path(scratch) / "stdout"
        config = wasmtime.WasiConfig()
        config.argv = [NOSTDIN.name]
        config.stdout_file = str(out)
        config.preopen_dir(str(root), "/")
        store.set_wasi(config)
        start = linker.instantiate(store, compile_module(engine, NOSTDIN)).exports(store)["_start"]
        assert isinstance(start, wasmtime.Func)
        start(store)
        return out.read_bytes()


def nostdin_on_virtwasi(runtime: str, root: Path) -> bytes:
    """The module on one of the harness's virtwasi runtimes, with ``stdin=None``."""
    if runtime == "native":
        result = run(NOSTDIN, [], mounts={"/": root}, impl="native", stdin=None)
    elif runtime == "virtual-host":
        with HostDirStorage(root) as storage:
            result = run(NOSTDIN, [], mounts={"/": storage}, stdin=None)
    else:
        result = run(NOSTDIN, [], stdin=None)  # the in-memory default
    assert (result.exit_code, result.stderr) == (0, b"")
    return result.stdout


def test_wasmtime_reads_end_of_file_from_a_missing_stdin(tmp_path: Path) -> None:
    assert nostdin_on_wasmtime(tmp_path) == NOSTDIN_EXPECTED


@pytest.mark.parametrize("runtime", COMPARED)
def test_a_missing_stdin_reads_as_in_wasmtime(runtime: str, tmp_path: Path) -> None:
    (tmp_path / REFERENCE).mkdir()
    (tmp_path / runtime).mkdir()
    want = nostdin_on_wasmtime(tmp_path / REFERENCE)
    assert nostdin_on_virtwasi(runtime, tmp_path / runtime) == want
