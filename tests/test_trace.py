"""The trace of preview 1 calls (``run --trace``, ``trace=``): what it shows, and that it
changes nothing the guest sees."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES
from probekit import script

from virtwasi import client as client_module
from virtwasi.runtime import Session, WasiWorld
from virtwasi.wasi.abi import IMPORTS
from virtwasi.wasi.trace import SIGNATURES, Tracer

FILEOPS = str(FIXTURES / "fileops.wasm")
HELLO = str(FIXTURES / "hello.wasm")
WILD = 0xFFFF_FF00  # far past the probe's two pages of memory


def virtwasi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "virtwasi", *args], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_the_text_trace_shows_paths_flags_fds_byte_counts_and_errnos() -> None:
    plain = virtwasi("run", FILEOPS)
    traced = virtwasi("run", "--trace", FILEOPS)
    assert (traced.returncode, traced.stdout) == (plain.returncode, plain.stdout) == (
        0, plain.stdout)
    lines = traced.stderr.splitlines()
    opened = [ln for ln in lines if ln.startswith('path_open(fd=3, dirflags=SYMLINK_FOLLOW, '
                                                  'path="a/f.txt", oflags=CREAT|TRUNC, ')]
    assert len(opened) == 1 and re.search(r"\) = 0 \(fd=4\) <[\d.]+us>$", opened[0])
    assert "fd_write(fd=4, iovs=(13 bytes, 1 iovec)) = 0 (nwritten=13) <" in traced.stderr
    assert "fd_seek(fd=4, offset=7, whence=SET) = 0 (newoffset=7) <" in traced.stderr
    # Every byte of stdout went through a traced fd_write to fd 1.
    written = sum(int(m) for m in re.findall(r"^fd_write\(fd=1, .*\) = 0 \(nwritten=(\d+)\)",
                                             traced.stderr, re.M))
    assert written == len(plain.stdout.encode())
    for errno in ("ENOENT", "EEXIST", "EBADF", "EINVAL", "ENOTEMPTY", "EISDIR", "ENOTDIR"):
        assert f") = {errno} <" in traced.stderr, errno
    assert 'path_open(fd=3, dirflags=SYMLINK_FOLLOW, path="nope", ' in traced.stderr
    assert 'path_readlink(fd=3, path="a/link", buf_len=63) = 0 (target="b/log2") <' in (
        traced.stderr)


def test_exit_codes_and_stderr_are_the_guests_and_proc_exit_is_shown(tmp_path: Path) -> None:
    # A read-only tree: hello cannot write greeted.txt, says why on stderr and exits 1.
    plain = virtwasi("run", "--ro", "/", HELLO, "Ada")
    trace = tmp_path / "trace.txt"
    traced = virtwasi("run", "--ro", "/", f"--trace={trace}", HELLO, "Ada", "--trace")
    assert plain.returncode == traced.returncode == 1
    assert plain.stdout == "hello, Ada\n" and traced.stdout == "hello, Ada\nhello, --trace\n"
    assert traced.stderr == plain.stderr  # the trace went to the file only
    lines = trace.read_text().splitlines()
    assert lines[-1].startswith("proc_exit(code=1) = exit(1) <")
    assert any(ln.startswith('path_open(fd=3, dirflags=SYMLINK_FOLLOW, path="greeted.txt", ')
               and ") = EROFS <" in ln for ln in lines)
    assert "args_sizes_get() = 0 (count=3, size=" in trace.read_text()


def test_the_json_trace_parses_line_by_line(tmp_path: Path) -> None:
    trace = tmp_path / "calls.jsonl"
    done = virtwasi("run", f"--trace={trace}", "--trace-format", "json", FILEOPS)
    assert done.returncode == 0 and done.stderr == ""
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert all(set(r) >= {"call", "args", "us"} and r["call"] in IMPORTS for r in records)
    assert all(("result" in r) != ("trap" in r or "exit" in r) for r in records)
    opened = next(r for r in records if r["call"] == "path_open")
    assert opened["args"]["path"] == "a/f.txt" and opened["args"]["oflags"] == "CREAT|TRUNC"
    assert opened["result"] == 0 and opened["out"] == {"fd": 4}
    missing = next(r for r in records if r["args"].get("path") == "nope")
    assert missing["errno"] == "ENOENT" and missing["result"] == 44 and "out" not in missing
    writes = [r for r in records if r["call"] == "fd_write" and r["args"]["fd"] == 1]
    assert writes and all(r["args"]["iovs"]["count"] >= 1 for r in writes)


def test_trace_format_alone_traces_to_stderr_and_a_bad_path_is_a_clear_error(
        tmp_path: Path) -> None:
    done = virtwasi("run", "--trace-format", "json", HELLO)
    assert done.returncode == 0
    assert [json.loads(line)["call"] for line in done.stderr.splitlines()][-1] == "fd_close"
    bad = virtwasi("run", f"--trace={tmp_path}/no/such/dir/t.txt", HELLO)
    assert bad.returncode == 2 and bad.stderr.startswith("virtwasi: --trace: ")


def test_help_explains_the_trace() -> None:
    text = " ".join(virtwasi("run", "--help").stdout.split())
    assert "--trace [PATH]" in text and "wasi_snapshot_preview1 call" in text
    assert "--trace-format {text,json}" in text


def test_the_python_api_traces_to_a_stream_and_changes_nothing() -> None:
    with Session(HELLO, ["Ada"]) as plain:
        plain_code = plain.start()
    out = io.StringIO()
    with Session(HELLO, ["Ada"], trace=out) as traced:
        assert traced.start() == plain_code == 0
        assert traced.stdout == plain.stdout == b"hello, Ada\n"
    text = out.getvalue()
    assert "fd_write(fd=1, iovs=(11 bytes, 2 iovecs)) = 0 (nwritten=10) <" in text
    assert re.search(r'path_open\(fd=3, .*path="greeted.txt", oflags=CREAT\|TRUNC, .*\) '
                     r"= 0 \(fd=4\)", text)
    assert not out.closed  # a stream given stays the caller's


def test_a_world_client_traces_as_json_and_a_shared_file_lives_until_the_last_client(
        tmp_path: Path) -> None:
    path = tmp_path / "both.jsonl"
    with WasiWorld() as world:
        tracer = Tracer(path, format="json")
        first = world.client(HELLO, ["one"], trace=tracer)
        second = world.client(HELLO, ["two"], trace=tracer)
        assert first.start() == 0
        first.close()
        assert not tracer.stream.closed
        assert second.start() == 0
        second.close()
        assert tracer.stream.closed
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["args"]["path"] for r in records if r["call"] == "path_open"] == [
        "greeted.txt", "greeted.txt"]


def test_transparent_semantics_are_traced_with_their_own_errnos() -> None:
    out = io.StringIO()
    with Session(FILEOPS, semantics="transparent") as plain:
        plain.start()
    with Session(FILEOPS, semantics="transparent", trace=out) as traced:
        assert traced.start() == 0
        assert traced.stdout == plain.stdout
    assert "fd_close(fd=4) = EBADF <" in out.getvalue()


def test_untraced_the_engine_is_given_the_adapters_own_methods(
        monkeypatch: pytest.MonkeyPatch) -> None:
    given: list[object] = []
    real = client_module.define  # type: ignore[attr-defined]

    def spy(*args: object, **kwargs: object) -> object:
        given.append(args[5])
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(client_module, "define", spy)
    with Session(HELLO) as plain:
        assert len(given) == len(IMPORTS)
        for fn in given:
            assert getattr(fn, "__self__", None) is plain.adapter, fn
    given.clear()
    with Session(HELLO, trace=io.StringIO()) as traced:
        assert [getattr(fn, "__name__", "") for fn in given] == list(
            traced.adapter.functions())
        assert not any(getattr(fn, "__self__", None) is traced.adapter for fn in given)


def _probe(tmp_path: Path, calls: list[tuple[str, tuple[int, ...]]],
           data: dict[int, bytes]) -> tuple[tuple[int, bytes, bytes], tuple[int, bytes, bytes],
                                            str]:
    """The probe run untraced and traced (exit code, stdout, stderr each), and the trace."""
    module = tmp_path / "probe.wasm"
    module.write_bytes(script(calls, data))
    runs = []
    out = io.StringIO()
    for trace in (None, out):
        with Session(module, trace=trace) as session:
            runs.append((session.start(), session.stdout, session.stderr))
    return runs[0], runs[1], out.getvalue()


def test_wild_pointers_are_shown_as_such_and_answered_as_untraced(tmp_path: Path) -> None:
    long_name = b"n" * 1000
    calls = [
        ("path_create_directory", (99, WILD, 10)),
        ("path_filestat_get", (99, 0, WILD, 10, WILD)),
        ("fd_write", (99, WILD, 0, WILD)),
        ("path_create_directory", (3, 1000, 2)),  # not UTF-8
        ("path_create_directory", (3, 2000, len(long_name))),
        ("path_open", (3, 0, 1000, 2, 1 << 7, 0, 0, 0, WILD)),  # an undefined oflags bit
    ]
    plain, traced, trace = _probe(tmp_path, calls, {1000: b"\xff\xfe", 2000: long_name})
    assert traced == plain
    assert plain[0] == 134  # the last call traps, untraced and traced alike
    lines = trace.splitlines()
    assert lines[0].startswith(
        f"path_create_directory(fd=99, path=<bad address {WILD:#x}+10>) = EBADF <")
    assert lines[1].startswith(f"path_filestat_get(fd=99, flags=0, path=<bad address {WILD:#x}"
                               "+10>) = EBADF <")
    assert lines[2].startswith(
        f"fd_write(fd=99, iovs=<bad address {WILD:#x}+0>) = EBADF <")
    assert lines[3].startswith(r'path_create_directory(fd=3, path="\xff\xfe") = EILSEQ <')
    assert lines[4].startswith(f'path_create_directory(fd=3, path="{"n" * 200}"... '
                               "(1000 bytes)) = ")
    assert lines[5].startswith(r'path_open(fd=3, dirflags=0, path="\xff\xfe", oflags=0x80, ')
    assert ") = trap: AbiViolation: invalid flags 0x80 for Oflags <" in lines[5]


def test_a_trap_on_a_wild_path_is_the_same_trap_traced(tmp_path: Path) -> None:
    plain, traced, trace = _probe(
        tmp_path, [("path_open", (3, 0, WILD, 10, 0, 0, 0, 0, 0))], {})
    assert traced == plain and plain[0] == 134 and b"out of bounds" in plain[2]
    assert trace.startswith(f"path_open(fd=3, dirflags=0, path=<bad address {WILD:#x}+10>, ")
    assert "= trap: AbiViolation: guest address" in trace


def test_every_import_has_its_arguments_named() -> None:
    assert SIGNATURES.keys() == IMPORTS.keys()
