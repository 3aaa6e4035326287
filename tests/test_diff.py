"""``virtwasi diff`` and the comparison it prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import FIXTURES

from virtwasi.compare.diff import REFERENCE, Comparison, Observation, default_runtimes, report


def virtwasi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "virtwasi", *args], capture_output=True,
                          text=True, timeout=300)


def test_diff_runs_every_runtime_from_a_copy_of_the_tree(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("input")
    done = virtwasi("diff", "--tree", str(tmp_path), str(FIXTURES / "fstool.wasm"),
                    "cat", "/in.txt", "put", "/out.txt", "made")
    assert done.returncode == 0, done.stdout + done.stderr
    runtimes = default_runtimes()
    assert runtimes == ["wasmtime", "native", "virtual-host", "virtual-memory"]
    for name in runtimes:
        assert f"\n{name} " in done.stdout
    assert "\nwasmer " not in done.stdout  # optional: only when named
    assert f"all {len(runtimes)} runtimes agree" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]  # the source is untouched


def test_the_report_shows_what_differs_and_where() -> None:
    same = Observation(0, b"line one\nline two\n", b"", {"f": ("regular", b"x")})
    other = Observation(1, b"line one\nline 2\n", b"", {"f": ("regular", b"y")})
    comparison = Comparison(Path("prog.wasm"), ["arg"],
                            {REFERENCE: same, "virtual-host": same, "virtual-memory": other})
    text = report(comparison)
    assert comparison.differing() == ["virtual-memory"] and not comparison.same
    assert "differs from wasmtime: virtual-memory" in text
    assert "--- exit_code: wasmtime vs virtual-memory" in text
    assert "-line two" in text and "+line 2" in text
    assert "-f: regular b'x'" in text and "+f: regular b'y'" in text
    assert "--- stderr" not in text


def test_diff_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for args, words in [
        (["diff", str(tmp_path / "missing.wasm")], "no such module file"),
        (["diff", "--tree", str(tmp_path / "nowhere"), str(FIXTURES / "hello.wasm")],
         "--tree: no such folder"),
        (["diff", "--runtime", "nope", str(FIXTURES / "hello.wasm")], "unknown runtime 'nope'"),
        (["diff", "--stdin", str(tmp_path / "nofile"), str(FIXTURES / "hello.wasm")],
         "--stdin"),
    ]:
        done = virtwasi(*args)
        assert done.returncode == 2, args
        assert words in done.stderr and done.stderr.count("\n") == 1, done.stderr
