"""World files: `virtwasi run --world FILE` builds the instances a file describes and runs
real wasm modules among them; a bad file is one line naming the file, table and key."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT

from virtwasi.cli import main

ROFS_LINE = "errno 69 (Read-only file system)"


def world_dir(tmp_path: Path, text: str) -> Path:
    """``text`` as tmp_path/world/world.toml, beside a data folder; the current directory is
    moved elsewhere, so that relative paths work only if taken from the file's folder."""
    folder = tmp_path / "world"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "notes.txt").write_text("buy milk")
    (folder / "world.toml").write_text(text)
    (tmp_path / "elsewhere").mkdir()
    os.chdir(tmp_path / "elsewhere")
    return folder


def fixture(name: str, folder: Path) -> str:
    """A fixture module's path relative to ``folder``, as a world file there would write it."""
    return os.path.relpath(FIXTURES / name, folder)


def read_only_world(tmp_path: Path, args: str = '["cat", "/data/notes.txt"]') -> Path:
    module = fixture("fstool.wasm", tmp_path / "world")
    return world_dir(tmp_path, f"""
[run]
module = "{module}"
args = {args}

[instances.wasi]
kind = "virtual"
mounts = {{ "/" = "mem://", "/data" = "data" }}

[instances.guard]
kind = "read-only"
imports = {{ lower = "wasi" }}
""")


@pytest.fixture(autouse=True)
def _keep_cwd() -> Iterator[None]:
    here = os.getcwd()
    yield
    os.chdir(here)


def test_a_read_only_layer_refuses_the_modules_writes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = read_only_world(tmp_path, '["cat", "/data/notes.txt", "put", "/data/notes.txt", '
                             '"scribbled", "put", "/data/new.txt", "x", "mkdir", "/tmp"]')
    code = main(["run", "--world", str(folder / "world.toml")])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out == ["cat /data/notes.txt: buy milk",
                   f"put /data/notes.txt: {ROFS_LINE}",
                   f"put /data/new.txt: {ROFS_LINE}",
                   f"mkdir /tmp: {ROFS_LINE}"]  # the layer covers every mount, memory too
    assert (folder / "data" / "notes.txt").read_text() == "buy milk"
    assert sorted(p.name for p in (folder / "data").iterdir()) == ["notes.txt"]


