"""Hostile or broken input on the command line: one line and an exit code, never a
traceback; and modules wasmtime runs, run as wasmtime runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import wasmtime
from conftest import FIXTURES

from virtwasi.storage.loopback import s3_filesystem

ROOT = Path(__file__).resolve().parents[1]
ECHO = FIXTURES / "echo.wasm"  # copies stdin to stdout


def virtwasi(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "virtwasi", *args], capture_output=True,
                          text=True, timeout=120, env=env, cwd=cwd)


def wasm(tmp: Path, name: str, wat: str) -> str:
    path = tmp / name
    path.write_bytes(wasmtime.wat2wasm(wat))
    return str(path)


START_TRAPS = '''(module (memory (export "memory") 1)
  (func $s unreachable) (start $s) (func (export "_start")))'''

START_CALLS_WASI = '''(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $e (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hi\\n")
  (func $s (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 3))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $e (i32.const 3)))
  (start $s) (func (export "_start") unreachable))'''


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr


def test_a_start_function_that_traps_exits_134_as_wasmtime_does(tmp_path: Path) -> None:
    result = virtwasi("run", wasm(tmp_path, "trap.wasm", START_TRAPS))
    no_traceback(result)
    assert result.returncode == 134
    assert result.stderr.startswith("Error: ") and "unreachable" in result.stderr


def test_a_start_function_may_call_wasi_and_exit(tmp_path: Path) -> None:
    result = virtwasi("run", wasm(tmp_path, "start.wasm", START_CALLS_WASI))
    no_traceback(result)
    assert (result.returncode, result.stdout) == (3, "hi\n")


def test_a_world_file_nested_too_deep_is_one_line(tmp_path: Path) -> None:
    world = tmp_path / "deep.toml"
    world.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    module = wasm(tmp_path, "hello.wasm", '(module (func (export "_start")))')
    for args in (("run", "--world", str(world), module), ("graph", str(world))):
        result = virtwasi(*args)
        no_traceback(result)
        assert result.returncode == 2 and "deep.toml" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_diff_of_a_start_function_that_calls_wasi_is_a_comparison(tmp_path: Path) -> None:
    result = virtwasi("diff", wasm(tmp_path, "start.wasm", START_CALLS_WASI),
                      "--runtime", "virtual-memory")
    no_traceback(result)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_audit_log_in_a_missing_bucket_is_refused_before_the_run(s3_endpoint: str) -> None:
    result = virtwasi("run", "--audit", "s3://missing-bucket/log", str(ECHO))
    no_traceback(result)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "virtwasi: --audit: audit log 's3://missing-bucket/log': no bucket 'missing-bucket' "
        "to write it in"]


def test_an_audit_log_lost_at_the_end_is_one_line(s3_endpoint: str) -> None:
    fs = s3_filesystem(s3_endpoint)
    fs.mkdir("vanishing")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "virtwasi", "run", "--audit", "s3://vanishing/log", str(ECHO)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("line\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == "line\n"  # the guest runs: now the bucket goes
    fs.rmdir("vanishing")
    _, err = proc.communicate("", timeout=120)
    assert "Traceback" not in err, err
    assert proc.returncode == 1
    [line] = err.strip().splitlines()
    assert line.startswith("virtwasi: --audit: audit log 's3://vanishing/log' was not written")


def test_diff_of_files_that_are_not_wasm_is_one_line(tmp_path: Path) -> None:
    for name, content in (("text.wasm", b"not wasm\n"), ("junk.wasm", b"\0asm\1\0\0\0\xff"),
                          ("binary.wasm", bytes(range(256))), ("empty.wasm", b"")):
        (tmp_path / name).write_bytes(content)
        result = virtwasi("diff", str(tmp_path / name))
        no_traceback(result)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def _parse_events(count: int) -> int:
    """Python line events spent parsing ``count`` --env flags of a run command line."""
    from virtwasi.cli import _parse, build_parser

    argv = ["run", "--dir", ".", "--en=FIRST=1"]
    for i in range(count):
        argv += ["--env", f"V{i}=x"]
    argv += ["--env=LAST=2", "prog.wasm", "--env", "guest-arg"]
    parser = build_parser()
    events = 0

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal events
        events += 1
        return tracer

    sys.settrace(tracer)
    try:
        args, _ = _parse(parser, argv)
    finally:
        sys.settrace(None)
    assert args.env == ["FIRST=1", *(f"V{i}=x" for i in range(count)), "LAST=2"]
    assert args.args == ["--env", "guest-arg"] and args.dir == ["."]
    return events


def test_many_env_flags_cost_time_in_proportion() -> None:
    small, large = _parse_events(1000), _parse_events(4000)
    assert large < 5 * small, (small, large)  # linear: about 4 times; quadratic: 16


def test_forty_thousand_env_flags_reach_the_guest(tmp_path: Path) -> None:
    flags = [w for i in range(40_000) for w in ("--env", f"V{i}={i}")]
    result = virtwasi("run", *flags, str(FIXTURES / "showargs.wasm"))
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and len(lines) == 40_001 and lines[-1] == "env V39999=39999"


def test_an_env_flag_without_a_value_is_still_refused() -> None:
    result = virtwasi("run", "--env", "--dir", ".", str(ECHO))
    assert result.returncode == 2 and "--env" in result.stderr
