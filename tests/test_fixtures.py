"""The wasm fixtures are built, committed, and run on the reference runtime."""

from __future__ import annotations

from pathlib import Path

from conftest import FIXTURES, load_adapter


def test_every_c_fixture_has_its_wasm_committed() -> None:
    sources = sorted(FIXTURES.glob("*.c"))
    assert sources
    assert [s.name for s in sources if not s.with_suffix(".wasm").is_file()] == []


def test_hello_runs_on_wasmtimes_builtin_wasi(tmp_path: Path) -> None:
    reference = load_adapter("wasmtime_wasi")
    result = reference.run(FIXTURES / "hello.wasm", ["world", "wasm"], tmp_path)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == b"hello, world\nhello, wasm\n"
    assert (tmp_path / "greeted.txt").read_text() == "2\n"


def test_hello_reports_a_failure_through_its_exit_code(tmp_path: Path) -> None:
    reference = load_adapter("wasmtime_wasi")
    (tmp_path / "greeted.txt").mkdir()  # fopen for writing fails on a directory
    result = reference.run(FIXTURES / "hello.wasm", [], tmp_path)
    assert result.exit_code == 1
    assert b"greeted.txt" in result.stderr
