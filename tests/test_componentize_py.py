"""A component not made from preview 1: CPython and a Python script, built by componentize-py.

The script is a ``wasi:cli/command``: it reads its arguments and environment, lists
folders, reads a file, makes a folder, writes, renames and removes, and prints each answer.
virtwasi's ``Session`` runs it over the in-memory default, a host folder and the native
implementation, and wasmtime's built-in WASI 0.2 over a host folder: exit code, stdout,
stderr and the final tree must be equal. Over a zip archive, served read-only, every change
answers ``EROFS`` as documented, where wasmtime over a read-only folder answers ``EPERM``
(its "not permitted"): otherwise the runs are the same, and the archive is unchanged.

componentize-py builds the component once per machine (most of a minute); it is kept in
the temporary folder (see :func:`componentkit.python_command`).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from componentkit import python_command
from conftest import load_adapter

from virtwasi.compare.diff import Observation
from virtwasi.compare.result import RunResult
from virtwasi.runtime import Session
from virtwasi.storage.base import Storage
from virtwasi.storage.hostdir import HostDirStorage
from virtwasi.storage.memfs import MemoryStorage
from virtwasi.storage.tree import copy_tree, snapshot

GUEST = '''
import errno
import os
import sys

from wit_world import exports


def attempt(what, action):
    try:
        action()
        print(what, "ok")
    except OSError as error:
        print(what, errno.errorcode[error.errno])


def upper(words):
    with open("/data/words.txt", "w") as file:
        file.write(" ".join(words).upper())


class Run(exports.Run):
    def run(self) -> None:
        print(sys.argv[1:], os.environ.get("GREETING"))
        print(sorted(os.listdir("/")), sorted(os.listdir("/data")))
        with open("/data/words.txt") as file:
            words = file.read().split()
        print(words, os.stat("/data/words.txt").st_size)
        attempt("mkdir", lambda: os.mkdir("/data/sub"))
        attempt("write", lambda: upper(words))
        attempt("rename", lambda: os.rename("/data/words.txt", "/data/renamed.txt"))
        attempt("remove", lambda: os.remove("/data/words.txt"))
        attempt("open missing", lambda: open("/data/missing.txt"))
        print(sorted((top, sorted(dirs), sorted(files)) for top, dirs, files in os.walk("/")))
        print("done", len(words), file=sys.stderr)
'''
TREE = {"data/words.txt": b"alpha beta\ngamma\n", "data/notes/a.txt": b"a"}
ARGS = ["one", "two words"]
ENV = {"GREETING": "hi there"}
PROGRAM = "app.wasm"  # argv[0] on both: the adapters name a program by its file


@pytest.fixture(scope="module")
def command(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built component, under the name every run gives it."""
    named = tmp_path_factory.mktemp("python") / PROGRAM
    named.write_bytes(python_command(GUEST).read_bytes())
    return named


def prepare(root: Path) -> Path:
    for name, data in TREE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def on_wasmtime(command: Path, root: Path, read_only: bool = False) -> Observation:
    result = load_adapter("wasmtime_wasi").run(command, ARGS, root, env=ENV,
                                                read_only=read_only)
    with HostDirStorage(root) as tree:
        return Observation(result.exit_code, result.stdout, result.stderr, snapshot(tree))


def on_virtwasi(command: Path, mount: Storage | str, impl: str = "virtual") -> RunResult:
    with Session(command, ARGS, mounts={"/": mount}, env=ENV, impl=impl) as session:
        code = session.start()
        return RunResult(code, session.stdout, session.stderr)


@pytest.mark.parametrize("runtime", ["memory", "host", "native"])
def test_same_behaviour_as_wasmtime_wasi_0_2(runtime: str, command: Path,
                                             tmp_path: Path) -> None:
    expected = on_wasmtime(command, prepare(tmp_path / "wasmtime"))
    assert expected.exit_code == 0 and b"rename ok" in expected.stdout
    assert expected.tree["data/renamed.txt"] == ("regular", b"ALPHA BETA GAMMA")
    root = prepare(tmp_path / runtime)
    if runtime == "memory":
        memory = MemoryStorage()
        with HostDirStorage(root) as host:
            copy_tree(host, memory)
        result, tree = on_virtwasi(command, memory), snapshot(memory)
    else:
        with HostDirStorage(root) as host:
            result = on_virtwasi(command, host, "native" if runtime == "native" else "virtual")
            tree = snapshot(host)
    assert Observation(result.exit_code, result.stdout, result.stderr, tree) == expected


def test_a_zip_mount_refuses_every_change(command: Path, tmp_path: Path) -> None:
    archive = tmp_path / "tree.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for name, data in TREE.items():
            out.writestr(name, data)
    before = archive.read_bytes()
    got = on_virtwasi(command, f"zip::file://{archive}")
    expected = on_wasmtime(command, prepare(tmp_path / "wasmtime"), read_only=True)
    assert expected.stdout.count(b" EPERM\n") == 4  # each change, refused on wasmtime too
    assert got == RunResult(expected.exit_code,
                            expected.stdout.replace(b" EPERM\n", b" EROFS\n"), expected.stderr)
    assert archive.read_bytes() == before
