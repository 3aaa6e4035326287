"""Preview 1 fixtures as WASI 0.2 components, run by virtwasi and by wasmtime's WASI 0.2.

Each fixture is wrapped by jco's preview 1 adapter into a component that imports only WASI
0.2, then run by virtwasi's ``Session`` (the linker, with :func:`virtwasi.wasip2.wasi_host`
serving its imports) over the virtual implementation on a host folder and on an in-memory
copy of it, and over the native implementation, and by wasmtime-py's component API with
its built-in WASI 0.2 (``add_wasip2``), each over its own copy of a host folder seen as
``/``. Exit code, stdout, stderr and the final tree must be equal. The adapter ends a
program with ``exit(result)``, so every exit code is 0 or 1 on both; a trap is 134 on both,
its message each runtime's own.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import wasmtime
import wasmtime.component as wc
from componentkit import componentize
from conftest import FIXTURES
from fixturecases import CASES, ENV, Case, small_tree

from virtwasi.compare.diff import Observation
from virtwasi.runtime import GuestInterrupted, Session
from virtwasi.storage.hostdir import HostDirStorage
from virtwasi.storage.memfs import MemoryStorage
from virtwasi.storage.tree import copy_tree, remove_tree, snapshot

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


def run_ours(binary: bytes, argv: list[str], root: Path, impl: str, *,
             env: Mapping[str, str], stdin: bytes) -> tuple[int, bytes, bytes]:
    """``impl`` virtual or native over the folder ``root``, or memory: the virtual
    implementation over an in-memory copy of it, written back after the run."""
    memory = MemoryStorage()
    if impl == "memory":
        with HostDirStorage(root) as folder:
            copy_tree(folder, memory)
    mounts = {"/": memory if impl == "memory" else root}
    with Session(binary, argv[1:], mounts=mounts, impl="virtual" if impl == "memory" else impl,
                 env=env, stdin=stdin, program_name=argv[0]) as session:
        code = session.start()
        # A trap's message is each runtime's own: the exit code says it trapped.
        stderr = b"" if code == TRAPPED else session.stderr
        outcome = code, session.stdout, stderr
    if impl == "memory":
        with HostDirStorage(root) as folder:
            remove_tree(folder, "")
            copy_tree(memory, folder)
    return outcome


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
        return code, out.read_bytes(), b"" if code == TRAPPED else err.read_bytes()


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
    for runtime in ("wasmtime", "virtual", "memory", "native"):
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
    assert seen["memory"] == seen["wasmtime"]
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
    with open(open_pipe, "rb", buffering=0, closefd=False) as stdin, Session(
            components["limits.wasm"], [mode], stdin=stdin, program_name="limits",
            signals=[signal.SIGINT]) as session:
        timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        try:
            with pytest.raises(GuestInterrupted) as stopped:
                session.start()
        finally:
            timer.cancel()
        assert stopped.value.signum == signal.SIGINT
        assert session.stdout == {"read": b"reading\n", "sleep": b"sleeping\n"}[mode]
