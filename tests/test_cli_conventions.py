"""The command line follows the wasmtime CLI's conventions (``--argv0``, ``--env NAME``,
``-S inherit-env``, every word after MODULE to the guest), and each mistake is one line on
stderr naming it and the fix, exit code 2, with nothing run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from conftest import FIXTURES

from virtwasi.cli import main
from virtwasi.storage.mounts import MountError, check_guest_path, open_mounts

HELLO = str(FIXTURES / "hello.wasm")  # greets its args, writes greeted.txt
FSTOOL = str(FIXTURES / "fstool.wasm")
HOLDER = str(FIXTURES / "holder.wasm")  # a reactor: no _start

# Prints its argv NUL-separated, a newline, then its environment NUL-separated.
SHOW_WAT = """
(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $asz (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $aget (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $esz (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $eget (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 4)
  (data (i32.const 16) "\\n")
  (func $out (param $ptr i32) (param $len i32)
    (i32.store (i32.const 8) (local.get $ptr))
    (i32.store (i32.const 12) (local.get $len))
    (drop (call $write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 20))))
  (func (export "_start")
    (drop (call $asz (i32.const 0) (i32.const 4)))
    (drop (call $aget (i32.const 1024) (i32.const 65536)))
    (call $out (i32.const 65536) (i32.load (i32.const 4)))
    (call $out (i32.const 16) (i32.const 1))
    (drop (call $esz (i32.const 0) (i32.const 4)))
    (drop (call $eget (i32.const 1024) (i32.const 131072)))
    (call $out (i32.const 131072) (i32.load (i32.const 4)))))
"""

# Calls fd_write, but exports no memory for it to read.
NO_MEMORY_WAT = """
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $write (param i32 i32 i32 i32) (result i32)))
  (func (export "_start")
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 0)))))
"""

# A reactor with typed exports, for --invoke.
REACTOR_WAT = """
(module
  (func (export "add") (param i32 i64) (result i64)
    (i64.add (i64.extend_i32_s (local.get 0)) (local.get 1)))
  (func (export "half") (param f64) (result f64) (f64.mul (local.get 0) (f64.const 0.5))))
