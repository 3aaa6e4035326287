"""Running modules through the Python API and the ``virtwasi run`` command."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import IO

import fsspec
import pytest
import wasmtime
from conftest import FIXTURES

from virtwasi.runtime import GuestExit, GuestTrap, Session, run
from virtwasi.storage.fsspec_storage import FsspecStorage
from virtwasi.storage.memfs import MemoryStorage
from virtwasi.storage.tree import snapshot

EXIT_7 = wasmtime.wat2wasm("""
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 7))))
""")
TRAPS = wasmtime.wat2wasm("""
(module (memory (export "memory") 1) (func (export "_start") unreachable))
""")


def virtwasi(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "virtwasi", *args], input=stdin,
                          capture_output=True, timeout=120)


def readline_within(stream: IO[bytes], seconds: float) -> bytes:
    """One line from ``stream``, or a failure once ``seconds`` have passed without one."""
    lines: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=seconds)
    except queue.Empty:
        pytest.fail(f"no line came back within {seconds} s")


def test_stdin_reaches_the_guest_line_by_line_while_it_is_open() -> None:
    # echo.wasm answers each line as it arrives: a runtime that waits for stdin to end, or
    # for the guest's buffer to fill, never answers the first line.
    proc = subprocess.Popen([sys.executable, "-m", "virtwasi", "run", str(FIXTURES / "echo.wasm")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for line in (b"first line\n", b"and a second one\n"):
            proc.stdin.write(line)
            proc.stdin.flush()
            assert readline_within(proc.stdout, 10) == line
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read() == b""
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_a_program_runs_on_the_in_memory_default() -> None:
    done = virtwasi("run", str(FIXTURES / "hello.wasm"), "Ada", "Grace")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"hello, Ada\nhello, Grace\n"


def test_the_exit_code_is_the_guests(tmp_path: Path) -> None:
    module = tmp_path / "exit7.wasm"
    module.write_bytes(EXIT_7)
    assert virtwasi("run", str(module)).returncode == 7
    assert run(EXIT_7).exit_code == 7


def test_a_trap_exits_134_with_its_message(tmp_path: Path) -> None:
    module = tmp_path / "trap.wasm"
    module.write_bytes(TRAPS)
    done = virtwasi("run", str(module))
    assert done.returncode == 134
    assert b"unreachable" in done.stderr


def test_bad_input_is_a_one_line_error_and_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"\0asm\x01\0\0\0garbage")
    for args, words in [
        (["run", str(junk)], b"not a runnable WASI module"),
        (["run", str(tmp_path / "missing.wasm")], b"no such module file"),
        (["run", "--dir", str(tmp_path / "nowhere"), str(junk)], b"no such host folder"),
        (["run", "--env", "=V", str(FIXTURES / "hello.wasm")], b"NAME[=VAL]"),
    ]:
        done = virtwasi(*args)
        assert done.returncode == 2, args
        assert words in done.stderr and done.stderr.count(b"\n") == 1, done.stderr
        assert b"Traceback" not in done.stderr


def test_a_host_folder_is_served_with_dir(tmp_path: Path) -> None:
    done = virtwasi("run", "--dir", f"{tmp_path}::/", str(FIXTURES / "hello.wasm"), "x", "y")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "greeted.txt").read_text() == "2\n"


def test_files_the_guest_left_open_are_closed_and_flushed_at_teardown() -> None:
    # fsspec storage keeps writes in a spill file until close: only teardown uploads them.
    fs = fsspec.filesystem("memory")
    root = f"/teardown-{uuid.uuid4().hex}"
    fs.mkdir(root)
    result = run(FIXTURES / "noclose.wasm", ["out.txt"], mounts={"/": FsspecStorage(fs, root)})
    assert result.exit_code == 3
    assert fs.cat_file(f"{root}/out.txt") == b"written, never closed\n"


def test_the_memory_tree_can_be_filled_before_and_read_after() -> None:
    tree = MemoryStorage()
    tree.mkdir("data")
    result = run(FIXTURES / "fileops.wasm", mounts={"/": tree})
    assert result.exit_code == 0
    files = snapshot(tree)
    assert files["a/f.txt"][1] == b"hello, WORLD\n" + b"\0" * 7
    assert files["a/link"] == ("symlink", "b/log2")
    assert "data" in files


REACTOR = wasmtime.wat2wasm("""
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "quit") (call $exit (i32.const 5))))
""")


def test_a_reactor_module_is_called_export_by_export() -> None:
    with Session(REACTOR) as session:
        assert session.call("add", 2, 3) == 5
        with pytest.raises(GuestExit) as exited:
            session.call("quit")
        assert exited.value.code == 5
        with pytest.raises(ValueError, match="not a WASI command"):
            session.start()
        with pytest.raises(ValueError, match="no function named 'nope'"):
            session.call("nope")


def test_a_trap_in_a_called_export_is_a_guest_trap() -> None:
    with Session(TRAPS) as session, pytest.raises(GuestTrap, match="unreachable"):
        session.call("_start")


def test_a_module_without_memory_that_calls_wasi_traps_saying_why() -> None:
    module = wasmtime.wat2wasm("""
    (module
      (import "wasi_snapshot_preview1" "fd_write"
        (func $write (param i32 i32 i32 i32) (result i32)))
      (memory 1)  ;; not exported: WASI has nothing to read the iovec from
      (func (export "_start") (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1)
                                                 (i32.const 8)))))
    """)
    with Session(bytes(module)) as session:
        assert session.start() == 134
        message = session.stderr.decode()
    assert "exports no memory named 'memory'" in message
    assert "AttributeError" not in message and "Traceback" not in message
