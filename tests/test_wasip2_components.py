"""Preview 1 fixtures as WASI 0.2 components, run by virtwasi and by wasmtime's WASI 0.2.

Each fixture is wrapped by jco's preview 1 adapter into a component that imports only WASI
0.2, then run by the component linker with :func:`virtwasi.wasip2.wasi_host` serving its
imports over the virtual and the native implementation, and by wasmtime-py's component API
with its built-in WASI 0.2 (``add_wasip2``), each over its own copy of a host folder seen as
``/``. Exit code, stdout, stderr and the final tree must be equal. The adapter ends a
program with ``exit(result)``, so every exit code is 0 or 1 on both.
"""

from __future__ import annotations

import io
import os
import signal
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import wasmtime
import wasmtime.component as wc
from componentkit import componentize
from conftest import FIXTURES
from fixturecases import CASES, ENV, Case, small_tree

from virtwasi.client import engine_flavor, make_engine
from virtwasi.compare.diff import Observation
from virtwasi.component import read_component
from virtwasi.component.instance import ComponentInstance, call_export
from virtwasi.component.values import Ok
from virtwasi.engine import TrapBox, interrupt
from virtwasi.native import native_implementation
from virtwasi.storage.hostdir import HostDirStorage
from virtwasi.storage.tree import snapshot
from virtwasi.virtual import virtual_implementation
from virtwasi.wasi.common import ProcExit
from virtwasi.wasip2 import wasi_host
from virtwasi.world import Context, Definition, Semantics, World

TRAPPED = 134
RUN = "wasi:cli/run@0.2.12"


def inputs(root: Path) -> None:
    (root / "in").mkdir()
    for name, text in (("a.txt", "alpha\n"), ("b.txt", "beta " * 3000), ("empty", "")):
        (root / "in" / name).write_text(text)


# Besides the fixture cases: the tools that reach every filesystem call, with errors.
TOOL_CASES: dict[str, Case] = {
    "slashes": Case("slashes.wasm", []),
    "fstool": Case("fstool.wasm", [
        "put", "a", "text", "append", "a", " more", "cat", "a", "mkdir", "d", "mv", "a", "d/b",
        "ls", "d", "stat", "d/b", "cat", "nope", "mkdir", "d", "rm", "d", "rm", "d/b", "rm", "d",
        "ls", ".", "cat", "f/", "ls", "f"], small_tree),
    "fdtool": Case("fdtool.wasm", [
        "open", "0", "f", "rw", "write", "0", "xyz", "seek", "0", "0", "set", "read", "0", "9",
        "pread", "0", "1", "5", "pwrite", "0", "10", "far", "fstat", "0", "trunc", "0", "2",
        "open", "1", "f", "a", "write", "1", "tail", "cat", "f", "open", "2", "n", "c",
        "open", "3", "n", "c", "write", "2", "new", "rename", "n", "m", "read", "2", "3",
        "close", "2", "link", "m", "h", "symlink", "m", "s", "readlink", "s",
        "unlink", "m", "stat", "h", "touch", "h", "1000000000", "stat", "h", "rmdir", "d",
        "rmdir", "nope", "open", "4", "d", "r", "read", "4", "1", "ls", "d", "open", "5",
        "d", "w", "close", "9"], small_tree),
    "deep": Case("deep.wasm", ["r", "40", "make", "check", "mv", "q", "check", "rm"]),
    "batch": Case("batch.wasm", ["in", "out"], inputs),
}


@pytest.fixture(scope="module")
def components(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, bytes]]:
    """Each fixture's component, made once (by wasm-tools and the adapter)."""
    folder = tmp_path_factory.mktemp("components")
    made: dict[str, bytes] = {}

    class Made(dict[str, bytes]):
        def __missing__(self, module: str) -> bytes:
            made[module] = componentize(FIXTURES / module, folder / module)
            return made[module]

    yield Made()


class Ours:
    """A component instance of a world whose WASI implementation serves ``root``."""

    def __init__(self, binary: bytes, argv: list[str], implementation: Definition, *,
                 env: Mapping[str, str], stdin: Any, epochs: bool = False) -> None:
        self.world = World(Semantics.COMPONENT_MODEL)
        wasi = self.world.instantiate("wasi", implementation)
        contexts: list[Context] = []

        def definition(ctx: Context) -> dict[str, Any]:
            contexts.append(ctx)
            return {}

        self.instance = self.world.instantiate("component", definition, {"wasi": wasi})
        self.stdout, self.stderr = io.BytesIO(), io.BytesIO()
        hosts = wasi_host(contexts[0], args=argv, env=sorted(env.items()), stdin=stdin,
                          stdout=self.stdout, stderr=self.stderr)
        self.engine = make_engine(epochs, False)
        self.store = wasmtime.Store(self.engine)
        if epochs:
            self.store.set_epoch_deadline(1)  # (core start functions run at instantiation)
        self.box = TrapBox()
        self.component = ComponentInstance(read_component(binary), contexts[0], self.store,
                                           hosts, self.box,
                                           flavor=engine_flavor(epochs, False))

    def run(self) -> int:
        try:
            result = call_export(self.component, self.component.exports[f"{RUN}#run"], [])
        except (wasmtime.Trap, wasmtime.WasmtimeError):
            if isinstance(self.box.error, ProcExit):
                return self.box.error.code
            return TRAPPED
        finally:
            self.world.destroy(self.instance)
        return 0 if isinstance(result, Ok) else 1