def test_args_after_double_dash_follow_the_files_own(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = read_only_world(tmp_path)
    code = main(["run", "--world", str(folder / "world.toml"), "--", "ls", "/data"])
    assert code == 0
    assert capsys.readouterr().out.splitlines() == ["cat /data/notes.txt: buy milk",
                                                    "ls /data: notes.txt"]


def test_a_module_before_double_dash_runs_instead_with_only_its_own_args(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = world_dir(tmp_path, f"""
[run]
module = "{fixture("fstool.wasm", tmp_path / "world")}"
args = ["ls", "/"]
env = {{ HOME = "/home/w", GREETING = "from the file" }}

[instances.wasi]
kind = "virtual"
""")
    code = main(["run", "--world", str(folder / "world.toml"), "--env", "GREETING=hey",
                 str(FIXTURES / "calls.wasm"), "one", "two"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[:2] == ["argc 3: [one] [two]", "HOME=/home/w GREETING=hey"]


def test_mounts_resolve_against_the_files_folder_overlay_and_archive_included(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = world_dir(tmp_path, f"""
[run]
module = "{fixture("fstool.wasm", tmp_path / "world")}"
args = ["cat", "/site/index.html", "put", "/work/new.txt", "made", "cat", "/work/new.txt",
        "cat", "/work/notes.txt"]

[instances.wasi]
kind = "virtual"

[instances.wasi.mounts]
"/site" = {{ url = "zip::file://site.zip" }}
"/work" = {{ lower = "file://data", upper = "mem://" }}
""")
    with zipfile.ZipFile(folder / "site.zip", "w") as archive:
        archive.writestr("index.html", "<p>hi</p>")
    code = main(["run", "--world", str(folder / "world.toml")])
    assert capsys.readouterr().out.splitlines() == [
        "cat /site/index.html: <p>hi</p>", "put /work/new.txt: ok",
        "cat /work/new.txt: made", "cat /work/notes.txt: buy milk"]
    assert code == 0
    assert sorted(p.name for p in (folder / "data").iterdir()) == ["notes.txt"]


def test_the_example_world_files_run_from_the_repository_root(
        capfd: pytest.CaptureFixture[str]) -> None:
    os.chdir(ROOT)
    assert main(["run", "--world", "examples/readonly.toml"]) == 1
    out = capfd.readouterr().out
    assert "cat /data/notes.txt: buy milk" in out and ROFS_LINE in out
    assert main(["run", "--world", "examples/quota.toml"]) == 1
    done = capfd.readouterr()
    assert "put /small.txt: ok" in done.out and "put /big.txt: errno" in done.out
    assert '"errno":"EDQUOT"' in done.err  # the audit layer's line for the refused write


BAD_WORLDS = [
    ('[instances.wasi]\nkind = "virtuel"\n',
     "[instances.wasi] kind: unknown kind 'virtuel'"),
    ('[instances.wasi]\nkind = "virtual"\nmount = {}\n',
     "[instances.wasi] mount: unknown key"),
    ('colour = "blue"\n[instances.wasi]\nkind = "virtual"\n', "colour: unknown key"),
    ('[instances.wasi]\nkind = "virtual"\n[instances.g]\nkind = "read-only"\n'
     'imports = { lower = "wsi" }\n', "[instances.g] imports.lower: no instance named 'wsi'"),
    ('[instances.a]\nkind = "read-only"\nimports = { lower = "b" }\n[instances.b]\n'
     'kind = "read-only"\nimports = { lower = "a" }\n[instances.wasi]\nkind = "virtual"\n',
     "[instances.a] imports.lower: a cycle: a -> b -> a"),
    ('[instances.wasi]\nkind = "virtual"\n[instances.a]\nkind = "read-only"\n'
     'imports = { lower = "wasi" }\n[instances.b]\nkind = "read-only"\n'
     'imports = { lower = "wasi" }\n', "[instances.b] imports.lower: 'wasi' is already imported"),
    ('[instances.wasi]\nkind = "virtual"\n[instances.other]\nkind = "virtual"\n',
     "[instances] one instance must be an implementation"),
    ('[instances.g]\nkind = "read-only"\n[instances.wasi]\nkind = "virtual"\n',
     "[instances.g] imports: a read-only layer imports one instance, as lower"),
    ('[run]\nmodule = "missing.wasm"\n[instances.wasi]\nkind = "virtual"\n',
     "[run] module: no such file:"),
    ('[run]\nenv = { A = 1 }\n[instances.wasi]\nkind = "virtual"\n',
     "[run] env.A: expected a string, got 1"),
    ('[instances.wasi]\nkind = "virtual"\nmounts = { "/d" = { url = 3 } }\n',
     '[instances.wasi] mounts."/d".url: expected a string, got 3'),
    ('[instances.wasi]\nkind = "virtual"\nread_only = ["/x"]\n',
     "[instances.wasi] read_only: nothing is mounted at /x"),
    ('[instances.q]\nkind = "quota"\nimports = { lower = "wasi" }\nmax_bytes = -1\n'
     '[instances.wasi]\nkind = "virtual"\n',
     "[instances.q] max_bytes: expected a whole number of at least 0, got -1"),
    ('[instances.log]\nkind = "audit"\nimports = { lower = "wasi" }\n'
     '[instances.wasi]\nkind = "virtual"\n', "[instances.log] log: missing"),
    ('semantics = "cm"\n[instances.wasi]\nkind = "virtual"\n', "semantics: unknown semantics"),
    ("[instances\n", "not valid TOML"),
    ("", "instances: no instances"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_WORLDS)
def test_a_bad_world_file_is_one_line_naming_file_table_and_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str) -> None:
    folder = world_dir(tmp_path, text)
    code = main(["run", "--world", str(folder / "world.toml"),
                 str(FIXTURES / "hello.wasm"), "x"])
    done = capsys.readouterr()
    assert code == 2 and done.out == ""
    assert done.err.startswith(f"virtwasi: {folder / 'world.toml'}: {expected}")
    assert done.err.count("\n") == 1 and done.err.endswith("\n")


def test_nothing_runs_or_changes_for_a_bad_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = world_dir(tmp_path, f"""
[run]
module = "{fixture("fstool.wasm", tmp_path / "world")}"
args = ["put", "/data/new.txt", "x"]
[instances.wasi]
kind = "virtual"
mounts = {{ "/data" = "data" }}
[instances.log]
kind = "audit"
imports = {{ lower = "wasi" }}
log = "calls.jsonl"
[instances.extra]
kind = "quota"
""")
    assert main(["run", "--world", str(folder / "world.toml")]) == 2
    assert "[instances.extra] imports" in capsys.readouterr().err
    assert sorted(p.name for p in folder.rglob("*")) == ["data", "notes.txt", "world.toml"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--mount", "/=mem://"], "--mount cannot be used with --world"),
    (["--ro", "/"], "--ro cannot be used with --world"),
    (["--impl", "native"], "--impl cannot be used with --world"),
])
def test_options_the_world_file_decides_are_refused_with_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
        message: str) -> None:
    folder = read_only_world(tmp_path)
    assert main(["run", "--world", str(folder / "world.toml"), *extra]) == 2
    assert capsys.readouterr().err.startswith(f"virtwasi: {message}")


def test_a_world_without_a_module_needs_one_on_the_command_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = world_dir(tmp_path, '[instances.wasi]\nkind = "virtual"\n')
    assert main(["run", "--world", str(folder / "world.toml"), "--", "x"]) == 2
    assert "[run] module: missing" in capsys.readouterr().err
    assert main(["run", "--world", str(folder / "world.toml"),
                 str(FIXTURES / "hello.wasm"), "Ada"]) == 0
    assert capsys.readouterr().out == "hello, Ada\n"


def test_a_mount_that_cannot_open_names_the_world_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = world_dir(tmp_path, f"""
[run]
module = "{fixture("hello.wasm", tmp_path / "world")}"
[instances.wasi]
kind = "virtual"
mounts = {{ "/" = "no-such-folder" }}
""")
    assert main(["run", "--world", str(folder / "world.toml")]) == 2
    assert capsys.readouterr().err == (f"virtwasi: {folder / 'world.toml'}: no such host "
                                       f"folder: {folder / 'no-such-folder'}\n")


def test_layers_stack_on_the_native_implementation_in_a_world_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_bytes(b"buy milk\n")
    world = tmp_path / "world.toml"
    world.write_text(f'[run]\nmodule = "{FIXTURES / "fstool.wasm"}"\n'
                     'args = ["cat", "/notes.txt", "put", "/x.txt", "y"]\n'
                     '[instances.wasi]\nkind = "native"\nmounts = { "/" = "data" }\n'
                     '[instances.ro]\nkind = "read-only"\nimports = { lower = "wasi" }\n')
    done = subprocess.run([sys.executable, "-m", "virtwasi", "run", "--world", str(world)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines()[-1] == "put /x.txt: errno 69 (Read-only file system)"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["notes.txt"]
