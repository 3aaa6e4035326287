"""Deep directory trees: every layer walks them in loops, never one Python frame per level.

A chain of directories deeper than Python's recursion limit (1,000 frames) goes through the
quota layer's count, an overlay's copy-up of a renamed directory, ``virtwasi diff --tree``
and host folders (virtual and native), from the command line with the fixture deep.c, a C
program that names every level by its full path from the preopen, as wasi-libc does. Past
4 KiB such a path is refused as wasmtime refuses it; symlinks still lead a short path there.
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
FSTOOL = "scenarios/programs/fstool.wasm"
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
                    FSTOOL, "mkdir", "/d/x", "mkdir", "/d/y")
    assert code == 1
    assert out == ["mkdir /d/x: ok", "mkdir /d/y: errno 19 (Quota exceeded)"]
    code, out = run(capsys, "run", "--quota", "1G", "--dir", f"{folder}::/d", DEEP,
                    "/d/c", str(LEVELS), "check", "mv", "/d/e", "check", "rm")
    assert (code, out) == (0, [*CHECKED, "mv: /d/c to /d/e", *CHECKED, *REMOVED])


def test_the_quota_layer_counts_a_tree_deeper_than_path_max(
        folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """2,100 levels: no path from the preopen reaches the bottom, yet every level counts."""
    make_chain(folder / "c", 2100)
    code, out = run(capsys, "run", "--quota", "1G:2103", "--dir", f"{folder}::/d", FSTOOL,
                    "mkdir", "/d/x", "mkdir", "/d/y")
    assert (code, out) == (1, ["mkdir /d/x: ok", "mkdir /d/y: errno 19 (Quota exceeded)"])


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


def test_a_path_of_path_max_bytes_is_refused_as_wasmtime_refuses_it(
        folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """2,100 levels named from the preopen: past 2,047 the path is 4 KiB or more, which
    wasmtime refuses before walking it, whatever the tree holds."""
    make_chain(folder / "c", 2100)
    code, out = run(capsys, "diff", "--tree", str(folder), DEEP, "/c", "2100", "check", "mv",
                    "/e", "check", "rm")
    assert out[-1] == "all 4 runtimes agree"
    too_long = "errno 37 (Filename too long)"
    for impl in ("virtual", "native"):
        code, out = run(capsys, "run", "--impl", impl, "--dir", f"{folder}::/d", DEEP, "/d/c",
                        "2100", "check", "mv", "/d/e", "check", "mv", "/d/c", "rm")
        assert code == 1
        assert out == [f"check: stat failed at level 2100: {too_long}", "mv: /d/c to /d/e",
                       f"check: stat failed at level 2100: {too_long}", "mv: /d/e to /d/c",
                       f"rm: unlink failed at level 2100: {too_long}"]
    assert [path.name for path in folder.iterdir()] == ["c"]


def test_a_host_folder_follows_symlinks_to_a_path_past_path_max(
        folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Short guest paths through two symlinks lead 2,100 levels down: each target is
    under 4 KiB, as Linux asks, but the path they resolve to is not, so the host is walked
    in pieces, and the guest gets what wasmtime gives it."""
    make_chain(folder / "c", 2100)
    os.symlink("/".join(["c"] + ["d"] * 1500), folder / "s1")
    fd = os.open(folder / "c", os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(1500):
        inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.symlink("/".join(["d"] * 600), "s2", dir_fd=fd)
    os.close(fd)
    def calls(top: str, name: str) -> list[str]:
        here = f"{top}/s1/s2"
        return ["cat", f"{here}/f", "stat", f"{here}/f", "mkdir", f"{here}/{name}", "mv",
                f"{here}/f", f"{here}/{name}/f", "cat", f"{here}/{name}/f", "mv",
                f"{here}/{name}/f", f"{here}/f"]

    code, out = run(capsys, "diff", "--tree", str(folder), FSTOOL, *calls("", "g"))
    assert (code, out[-1]) == (0, "all 4 runtimes agree")
    for impl in ("virtual", "native"):
        code, out = run(capsys, "run", "--impl", impl, "--dir", f"{folder}::/d", FSTOOL,
                        *calls("/d", impl))
        here = "/d/s1/s2"
        assert (code, out) == (0, [f"cat {here}/f: deep", f"stat {here}/f: file, 4 bytes",
                                   f"mkdir {here}/{impl}: ok",
                                   f"mv {here}/f {here}/{impl}/f: ok",
                                   f"cat {here}/{impl}/f: deep",
                                   f"mv {here}/{impl}/f {here}/f: ok"])
    above = os.open(folder / "s1", os.O_RDONLY | os.O_DIRECTORY)  # followed by the host
    try:
        bottom = os.open("s2", os.O_RDONLY | os.O_DIRECTORY, dir_fd=above)
        try:
            assert sorted(os.listdir(bottom)) == ["f", "native", "virtual"]
        finally:
            os.close(bottom)
    finally:
        os.close(above)
