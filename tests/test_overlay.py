"""Copy-on-write overlays: programs see a writable tree that behaves as a plain one holding
the same files, while the lower layer (an archive, a host folder) is never changed and the
upper one holds only the changes."""

from __future__ import annotations

import hashlib
import shutil
import uuid
import zipfile
from pathlib import Path

import fsspec
import pytest
from backends import zip_folder
from conftest import FIXTURES
from fixturecases import CASES, ENV
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storagekit import SteppingClock

from virtwasi.cli import main
from virtwasi.compare.diff import REFERENCE, copier, run_on
from virtwasi.runtime import WasiWorld, run
from virtwasi.storage import HostDirStorage, MemoryStorage, OverlayStorage
from virtwasi.storage.mounts import MountSource, Overlay
from virtwasi.storage.readonly import ReadOnlyStorage
from virtwasi.storage.tree import Snapshot, copy_tree, snapshot
from virtwasi.terminal import progress as progress_module
from virtwasi.wasi.abi import Errno

FSTOOL = FIXTURES / "fstool.wasm"
FDTOOL = FIXTURES / "fdtool.wasm"

FILES = {
    "docs/guide.txt": b"the guide\n",
    "docs/sub/deep.txt": b"deep down\n",
    "top.txt": b"on top\n",
}
DIRS = ["docs", "docs/sub", "empty"]

Outcome = tuple[int, bytes, bytes, Snapshot]


def make_folder(root: Path, prepare: object = None) -> Path:
    """The initial tree as a host folder: a fixture case's, or the one above."""
    root.mkdir()
    if callable(prepare):
        prepare(root)
    else:
        for name in DIRS:
            (root / name).mkdir(parents=True)
        for name, data in FILES.items():
            (root / name).write_bytes(data)
    return root


def zip_of(folder: Path, archive: Path) -> Path:
    return zip_folder(folder, archive, zipfile.ZIP_DEFLATED)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_of(folder: Path) -> Snapshot:
    with HostDirStorage(folder) as storage:
        return snapshot(ReadOnlyStorage(storage))


def plain_copy(folder: Path) -> MemoryStorage:
    tree = MemoryStorage()
    with HostDirStorage(folder) as source:
        copy_tree(source, tree)
    return tree


class Layers:
    """An overlay over a copy of ``folder``: a zip with memory above it, or a host folder
    with another host folder above it. Remembers the lower's state to check it after."""

    def __init__(self, kind: str, folder: Path, scratch: Path) -> None:
        self.kind = kind
        scratch.mkdir()
        if kind == "zip+memory":
            self.archive = zip_of(folder, scratch / "lower.zip")
            self.source: MountSource = Overlay(f"zip::file://{self.archive}")
            self.lower_state: object = sha256(self.archive)
        else:
            self.lower = scratch / "lower"
            self.upper = scratch / "upper"
            shutil.copytree(folder, self.lower, symlinks=True)
            self.upper.mkdir()
            self.source = Overlay(self.lower, self.upper)
            self.lower_state = tree_of(self.lower)

    def lower_unchanged(self) -> bool:
        if self.kind == "zip+memory":
            return sha256(self.archive) == self.lower_state
        return tree_of(self.lower) == self.lower_state


LAYERS = ["zip+memory", "host+host"]


def outcome(source: MountSource, module: Path, args: list[str], stdin: bytes = b"") -> Outcome:
    """Exit code, stdout, stderr and the final tree of one run with ``source`` at /."""
    with WasiWorld({"/": source}) as world:
        client = world.client(module, args, env=ENV, stdin=stdin)
        code = client.start()
        return code, client.stdout, client.stderr, snapshot(world.mounts["/"])


# -- the same as a plain tree -------------------------------------------------------------


