"""``virtwasi examples DEST``: the example world files and demo programs, copied where an
installed copy's user can run the README's commands as written."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from conftest import ROOT

from virtwasi.cli import example_files, main


def test_the_examples_are_copied_at_their_checkout_paths_and_run_from_there(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "ex"
    assert main(["examples", str(dest)]) == 0
    wrote = [line.removeprefix("wrote ") for line in capfd.readouterr().out.splitlines()
             if line.startswith("wrote ")]
    expected = {"examples/readonly.toml", "examples/quota.toml", "examples/data/notes.txt",
                "scenarios/programs/fstool.wasm", "scenarios/programs/hello.wasm",
                "scenarios/programs/textlib.wasm"}
    assert expected <= {Path(w).relative_to(dest).as_posix() for w in wrote}
    for name, source in example_files().items():
        assert (dest / name).read_bytes() == source.read_bytes()
        assert source.is_relative_to(ROOT)  # in a checkout, the checkout's own files
    with contextlib.chdir(dest):
        assert main(["run", "--world", "examples/readonly.toml"]) == 1  # the writes fail
        out = capfd.readouterr().out
        assert "cat /data/notes.txt: buy milk" in out and "Read-only file system" in out
        assert main(["graph", "examples/quota.toml"]) == 0
        assert main(["run", "scenarios/programs/hello.wasm", "Ada"]) == 0
        assert capfd.readouterr().out.endswith("hello, Ada\n")
    assert (dest / "examples/data/notes.txt").read_text() == (
        ROOT / "examples/data/notes.txt").read_text()


def test_a_changed_file_is_not_overwritten_unless_forced(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["examples", str(tmp_path)]) == 0
    assert main(["examples", str(tmp_path)]) == 0  # the same bytes: nothing to refuse
    mine = tmp_path / "examples" / "quota.toml"
    mine.write_text("# mine\n")
    capfd.readouterr()
    assert main(["examples", str(tmp_path)]) == 2
    assert "quota.toml exists with other contents (--force overwrites)" in capfd.readouterr().err
    assert mine.read_text() == "# mine\n"
    assert main(["examples", "--force", str(tmp_path)]) == 0
    assert mine.read_bytes() == (ROOT / "examples" / "quota.toml").read_bytes()
