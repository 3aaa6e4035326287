"""Deep directory trees: every layer walks them in loops, never one Python frame per level.

A chain of directories deeper than Python's recursion limit (1,000 frames) goes through the
quota layer's count, an overlay's copy-up of a renamed directory, ``virtwasi diff --tree``
and host folders (virtual and native), from the command line with the fixture deep.c, a C
program that names every level by its full path from the preopen, as wasi-libc does.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from virtwasi.cli import main
from virtwasi.compare.diff import remove_folder

DEEP = str(Path(__file__).parent / "fixtures" / "deep.wasm")
LEVELS = 1_200  # beyond the recursion limit, with pytest's own frames below
CHECKED = ['check: a file of 4 bytes holding "deep", 1 entry at the bottom']
REMOVED = [f"rm: the file and {LEVELS + 1} directories"]


def make_chain(top: Path, levels: int) -> None:
    """``top``/d/d/... (``levels`` below ``top``) and the file f at the bottom holding
    "deep", made through directory fds: the path is longer than the host's PATH_MAX."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(levels):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        out = os.open("f", os.O_WRONLY | os.O_CREAT, 0o666, dir_fd=fd)
        os.write(out, b"deep")
        os.close(out)
    finally:
        os.close(fd)


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """An empty host folder, removed with all it holds after the test (pytest's own
    removal recurses once per level)."""
    path = tmp_path / "tree"
    path.mkdir()
    yield path
    if path.exists():
        remove_folder(path)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main(list(args))
    out = capsys.readouterr()
    assert out.err == ""
    return code, out.out.splitlines()


def test_the_quota_layer_counts_a_deep_tree(folder: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    make_chain(folder / "c", LEVELS)
    # The tree holds LEVELS + 1 directories and a file: room for one more inode.
    code, out = run(capsys, "run", "--quota", f"1G:{LEVELS + 3}", "--dir", f"{folder}::/d",
                    "scenarios/programs/fstool.wasm", "mkdir", "/d/x", "mkdir", "/d/y")
    assert code == 1
    assert out == ["mkdir /d/x: ok", "mkdir /d/y: errno 19 (Quota exceeded)"]
    code, out = run(capsys, "run", "--quota", "1G", "--dir", f"{folder}::/d", DEEP,
                    "/d/c", str(LEVELS), "check", "mv", "/d/e", "check", "rm")
    assert (code, out) == (0, [*CHECKED, "mv: /d/c to /d/e", *CHECKED, *REMOVED])


@pytest.mark.parametrize(("lower", "upper"), [("folder", "memory"), ("folder", "folder"),
                                              ("zip", "memory")])
def test_an_overlay_renames_a_deep_directory(folder: Path, tmp_path: Path, lower: str,
                                             upper: str, capsys: pytest.CaptureFixture[str]
                                             ) -> None:
    source = str(folder)
    if lower == "zip":  # members only, no folder entries: the archive implies each level
        with zipfile.ZipFile(tmp_path / "deep.zip", "w") as archive:
            archive.writestr("c/" + "d/" * LEVELS + "f", "deep")
        source = f"zip::file://{tmp_path / 'deep.zip'}"
    else:
        make_chain(folder / "c", LEVELS)
    overlay = "/d"
    if upper == "folder":
        (tmp_path / "upper").mkdir()
        overlay = f"/d={tmp_path / 'upper'}"
    try:
        code, out = run(capsys, "run", "--mount", f"/d={source}", "--overlay", overlay, DEEP,
                        "/d/c", str(LEVELS), "check", "mv", "/d/e", "check", "rm")
        assert code == 0
        assert out == [*CHECKED, "mv: /d/c to /d/e", *CHECKED, *REMOVED]
    finally:
        if upper == "folder":
            remove_folder(tmp_path / "upper")
    # The lower is only ever read.
    code, out = run(capsys, "run", "--mount", f"/d={source}", DEEP, "/d/c", str(LEVELS),
                    "check")
    assert (code, out) == (0, CHECKED)


def test_diff_copies_and_compares_a_deep_tree(folder: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    make_chain(folder / "c", LEVELS)
    code, out = run(capsys, "diff", "--tree", str(folder), DEEP, "/c", str(LEVELS), "check",
                    "mv", "/e", "check")
    assert code == 0
    assert out[-1] == "all 4 runtimes agree"
    # Each tree: the LEVELS + 1 directories and the file, seen where the rename left them.
    assert [line.split()[-2:] for line in out[3:7]] == [[f"{LEVELS + 2}", "entries"]] * 4


@pytest.mark.parametrize("impl", ["virtual", "native"])
def test_a_host_folder_serves_a_chain_past_path_max(folder: Path, impl: str,
                                                    capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    """2,100 levels: the relative paths are over 4 KiB, longer than the host takes in one
    call, so the walk goes in pieces."""
    levels = "2100"
    code, out = run(capsys, "run", "--impl", impl, "--dir", f"{folder}::/d", DEEP, "/d/c",
                    levels, "make", "check", "mv", "/d/e", "check", "rm")
    assert code == 0
    assert out == ["make: 2101 directories and a file", *CHECKED, "mv: /d/c to /d/e",
                   *CHECKED, "rm: the file and 2101 directories"]
    assert list(folder.iterdir()) == []
