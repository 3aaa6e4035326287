"""HTTP mounts (fsspec's HTTPFileSystem) over a folder served on 127.0.0.1, through real wasm
modules: read-only, directories listed from the server's pages, reads at any offset."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import FIXTURES

from virtwasi.cli import main
from virtwasi.runtime import run
from virtwasi.storage.loopback import http_server
from virtwasi.storage.mounts import MountError, open_mount

FSTOOL = str(FIXTURES / "fstool.wasm")
BLOCKTOOL = str(FIXTURES / "blocktool.wasm")

Serve = Callable[[Path], str]


def pattern(start: int, end: int) -> str:
    """Bytes ``start`` to ``end`` of blocktool's pattern: byte i is 'a' + i % 26."""
    return "".join(chr(ord("a") + i % 26) for i in range(start, end))


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "docs" / "deep").mkdir(parents=True)
    (tmp_path / "docs" / "a b.txt").write_text("a name with a space")
    (tmp_path / "docs" / "deep" / "x.txt").write_text("deep")
    (tmp_path / "index.txt").write_text("top")
    return tmp_path


def test_a_served_folder_reads_and_lists_and_refuses_writes(
        site: Path, http_url: Serve, capsys: pytest.CaptureFixture[str]) -> None:
    url = http_url(site)
    code = main(["run", "--mount", f"/web={url}", FSTOOL, "ls", "/web", "ls", "/web/docs",
                 "cat", "/web/docs/a b.txt", "cat", "/web/docs/deep/x.txt", "stat", "/web/docs",
                 "stat", "/web/index.txt", "cat", "/web/missing", "put", "/web/new", "x",
                 "append", "/web/index.txt", "x", "mkdir", "/web/d", "rm", "/web/index.txt",
                 "mv", "/web/index.txt", "/web/moved"])
    assert code == 1
    assert capsys.readouterr().out.splitlines() == [
        "ls /web: docs index.txt", "ls /web/docs: a b.txt deep",
        "cat /web/docs/a b.txt: a name with a space", "cat /web/docs/deep/x.txt: deep",
        "stat /web/docs: directory, 0 bytes", "stat /web/index.txt: file, 3 bytes",
        "cat /web/missing: errno 44 (No such file or directory)",
        "put /web/new: errno 69 (Read-only file system)",
        "append /web/index.txt: errno 69 (Read-only file system)",
        "mkdir /web/d: errno 69 (Read-only file system)",
        "rm /web/index.txt: errno 69 (Read-only file system)",
        "mv /web/index.txt: errno 69 (Read-only file system)",
    ]
    assert sorted(p.name for p in site.iterdir()) == ["docs", "index.txt"]


def test_reads_at_any_offset_of_a_large_file(tmp_path: Path, http_url: Serve) -> None:
    size = 6 << 20  # more than one of fsspec's 5 MiB read blocks
    (tmp_path / "big").write_bytes(pattern(0, size).encode())
    # A read past the first block needs a byte range: the server honours "Range".
    result = run(BLOCKTOOL, ["pread", "/big", str(size - 3), "10", "pread", "/big", "27", "3",
                             "check", "/big", str(size)], mounts={"/": http_url(tmp_path)})
    assert result.stdout.decode().splitlines() == [
        f"pread /big {size - 3}: {pattern(size - 3, size)}",
        "pread /big 27: bcd", f"check /big: ok, {size} bytes"]


def test_times_come_from_last_modified(site: Path, http_url: Serve) -> None:
    os.utime(site / "index.txt", (1_600_000_000, 1_600_000_000))
    assert open_mount(http_url(site)).lstat("index.txt").mtime_ns == 1_600_000_000 * 10**9


def test_a_server_that_goes_away_is_eio(site: Path) -> None:
    with http_server(site) as url:
        storage = open_mount(url)
    result = run(FSTOOL, ["cat", "/index.txt", "ls", "/docs"], mounts={"/": storage})
    assert result.stdout.decode().splitlines() == [
        "cat /index.txt: errno 29 (I/O error)", "ls /docs: errno 29 (I/O error)"]


def test_a_missing_library_names_the_extra_that_brings_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # as if it were not installed
    with pytest.raises(MountError) as caught:
        open_mount("http://127.0.0.1:9/site/")
    assert str(caught.value) == ("http://127.0.0.1:9/site/: aiohttp is not installed: "
                                 "pip install 'virtwasi[http]'")
