"""Mounts from the command line and the API: URLs, nesting, read-only views, bad input."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import fsspec
import pytest
from conftest import FIXTURES
from probekit import script

from virtwasi.runtime import run
from virtwasi.storage.hostdir import HostDirStorage
from virtwasi.storage.memfs import DEFAULT_CAPACITY, MemoryStorage
from virtwasi.storage.mounts import MountError, open_mount, open_mounts
from virtwasi.wasi.abi import Errno

FSTOOL = str(FIXTURES / "fstool.wasm")


def virtwasi(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "virtwasi", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def site_zip(tmp: Path) -> Path:
    archive = tmp / "site.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("index.html", "<h1>hi</h1>")
        z.writestr("docs/guide.txt", "read me")
    return archive


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_zip_archive_is_served_read_only(tmp_path: Path) -> None:
    archive = site_zip(tmp_path)
    before = digest(archive)
    done = virtwasi("run", "--mount", f"/site=zip::file://{archive}", FSTOOL,
                    "ls", "/site", "cat", "/site/docs/guide.txt", "stat", "/site/index.html",
                    "put", "/site/new.txt", "x", "rm", "/site/index.html",
                    "mkdir", "/site/d")
    assert done.stdout.splitlines() == [
        "ls /site: docs index.html",
        "cat /site/docs/guide.txt: read me",
        "stat /site/index.html: file, 11 bytes",
        "put /site/new.txt: errno 69 (Read-only file system)",
        "rm /site/index.html: errno 69 (Read-only file system)",
        "mkdir /site/d: errno 69 (Read-only file system)",
    ]
    assert done.returncode == 1
    assert digest(archive) == before


def test_mounts_nest_and_the_longest_prefix_wins(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "libc.txt").write_text("from the host")
    done = virtwasi("run", "--mount", "/=mem://", "--mount", f"/usr/local/lib={lib}",
                    FSTOOL, "mkdir", "/tmp", "put", "/tmp/x", "in memory",
                    "cat", "/usr/local/lib/libc.txt", "put", "/usr/local/lib/out", "written",
                    "ls", "/", "cat", "/tmp/x")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cat /usr/local/lib/libc.txt: from the host" in done.stdout
    assert "ls /: tmp" in done.stdout
    assert "cat /tmp/x: in memory" in done.stdout
    assert (lib / "out").read_text() == "written"
    assert sorted(p.name for p in lib.iterdir()) == ["libc.txt", "out"]


def test_ro_makes_a_host_folder_read_only(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("original")
    done = virtwasi("run", "--dir", f"{tmp_path}::/data", "--ro", "/data", FSTOOL,
                    "cat", "/data/keep.txt", "put", "/data/keep.txt", "changed",
                    "put", "/data/new", "x", "mv", "/data/keep.txt", "/data/moved")
    assert done.stdout.splitlines()[0] == "cat /data/keep.txt: original"
    assert done.stdout.count("errno 69") == 3, done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    assert (tmp_path / "keep.txt").read_text() == "original"


def test_fsspec_memory_store_is_the_generic_path() -> None:
    # fsspec's own memory:// goes through the generic fsspec adapter, not virtwasi's tree.
    done = virtwasi("run", "--mount", "/=memory://", FSTOOL, "mkdir", "/d",
                    "put", "/d/a.txt", "abc", "append", "/d/a.txt", "def", "cat", "/d/a.txt",
                    "mv", "/d/a.txt", "/d/b.txt", "ls", "/d")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cat /d/a.txt: abcdef" in done.stdout
    assert "ls /d: b.txt" in done.stdout


def test_an_fsspec_filesystem_object_can_be_mounted_from_python() -> None:
    storage = MemoryStorage()
    storage.fs.pipe("/in.txt", b"given before the run")
    result = run(FSTOOL, ["cat", "/data/in.txt", "put", "/data/out.txt", "made by the guest"],
                 mounts={"/data": storage.fs})
    assert result.exit_code == 0, result.stdout
    assert b"cat /data/in.txt: given before the run" in result.stdout
    assert storage.fs.cat("/out.txt") == b"made by the guest"


@pytest.mark.parametrize(("args", "message"), [
    (["--mount", "/=nope://x"], "Protocol not known: nope"),
    (["--mount", "/=zip::file:///no/such.zip"], "not found"),
    (["--mount", "/=/no/such/folder"], "no such host folder: /no/such/folder"),
    (["--mount", "no-equals-sign"], "--mount wants GUEST=URL"),
    (["--dir", "/no/such/folder"], "no such host folder"),
    (["--ro", "/nowhere"], "--ro /nowhere: nothing is mounted there"),
    (["--env", "=VALUE"], "--env wants NAME[=VAL]"),
    (["--mount", "/=memory://no-such-prefix"], "no such directory"),
])
def test_a_bad_mount_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = virtwasi("run", *args, FSTOOL, "ls", "/")
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("virtwasi: ") and message in lines[0], lines


def test_a_file_is_not_a_folder_to_mount(tmp_path: Path) -> None:
    archive = site_zip(tmp_path)
    with pytest.raises(MountError, match="not a folder"):
        open_mounts({"/": f"file://{archive}"})
    fsspec.filesystem("memory").pipe("/virtwasi-test-a-file", b"x")
    with pytest.raises(MountError, match="not a directory"):
        open_mounts({"/": "memory://virtwasi-test-a-file"})


def test_inherit_env_passes_the_callers_environment() -> None:
    env = dict(os.environ, GREETING="from the parent")
    calls = str(FIXTURES / "calls.wasm")
    inherited = virtwasi("run", "--inherit-env", calls, env=env)
    assert "GREETING=from the parent" in inherited.stdout
    overridden = virtwasi("run", "--inherit-env", "--env", "GREETING=given", calls, env=env)
    assert "GREETING=given" in overridden.stdout
    plain = virtwasi("run", calls, env=env)
    assert "GREETING=(unset)" in plain.stdout


def test_fsspec_local_urls_and_objects_get_the_host_folders_confinement(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"outside")
    inside = tmp_path / "inside"
    inside.mkdir()
    (inside / "escape").symlink_to(outside)
    storage = open_mount(f"local://{inside}")
    assert isinstance(storage, HostDirStorage)  # resolved by virtwasi, never followed out
    with pytest.raises(MountError, match="mount a host folder by its path"):
        open_mount(fsspec.filesystem("file"))
    result = run(str(FIXTURES / "fstool.wasm"), ["cat", "/escape/secret"],
                 mounts={"/": f"local://{inside}"})
    assert b"outside" not in result.stdout and result.exit_code == 1


# -- a sparse in-memory tree, bounded --------------------------------------------------------

ALL_RIGHTS = (1 << 30) - 1


def pwrite_probe(offset: int) -> bytes:
    """A guest that creates /f and writes one byte at ``offset``; it prints the two errnos."""
    return script([("path_open", (3, 0, 1000, 1, 1, ALL_RIGHTS, ALL_RIGHTS, 0, 1100)),
                   ("fd_pwrite", (4, 1200, 1, offset, 1300))],
                  {1000: b"f", 1200: struct.pack("<II", 1208, 1), 1208: b"!"})


def test_a_byte_at_4_gib_is_held_sparsely() -> None:
    tree = open_mount("mem://")
    assert isinstance(tree, MemoryStorage) and tree.capacity == DEFAULT_CAPACITY
    tracemalloc.start()
    try:
        result = run(pwrite_probe(4 << 30), mounts={"/": tree})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0 and result.stdout == b"\0\0"
    assert tree.lstat("f").size == (4 << 30) + 1
    assert peak < 64 << 20, f"{peak} bytes allocated for one byte"
    with tree.open("f") as f:
        buf = bytearray(4)
        assert f.readinto(memoryview(buf), (4 << 30) - 3) == 4 and buf == b"\0\0\0!"


def test_a_write_past_the_capacity_is_enospc() -> None:
    tree = open_mount("mem://?capacity=1K")
    assert isinstance(tree, MemoryStorage) and tree.capacity == 1024
    assert run(pwrite_probe(1023), mounts={"/": tree}).stdout == b"\0\0"
    assert run(pwrite_probe(1024), mounts={"/": tree}).stdout == bytes([0, Errno.NOSPC])
    assert open_mount("mem://?capacity=none").capacity is None  # type: ignore[attr-defined]
    with pytest.raises(MountError, match="capacity"):
        open_mount("mem://?capacity=lots")
