"""The audit layer: one JSON line for every call that crosses it, nothing else changed."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pytest
from conftest import FIXTURES
from probekit import script

from virtwasi.filesystem.interface import MUTATE_DIRECTORY, READ, WRITE
from virtwasi.layers import audit_layer, quota_layer, read_only_layer
from virtwasi.runtime import WasiWorld
from virtwasi.storage.memfs import MemoryStorage
from virtwasi.storage.tree import snapshot
from virtwasi.wasi.abi import Rights
from virtwasi.world import Semantics, Trap

FSTOOL = str(FIXTURES / "fstool.wasm")
NAME, MISSING, IOVEC, DATA_AT = 1024, 1040, 2048, 4096
FD_OUT, NBYTES = 3000, 3004
SECRET = b"TOP-SECRET"
RW = int(Rights.FD_READ | Rights.FD_WRITE | Rights.FD_SEEK)
PROBE = script([
    ("path_open", (3, 0, NAME, 9, 0, RW, 0, 0, FD_OUT)),  # fd 4
    ("fd_write", (4, IOVEC, 1, NBYTES)),
    ("fd_seek", (4, 0, 0, 3008)),
    ("fd_read", (4, IOVEC, 1, NBYTES)),
    ("path_filestat_get", (3, 0, MISSING, 7, 3100)),  # ENOENT
    ("fd_fdstat_get", (4, 3200)),
    ("fd_close", (4,)),
    ("fd_read", (4, IOVEC, 1, NBYTES)),  # EBADF from the adapter: nothing crosses
], {NAME: b"notes.txt", MISSING: b"missing", IOVEC: struct.pack("<II", DATA_AT, len(SECRET)),
    DATA_AT: SECRET})
# The adapter asks for the preopens when the client starts, then the probe's calls (a seek,
# an fdstat and a close are the adapter's own business: only the close's drop is logged).
CALLS = ["preopen_paths", "preopen", "open_at", "write", "read", "stat_at"]
# What the adapter asks of each preopen, to fill its fd table (open_at answers both).
DESCRIBED = {"get_type", "get_flags"}


def records(text: str) -> list[dict[str, Any]]:
    """Every line of a log, each parsed on its own."""
    lines = text.splitlines()
    assert all(line.startswith("{") for line in lines)
    return [json.loads(line) for line in lines]


def calls(text: str) -> list[dict[str, Any]]:
    """The call lines of a log, without the lines of handles dropped and the questions
    the adapter asks of each descriptor it is given."""
    return [r for r in records(text) if "drop" not in r and r["call"] not in DESCRIBED]


def a_tree() -> MemoryStorage:
    tree = MemoryStorage()
    tree.fs.pipe("/notes.txt", b"buy milk\n")
    return tree


@pytest.mark.parametrize("semantics", list(Semantics))
def test_one_line_per_call_with_handles_lengths_results_and_errnos(
        semantics: Semantics, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with WasiWorld({"/": a_tree()}, semantics=semantics,
                   layers=[("audit", audit_layer(log))]) as world:
        client = world.client(PROBE)
        assert client.start() == 0
        assert list(client.stdout[:8]) == [0, 0, 0, 0, 44, 0, 0, 8]
    text = log.read_text()
    got = calls(text)
    if semantics is Semantics.TRANSPARENT:
        # No fd table in the adapter: the closed number reaches the layer, asked what it
        # is, which traps (and the adapter answers EBADF).
        last = records(text)[-1]
        assert last == {"call": "get_type", "args": [None], "trap": "invalid-handle",
                        "us": last["us"]}
    assert [r["call"] for r in got] == CALLS
    by = {r["call"]: r for r in got}
    root, (opened, kind, flags) = by["preopen"]["result"], by["open_at"]["result"]
    assert isinstance(root, int) and isinstance(opened, int) and root != opened
    assert kind == "regular" and flags == READ | WRITE | MUTATE_DIRECTORY
    assert by["open_at"]["args"] == [root, 0, "notes.txt", 0, READ | WRITE | MUTATE_DIRECTORY]
    assert by["write"] == {**by["write"], "args": [opened, {"bytes": len(SECRET)}, 0],
                           "result": len(SECRET)}
    assert by["read"]["result"] == len(SECRET)
    assert by["stat_at"]["args"] == [root, 0, "missing"]
    assert by["stat_at"]["errno"] == "ENOENT" and "result" not in by["stat_at"]
    assert all(isinstance(r["us"], float) and r["us"] >= 0 for r in got)
    assert sum("errno" in r for r in got) == 1
    assert SECRET.decode() not in text and "buy milk" not in text
    # The close dropped the file; teardown the preopen the client still held
    # (transparent: nothing is dropped at teardown).
    drops = [r for r in records(text) if "drop" in r]
    expected = [{"drop": "descriptor", "handle": opened}]
    if semantics is not Semantics.TRANSPARENT:
        expected.append({"drop": "descriptor", "handle": root})
    assert drops == expected


def test_a_stat_result_and_a_listing_are_summed_up(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with WasiWorld({"/": a_tree()}, layers=[("audit", audit_layer(log))]) as world:
        client = world.client(FSTOOL, ["stat", "/notes.txt", "ls", "/"])
        assert client.start() == 0
    got = records(log.read_text())
    stat = next(r for r in got if r.get("call") == "stat_at" and r["args"][2] == "notes.txt")
    assert stat["result"] == {"kind": "regular", "size": 9, "ino": stat["result"]["ino"],
                              "nlink": 1}
    listing = [r["result"] for r in got if r.get("call") == "read_directory_entry"]
    assert listing == [{"name": "notes.txt", "kind": "regular"}, None]


def test_a_local_log_is_written_as_the_calls_are_made(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    log.write_text('{"call":"from an earlier run"}\n')
    with WasiWorld({"/": a_tree()}, layers=[("audit", audit_layer(log))]) as world:
        client = world.client(PROBE)
        assert client.start() == 0
        # The world is still open: every line is in the file already, after the old one.
        assert [r["call"] for r in calls(log.read_text())] == ["from an earlier run", *CALLS]


def test_an_fsspec_url_is_written_whole_at_teardown_after_what_it_held() -> None:
    url = f"memory://audit-{uuid.uuid4().hex}/log.jsonl"
    fs, path = fsspec.core.url_to_fs(url)
    try:
        for run in (1, 2):
            with WasiWorld({"/": a_tree()}, layers=[("audit", audit_layer(url))]) as world:
                client = world.client(PROBE)
                assert client.start() == 0
                assert fs.exists(path) == (run == 2)  # nothing is written before teardown
            assert [r["call"] for r in calls(fs.cat_file(path).decode())] == CALLS * run
    finally:
        fs.rm(path)


def test_an_s3_log_is_one_object_written_at_teardown(monkeypatch: pytest.MonkeyPatch) -> None:
    from virtwasi.storage.loopback import s3_environment, s3_filesystem, s3_server

    with s3_server() as endpoint:
        for key, value in s3_environment(endpoint).items():
            monkeypatch.setenv(key, value)
        s3_filesystem(endpoint).mkdir("logs")
        with WasiWorld({"/": a_tree()},
                       layers=[("audit", audit_layer("s3://logs/run/calls.jsonl"))]) as world:
            client = world.client(PROBE)
            assert client.start() == 0
        stored = s3_filesystem(endpoint, fresh=True).cat_file("logs/run/calls.jsonl")
    assert [r["call"] for r in calls(stored.decode())] == CALLS


def test_a_trap_inside_the_layer_is_logged_with_its_reason(tmp_path: Path) -> None:
    # Under transparent semantics a bad number reaches the layer, which finds nothing there.
    log = tmp_path / "audit.jsonl"
    world = WasiWorld(semantics=Semantics.TRANSPARENT, layers=[("audit", audit_layer(log))])
    with world, pytest.raises(Trap):
        world.wasi.exports.stat(77)
    (line,) = records(log.read_text())
    assert line == {"call": "stat", "args": [None], "trap": "invalid-handle", "us": line["us"]}


def test_between_quota_and_read_only_it_logs_what_the_view_lets_through(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    tree = a_tree()
    before = snapshot(tree)
    layers = [("quota", quota_layer(max_bytes=100)), ("audit", audit_layer(log)),
              ("read-only", read_only_layer())]
    with WasiWorld({"/": tree}, layers=layers) as world:
        client = world.client(FSTOOL, ["cat", "/notes.txt", "put", "/x", "hi", "mkdir", "/d"])
        assert client.start() == 1
        assert client.stdout.decode().splitlines()[-2:] == [
            "put /x: errno 69 (Read-only file system)",
            "mkdir /d: errno 69 (Read-only file system)"]
        assert [t.name for t in world.stack[2].types.values()] == [
            "audit-descriptor", "audit-directory-entry-stream"]
    got = records(log.read_text())
    names = {r["call"] for r in got if "call" in r}
    assert {"open_at", "read"} <= names
    assert not names & {"write", "create_directory_at"}  # never crossed it
    # fclose went to the read-only layer, whose destructor dropped the audit handle.
    opened = next(r["result"][0] for r in got if r.get("call") == "open_at")
    assert {"drop": "descriptor", "handle": opened} in got
    assert snapshot(tree) == before


def test_above_a_quota_it_logs_the_refusal(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    layers = [("quota", quota_layer(max_bytes=25)), ("audit", audit_layer(log))]
    with WasiWorld(layers=layers) as world:
        client = world.client(str(FIXTURES / "spacetool.wasm"), ["fill", "/f", "10", "100"])
        assert client.start() == 1
    writes = [r for r in calls(log.read_text()) if r["call"] == "write"]
    assert [w.get("result", w.get("errno")) for w in writes] == [10, 10, "EDQUOT"]


@pytest.mark.parametrize(("sink", "message"), [
    ("{tmp}/no/such/folder/a.log", "no folder"),
    ("{tmp}", "is a folder"),
    ("nosuchprotocol://bucket/a.log", "nosuchprotocol"),
])
def test_a_sink_that_cannot_be_written_is_a_clear_error(sink: str, message: str,
                                                        tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        audit_layer(sink.format(tmp=tmp_path))


def test_the_command_line_audit(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "virtwasi", "run", "--quota", "4", "--audit", str(log), FSTOOL,
         "put", "/a", "tiny", "put", "/b", "much too big"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == ["put /a: ok", "put /b: errno 19 (Quota exceeded)"]
    writes = [r for r in calls(log.read_text()) if r["call"] == "write"]
    assert [w.get("result", w.get("errno")) for w in writes] == [4, "EDQUOT"]


def test_a_bad_command_line_audit_sink_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "virtwasi", "run", "--audit", str(tmp_path / "no" / "a.log"),
         FSTOOL], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("virtwasi: --audit: ") and "Traceback" not in done.stderr
