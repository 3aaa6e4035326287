"""What `virtwasi run` promises about data written to a remote mount (S3, a moto server).

A file whose close or fsync answered 0 is stored whole; a file a stopped guest was still
writing is never published; data that could not be stored is retried once at exit, then
kept under ``$VIRTWASI_CACHE/unsaved/`` and reported, one line per file, exit 1. When
virtwasi itself is killed, the next run keeps and reports what it was writing, and
``virtwasi unsaved`` lists, stores or discards what is kept.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FIXTURES
from test_s3 import Endpoint, Fresh

BLOCKTOOL = str(FIXTURES / "blocktool.wasm")


@pytest.fixture
def endpoint(s3_endpoint: str) -> Iterator[Endpoint]:
    running = Endpoint()
    yield running
    running.stop()


def virtwasi(url: str, endpoint_url: str, *args: str,
             options: tuple[str, ...] = (), env: dict[str, str] | None = None,
             ) -> subprocess.Popen[str]:
    env = os.environ | {"AWS_ENDPOINT_URL": endpoint_url} | (env or {})
    return subprocess.Popen([sys.executable, "-m", "virtwasi", "run", *options, "--mount",
                             f"/={url}", BLOCKTOOL, *args], env=env, text=True,
                            stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def command(*args: str) -> subprocess.CompletedProcess[str]:
    """``virtwasi ARGS``, run to its end."""
    return subprocess.run([sys.executable, "-m", "virtwasi", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def read(fresh: Fresh, url: str, key: str) -> bytes | None:
    """The object's content as a new client sees it, None if there is none."""
    path = f"{url.removeprefix('s3://')}/{key}"
    fs = fresh()
    return fs.cat(path) if fs.exists(path) else None


def kept_files(unsaved_dir: Path) -> dict[str, bytes]:
    """What the unsaved folder holds, by path below the run's own folder."""
    return {"/".join(p.relative_to(unsaved_dir).parts[1:]): p.read_bytes()
            for p in sorted(unsaved_dir.rglob("*"))
            if p.is_file() and len(p.relative_to(unsaved_dir).parts) > 1}


def test_a_failed_close_is_kept_and_fails_the_run_although_the_guest_exits_0(
        s3_url: str, s3_fresh: Fresh, endpoint: Endpoint, unsaved_dir: Path) -> None:
    with virtwasi(s3_url, endpoint.url, "leave", "/f.txt", "precious", "wait",
                  "shut") as guest:
        assert guest.stdout is not None
        assert guest.stdout.readline() == "leave /f.txt: ok\n"
        endpoint.stop()
        out, err = guest.communicate("", timeout=120)
    # The guest saw EIO from close and went on to exit 0, as most programs do.
    assert out.splitlines() == ["wait: done", "shut: errno 29 (I/O error)"]
    assert guest.returncode == 1
    [line] = err.splitlines()
    match = re.fullmatch(r"virtwasi: /f\.txt: not saved \(upload failed: .+\); kept in (.+)",
                         line)
    assert match is not None, line
    assert Path(match[1]).read_bytes() == b"precious"
    assert Path(match[1]).is_relative_to(unsaved_dir)
    assert kept_files(unsaved_dir) == {"f.txt": b"precious"}
    assert read(s3_fresh, s3_url, "f.txt") != b"precious"


def test_the_retry_at_exit_stores_what_a_failed_close_kept(
        s3_url: str, s3_fresh: Fresh, endpoint: Endpoint, unsaved_dir: Path) -> None:
    with virtwasi(s3_url, endpoint.url, "leave", "/f.txt", "precious", "wait", "shut",
                  "wait") as guest:
        assert guest.stdout is not None and guest.stdin is not None
        assert guest.stdout.readline() == "leave /f.txt: ok\n"
        endpoint.stop()
        guest.stdin.write("\n")
        guest.stdin.flush()
        assert guest.stdout.readline() == "wait: done\n"
        assert guest.stdout.readline() == "shut: errno 29 (I/O error)\n"  # server gone
        endpoint.restart()  # back before the guest exits
        out, err = guest.communicate("", timeout=120)
    assert (guest.returncode, out, err) == (0, "wait: done\n", "")
    assert read(s3_fresh, s3_url, "f.txt") == b"precious"
    assert kept_files(unsaved_dir) == {}


