"""The Python API beyond ``run``: reactors, exports, extra imports, guest memory, the cache."""

from __future__ import annotations

import contextlib
import errno
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime
from componentkit import componentize
from conftest import FIXTURES

from virtwasi.client import Client, takes_client
from virtwasi.engine import compile_component, compile_module
from virtwasi.runtime import GuestExit, GuestTrap, Session, WasiWorld
from virtwasi.storage import FileKind, MemoryStorage, OverlayStorage
from virtwasi.storage.mounts import MountError, Overlay
from virtwasi.world import ResourceType

# A reactor: no _start; _initialize must run before the exports make sense. It imports one
# function from a module other than WASI, as some real modules do.
REACTOR = bytes(wasmtime.wat2wasm("""
(module
  (import "env" "scale" (func $scale (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (global $base (mut i32) (i32.const 0))
  (func (export "_initialize") (global.set $base (i32.const 1000)))
  (func (export "add") (param i32 i32) (result i32)
    (i32.add (global.get $base) (i32.add (local.get 0) (local.get 1))))
  (func (export "scaled") (param i32) (result i32) (call $scale (local.get 0)))
  (func (export "sum_bytes") (param $p i32) (param $n i32) (result i32)
    (local $acc i32)
    (block $done (loop $next
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $acc (i32.add (local.get $acc) (i32.load8_u (local.get $p))))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $next)))
    (local.get $acc))
  (func (export "half") (param f64) (result f64) (f64.div (local.get 0) (f64.const 2)))
  (func (export "quit") (call $exit (i32.const 3)))
  (func (export "boom") unreachable))
"""))
IMPORTS = {"env": {"scale": lambda x: x * 10}}


def test_a_reactor_is_initialized_once_before_its_first_export() -> None:
    with Session(REACTOR, imports=IMPORTS) as session:
        assert session.call("add", 1, 2) == 1003
        assert session.call("add", 5, 5) == 1010
        assert session.call("half", 5) == 2.5


def test_extra_imports_are_python_callables() -> None:
    with Session(REACTOR, imports=IMPORTS) as session:
        assert session.call("scaled", 7) == 70


def test_a_missing_import_is_named_before_anything_runs() -> None:
    with pytest.raises(ValueError, match=r"env\.scale, which nothing provides"):
        Session(REACTOR)


def test_guest_memory_can_be_read_and_written() -> None:
    with Session(REACTOR, imports=IMPORTS) as session:
        session.write_memory(64, bytes([1, 2, 3, 250]))
        assert session.read_memory(64, 4) == bytes([1, 2, 3, 250])
        assert session.call("sum_bytes", 64, 4) == 256
        with pytest.raises(ValueError, match="out of bounds"):
            session.read_memory(65536 - 2, 4)
        with pytest.raises(ValueError, match="bad guest memory range"):
            session.write_memory(-1, b"x")


def test_exit_trap_and_bad_calls_are_distinct_errors() -> None:
    with Session(REACTOR, imports=IMPORTS) as session:
        with pytest.raises(GuestExit) as exited:
            session.call("quit")
        assert exited.value.code == 3
    with Session(REACTOR, imports=IMPORTS) as session, pytest.raises(GuestTrap,
                                                                     match="unreachable"):
        session.call("boom")
    with Session(REACTOR, imports=IMPORTS) as session:
        with pytest.raises(ValueError, match="exports no function named 'nope'"):
            session.call("nope")
        with pytest.raises(ValueError, match="takes 2 argument"):
            session.call("add", 1)
        with pytest.raises(ValueError, match="not an integer"):
            session.call("add", 1.5, 2)
        with pytest.raises(ValueError, match="not a WASI command"):
            session.start()