"""

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """``virtwasi ARGS`` in this process: the exit code, stdout and stderr."""
    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


def wasm(tmp_path: Path, name: str, wat: str) -> str:
    path = tmp_path / name
    path.write_bytes(wasmtime.wat2wasm(wat))
    return str(path)


def shown(out: str) -> tuple[list[str], dict[str, str]]:
    """The argv and environment SHOW_WAT printed."""
    args, _, env = out.partition("\n")
    pairs = [item.partition("=") for item in env.split("\0")[:-1]]
    return args.split("\0")[:-1], {key: value for key, _, value in pairs}


def one_line_error(code: int, out: str, err: str, *words: str) -> None:
    assert (code, out) == (2, ""), err
    assert err.startswith("virtwasi") and err.count("\n") == 1, err
    for word in words:
        assert word in err, err


# -- wasmtime's spellings -------------------------------------------------------------------


def test_argv0_names_the_guests_argv0(cli: Run, tmp_path: Path) -> None:
    show = wasm(tmp_path, "show.wasm", SHOW_WAT)
    assert shown(cli("run", show, "x")[1])[0] == ["show.wasm", "x"]  # the file's name
    assert shown(cli("run", "--argv0", "tool", show, "x")[1])[0] == ["tool", "x"]


def test_a_bare_env_name_passes_the_hosts_value_if_it_has_one(
        cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    show = wasm(tmp_path, "show.wasm", SHOW_WAT)
    monkeypatch.setenv("VIRTWASI_GIVEN", "from the host")
    monkeypatch.delenv("VIRTWASI_ABSENT", raising=False)
    code, out, err = cli("run", "--env", "VIRTWASI_GIVEN", "--env", "VIRTWASI_ABSENT",
                         "--env", "K=V", "--env", "EMPTY=", show)
    assert (code, err) == (0, "")
    assert shown(out)[1] == {"VIRTWASI_GIVEN": "from the host", "K": "V", "EMPTY": ""}


@pytest.mark.parametrize("flag", [["-S", "inherit-env"], ["-Sinherit-env"],
                                  ["-S", "inherit-env=y"], ["--inherit-env"]])
def test_s_inherit_env_is_inherit_env(flag: list[str], cli: Run, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    show = wasm(tmp_path, "show.wasm", SHOW_WAT)
    monkeypatch.setenv("VIRTWASI_GIVEN", "inherited")
    env = shown(cli("run", *flag, "--env", "K=V", show)[1])[1]
    assert env["VIRTWASI_GIVEN"] == "inherited" and env["K"] == "V"
    assert shown(cli("run", show)[1])[1] == {}  # nothing unless asked


def test_an_s_option_virtwasi_does_not_take_is_one_line(cli: Run, tmp_path: Path) -> None:
    one_line_error(*cli("run", "-S", "inherit-env,tcp", "--dir", f"{tmp_path}::/", HELLO),
                   "-S tcp", "inherit-env")
    assert list(tmp_path.iterdir()) == []


def test_every_word_after_the_module_goes_to_the_guest(cli: Run, tmp_path: Path) -> None:
    show = wasm(tmp_path, "show.wasm", SHOW_WAT)
    assert shown(cli("run", show, "--", "a", "--", "b")[1])[0] == [
        "show.wasm", "--", "a", "--", "b"]
    assert shown(cli("run", show, "--env", "X=1", "--trace")[1]) == (
        ["show.wasm", "--env", "X=1", "--trace"], {})
    # A -- before MODULE ends virtwasi's options, and is not the guest's.
    assert shown(cli("run", "--env", "X=1", "--", show, "--", "b")[1]) == (
        ["show.wasm", "--", "b"], {"X": "1"})
    code, out, _ = cli("run", HELLO, "--", "a", "--", "b")
    assert (code, out) == (0, "hello, --\nhello, a\nhello, --\nhello, b\n")


def test_a_bare_trace_before_the_module_takes_no_value(
        cli: Run, tmp_path: Path) -> None:
    show = wasm(tmp_path, "show.wasm", SHOW_WAT)
    code, out, err = cli("run", "--trace", show, "--trace")
    assert code == 0 and shown(out)[0] == ["show.wasm", "--trace"]
    assert "args_get(" in err


def test_a_module_first_means_run(tmp_path: Path, cli: Run) -> None:
    code, out, _ = cli(HELLO, "Ada", "--", "x")
    assert (code, out) == (0, "hello, Ada\nhello, --\nhello, x\n")
    done = subprocess.run([sys.executable, "-m", "virtwasi", HELLO, "Grace"],
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (0, "hello, Grace\n")
    plain = tmp_path / "prog"  # a file, whatever its name
    plain.write_bytes((FIXTURES / "hello.wasm").read_bytes())
    assert cli(str(plain), "Ada")[:2] == (0, "hello, Ada\n")


def test_webassembly_text_runs_as_wasmtime_runs_it(cli: Run, tmp_path: Path) -> None:
    text = tmp_path / "show.wat"
    text.write_text(SHOW_WAT)
    assert shown(cli("run", str(text), "a")[1])[0] == ["show.wat", "a"]


# -- --invoke -------------------------------------------------------------------------------


def test_invoke_reads_each_argument_as_its_parameters_type(cli: Run, tmp_path: Path) -> None:
    lib = wasm(tmp_path, "lib.wasm", REACTOR_WAT)
    assert cli("run", "--invoke", "add", lib, "2", "3")[:2] == (0, "5\n")
    assert cli("run", "--invoke", "add", lib, "-2147483648", "0x10")[:2] == (
        0, "-2147483632\n")
    assert cli("run", "--invoke", "add", lib, "4294967295", "1")[:2] == (0, "0\n")  # u32 -1
    assert cli("run", "--invoke", "half", lib, "3")[:2] == (0, "1.5\n")


@pytest.mark.parametrize(("args", "words"), [
    (["add", "4294967296", "1"], ["parameter 1 (i32)", "-2147483648 to 4294967295"]),
    (["add", "-2147483649", "1"], ["parameter 1 (i32)", "got -2147483649"]),
    (["add", "1", "2.5"], ["parameter 2 (i64)", "whole number", "'2.5'"]),
    (["add", "1", "18446744073709551616"], ["parameter 2 (i64)"]),
    (["half", "x"], ["parameter 1 (f64)", "a number"]),
    (["add", "1"], ["add takes 2 argument(s), got 1"]),
    (["nope"], ["no function named 'nope'", "add, half"]),
])
def test_invoke_refuses_an_argument_that_does_not_fit(
        args: list[str], words: list[str], cli: Run, tmp_path: Path) -> None:
    lib = wasm(tmp_path, "lib.wasm", REACTOR_WAT)
    one_line_error(*cli("run", "--invoke", args[0], lib, *args[1:]), *words)


def test_invoke_refuses_before_the_reactor_initializes(cli: Run) -> None:
    # holder's shut takes an i32: a wrapped 2**32 + 1 would have closed descriptor 1.
    one_line_error(*cli("run", "--invoke", "shut", HOLDER, str(2**32 + 1)), "parameter 1")


# -- mounts ---------------------------------------------------------------------------------


def test_two_sources_at_one_guest_path_are_an_error(cli: Run, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for second in (["--dir", f"{tmp_path / 'b'}::/data/"], ["--mount", "/data=mem://"]):
        one_line_error(*cli("run", "--dir", f"{tmp_path / 'a'}::/data", *second,
                            "--dir", f"{tmp_path}::/", HELLO),
                       "both mount at /data", "its own guest path")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # nothing ran


@pytest.mark.parametrize(("guest", "words"), [
    ("//", ["bad guest path '//'"]),
    ("/../x", ["bad guest path '/../x'"]),
    ("/a//b", ["bad guest path"]),
    ("/a/./b", ["bad guest path"]),
    ("relative", ["absolute", "did you mean --mount /relative=mem://?"]),
])
def test_a_guest_path_no_program_names_so_is_an_error(
        guest: str, words: list[str], cli: Run, tmp_path: Path) -> None:
    one_line_error(*cli("run", "--dir", f"{tmp_path}::/", "--mount", f"{guest}=mem://", HELLO),
                   *words)
    assert list(tmp_path.iterdir()) == []


def test_guest_paths_are_normalised(cli: Run, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.txt").write_text("here")
    code, out, _ = cli("run", "--dir", f"{tmp_path / 'data'}::/data/", FSTOOL, "ls", "/data")
    assert (code, out) == (0, "ls /data: in.txt\n")
    monkeypatch.chdir(tmp_path)  # --dir data serves ./data at /data, --dir . at /
    code, out, _ = cli("run", "--dir", "data", "--dir", ".", FSTOOL, "ls", "/data", "ls", "/")
    assert (code, out) == (0, "ls /data: in.txt\nls /: data\n")
    assert check_guest_path("/data/") == "/data"
    with pytest.raises(MountError, match="two sources at one guest path"):
        open_mounts({"/data": "mem://", "/data/": "mem://"})


@pytest.mark.parametrize("ro", ["/data/", "data", "/data"])
def test_ro_normalises_its_path(ro: str, cli: Run, tmp_path: Path) -> None:
    code, out, _ = cli("run", "--dir", f"{tmp_path}::/data", "--ro", ro, FSTOOL,
                       "put", "/data/x", "y")
    assert (code, out) == (1, "put /data/x: errno 69 (Read-only file system)\n")
    assert list(tmp_path.iterdir()) == []


def test_ro_of_nothing_mounted_is_one_line(cli: Run, tmp_path: Path) -> None:
    one_line_error(*cli("run", "--dir", f"{tmp_path}::/", "--ro", "/data", HELLO),
                   "--ro /data: nothing is mounted there", "mounted: /")
    assert list(tmp_path.iterdir()) == []


def test_mount_options_reach_the_mounts_of_their_protocol(
        cli: Run, s3_url: str, s3_endpoint: str, s3_fresh: Callable[[], Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # wrong unless overridden
    code, out, err = cli("run", "--mount", f"/data={s3_url}",
                         "--mount-option", f"s3.endpoint_url={s3_endpoint}",
                         "--mount-option", "s3.use_listings_cache=false",  # JSON: a bool
                         FSTOOL, "put", "/data/f", "via options", "cat", "/data/f")
    assert (code, err) == (0, "")
    assert out == "put /data/f: ok\ncat /data/f: via options\n"
    assert s3_fresh().cat(f"{s3_url.removeprefix('s3://')}/f") == b"via options"


@pytest.mark.parametrize(("args", "words"), [
    (["--mount-option", "s3.endpoint_url=http://x", "--mount", "/=mem://"],
     ["--mount-option s3.*: no --mount URL uses s3://"]),
    (["--mount-option", "endpoint_url=http://x"], ["PROTOCOL.KEY=VALUE"]),
])
def test_a_mount_option_that_applies_nowhere_is_one_line(
        args: list[str], words: list[str], cli: Run, tmp_path: Path) -> None:
    one_line_error(*cli("run", "--dir", f"{tmp_path}::/x", *args, HELLO), *words)
    assert list(tmp_path.iterdir()) == []


# -- mistakes, each one line ----------------------------------------------------------------


def test_a_directory_as_the_module(cli: Run, tmp_path: Path) -> None:
    one_line_error(*cli("run", str(tmp_path)), "is a directory, not a module",
                   f"--dir {tmp_path}")


def test_a_text_file_as_the_module(cli: Run, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("just some notes\n")
    one_line_error(*cli("run", "--dir", f"{tmp_path}::/", str(notes)),
                   "notes.txt is not a wasm module", "neither a .wasm binary nor WebAssembly "
                   "text")
    broken = tmp_path / "broken.wat"
    broken.write_text("(module (func $f (result i32)))\n(oops")
    one_line_error(*cli("run", str(broken)), "broken.wat: not valid WebAssembly text")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.wat", "notes.txt"]


def test_dir_with_one_colon_hints_at_two(cli: Run, tmp_path: Path) -> None:
    one_line_error(*cli("run", "--dir", f"{tmp_path}::/", "--dir", "data:/data", HELLO),
                   "--dir data:/data", "did you mean --dir data::/data?")
    one_line_error(*cli("run", "--dir", "s3://bucket", HELLO), "--mount GUEST=URL")
    assert list(tmp_path.iterdir()) == []


def test_a_reversed_mount_hints_at_guest_first(cli: Run, tmp_path: Path) -> None:
    one_line_error(*cli("run", "--dir", f"{tmp_path}::/", "--mount", "./data=/data", HELLO),
                   "GUEST=URL", "did you mean --mount /data=./data?")
    assert list(tmp_path.iterdir()) == []


def test_a_module_without_memory_that_calls_wasi(cli: Run, tmp_path: Path) -> None:
    bare = wasm(tmp_path, "bare.wasm", NO_MEMORY_WAT)
    one_line_error(*cli("run", bare), 'exports no memory named "memory"', "fd_write",
                   "export it")
    code, out, err = cli("diff", bare)
    one_line_error(code, out, err, 'exports no memory named "memory"')


def test_diff_on_a_reactor(cli: Run) -> None:
    one_line_error(*cli("diff", HOLDER), "exports no _start function", "--invoke")


def test_diff_passes_every_word_after_the_module(cli: Run) -> None:
    code, out, _ = cli("diff", "--runtime", "virtual-memory", HELLO, "--", "x")
    assert code == 0 and out.startswith("hello.wasm -- x\n"), out
    assert "19 bytes" in out  # hello, --\nhello, x\n


def test_an_unknown_choice_is_one_line_with_the_choices(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "virtwasi", "run", "--semantics", "bogus",
                           "--dir", f"{tmp_path}::/", HELLO],
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.count("\n") == 1 and "usage" not in done.stderr, done.stderr
    assert "--semantics" in done.stderr and "'bogus'" in done.stderr
    for choice in ("component-model", "proposal-2021", "transparent"):
        assert choice in done.stderr
    assert list(tmp_path.iterdir()) == []