def test_a_file_open_at_a_normal_exit_is_stored(s3_url: str, s3_fresh: Fresh,
                                                endpoint: Endpoint, unsaved_dir: Path) -> None:
    # As a process's exit on Linux: what it wrote is in the file, closed or not.
    with virtwasi(s3_url, endpoint.url, "leave", "/f.txt", "left open") as guest:
        out, err = guest.communicate("", timeout=120)
    assert (guest.returncode, out, err) == (0, "leave /f.txt: ok\n", "")
    assert read(s3_fresh, s3_url, "f.txt") == b"left open"
    assert kept_files(unsaved_dir) == {}


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_a_file_being_written_when_a_signal_stops_the_guest_is_kept_not_published(
        s3_url: str, s3_fresh: Fresh, endpoint: Endpoint, unsaved_dir: Path,
        signum: int, code: int) -> None:
    s3_fresh().pipe_file(f"{s3_url.removeprefix('s3://')}/big", b"the previous version")
    with virtwasi(s3_url, endpoint.url, "stream", "/big") as guest:  # O_TRUNC, then writes
        assert guest.stdout is not None
        assert guest.stdout.readline() == "stream /big: writing\n"
        guest.send_signal(signum)
        _, err = guest.communicate("", timeout=120)
    assert guest.returncode == code
    lines = err.splitlines()
    assert len(lines) == 2, err  # the signal's line, then the file's
    match = re.fullmatch(r"virtwasi: /big: not saved \(still being written when the guest "
                         r"was stopped\); kept in (.+)", lines[1])
    assert match is not None, lines
    kept = Path(match[1]).read_bytes()
    assert 0 < len(kept) <= 1 << 20
    assert kept == bytes(ord("a") + i % 26 for i in range(len(kept)))  # what was written
    assert kept_files(unsaved_dir) == {"big": kept}
    # Nothing of it published, not even the truncation: the store keeps what it had.
    assert read(s3_fresh, s3_url, "big") == b"the previous version"


def test_a_file_created_by_a_stopped_guest_leaves_no_object(
        s3_url: str, s3_fresh: Fresh, endpoint: Endpoint, unsaved_dir: Path) -> None:
    with virtwasi(s3_url, endpoint.url, "stream", "/new") as guest:
        assert guest.stdout is not None
        assert guest.stdout.readline() == "stream /new: writing\n"
        guest.send_signal(signal.SIGINT)
        _, err = guest.communicate("", timeout=120)
    assert guest.returncode == 130
    assert "virtwasi: /new: not saved (still being written" in err
    assert read(s3_fresh, s3_url, "new") is None  # not even an empty object
    assert list(kept_files(unsaved_dir)) == ["new"]


def test_a_file_created_and_closed_empty_is_stored_empty(
        s3_url: str, s3_fresh: Fresh, endpoint: Endpoint, unsaved_dir: Path) -> None:
    with virtwasi(s3_url, endpoint.url, "leave", "/empty", "", "shut") as guest:
        out, err = guest.communicate("", timeout=120)
    assert (guest.returncode, out, err) == (0, "leave /empty: ok\nshut: ok\n", "")
    assert read(s3_fresh, s3_url, "empty") == b""


def test_a_guest_stopped_by_a_limit_publishes_nothing_either(
        s3_url: str, s3_fresh: Fresh, endpoint: Endpoint, unsaved_dir: Path) -> None:
    with virtwasi(s3_url, endpoint.url, "stream", "/t", options=("--timeout", "1")) as guest:
        out, err = guest.communicate("", timeout=120)
    assert (guest.returncode, out) == (124, "stream /t: writing\n")
    assert "virtwasi: /t: not saved (still being written when the guest was stopped)" in err
    assert read(s3_fresh, s3_url, "t") is None
    assert list(kept_files(unsaved_dir)) == ["t"]


