"""Path resolution agrees with wasmtime's built-in WASI on the same tree.

``pathprobe.wasm`` opens each path on wasmtime and prints the errno; the same paths are
resolved here over a :class:`HostDirStorage` of the same folder, with the open rules applied
(a missing file is ENOENT, ``O_NOFOLLOW`` on a symlink is ELOOP, ``O_DIRECTORY`` on a file
ENOTDIR), and the answers must match.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import FIXTURES, load_adapter

from virtwasi.filesystem.errors import ErrorCode, FsError
from virtwasi.filesystem.paths import resolve
from virtwasi.storage import FileKind, HostDirStorage
from virtwasi.wasi.abi import Errno
from virtwasi.wasi.errnos import errno_of

PROBES = [
    "f", "f/", "f/.", "d", "d/", "d/g", "d//g", "d/./g", "./f", "d/../f", "d/sub/../../f",
    "../root/f", "..", "d/../../x", "d/sub/../../../root/f", "lf", "@lf", "lf/", "ld/g", "@ld",
    "+ld", "+f", "+d", "abs", "up", "loop1", "viad", "dangling", "@dangling", "missing/x",
    "f/x", "ld/../f", "ld/..", "d/..",
]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "d" / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "f").write_text("hi")
    (root / "d" / "g").write_text("hi")
    for target, name in [("f", "lf"), ("d", "ld"), ("/etc/passwd", "abs"), ("../outside", "up"),
                         ("loop1", "loop2"), ("loop2", "loop1"), ("d/../f", "viad"),
                         ("missing", "dangling")]:
        os.symlink(target, root / name)
    return root


def open_errno(storage: HostDirStorage, probe: str) -> int:
    nofollow, directory = probe.startswith("@"), probe.startswith("+")
    path = probe[1:] if nofollow or directory else probe
    try:
        found = resolve(storage, "", path, follow=not nofollow)
    except (FsError, OSError) as exc:
        return int(errno_of(exc))
    if found.stat is None:
        return int(Errno.NOENT)
    if found.stat.kind is FileKind.SYMLINK:
        return int(Errno.LOOP)
    if directory and found.stat.kind is not FileKind.DIRECTORY:
        return int(Errno.NOTDIR)
    return 0


def test_resolution_matches_wasmtime(tree: Path) -> None:
    reference = load_adapter("wasmtime_wasi")
    result = reference.run(FIXTURES / "pathprobe.wasm", PROBES, tree)
    assert result.exit_code == 0, result.stderr
    expected = {}
    for line in result.stdout.decode().splitlines():
        probe, outcome = line.rsplit(": ", 1)
        expected[probe] = 0 if outcome == "ok" else int(outcome.split()[1])
    assert sorted(expected) == sorted(PROBES)
    with HostDirStorage(tree) as storage:
        got = {probe: open_errno(storage, probe) for probe in PROBES}
    assert got == expected


def test_resolution_stays_inside_the_starting_directory(tree: Path) -> None:
    with HostDirStorage(tree) as storage:
        assert resolve(storage, "d", "sub/..", follow=True).path == "d"
        for escape in ("..", "sub/../..", "../f", "/f"):
            with pytest.raises(FsError) as caught:
                resolve(storage, "d", escape, follow=True)
            assert caught.value.code is ErrorCode.NOT_PERMITTED
        assert resolve(storage, "", "ld/g", follow=True).path == "d/g"
        assert resolve(storage, "", "lf", follow=False).stat.kind is FileKind.SYMLINK  # type: ignore[union-attr]
        created = resolve(storage, "", "d/new", follow=True)
        assert (created.path, created.stat) == ("d/new", None)