def run_ours(binary: bytes, argv: list[str], root: Path, impl: str, *,
             env: Mapping[str, str], stdin: bytes) -> tuple[int, bytes, bytes]:
    implementation = (native_implementation([("/", root)]) if impl == "native"
                      else virtual_implementation([("/", HostDirStorage(root))]))
    ours = Ours(binary, argv, implementation, env=env, stdin=io.BytesIO(stdin))
    code = ours.run()
    return code, ours.stdout.getvalue(), ours.stderr.getvalue()


def run_wasmtime(binary: bytes, argv: list[str], root: Path, *, env: Mapping[str, str],
                 stdin: bytes) -> tuple[int, bytes, bytes]:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wc.Linker(engine)
    linker.add_wasip2()
    with tempfile.TemporaryDirectory(prefix="virtwasi-oracle-") as scratch:
        out, err, inp = (Path(scratch) / name for name in ("stdout", "stderr", "stdin"))
        inp.write_bytes(stdin)
        config = wasmtime.WasiConfig()
        config.argv = argv
        config.env = sorted(env.items())
        config.stdin_file, config.stdout_file, config.stderr_file = map(str, (inp, out, err))
        config.preopen_dir(str(root), "/")
        store.set_wasi(config)
        instance = linker.instantiate(store, wc.Component(engine, binary))
        run = instance.get_export_index(store, RUN)
        assert run is not None
        index = instance.get_export_index(store, "run", run)
        func = None if index is None else instance.get_func(store, index)
        assert func is not None
        try:
            result = func(store)  # result<_, _> is wasmtime-py's Variant("ok"/"err")
            code = 0 if isinstance(result, wc.Variant) and result.tag == "ok" else 1
        except wasmtime.ExitTrap as exited:
            code = exited.code
        except (wasmtime.Trap, wasmtime.WasmtimeError):
            code = TRAPPED
        return code, out.read_bytes(), err.read_bytes()


def observe(root: Path, outcome: tuple[int, bytes, bytes]) -> Observation:
    with HostDirStorage(root) as tree:
        return Observation(*outcome, snapshot(tree))


@pytest.mark.parametrize("case", sorted(CASES) + sorted(TOOL_CASES))
def test_same_behaviour_as_wasmtime_wasi_0_2(case: str, components: dict[str, bytes],
                                              tmp_path: Path) -> None:
    module, args, prepare, stdin = CASES.get(case) or TOOL_CASES[case]
    binary = components[module]
    argv = [module, *args]
    seen = {}
    for runtime in ("wasmtime", "virtual", "native"):
        root = tmp_path / runtime
        root.mkdir()
        if prepare is not None:
            prepare(root)
        if runtime == "wasmtime":
            outcome = run_wasmtime(binary, argv, root, env=ENV, stdin=stdin)
        else:
            outcome = run_ours(binary, argv, root, runtime, env=ENV, stdin=stdin)
        seen[runtime] = observe(root, outcome)
    assert seen["virtual"] == seen["wasmtime"]
    assert seen["native"] == seen["wasmtime"]


@pytest.fixture
def open_pipe() -> Iterator[int]:
    """The read end of a pipe whose write end stays open: a read on it blocks."""
    read_end, write_end = os.pipe()
    yield read_end
    os.close(read_end)
    os.close(write_end)


@pytest.mark.parametrize("mode", ["read", "sleep"])
def test_ctrl_c_stops_a_component_blocked_in_a_read_or_a_poll(
        mode: str, components: dict[str, bytes], open_pipe: int) -> None:
    with open(open_pipe, "rb", buffering=0, closefd=False) as stdin:
        ours = Ours(components["limits.wasm"], ["limits", mode],
                    virtual_implementation([]), env={}, stdin=stdin, epochs=True)
        run = ours.component.exports[f"{RUN}#run"]
        timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
        with interrupt.guarded(ours.engine, ours.store, epochs=True,
                               signals=[signal.SIGINT], timeout=None) as guard:
            timer.start()
            try:
                with pytest.raises((wasmtime.Trap, wasmtime.WasmtimeError)):
                    call_export(ours.component, run, [])
            finally:
                timer.cancel()
        stop = interrupt.stopped_by(guard, ours.box.error)
        assert stop is not None and (stop.kind, stop.signum) == ("signal", signal.SIGINT)
        assert isinstance(ours.box.error, interrupt.StopRequest)
        assert ours.stdout.getvalue() == {"read": b"reading\n", "sleep": b"sleeping\n"}[mode]
