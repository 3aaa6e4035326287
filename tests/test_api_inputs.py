"""The Python API as a user reaches for it: what each argument takes, what it refuses at once
(never a trap at the guest's first write), exit codes without try/except, and strings and
buffers passed to a C library compiled to wasm through its own allocator."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import wasmtime
from conftest import FIXTURES

from virtwasi import GuestExit, GuestTrap, Session, WasiWorld, run

HELLO = FIXTURES / "hello.wasm"
ECHO = FIXTURES / "echo.wasm"  # copies stdin to stdout
SHOWARGS = FIXTURES / "showargs.wasm"  # prints its whole argv and environment
TEXTLIB = FIXTURES / "textlib.wasm"  # a reactor: malloc, free, upper, join, checksum
HOLDER = FIXTURES / "holder.wasm"  # a reactor with die_exit(code) and no allocator


def test_env_takes_a_mapping_or_pairs_and_refuses_anything_else() -> None:
    from_mapping = run(SHOWARGS, env={"A": "1", "B": "two"})
    from_pairs = run(SHOWARGS, env=[("A", "1"), ("B", "two")])
    assert from_mapping.stdout == b"argv[0]=showargs.wasm\nenv A=1\nenv B=two\n"
    assert from_pairs.stdout == from_mapping.stdout
    assert run(SHOWARGS, env=iter([("A", "1"), ("B", "two")])).stdout == from_mapping.stdout
    assert run(SHOWARGS, env=[("B", "two"), ("A", "1")]).stdout.endswith(b"B=two\nenv A=1\n")
    for bad in ("A=1", 42, ["A=1"], [("A", 1)], [("A", "1", "x")]):
        with pytest.raises(TypeError, match="env"):
            Session(SHOWARGS, env=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a variable name"):
        Session(SHOWARGS, env={"A=B": "1"})


def test_args_must_be_a_sequence_of_str_not_one_string() -> None:
    assert run(HELLO, ["Ada"]).stdout == b"hello, Ada\n"
    assert run(HELLO, ("Ada", "Grace")).stdout == b"hello, Ada\nhello, Grace\n"
    with pytest.raises(TypeError, match=r"not a single str .*write \['Ada'\]"):
        run(HELLO, "Ada")
    with pytest.raises(TypeError, match="must be a str, got int"):
        run(HELLO, ["Ada", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="must be a str, got bytes"):
        Session(HELLO, [b"Ada"])  # type: ignore[list-item]


def test_stdout_and_stderr_take_binary_streams_and_paths(tmp_path: Path) -> None:
    stream = io.BytesIO()
    assert run(HELLO, ["Ada"], stdout=stream).exit_code == 0
    assert stream.getvalue() == b"hello, Ada\n"
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    result = run(HELLO, ["Ada"], stdout=out, stderr=str(err))
    assert (result.exit_code, result.stdout) == (0, b"")
    assert out.read_bytes() == b"hello, Ada\n" and err.read_bytes() == b""
    with Session(HELLO, ["Grace"], stdout=out) as session:  # the file closes with it
        assert session.start() == 0
        opened = session._opened[0]
    assert opened.closed and out.read_bytes() == b"hello, Grace\n"


def test_a_text_stream_is_refused_at_once_and_says_what_to_pass() -> None:
    for text in (io.StringIO(), sys.stdout):
        with pytest.raises(TypeError, match=r"not a text stream.*sys\.stdout\.buffer"):
            run(HELLO, ["Ada"], stdout=text)
    with pytest.raises(TypeError, match=r"sys\.stderr\.buffer"):
        Session(HELLO, stderr=io.StringIO())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"not a text stream.*sys\.stdin\.buffer"):
        Session(ECHO, stdin=io.StringIO("hi"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="binary stream"):
        Session(HELLO, stdout=42)  # type: ignore[arg-type]


def test_stdin_takes_bytes_a_binary_stream_or_a_path(tmp_path: Path) -> None:
    given = tmp_path / "in.txt"
    given.write_bytes(b"from a file\n")
    assert run(ECHO, stdin=b"from bytes\n").stdout == b"from bytes\n"
    assert run(ECHO, stdin=bytearray(b"a bytearray\n")).stdout == b"a bytearray\n"
    assert run(ECHO, stdin=io.BytesIO(b"a stream\n")).stdout == b"a stream\n"
    assert run(ECHO, stdin=given).stdout == b"from a file\n"
    assert run(ECHO, stdin=str(given)).stdout == b"from a file\n"
    with pytest.raises(FileNotFoundError):
        Session(ECHO, stdin=tmp_path / "missing")


def test_a_failed_construction_closes_the_files_it_opened(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    with pytest.raises(TypeError, match="stderr"):
        Session(HELLO, stdout=out, stderr=io.StringIO())  # type: ignore[arg-type]
    out.unlink()  # nothing holds it


def test_program_name_is_argv0_and_defaults_to_the_module_file_name() -> None:
    assert run(SHOWARGS, ["x"]).stdout == b"argv[0]=showargs.wasm\nargv[1]=x\n"
    assert b"argv[0]=ls" in run(SHOWARGS, program_name="ls").stdout
    assert b"argv[0]=module" in run(SHOWARGS.read_bytes()).stdout
    with WasiWorld() as host:
        client = host.client(SHOWARGS, name="tool")
        assert client.start() == 0 and b"argv[0]=tool" in client.stdout


def test_after_proc_exit_the_code_is_kept_and_later_calls_raise_at_once() -> None:
    with Session(HOLDER) as session:
        assert session.exit_code is None
        with pytest.raises(GuestExit) as exited:
            session.call("die_exit", 7)
        assert exited.value.code == 7 and session.exit_code == 7
        with pytest.raises(GuestExit) as again:  # the guest is not entered again
            session.call("create")
        assert again.value.code == 7
        with pytest.raises(ValueError, match="no function named 'nope'"):  # still a mistake
            session.call("nope")
    with Session(FIXTURES / "nostdin.wasm") as command:
        code = command.start()
        assert command.exit_code == (code or None)  # exiting 0 from main is no proc_exit


def test_a_trap_is_a_guest_trap_from_call_and_134_from_start() -> None:
    with Session(HOLDER) as session:
        with pytest.raises(GuestTrap, match="unreachable"):
            session.call("die_trap")
        assert session.exit_code is None


def test_strings_pass_through_a_c_librarys_own_malloc() -> None:
    with Session(TEXTLIB) as lib:
        text = lib.write_string("hello, wasm: é")
        upper = lib.call("upper", text)
        assert lib.read_string(upper) == "HELLO, WASM: é"
        lib.free(upper)
        lib.free(text)
        argc, argv = lib.write_argv(["one", "two words", ""])
        joined = lib.call("join", argc, argv)
        assert lib.read_string(joined) == "one two words "
        assert lib.read_bytes(argv, 4) == lib.read_memory(argv, 4)  # one method, two names
        lib.free(argv)  # the array and its strings were one allocation
        data = bytes(range(256)) * 4
        buf = lib.write_bytes(data)
        assert lib.read_bytes(buf, len(data)) == data
        expected = 0
        for byte in data:
            expected = (expected * 31 + byte) & 0xFFFFFFFF
        assert lib.call("checksum", buf, len(data)) & 0xFFFFFFFF == expected
        block = lib.alloc(16)
        assert block != 0 and block % 8 == 0
        lib.write_memory(block, b"no end in sight!")
        with pytest.raises(ValueError, match="no NUL within 16 bytes"):
            lib.read_string(block, max_length=16)
        with pytest.raises(ValueError, match="NUL character"):
            lib.write_string("a\0b")
        with pytest.raises(ValueError, match="NULL"):
            lib.read_string(0)
        with pytest.raises(TypeError, match="not a single str"):
            lib.write_argv("abc")


def test_alloc_uses_cabi_realloc_and_names_what_it_looked_for() -> None:
    reactor = wasmtime.wat2wasm("""
    (module (memory (export "memory") 1)
      (global $next (mut i32) (i32.const 1024))
      (global (export "last_align") (mut i32) (i32.const 0))
      (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
        (local $p i32)
        (if (i32.or (local.get 0) (local.get 1)) (then unreachable))
        (global.set 1 (local.get 2))
        (local.set $p (global.get $next))
        (global.set $next (i32.add (global.get $next) (local.get 3)))
        (local.get $p)))
    """)
    with Session(reactor) as session:
        first = session.write_string("abc")
        assert first == 1024 and session.read_string(first) == "abc"
        assert session.alloc(8, align=4) == 1028
        with pytest.raises(ValueError, match="exports no free"):
            session.free(first)
    with Session(HOLDER) as holder, pytest.raises(
            ValueError, match="no allocator: alloc looks for a malloc export, then cabi_realloc"):
        holder.write_string("x")


def test_a_binary_stream_with_read_only_is_stdin_too() -> None:
    class Pipe:
        def __init__(self) -> None:
            self.left = b"read in pieces\n"

        def read(self, size: int = -1) -> bytes:
            piece, self.left = self.left[:3], self.left[3:]
            return piece

    assert run(ECHO, stdin=Pipe()).stdout == b"read in pieces\n"
    with pytest.raises(TypeError, match="binary stream"):
        Session(ECHO, stdin=42)  # type: ignore[arg-type]