def test_invoke_from_the_command_line(tmp_path: Path) -> None:
    module = tmp_path / "sum.wasm"
    module.write_bytes(wasmtime.wat2wasm("""
    (module (memory (export "memory") 1)
      (func (export "_initialize"))
      (func (export "mul") (param i64 i64) (result i64) (i64.mul (local.get 0) (local.get 1))))
    """))
    done = subprocess.run([sys.executable, "-m", "virtwasi", "run", "--invoke", "mul",
                           str(module), "6", "0x7"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "42\n"), done.stderr
    bad = subprocess.run([sys.executable, "-m", "virtwasi", "run", "--invoke", "mul",
                          str(module), "6", "seven"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "parameter 2 (i64) takes a whole number" in bad.stderr


def test_compiled_modules_are_cached_and_a_bad_entry_is_replaced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTWASI_CACHE", str(tmp_path))
    engine = wasmtime.Engine()
    compiled: list[int] = []
    compile_module(engine, FIXTURES / "hello.wasm", on_compile=compiled.append)
    compile_module(engine, FIXTURES / "hello.wasm", on_compile=compiled.append)
    assert compiled == [(FIXTURES / "hello.wasm").stat().st_size]  # the second came cached
    [entry] = (tmp_path / "modules").glob("*.cwasm")
    assert entry.name.endswith("-default.cwasm") and entry.stat().st_size > 0
    entry.write_bytes(b"not a compiled module")
    module = compile_module(engine, FIXTURES / "hello.wasm")
    assert any(e.name == "_start" for e in module.exports)
    assert entry.read_bytes() != b"not a compiled module"


def test_components_compiled_whole_are_cached_beside_modules(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTWASI_CACHE", str(tmp_path / "cache"))
    binary = componentize(FIXTURES / "hello.wasm", tmp_path / "hello.wasm")
    engine = wasmtime.Engine()
    compiled: list[int] = []
    compile_component(engine, tmp_path / "hello.wasm", on_compile=compiled.append)
    component = compile_component(engine, binary, on_compile=compiled.append)
    assert compiled == [len(binary)]  # the second, given as bytes, came cached
    assert component.get_export_index("wasi:cli/run@0.2.12") is not None
    [entry] = (tmp_path / "cache" / "modules").glob("*.cwasm")
    assert entry.name.endswith("-default-component.cwasm")


def test_an_unchanged_module_file_is_found_without_reading_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTWASI_CACHE", str(tmp_path / "cache"))
    module_file = tmp_path / "m.wasm"
    module_file.write_bytes((FIXTURES / "hello.wasm").read_bytes())
    engine = wasmtime.Engine()
    compile_module(engine, module_file)
    other = (FIXTURES / "echo.wasm").read_bytes()
    read: list[Path] = []
    real_read = Path.read_bytes

    def counting(path: Path) -> bytes:
        read.append(path)
        return real_read(path)

    monkeypatch.setattr(Path, "read_bytes", counting)
    assert any(e.name == "_start" for e in compile_module(engine, module_file).exports)
    assert read == []  # one stat, not reading and hashing the module
    module_file.write_bytes(other)  # changed: read and hashed again
    compiled: list[int] = []
    compile_module(engine, module_file, on_compile=compiled.append)
    assert read == [module_file] and compiled == [module_file.stat().st_size]


def test_the_cache_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTWASI_CACHE", "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    compile_module(wasmtime.Engine(), FIXTURES / "hello.wasm")
    assert list(tmp_path.iterdir()) == []


def test_a_malformed_module_is_refused_by_the_cache_too(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTWASI_CACHE", str(tmp_path))
    with pytest.raises(wasmtime.WasmtimeError):
        compile_module(wasmtime.Engine(), b"\0asm\1\0\0\0garbage")
    assert not (tmp_path / "modules").exists() or not any((tmp_path / "modules").iterdir())


def test_several_clients_share_one_implementation_and_each_is_torn_down_alone() -> None:
    fstool = FIXTURES / "fstool.wasm"
    with WasiWorld() as host:
        writer = host.client(fstool, ["put", "/shared.txt", "from the writer"])
        assert writer.start() == 0
        reader = host.client(fstool, ["cat", "/shared.txt"])
        assert reader.start() == 0
        assert reader.stdout == b"cat /shared.txt: from the writer\n"
        writer.close()
        assert writer.closed and not reader.closed
        assert host.client(fstool, ["ls", "/"]).start() == 0
    assert reader.closed


def test_an_extra_import_can_take_its_client_to_reach_guest_memory() -> None:
    seen: list[bytes] = []

    @takes_client
    def scale(client: Client, x: int) -> int:
        seen.append(client.read_memory(64, 2))
        return x

    with Session(REACTOR, imports={"env": {"scale": scale}}) as session:
        session.write_memory(64, b"ok")
        assert session.call("scaled", 5) == 5
    assert seen == [b"ok"]


def test_the_native_implementation_runs_the_same_module_over_a_host_folder(
        tmp_path: Path) -> None:
    fstool = FIXTURES / "fstool.wasm"
    with Session(fstool, ["put", "/a.txt", "native", "ls", "/"], mounts={"/": tmp_path},
                 impl="native") as session:
        assert session.start() == 0
        assert session.stdout == b"put /a.txt: ok\nls /: a.txt\n"
    assert (tmp_path / "a.txt").read_text() == "native"
    # With no folder the program runs with no preopens at all, as on wasmtime.
    with Session(fstool, ["ls", "/"], impl="native") as session:
        assert session.start() == 1
        assert session.stdout == b"ls /: errno 76 (Capabilities insufficient)\n"
    with pytest.raises(MountError, match="serves host folders only"):
        Session(fstool, mounts={"/": "mem://"}, impl="native")
    with pytest.raises(MountError, match="leave out --impl native"):
        Session(fstool, mounts={"/": tmp_path}, read_only=["/"], impl="native")
    with pytest.raises(ValueError, match="unknown implementation"):
        Session(fstool, impl="imaginary")


@pytest.mark.parametrize("semantics", ["component-model", "proposal-2021"])
def test_a_closed_file_is_closed_now_not_at_teardown(semantics: str) -> None:
    # Under proposal-2021 close must end the resource, not only the callee's copy of it.
    with WasiWorld(semantics=semantics) as host:
        client = host.client(FIXTURES / "fstool.wasm",
                             ["put", "/a", "x", "put", "/b", "y", "cat", "/a", "ls", "/"])
        assert client.start() == 0
        descriptors = host.implementation.exports["descriptor"]
        assert isinstance(descriptors, ResourceType)
        assert descriptors.live_count == 1  # only the preopen is still open
        assert client.instance.handle_count == 1


def test_the_first_compile_of_a_big_module_is_announced_on_a_terminal_only(
        tmp_path: Path) -> None:
    big = tmp_path / "big.wasm"  # 4 MiB of data: big enough to deserve the note
    big.write_bytes(wasmtime.wat2wasm(
        '(module (memory 64) (data (i32.const 0) "' + "a" * (4 << 20) + '")'
        ' (func (export "_start")))'))
    env = dict(os.environ, VIRTWASI_CACHE=str(tmp_path / "cache"))
    command = [sys.executable, "-m", "virtwasi", "run", str(big)]
    primary, secondary = pty.openpty()
    try:
        first = subprocess.run(command, stderr=secondary, env=env, timeout=120)
        os.close(secondary)
        told = b""
        with contextlib.suppress(OSError):  # EIO once the terminal has nothing more
            while chunk := os.read(primary, 4096):
                told += chunk
    finally:
        os.close(primary)
    assert first.returncode == 0
    assert b"compiling big.wasm (4.0 MiB) once" in told
    piped = subprocess.run(command, capture_output=True, env=dict(
        env, VIRTWASI_CACHE=str(tmp_path / "other")), timeout=120)
    assert piped.returncode == 0 and piped.stderr == b""


def test_a_world_releases_the_storages_it_opened_overlays_and_read_only_ones_too(
        tmp_path: Path) -> None:
    lower, upper, plain = (tmp_path / "lower", tmp_path / "upper", tmp_path / "plain")
    for folder in (lower, upper, plain):
        folder.mkdir()
    given = MemoryStorage()
    world = WasiWorld({"/": str(plain), "/cow": Overlay(str(lower), str(upper)),
                       "/mine": given}, read_only=["/"])
    cow = world.mounts["/cow"]
    assert isinstance(cow, OverlayStorage)
    opened = [world.mounts["/"], cow.lower, cow.upper]
    for storage in opened:
        storage.lstat("")
    world.close()
    for storage in opened:  # a closed host folder answers EBADF
        with pytest.raises(OSError) as closed:
            storage.lstat("")
        assert closed.value.errno == errno.EBADF
    assert given.lstat("").kind is FileKind.DIRECTORY  # the caller's storage is left alone
