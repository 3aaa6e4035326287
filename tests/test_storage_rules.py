"""The storage rules kept in one place: the open rules every backend decides by, read-only
as one wrapper over any backend, and ``close()`` on every backend."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import fsspec
import pytest
from backends import BACKENDS, tar_folder, zip_folder
from conftest import FIXTURES
from storagekit import errno_of, read_all

from virtwasi.runtime import run
from virtwasi.storage import (
    FileKind,
    FsspecStorage,
    HostDirStorage,
    MemoryStorage,
    Opening,
    ReadOnlyStorage,
    Storage,
    is_read_only,
    open_rule,
)
from virtwasi.storage.archives import TarArchive, ZipArchive
from virtwasi.storage.mounts import open_mount
from virtwasi.storage.tree import snapshot

FSTOOL = str(FIXTURES / "fstool.wasm")
REGULAR, DIRECTORY, SYMLINK = FileKind.REGULAR, FileKind.DIRECTORY, FileKind.SYMLINK

# -- the open rules -----------------------------------------------------------------------

# (kind of the name or None, flags, what the rule answers: an Opening or an errno)
CASES: list[tuple[FileKind | None, dict[str, bool], Opening | int]] = [
    # 1-3: a missing name
    (None, {}, errno.ENOENT),
    (None, {"writable": True, "truncate": True}, errno.ENOENT),
    (None, {"create": True}, Opening.CREATE),
    (None, {"create": True, "exclusive": True, "writable": True}, Opening.CREATE),
    (None, {"create": True, "must_be_directory": True}, errno.EISDIR),  # open("new/", O_CREAT)
    (None, {"must_be_directory": True}, errno.ENOENT),
    (None, {"exclusive": True}, errno.ENOENT),  # O_EXCL means nothing without O_CREAT
    # 4: O_CREAT|O_EXCL on any existing name
    (REGULAR, {"create": True, "exclusive": True}, errno.EEXIST),
    (DIRECTORY, {"create": True, "exclusive": True}, errno.EEXIST),
    (SYMLINK, {"create": True, "exclusive": True}, errno.EEXIST),  # never followed
    (REGULAR, {"exclusive": True}, Opening.FILE),
    # 5: a final symlink is opened as itself: O_NOFOLLOW
    (SYMLINK, {}, errno.ELOOP),
    (SYMLINK, {"create": True, "writable": True}, errno.ELOOP),
    (SYMLINK, {"open_directories": True}, errno.ELOOP),
    # 6: O_DIRECTORY or a trailing slash on what is not a directory
    (REGULAR, {"must_be_directory": True}, errno.ENOTDIR),
    (FileKind.FIFO, {"must_be_directory": True}, errno.ENOTDIR),
    (DIRECTORY, {"must_be_directory": True, "open_directories": True}, Opening.DIRECTORY),
    # 7: a directory
    (DIRECTORY, {}, errno.EISDIR),  # a backend opens regular files only
    (DIRECTORY, {"open_directories": True}, Opening.DIRECTORY),
    (DIRECTORY, {"open_directories": True, "writable": True}, errno.EISDIR),
    (DIRECTORY, {"open_directories": True, "truncate": True}, errno.EISDIR),
    (DIRECTORY, {"open_directories": True, "create": True}, errno.EISDIR),
    # 8: what cannot be read at an offset
    (FileKind.FIFO, {}, errno.EACCES),
    (FileKind.SOCKET, {}, errno.EACCES),
    (FileKind.CHARACTER_DEVICE, {"writable": True}, errno.EACCES),
    (FileKind.BLOCK_DEVICE, {}, errno.EACCES),
    # 9: a regular file, however it is opened; an entry of unknown kind is tried as one
    (REGULAR, {}, Opening.FILE),
    (REGULAR, {"create": True, "truncate": True, "writable": True}, Opening.FILE),
    (REGULAR, {"open_directories": True}, Opening.FILE),
    (FileKind.UNKNOWN, {}, Opening.FILE),
]


@pytest.mark.parametrize(("kind", "flags", "answer"), CASES)
def test_the_open_rules(kind: FileKind | None, flags: dict[str, bool],
                        answer: Opening | int) -> None:
    if isinstance(answer, Opening):
        assert open_rule("p", kind, **flags) is answer
    else:
        with pytest.raises(OSError) as refused:
            open_rule("p", kind, **flags)
        assert (refused.value.errno, refused.value.filename) == (answer, "p")


@pytest.mark.parametrize("backend", ["memory", "host", "fsspec-memory", "overlay"])
def test_every_backend_opens_by_the_rules(backend: str, tmp_path: Path,
                                          request: pytest.FixtureRequest) -> None:
    storage = build(backend, tmp_path, request)
    for kind, path in ((REGULAR, "f"), (DIRECTORY, "d"), (None, "missing")):
        for flags in ({}, {"create": True}, {"create": True, "exclusive": True},
                      {"writable": True}, {"truncate": True, "writable": True}):
            try:
                expected: Opening | int | None = open_rule(path, kind, **flags)
            except OSError as exc:
                expected = exc.errno
            try:
                storage.open(path, **flags).close()
                got: Opening | int | None = Opening.CREATE if kind is None else Opening.FILE
            except OSError as exc:
                got = exc.errno
            assert got == expected, (path, flags)
            if expected is Opening.CREATE:
                storage.unlink(path)
    storage.close()


# -- read-only: one wrapper over every backend ---------------------------------------------


def build(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Storage:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "f").write_bytes(b"kept")
    (tree / "d").mkdir()
    (tree / "d" / "g").write_bytes(b"below")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return BACKENDS[backend].build(tree, scratch, request)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_read_only_mount_of_any_backend_is_one_wrapper_answering_erofs(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    storage = build(backend, tmp_path, request)
    mounted = open_mount(storage, read_only=True)
    assert type(mounted) is ReadOnlyStorage and is_read_only(mounted)
    assert not is_read_only(mounted.inner)  # never a view of a view
    # The sources that cannot be written are handed out through the same wrapper.
    assert is_read_only(storage) == (backend in ("zip", "tar", "http"))
    before = snapshot(mounted)
    assert before["f"] == ("regular", b"kept")
    changes: list[Callable[[], object]] = [
        lambda: mounted.open("f", writable=True),
        lambda: mounted.open("f", truncate=True),
        lambda: mounted.open("new", create=True),
        lambda: mounted.open("missing/new", create=True),  # EROFS before ENOENT
        lambda: mounted.mkdir("new"), lambda: mounted.rmdir("d"),
        lambda: mounted.unlink("f"), lambda: mounted.rename("f", "g"),
        lambda: mounted.symlink("f", "s"), lambda: mounted.link("f", "h"),
        lambda: mounted.set_times("f", 1, None),
    ]
    for change in changes:
        assert errno_of(change) == errno.EROFS
    mounted.set_times("f", None, None)  # setting no time succeeds
    file = mounted.open("f")
    assert read_all(file) == b"kept"
    refused: list[Callable[[], object]] = [
        lambda: file.write(b"x", 0), lambda: file.truncate(0), lambda: file.set_times(None, 1)]
    for refuse in refused:
        assert errno_of(refuse) == errno.EROFS
    file.set_times(None, None)
    file.close()
    result = run(FSTOOL, ["put", "/f", "x", "rm", "/d/g", "mkdir", "/e", "mv", "/f", "/d/f",
                          "cat", "/f"], mounts={"/": mounted})
    assert result.stdout.decode().splitlines() == [
        "put /f: errno 69 (Read-only file system)",
        "rm /d/g: errno 69 (Read-only file system)",
        "mkdir /e: errno 69 (Read-only file system)",
        "mv /f: errno 69 (Read-only file system)",
        "cat /f: kept",
    ]
    assert snapshot(mounted) == before
    mounted.close()


# -- close() ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_backend_closes_and_closing_twice_does_nothing_more(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    storage = build(backend, tmp_path, request)
    assert storage.lstat("f").kind is FileKind.REGULAR
    storage.close()
    storage.close()


def test_closing_releases_what_each_backend_holds(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    host = HostDirStorage(tmp_path)
    host.close()
    assert errno_of(lambda: host.lstat("f")) == errno.EBADF
    memory = MemoryStorage()
    memory.open("f", create=True).close()
    memory.close()
    assert memory.lstat("f").kind is FileKind.REGULAR  # memory holds nothing else
    for archive in (backend_file(tmp_path, "zip"), backend_file(tmp_path, "tar")):
        mounted = open_mount(archive)
        assert isinstance(mounted, ReadOnlyStorage)
        inner = mounted.inner
        assert isinstance(inner, FsspecStorage)
        fs = inner.fs
        assert isinstance(fs, ZipArchive | TarArchive)
        raw = fs.fo if isinstance(fs, ZipArchive) else fs._raw
        assert not raw.closed
        mounted.close()
        assert raw.closed  # the archive's file, not only fsspec's view of it
        mounted.close()


def backend_file(tmp_path: Path, kind: str) -> str:
    folder = tmp_path / f"for-{kind}"
    folder.mkdir()
    (folder / "a").write_bytes(b"a")
    pack = zip_folder if kind == "zip" else tar_folder
    return f"{kind}::file://{pack(folder, tmp_path / f'a.{kind}')}"


def test_closing_an_fsspec_storage_uploads_the_files_left_open() -> None:
    mem = fsspec.filesystem("memory")
    root = "/close-test"
    mem.mkdir(root)
    storage = FsspecStorage(mem, root)
    f = storage.open("left", create=True, writable=True)
    f.write(b"written, never closed", 0)
    storage.close()
    assert mem.cat(f"{root}/left") == b"written, never closed"
    assert storage.open_files == 0
    storage.close()
    mem.rm(root, recursive=True)


def test_closing_a_caller_s_filesystem_leaves_it_open(tmp_path: Path) -> None:
    archive = backend_file(tmp_path, "zip")
    fs = ZipArchive(fsspec.open(archive.removeprefix("zip::"), "rb"))
    storage = FsspecStorage(fs, "")
    storage.close()
    assert not fs.fo.closed  # not this storage's to close (owns_fs=False)
    fs.close()
