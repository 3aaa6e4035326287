"""FTP mounts (fsspec's FTPFileSystem) against a pyftpdlib server on 127.0.0.1, through real
wasm modules: what FTP can do works, what it cannot is a declared errno, and a server that
goes away is EIO at once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import FIXTURES

from virtwasi.cli import main
from virtwasi.runtime import Session, run
from virtwasi.storage.loopback import ftp_server
from virtwasi.storage.mounts import open_mount
from virtwasi.wasi.abi import Errno

FSTOOL = str(FIXTURES / "fstool.wasm")
FILEOPS = str(FIXTURES / "fileops.wasm")
BLOCKTOOL = str(FIXTURES / "blocktool.wasm")
HOLDER = str(FIXTURES / "holder.wasm")


def tree(folder: Path) -> dict[str, str | None]:
    """Every path under ``folder``: a file's text, or None for a folder."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_text()
            for p in sorted(folder.rglob("*"))}


def test_fileops_differs_from_memory_only_in_links(ftp_url: str, ftp_folder: Path) -> None:
    memory = run(FILEOPS, mounts={"/": "mem://"})
    ftp = run(FILEOPS, mounts={"/": ftp_url})
    assert ftp.exit_code == memory.exit_code == 0
    lines = zip(memory.stdout.decode().splitlines(), ftp.stdout.decode().splitlines(),
                strict=True)
    changed = [mem for mem, got in lines if mem != got]
    # No symlinks or hard links on FTP (ENOTSUP), and what follows from that: the rest,
    # pwrite, append, rename, rmdir and their errors included, is as in memory.
    assert changed == ["symlink: ok", "readlink: 6 'b/log2'", "stat through link: ok",
                       "linked size 8", "lstat link: ok", "is link 1", "hard link: ok",
                       "nlink after link 2", "unlink hard: ok", "ls a: . .. b f.txt link"]
    assert "symlink: errno 58" in ftp.stdout.decode().splitlines()
    assert tree(ftp_folder) == {"a": None, "a/b": None, "a/b/log2": "one\ntwo\n",
                                "a/f.txt": "hello, WORLD\n\0\0\0\0\0\0\0"}


def test_files_and_folders_through_the_command_line(ftp_url: str, ftp_folder: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (ftp_folder / "old.txt").write_text("from the server")
    code = main(["run", "--mount", f"/srv={ftp_url}", FSTOOL, "cat", "/srv/old.txt",
                 "mkdir", "/srv/d", "put", "/srv/d/new.txt", "made", "append", "/srv/d/new.txt",
                 "+more", "mv", "/srv/d", "/srv/e", "mv", "/srv/old.txt", "/srv/e/old.txt",
                 "ls", "/srv", "ls", "/srv/e", "stat", "/srv/e/new.txt", "rm", "/srv/e/old.txt",
                 "mkdir", "/srv/e", "cat", "/srv/nope"])
    assert code == 1
    assert capsys.readouterr().out.splitlines() == [
        "cat /srv/old.txt: from the server", "mkdir /srv/d: ok", "put /srv/d/new.txt: ok",
        "append /srv/d/new.txt: ok", "mv /srv/d /srv/e: ok", "mv /srv/old.txt /srv/e/old.txt: ok",
        "ls /srv: e", "ls /srv/e: new.txt old.txt", "stat /srv/e/new.txt: file, 9 bytes",
        "rm /srv/e/old.txt: ok", "mkdir /srv/e: errno 20 (File exists)",
        "cat /srv/nope: errno 44 (No such file or directory)",
    ]
    assert tree(ftp_folder) == {"e": None, "e/new.txt": "made+more"}


def test_large_files_and_reads_at_offsets(ftp_url: str, ftp_folder: Path) -> None:
    size = 300_000  # several of FTPFileSystem's 64 KiB blocks
    result = run(BLOCKTOOL, ["fill", "/f", str(size), "check", "/f", str(size),
                             "pread", "/f", "200001", "4"], mounts={"/": ftp_url})
    assert result.stdout.decode().splitlines() == [  # byte i of the file is 'a' + i % 26
        f"fill /f: {size} bytes", f"check /f: ok, {size} bytes", "pread /f 200001: jklm"]
    assert (ftp_folder / "f").stat().st_size == size


def test_times_come_from_the_listing(ftp_url: str, ftp_folder: Path) -> None:
    (ftp_folder / "f").write_text("x")
    os.utime(ftp_folder / "f", (1_600_000_000, 1_600_000_000))
    assert open_mount(ftp_url).lstat("f").mtime_ns == 1_600_000_000 * 10**9


def test_a_server_that_goes_away_is_eio_at_once(tmp_path: Path, unsaved_dir: Path) -> None:
    with ftp_server(tmp_path) as url:
        session = Session(HOLDER, mounts={"/": url})
        buffer = session.call("text")
        session.write_memory(buffer, b"f.txt\0")
        fd = session.call("create")
        session.write_memory(buffer, b"never stored")
        assert session.call("put", fd, 12) == 12
    assert session.call("shut", fd) == -Errno.IO  # the upload on close found no server
    session.close()
    assert not (tmp_path / "f.txt").exists()  # a name reaches the server with its data
    [unsaved] = session.host.unsaved  # kept on the host instead
    assert unsaved.kept is not None and unsaved.kept.read_bytes() == b"never stored"
    assert unsaved.kept.is_relative_to(unsaved_dir)


def test_no_server_is_a_one_line_error(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    with ftp_server(tmp_path) as url:
        pass  # its port is closed now
    assert main(["run", "--mount", f"/={url}", FSTOOL, "ls", "/"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith(f"virtwasi: {url}: cannot open: ConnectionRefusedError")
    assert len(out.err.splitlines()) == 1
