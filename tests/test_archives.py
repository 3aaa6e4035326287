"""Zip and tar archives mounted read-only: read like the folder they were packed from,
refuse every change with EROFS, and read big members in place rather than whole."""

from __future__ import annotations

import hashlib
import os
import tarfile
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from conftest import FIXTURES
from storagekit import SteppingClock

from virtwasi.cli import main
from virtwasi.runtime import Session, run
from virtwasi.terminal import progress as progress_module
from virtwasi.wasi.abi import Errno

FSTOOL = str(FIXTURES / "fstool.wasm")
FDTOOL = str(FIXTURES / "fdtool.wasm")
PATHPROBE = str(FIXTURES / "pathprobe.wasm")

TREE = {
    "docs/guide.txt": b"A guide, in a few lines.\n" * 40,
    "docs/sub/deep.txt": b"deep\n",
    "docs/empty.txt": b"",
    "top.txt": b"0123456789abcdefghijklmnopqrstuvwxyz",
}
DIRS = ["docs", "docs/sub", "hollow"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["run", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tree as a host folder and packed every way: zip (deflated and stored members),
    tar with ``./`` names (as ``tar -C folder .`` writes them), and tar.gz."""
    base = tmp_path_factory.mktemp("packed")
    folder = base / "folder"
    for name in DIRS:
        (folder / name).mkdir(parents=True)
    for name, data in TREE.items():
        (folder / name).write_bytes(data)
    with zipfile.ZipFile(base / "tree.zip", "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(folder.rglob("*")):
            kind = zipfile.ZIP_STORED if path.name == "top.txt" else zipfile.ZIP_DEFLATED
            out.write(path, path.relative_to(folder).as_posix(), compress_type=kind)
    with tarfile.open(base / "tree.tar", "w") as tar:
        tar.add(folder, ".")
    with tarfile.open(base / "tree.tar.gz", "w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, path.relative_to(folder).as_posix(), recursive=False)
    return {"folder": folder, "zip": base / "tree.zip", "tar": base / "tree.tar",
            "tar.gz": base / "tree.tar.gz"}


ARCHIVES = {"zip": "zip::file://{}", "tar": "tar::file://{}", "tar.gz": "tar::file://{}"}


def url_of(packed: dict[str, Path], kind: str) -> str:
    return ARCHIVES[kind].format(packed[kind])


READS = ["ls", "/d", "ls", "/d/docs", "ls", "/d/docs/sub", "ls", "/d/hollow",
         "cat", "/d/top.txt", "cat", "/d/docs/sub/deep.txt", "cat", "/d/docs/empty.txt",
         "stat", "/d/docs/guide.txt", "stat", "/d/missing",
         "ls", "/d/top.txt", "cat", "/d/docs"]


@pytest.mark.parametrize("kind", sorted(ARCHIVES))
def test_an_archive_reads_as_the_folder_it_was_packed_from(
        kind: str, packed: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    folder = cli(capsys, "--dir", f"{packed['folder']}::/d", FSTOOL, *READS)
    archive = cli(capsys, "--mount", f"/d={url_of(packed, kind)}", FSTOOL, *READS)
    assert archive == folder
    assert "ls /d: docs hollow top.txt" in archive[1]
    assert "stat /d/docs/guide.txt: file, 1000 bytes" in archive[1]


@pytest.mark.parametrize("kind", sorted(ARCHIVES))
def test_random_access_and_directory_opens_as_on_the_folder(
        kind: str, packed: dict[str, Path]) -> None:
    script = ["open", "1", "/d/top.txt", "r", "pread", "1", "30", "6", "pread", "1", "3", "4",
              "seek", "1", "-5", "end", "read", "1", "100", "seek", "1", "10", "set",
              "read", "1", "3", "seek", "1", "2", "cur", "read", "1", "2", "pread", "1", "99", "4",
              "fstat", "1", "open", "2", "/d/docs/guide.txt", "r", "pread", "2", "975", "25",
              "pread", "2", "0", "8"]
    probes = ["/d", "+/d/docs", "+/d/top.txt", "/d/docs/sub/deep.txt", "/d/nope",
              "/d/docs/../top.txt", "+/d/hollow/"]
    source = {"/d": url_of(packed, kind)}
    expected = {"/d": packed["folder"]}
    for module, args in ((FDTOOL, script), (PATHPROBE, probes)):
        got, want = run(module, args, mounts=source), run(module, args, mounts=expected)
        assert (got.exit_code, got.stdout) == (want.exit_code, want.stdout)
    lines = run(FDTOOL, script, mounts=source).stdout.decode().splitlines()
    assert "pread 1: 6 'uvwxyz'" in lines and "read 1: 5 'vwxyz'" in lines
    assert "read 1: 2 'fg'" in lines and "pread 2: 25 'A guide, in a few lines.\\x0a'" in lines


WRITES = {
    FSTOOL: ["put", "/d/top.txt", "x", "put", "/d/new.txt", "x", "append", "/d/top.txt", "x",
             "mkdir", "/d/newdir", "rm", "/d/top.txt", "mv", "/d/top.txt", "/d/moved.txt",
             "mv", "/d/docs", "/d/elsewhere"],
    FDTOOL: ["open", "1", "/d/top.txt", "rw", "open", "1", "/d/top.txt", "w",
             "open", "1", "/d/top.txt", "a", "open", "1", "/d/fresh.txt", "c",
             "rmdir", "/d/hollow", "unlink", "/d/docs/empty.txt", "link", "/d/top.txt", "/d/h",
             "symlink", "top.txt", "/d/s", "touch", "/d/top.txt", "1000",
             "rename", "/d/docs/sub", "/d/sub"],
}


@pytest.mark.parametrize("kind", sorted(ARCHIVES))
def test_every_change_is_erofs_and_the_archive_stays_as_it_was(
        kind: str, packed: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    before = sha256(packed[kind])
    for module, script in WRITES.items():
        code, out, _ = cli(capsys, "--mount", f"/d={url_of(packed, kind)}", module,
                           *script)
        assert code == (1 if module == FSTOOL else 0)  # fstool counts its failures
        lines = out.splitlines()
        assert len(lines) == sum(1 for word in script if word in (
            "put", "append", "mkdir", "rm", "mv", "open", "rmdir", "unlink", "link", "symlink",
            "touch", "rename"))
        for line in lines:
            assert f"errno {int(Errno.ROFS)}" in line, line
    assert sha256(packed[kind]) == before
    _, out, _ = cli(capsys, "--mount", f"/d={url_of(packed, kind)}", FSTOOL, *READS)
    assert "ls /d: docs hollow top.txt" in out


def test_tar_symlinks_are_symlinks(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "target.txt").write_bytes(b"through the link\n")
    (folder / "link").symlink_to("target.txt")
    (folder / "dangling").symlink_to("nowhere")
    with tarfile.open(tmp_path / "links.tar", "w") as tar:
        tar.add(folder, "")
    script = ["readlink", "/d/link", "stat", "/d/link", "cat", "/d/link", "readlink",
              "/d/dangling", "cat", "/d/dangling", "ls", "/d"]
    archive = run(FDTOOL, script, mounts={"/d": f"tar::file://{tmp_path / 'links.tar'}"})
    folder_run = run(FDTOOL, script, mounts={"/d": folder})
    assert archive.stdout == folder_run.stdout
    assert b"readlink /d/link: 'target.txt'" in archive.stdout
    assert b"cat /d/link: 'through the link\\x0a'" in archive.stdout


def test_a_root_inside_the_archive_is_served_at_the_mount(packed: dict[str, Path]) -> None:
    got = run(FSTOOL, ["ls", "/d", "cat", "/d/sub/deep.txt"],
              mounts={"/d": f"zip://docs::file://{packed['zip']}"})
    assert got.stdout == b"ls /d: empty.txt guide.txt sub\ncat /d/sub/deep.txt: deep\n\n"


@pytest.mark.parametrize("url, message", [
    ("zip::file://{tmp}/missing.zip", "not found"),
    ("tar::file://{tmp}/not-an-archive.tar", "cannot open"),
    ("zip::file://{tmp}/not-an-archive.tar", "cannot open"),
    ("zip://no/such/dir::file://{zip}", "no such directory"),
])
def test_a_bad_archive_is_a_one_line_error(url: str, message: str, tmp_path: Path,
                                           packed: dict[str, Path],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "not-an-archive.tar").write_bytes(b"plain text, not an archive\n" * 100)
    code, out, err = cli(capsys, "--mount", "/d=" + url.format(tmp=tmp_path, zip=packed["zip"]),
                         FSTOOL, "ls", "/d")
    assert code == 2 and out == ""
    assert err.startswith("virtwasi: ") and message in err and err.count("\n") == 1, err


# -- big members are read in place --------------------------------------------------------

BIG = 64 << 20
MARKS = {0: b"first", 40 << 20: b"forty MiB in", BIG - 4: b"last"}


@pytest.fixture(scope="module")
def big_archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 64 MiB member stored uncompressed, alone in a zip and in a tar."""
    base = tmp_path_factory.mktemp("big")
    member = base / "big.bin"
    with member.open("wb") as out:
        out.truncate(BIG)
        for offset, mark in MARKS.items():
            out.seek(offset)
            out.write(mark)
    with zipfile.ZipFile(base / "big.zip", "w", zipfile.ZIP_STORED) as z:
        z.write(member, "data/big.bin")
    with tarfile.open(base / "big.tar", "w") as tar:
        tar.add(member, "data/big.bin")
    member.unlink()
    return {"zip": base / "big.zip", "tar": base / "big.tar"}


def bytes_read_by_this_process() -> int:
    """Linux's count of bytes this process asked read(2) and friends for."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_small_range_of_a_big_member_reads_only_that_range(
        kind: str, big_archives: dict[str, Path]) -> None:
    script = ["open", "1", "/d/data/big.bin", "r", "pread", "1", str(40 << 20), "12",
              "seek", "1", "-4", "end", "read", "1", "4", "pread", "1", "0", "5",
              "pread", "1", str(40 << 20), "5", "fstat", "1"]
    url = f"{kind}::file://{big_archives[kind]}"
    run(FDTOOL, ["ls", "/d"], mounts={"/d": url})  # the module compiled outside the count
    tracemalloc.start()
    start = bytes_read_by_this_process()
    with Session(FDTOOL, script, mounts={"/d": url}) as session:
        assert session.start() == 0
        out = session.stdout
    read = bytes_read_by_this_process() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.decode().splitlines() == [
        "open 1 /d/data/big.bin: ok", "pread 1: 12 'forty MiB in'", f"seek 1: {BIG - 4}",
        "read 1: 4 'last'", "pread 1: 5 'first'", "pread 1: 5 'forty'",
        f"fstat 1: file, {BIG} bytes"]
    # Loading the member whole, or reading up to the offset (zipfile's own seek), would
    # read 40 to 64 MiB of the archive; in place it is a few buffers.
    assert read < 2 << 20, f"read {read} bytes of the archive"
    assert peak < 8 << 20, f"held {peak} bytes at once"


# -- progress -------------------------------------------------------------------------------


def test_indexing_a_tar_shows_progress_on_a_terminal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    with tarfile.open(tmp_path / "many.tar", "w") as tar:
        for i in range(200):
            name = tmp_path / f"m{i:03}"
            name.write_bytes(b"x" * 1000)
            tar.add(name, f"many/m{i:03}")
    monkeypatch.setattr(progress_module, "_clock", SteppingClock())
    monkeypatch.setenv("VIRTWASI_PROGRESS", "always")
    code, out, err = cli(capsys, "--mount", f"/d=tar::file://{tmp_path / 'many.tar'}", FSTOOL,
                         "stat", "/d/many/m199")
    assert code == 0 and out == "stat /d/many/m199: file, 1000 bytes\n"
    size = f"{os.path.getsize(tmp_path / 'many.tar') / 1024:.1f} KiB"
    assert "indexing many.tar [" in err
    assert f"100%  {size}/{size}" in err.splitlines()[-1]