@pytest.mark.parametrize("layers", LAYERS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_fixture_case_behaves_as_on_a_plain_tree(case: str, layers: str,
                                                       tmp_path: Path) -> None:
    module, args, prepare, stdin = CASES[case]
    folder = make_folder(tmp_path / "initial", prepare or (lambda root: None))
    overlay = Layers(layers, folder, tmp_path / "layers")
    expected = outcome(plain_copy(folder), FIXTURES / module, args, stdin)
    assert outcome(overlay.source, FIXTURES / module, args, stdin) == expected
    assert overlay.lower_unchanged()


SCRIPTS: dict[str, tuple[Path, list[str]]] = {
    # fileops and dirs write beside the lower files and list them merged.
    "fileops": (FIXTURES / "fileops.wasm", []),
    "dirs": (FIXTURES / "dirs.wasm", []),
    "fstool": (FSTOOL, [
        "cat", "docs/guide.txt", "append", "docs/guide.txt", "more", "put", "top.txt", "new top",
        "rm", "docs/sub/deep.txt", "ls", "docs/sub", "mv", "docs", "moved", "ls", ".",
        "ls", "moved", "cat", "moved/guide.txt", "mkdir", "docs", "ls", "docs",
        "put", "docs/again.txt", "x", "mv", "top.txt", "empty/top.txt",
        "stat", "moved/sub/../guide.txt", "ls", "empty"]),
    "fdtool": (FDTOOL, [
        "open", "1", "top.txt", "r", "open", "2", "top.txt", "rw", "pwrite", "2", "3", "TOP",
        "pread", "1", "0", "20", "unlink", "top.txt", "pread", "1", "0", "20",
        "link", "docs/guide.txt", "hard", "stat", "hard", "open", "3", "hard", "a",
        "write", "3", "+", "cat", "docs/guide.txt", "symlink", "docs/sub", "short",
        "readlink", "short", "cat", "short/deep.txt", "rmdir", "docs/sub",
        "unlink", "docs/sub/deep.txt", "rmdir", "docs/sub", "mkdir", "docs/sub", "ls", "docs/sub",
        "rename", "empty", "docs/sub", "ls", "docs", "rename", "docs", "docs/inside",
        "open", "4", "docs/guide.txt", "w", "fstat", "4", "touch", "docs/guide.txt", "7"]),
}


@pytest.mark.parametrize("layers", LAYERS)
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_changes_to_lower_files_behave_as_on_a_plain_tree(script: str, layers: str,
                                                          tmp_path: Path) -> None:
    module, args = SCRIPTS[script]
    folder = make_folder(tmp_path / "initial")
    overlay = Layers(layers, folder, tmp_path / "layers")
    got = outcome(overlay.source, module, args)
    assert got == outcome(plain_copy(folder), module, args)
    assert overlay.lower_unchanged()
    if script == "fstool":
        assert b"errno" not in got[1]  # every change it asked for was made


@pytest.mark.parametrize("script", ["fstool", "fdtool"])
def test_an_overlay_of_a_zip_behaves_as_wasmtime_on_a_folder(script: str,
                                                              tmp_path: Path) -> None:
    module, args = SCRIPTS[script]
    folder = make_folder(tmp_path / "initial")
    reference = run_on(REFERENCE, module, args, tmp_path / "wasmtime", env=ENV,
                       prepare=copier(folder))
    overlay = Layers("zip+memory", folder, tmp_path / "layers")
    code, out, err, tree = outcome(overlay.source, module, args)
    assert (code, out, err, tree) == (reference.exit_code, reference.stdout, reference.stderr,
                                      reference.tree)


# -- what each layer holds ----------------------------------------------------------------


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["run", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_upper_folder_holds_just_the_changes(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    lower = make_folder(tmp_path / "lower")
    upper = tmp_path / "upper"
    upper.mkdir()
    before = tree_of(lower)
    code, out, err = cli(capsys, "--dir", f"{lower}::/data", "--overlay", f"/data={upper}",
                         str(FSTOOL), "append", "/data/docs/sub/deep.txt", "!",
                         "rm", "/data/top.txt", "rm", "/data/docs/guide.txt",
                         "mkdir", "/data/new", "put", "/data/new/f", "fresh", "ls", "/data",
                         "ls", "/data/docs")
    assert (code, err) == (0, "")
    assert out.splitlines()[-2:] == ["ls /data: docs empty new", "ls /data/docs: sub"]
    assert tree_of(lower) == before
    # Deletions are the overlay's own state: no marker file in either layer.
    assert tree_of(upper) == {
        "docs": ("directory", None),
        "docs/sub": ("directory", None),
        "docs/sub/deep.txt": ("regular", b"deep down\n!"),
        "new": ("directory", None),
        "new/f": ("regular", b"fresh"),
    }


def test_a_second_client_sees_the_first_ones_changes(tmp_path: Path) -> None:
    archive = zip_of(make_folder(tmp_path / "initial"), tmp_path / "lower.zip")
    before = sha256(archive)
    with WasiWorld({"/data": Overlay(f"zip::file://{archive}")}) as world:
        first = world.client(FSTOOL, ["rm", "/data/top.txt", "mv", "/data/docs", "/data/moved",
                                      "rm", "/data/moved/sub/deep.txt", "put", "/data/n", "1"])
        assert first.start() == 0
        second = world.client(FSTOOL, ["ls", "/data", "cat", "/data/top.txt", "ls",
                                       "/data/moved/sub", "ls", "/data/docs", "cat", "/data/n"])
        assert second.start() == 1
        overlay = world.mounts["/data"]
        assert isinstance(overlay, OverlayStorage)
        assert overlay.whiteouts == {"top.txt", "docs"}
    assert second.stdout.decode().splitlines() == [
        "ls /data: empty moved n",
        "cat /data/top.txt: errno 44 (No such file or directory)",
        "ls /data/moved/sub:",
        "ls /data/docs: errno 44 (No such file or directory)",
        "cat /data/n: 1",
    ]
    assert sha256(archive) == before


def inos(stdout: bytes) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in stdout.decode().splitlines():
        if line.startswith("ino "):
            path, _, number = line.removeprefix("ino ").partition(": ")
            found.setdefault(path, []).append(number)
    return found


@pytest.mark.parametrize("layers", LAYERS)
def test_a_copied_up_file_keeps_its_inode_number(layers: str, tmp_path: Path) -> None:
    overlay = Layers(layers, make_folder(tmp_path / "initial"), tmp_path / "layers")
    got = run(FDTOOL, ["ino", "docs", "ino", "docs/sub/deep.txt", "ino", "top.txt",
                       "open", "1", "docs/sub/deep.txt", "a", "write", "1", "more", "close", "1",
                       "ino", "docs/sub/deep.txt", "ino", "docs", "touch", "top.txt", "5",
                       "ino", "top.txt", "link", "top.txt", "hard", "ino", "hard",
                       "rename", "top.txt", "renamed", "ino", "renamed"],
              mounts={"/": overlay.source})
    numbers = inos(got.stdout)
    assert len(set(numbers["docs/sub/deep.txt"])) == 1 and len(set(numbers["docs"])) == 1
    assert set(numbers["top.txt"]) == set(numbers["hard"]) == set(numbers["renamed"])
    assert len({numbers[p][0] for p in ("docs", "docs/sub/deep.txt", "top.txt")}) == 3
    assert overlay.lower_unchanged()


def test_an_open_reader_follows_the_copy_up(tmp_path: Path) -> None:
    overlay = Layers("zip+memory", make_folder(tmp_path / "initial"), tmp_path / "layers")
    got = run(FDTOOL, ["open", "1", "top.txt", "r", "pread", "1", "0", "3",
                       "open", "2", "top.txt", "rw", "write", "2", "ON",
                       "pread", "1", "0", "7", "trunc", "2", "2", "fstat", "1",
                       "write", "1", "x", "unlink", "top.txt", "pread", "1", "0", "7"],
              mounts={"/": overlay.source})
    assert got.stdout.decode().splitlines() == [
        "open 1 top.txt: ok", "pread 1: 3 'on '", "open 2 top.txt: ok", "write 2: 2",
        "pread 1: 7 'ON top\\x0a'", "trunc 2: ok", "fstat 1: file, 2 bytes",
        f"write 1: errno {int(Errno.BADF)}", "unlink top.txt: ok", "pread 1: 2 'ON'"]
    assert overlay.lower_unchanged()


def test_an_unlinked_lower_file_stays_readable_through_an_open_handle(tmp_path: Path) -> None:
    overlay = Layers("host+host", make_folder(tmp_path / "initial"), tmp_path / "layers")
    got = run(FDTOOL, ["open", "1", "docs/guide.txt", "r", "unlink", "docs/guide.txt",
                       "open", "2", "docs/guide.txt", "c", "write", "2", "other",
                       "pread", "1", "0", "20", "cat", "docs/guide.txt"],
              mounts={"/": overlay.source})
    assert got.stdout.decode().splitlines()[-2:] == [
        "pread 1: 10 'the guide\\x0a'", "cat docs/guide.txt: 'other'"]
    assert overlay.lower_unchanged()


@pytest.mark.parametrize("layers", LAYERS)
def test_a_directory_removed_and_made_again_is_opaque(layers: str, tmp_path: Path) -> None:
    overlay = Layers(layers, make_folder(tmp_path / "initial"), tmp_path / "layers")
    got = run(FDTOOL, ["rmdir", "docs", "unlink", "docs/guide.txt", "rmdir", "docs",
                       "rmdir", "docs/sub", "unlink", "docs/sub/deep.txt", "rmdir", "docs/sub",
                       "rmdir", "docs", "ls", ".", "mkdir", "docs", "ls", "docs",
                       "cat", "docs/guide.txt", "stat", "docs/sub", "mkdir", "docs/sub",
                       "ls", "docs/sub"],
              mounts={"/": overlay.source})
    notempty, noent = int(Errno.NOTEMPTY), int(Errno.NOENT)
    assert got.stdout.decode().splitlines() == [
        f"rmdir docs: errno {notempty}", "unlink docs/guide.txt: ok",
        f"rmdir docs: errno {notempty}", f"rmdir docs/sub: errno {notempty}",
        "unlink docs/sub/deep.txt: ok", "rmdir docs/sub: ok", "rmdir docs: ok",
        "ls .: empty top.txt", "mkdir docs: ok", "ls docs:",
        f"cat docs/guide.txt: errno {noent}", f"stat docs/sub: errno {noent}",
        "mkdir docs/sub: ok", "ls docs/sub:"]
    assert overlay.lower_unchanged()


@pytest.mark.parametrize("layers", LAYERS)
def test_renaming_a_lower_directory_moves_its_whole_content(layers: str,
                                                            tmp_path: Path) -> None:
    overlay = Layers(layers, make_folder(tmp_path / "initial"), tmp_path / "layers")
    got = run(FDTOOL, ["rename", "docs", "docs/sub/inside", "rename", "docs", "empty",
                       "ls", ".", "ls", "empty/sub", "cat", "empty/sub/deep.txt",
                       "rename", "top.txt", "empty/top.txt", "ls", "empty"],
              mounts={"/": overlay.source})
    assert got.stdout.decode().splitlines() == [
        f"rename docs: errno {int(Errno.INVAL)}", "rename docs: ok", "ls .: empty top.txt",
        "ls empty/sub: deep.txt", "cat empty/sub/deep.txt: 'deep down\\x0a'",
        "rename top.txt: ok", "ls empty: guide.txt sub top.txt"]
    assert overlay.lower_unchanged()
    if layers == "host+host":
        assert set(tree_of(overlay.upper)) == {
            "empty", "empty/guide.txt", "empty/sub", "empty/sub/deep.txt", "empty/top.txt"}


def test_without_symlinks_in_the_upper_symlinks_and_links_are_enotsup(tmp_path: Path) -> None:
    archive = zip_of(make_folder(tmp_path / "initial"), tmp_path / "lower.zip")
    upper = f"memory://overlay-{uuid.uuid4().hex}"
    fsspec.filesystem("memory").mkdir(upper)
    got = run(FDTOOL, ["symlink", "top.txt", "s", "link", "top.txt", "h", "ls", ".",
                       "open", "1", "top.txt", "a", "write", "1", "!", "close", "1",
                       "cat", "top.txt"],
              mounts={"/": Overlay(f"zip::file://{archive}", upper)})
    notsup = int(Errno.NOTSUP)
    assert got.stdout.decode().splitlines() == [
        f"symlink s: errno {notsup}", f"link top.txt: errno {notsup}",
        "ls .: docs empty top.txt", "open 1 top.txt: ok", "write 1: 1", "close 1: ok",
        "cat top.txt: 'on top\\x0a!'"]
    assert fsspec.filesystem("memory").cat(f"{upper}/top.txt") == b"on top\n!"


# -- the command line -----------------------------------------------------------------------


def test_overlay_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = zip_of(make_folder(tmp_path / "initial"), tmp_path / "lower.zip")
    before = sha256(archive)
    code, out, err = cli(capsys, "--mount", f"/site=zip::file://{archive}", "--overlay",
                         "/site", str(FSTOOL), "put", "/site/top.txt", "changed",
                         "cat", "/site/top.txt", "rm", "/site/docs/guide.txt", "ls",
                         "/site/docs")
    assert (code, err) == (0, "")
    assert out.splitlines() == ["put /site/top.txt: ok", "cat /site/top.txt: changed",
                                "rm /site/docs/guide.txt: ok", "ls /site/docs: sub"]
    assert sha256(archive) == before


@pytest.mark.parametrize("args, message", [
    (["--overlay", "/elsewhere"], "--overlay /elsewhere: nothing is mounted there"),
    (["--overlay", "/d="], "--overlay wants GUEST[=UPPER_URL], got '/d='"),
    (["--overlay", "/d=zip::file://{zip}"], "is read-only"),
    (["--overlay", "/d={tmp}/missing"], "no such host folder"),
])
def test_a_bad_overlay_is_a_one_line_error(args: list[str], message: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    archive = zip_of(make_folder(tmp_path / "initial"), tmp_path / "lower.zip")
    args = [a.format(zip=archive, tmp=tmp_path) for a in args]
    code, out, err = cli(capsys, "--mount", f"/d=zip::file://{archive}", *args, str(FSTOOL),
                         "ls", "/d")
    assert (code, out) == (2, "")
    assert err.startswith("virtwasi: ") and message in err and err.count("\n") == 1, err


def test_copying_up_a_big_file_shows_progress_on_a_terminal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    lower = tmp_path / "lower"
    lower.mkdir()
    (lower / "big.bin").write_bytes(b"b" * (3 << 20))
    monkeypatch.setattr(progress_module, "_clock", SteppingClock())
    monkeypatch.setenv("VIRTWASI_PROGRESS", "always")
    code, out, err = cli(capsys, "--dir", f"{lower}::/d", "--overlay", "/d", str(FDTOOL),
                         "open", "1", "/d/big.bin", "rw", "fstat", "1")
    assert (code, out) == (0, "open 1 /d/big.bin: ok\nfstat 1: file, 3145728 bytes\n")
    assert "copying up big.bin [" in err
    assert "100%  3.0 MiB/3.0 MiB" in err.splitlines()[-1]
    assert (lower / "big.bin").read_bytes() == b"b" * (3 << 20)


# -- any sequence of changes ----------------------------------------------------------------

PATHS = ["docs", "docs/guide.txt", "docs/sub", "docs/sub/deep.txt", "docs/new", "top.txt",
         "empty", "empty/n", "gone", "gone/q", "link"]
SLOTS = st.sampled_from(["0", "1", "2"])
NAMES = st.sampled_from(PATHS)
COMMANDS = st.one_of(
    st.tuples(st.sampled_from(["cat", "ls", "stat", "mkdir", "rmdir", "unlink", "readlink"]),
              NAMES),
    st.tuples(st.sampled_from(["rename", "link"]), NAMES, NAMES),
    st.tuples(st.just("symlink"), st.sampled_from(["top.txt", "../x", "docs/sub"]), NAMES),
    st.tuples(st.just("open"), SLOTS, NAMES, st.sampled_from(["r", "w", "rw", "a", "c"])),
    st.tuples(st.just("pread"), SLOTS, st.sampled_from(["0", "3", "9"]), st.just("8")),
    st.tuples(st.just("pwrite"), SLOTS, st.sampled_from(["0", "4"]), st.just("XY")),
    st.tuples(st.sampled_from(["write", "trunc"]), SLOTS, st.sampled_from(["1", "hello"])),
    st.tuples(st.sampled_from(["fstat", "close"]), SLOTS),
    st.tuples(st.just("touch"), NAMES, st.just("100")),
)


def lower_tree() -> MemoryStorage:
    tree = MemoryStorage()
    for name in DIRS:
        tree.mkdir(name)
    for name, data in FILES.items():
        with tree.open(name, create=True, writable=True) as f:
            f.write(data, 0)
    tree.symlink("docs/guide.txt", "link")
    return tree


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(COMMANDS, min_size=1, max_size=30))
def test_any_sequence_of_changes_behaves_as_on_a_plain_tree(
        commands: list[tuple[str, ...]]) -> None:
    args = [word for command in commands for word in command]
    lower = lower_tree()
    before = snapshot(lower)
    overlay = OverlayStorage(ReadOnlyStorage(lower))
    assert outcome(overlay, FDTOOL, args) == outcome(lower_tree(), FDTOOL, args)
    assert snapshot(lower) == before


def test_overlay_storage_takes_storages_and_overlay_takes_urls(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="mount Overlay"):
        OverlayStorage("mem://")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mount Overlay"):
        OverlayStorage(MemoryStorage(), tmp_path)  # type: ignore[arg-type]
    (tmp_path / "lower.txt").write_bytes(b"below\n")
    result = run(str(FIXTURES / "fstool.wasm"), ["cat", "/lower.txt", "put", "/new.txt", "x"],
                 mounts={"/": Overlay(tmp_path, "mem://")})
    assert result.exit_code == 0 and b"below" in result.stdout
    assert not (tmp_path / "new.txt").exists()
