"""The fixture suite on every backend: each behaves as its declared model.

A backend's model is the in-memory tree lacking exactly what the backend declares it
lacks (read-only, no symlinks, no hard links, no settable times; see ``declared.py``).
Each fixture runs on the backend and on its model, from the same initial tree; exit code,
stdout, stderr and the final tree must be equal. The in-memory tree itself behaves as
wasmtime (``test_differential.py``), so every difference from wasmtime on a backend is one
of its declared answers, and nothing else.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from backends import BACKENDS
from conftest import FIXTURES
from declared import limits_of, model_of
from fixturecases import CASES, ENV

from virtwasi.runtime import run
from virtwasi.storage.base import Storage
from virtwasi.storage.hostdir import HostDirStorage
from virtwasi.storage.memfs import MemoryStorage
from virtwasi.storage.tree import Snapshot, copy_tree, snapshot

Outcome = tuple[int, bytes, bytes, Snapshot]


def outcome(case: str, storage: Storage) -> Outcome:
    module, args, _, stdin = CASES[case]
    result = run(FIXTURES / module, args, mounts={"/": storage}, env=ENV, stdin=stdin)
    return result.exit_code, result.stdout, result.stderr, snapshot(storage)


def initial_tree(case: str, folder: Path) -> Path:
    folder.mkdir()
    prepare = CASES[case].prepare
    if prepare is not None:
        prepare(folder)
    return folder


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_backend_behaves_as_declared(case: str, backend: str, tmp_path: Path,
                                     request: pytest.FixtureRequest) -> None:
    tree = initial_tree(case, tmp_path / "tree")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    storage = BACKENDS[backend].build(tree, scratch, request)
    model_tree = MemoryStorage()
    with HostDirStorage(tree) as source:
        copy_tree(source, model_tree)
    expected = outcome(case, model_of(model_tree, limits_of(storage)))
    got = outcome(case, storage)
    assert got[0] == expected[0]
    assert got[1:3] == expected[1:3], differences(expected[1:3], got[1:3])
    assert got[3] == expected[3]


def differences(expected: tuple[bytes, ...], got: tuple[bytes, ...]) -> str:
    """What the backend printed differently from its model, as a diff."""
    lines: list[str] = []
    for want, have in zip(expected, got, strict=True):
        lines += difflib.unified_diff(want.decode(errors="replace").splitlines(),
                                      have.decode(errors="replace").splitlines(),
                                      "model", "backend", lineterm="", n=1)
    return "\n".join(lines)