BIG = 9 << 20  # over the 8 MiB a file's written data may take in memory


def pattern(size: int) -> bytes:
    return bytes(ord("a") + i % 26 for i in range(size))


def killed_while_writing(url: str, endpoint: Endpoint, tmp: Path, size: int) -> None:
    """A guest writes ``size`` bytes to /big and is holding it open when virtwasi gets
    SIGKILL; the temporary folder is ``tmp``."""
    with virtwasi(url, endpoint.url, "grow", "/big", str(size), "wait",
                  env={"TMPDIR": str(tmp)}) as guest:
        assert guest.stdout is not None
        assert guest.stdout.readline() == f"grow /big: {size} bytes\n"
        guest.kill()
        guest.communicate(timeout=120)
    assert guest.returncode == -signal.SIGKILL


def test_a_file_being_written_when_virtwasi_is_killed_is_kept_by_the_next_run(
        s3_url: str, s3_fresh: Fresh, endpoint: Endpoint, unsaved_dir: Path,
        tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    killed_while_writing(s3_url, endpoint, tmp, BIG)
    assert read(s3_fresh, s3_url, "big") is None  # no object, not even an empty one
    assert list(tmp.iterdir()) == []  # nothing nameless left in the temporary folder

    first = command("run", str(FIXTURES / "hello.wasm"))
    assert first.returncode == 0  # the guest's own run: it went well
    [line] = first.stderr.splitlines()
    url = f"{s3_url}/big"
    match = re.fullmatch(rf"virtwasi: {url}: not saved \(virtwasi process \d+ was killed "
                         r"while writing it, [-\d]+ [:\d]+\); kept in (.+)", line)
    assert match is not None, line
    kept = Path(match[1])
    assert kept.is_relative_to(unsaved_dir)
    assert kept.read_bytes() == pattern(BIG)  # every byte the guest wrote
    assert command("run", str(FIXTURES / "hello.wasm")).stderr == ""  # reported once

    listed = command("unsaved")
    assert listed.returncode == 0
    [entry] = listed.stdout.splitlines()
    assert entry.startswith(f"{kept}: for {url}, {BIG} bytes, kept ")


def test_data_held_in_memory_by_a_killed_virtwasi_is_reported_lost(
        s3_url: str, s3_fresh: Fresh, endpoint: Endpoint, unsaved_dir: Path,
        tmp_path: Path) -> None:
    killed_while_writing(s3_url, endpoint, tmp_path, 1000)
    assert read(s3_fresh, s3_url, "big") is None
    first = command("run", str(FIXTURES / "hello.wasm"))
    assert re.fullmatch(rf"virtwasi: {s3_url}/big: lost \(virtwasi process \d+ was killed "
                        r"while writing it, [-\d]+ [:\d]+; its data was held in memory "
                        r"only\)\n", first.stderr), first.stderr
    assert command("run", str(FIXTURES / "hello.wasm")).stderr == ""
    assert command("unsaved").stdout == f"nothing kept in {unsaved_dir}\n"


def test_virtwasi_unsaved_stores_what_was_kept_once_the_server_is_back(
        s3_url: str, s3_fresh: Fresh, endpoint: Endpoint, unsaved_dir: Path,
        tmp_path: Path) -> None:
    killed_while_writing(s3_url, endpoint, tmp_path, BIG)
    with virtwasi(s3_url, endpoint.url, "leave", "/f.txt", "precious", "wait",
                  "shut") as guest:  # and an upload that fails
        assert guest.stdout is not None
        assert guest.stdout.readline() == "leave /f.txt: ok\n"
        endpoint.stop()
        guest.communicate("", timeout=120)
    assert guest.returncode == 1
    assert command("unsaved", "--store").returncode == 2  # which ones?
    stored = command("unsaved", "--store", "--all")
    assert stored.returncode == 0, stored.stderr
    assert len(stored.stdout.splitlines()) == 2
    assert read(s3_fresh, s3_url, "big") == pattern(BIG)
    assert read(s3_fresh, s3_url, "f.txt") == b"precious"
    assert kept_files(unsaved_dir) == {}
    assert command("unsaved").stdout == f"nothing kept in {unsaved_dir}\n"


def test_virtwasi_unsaved_discards_only_what_it_is_given(
        s3_url: str, endpoint: Endpoint, unsaved_dir: Path, tmp_path: Path) -> None:
    for name in ("one", "two"):
        with virtwasi(s3_url, endpoint.url, "stream", f"/{name}") as guest:
            assert guest.stdout is not None
            assert guest.stdout.readline() == f"stream /{name}: writing\n"
            guest.send_signal(signal.SIGINT)
            guest.communicate("", timeout=120)
    kept = sorted(unsaved_dir.rglob("one")) + sorted(unsaved_dir.rglob("two"))
    assert len(kept) == 2
    listed = command("unsaved").stdout.splitlines()
    assert [line.partition(":")[0] for line in listed] == [str(p) for p in kept]
    assert all(f"for {s3_url}/" in line for line in listed)
    missing = command("unsaved", "--discard", str(tmp_path / "elsewhere"))
    assert missing.returncode == 2 and "not a file kept in" in missing.stderr
    gone = command("unsaved", "--discard", str(kept[0]))
    assert (gone.returncode, gone.stdout) == (0, f"discarded {kept[0]}\n")
    assert not kept[0].exists() and kept[1].exists()


def test_a_run_leaves_the_spill_of_a_living_virtwasi_alone(
        s3_url: str, s3_fresh: Fresh, endpoint: Endpoint, unsaved_dir: Path) -> None:
    with virtwasi(s3_url, endpoint.url, "grow", "/big", str(BIG), "wait") as writer:
        assert writer.stdout is not None
        assert writer.stdout.readline() == f"grow /big: {BIG} bytes\n"
        other = command("run", str(FIXTURES / "hello.wasm"))
        assert (other.returncode, other.stderr) == (0, "")
        out, err = writer.communicate("\n", timeout=120)
    assert (writer.returncode, out, err) == (0, "wait: done\n", "")
    assert read(s3_fresh, s3_url, "big") == pattern(BIG)  # stored whole at exit
    assert kept_files(unsaved_dir) == {}
    assert command("unsaved").stdout == f"nothing kept in {unsaved_dir}\n"


def test_what_a_killed_virtwasi_was_writing_over_ftp_is_stored_with_the_credentials_given(
        ftp_url: str, ftp_folder: Path, unsaved_dir: Path) -> None:
    with subprocess.Popen([sys.executable, "-m", "virtwasi", "run", "--mount", f"/={ftp_url}",
                           BLOCKTOOL, "grow", "/big", str(BIG), "wait"], text=True,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as guest:
        assert guest.stdout is not None
        assert guest.stdout.readline() == f"grow /big: {BIG} bytes\n"
        guest.kill()
        guest.communicate(timeout=120)
    assert not (ftp_folder / "big").exists()
    [entry] = command("unsaved").stdout.splitlines()  # the run that finds it is this one
    user, password = ftp_url.removeprefix("ftp://").partition("@")[0].split(":")
    # Recorded without the password: the store needs it given again.
    assert password not in entry
    manifests = list(unsaved_dir.glob("*.json"))
    assert manifests and not [p for p in manifests if password in p.read_text()]
    host = ftp_url.partition("@")[2]
    assert f": for ftp://{host}/big, {BIG} bytes, kept " in entry
    refused = command("unsaved", "--store", "--all")
    assert refused.returncode == 1 and "not stored" in refused.stderr
    stored = command("unsaved", "--store", "--all", "--mount-option", f"ftp.username={user}",
                     "--mount-option", f"ftp.password={password}")
    assert stored.returncode == 0, stored.stderr
    assert (ftp_folder / "big").read_bytes() == pattern(BIG)
    assert kept_files(unsaved_dir) == {}
