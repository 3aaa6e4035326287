"""Hostile or broken input on the command line: one line and an exit code, never a
traceback; and modules wasmtime runs, run as wasmtime runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import wasmtime

ROOT = Path(__file__).resolve().parents[1]


def virtwasi(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "virtwasi", *args], capture_output=True,
                          text=True, timeout=120, env=env, cwd=cwd)


def wasm(tmp: Path, name: str, wat: str) -> str:
    path = tmp / name
    path.write_bytes(wasmtime.wat2wasm(wat))
    return str(path)


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr


def test_a_world_file_nested_too_deep_is_one_line(tmp_path: Path) -> None:
    world = tmp_path / "deep.toml"
    world.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    module = wasm(tmp_path, "hello.wasm", '(module (func (export "_start")))')
    for args in (("run", "--world", str(world), module), ("graph", str(world))):
        result = virtwasi(*args)
        no_traceback(result)
        assert result.returncode == 2 and "deep.toml" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
