"""FsspecStorage over fsspec's memory filesystem (writable) and zip filesystem (read-only).

fsspec's memory filesystem is one store per process, so every test gets its own root.
Failures are injected with real fsspec filesystem subclasses, not mocks.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from fsspec.implementations.zip import ZipFileSystem
from storagekit import errno_of, read_all

from virtwasi.storage import (
    File,
    FileKind,
    ReadOnlyStorage,
    Storage,
    is_read_only,
    spill,
)
from virtwasi.storage.fsspec_storage import FsspecFile, FsspecStorage
from virtwasi.storage.mounts import open_mount


@pytest.fixture
def mem() -> Any:
    return fsspec.filesystem("memory")


@pytest.fixture
def root(mem: Any) -> Iterator[str]:
    r = f"/virtwasi-test-{uuid.uuid4().hex}"
    mem.mkdir(r)
    yield r
    mem.rm(r, recursive=True)


@pytest.fixture
def storage(mem: Any, root: str) -> FsspecStorage:
    return FsspecStorage(mem, root)


def put(mem: Any, path: str, data: bytes) -> None:
    mem.pipe_file(path, data)


# -- the protocol and fsspec's view -------------------------------------------------------


def test_implements_the_protocols(storage: FsspecStorage) -> None:
    assert isinstance(storage, Storage)
    f = storage.open("f", create=True, writable=True)
    assert isinstance(f, File)
    f.close()
    assert not is_read_only(storage)
    assert not storage.supports_symlinks and not storage.supports_hardlinks


def test_lstat(storage: FsspecStorage, mem: Any, root: str) -> None:
    put(mem, f"{root}/d/f", b"12345")
    mem.mkdir(f"{root}/empty", create_parents=False)
    got = storage.lstat("d/f")
    assert (got.kind, got.size, got.nlink) == (FileKind.REGULAR, 5, 1)
    created = mem.info(f"{root}/d/f")["created"]
    assert got.mtime_ns == int(created.timestamp() * 1e6) * 1000  # memory's only time
    assert storage.lstat("d").kind is FileKind.DIRECTORY  # implied by its file
    assert storage.lstat("empty").kind is FileKind.DIRECTORY
    assert storage.lstat("").kind is FileKind.DIRECTORY
    assert storage.lstat("d").dev == got.dev
    assert errno_of(lambda: storage.lstat("missing")) == errno.ENOENT
    assert errno_of(lambda: storage.lstat("d/f/x")) == errno.ENOTDIR
    assert errno_of(lambda: storage.lstat("nope/x")) == errno.ENOENT


def test_inode_numbers_are_stable_distinct_and_follow_renames(storage: FsspecStorage) -> None:
    for name in ("a", "b"):
        storage.open(name, create=True).close()
    a, b = storage.lstat("a").ino, storage.lstat("b").ino
    assert a != b and a == storage.lstat("a").ino
    assert {e.name: e.ino for e in storage.listdir("")} == {"a": a, "b": b}
    assert len({a, b, storage.lstat("").ino}) == 3
    storage.rename("a", "c")
    assert storage.lstat("c").ino == a
    storage.unlink("c")
    storage.open("c", create=True).close()
    assert storage.lstat("c").ino not in (a, b)


class TimedMemoryFileSystem(MemoryFileSystem):  # type: ignore[misc]
    """A memory filesystem whose info() reports times the way other stores do."""

    times: Mapping[str, Any] = MappingProxyType({})

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: v for k, v in super().info(path, **kwargs).items() if k != "created"
        }
        out.update(self.times)
        return out


@pytest.mark.parametrize(
    ("times", "expected_ns"),
    [
        ({"mtime": 1234.5}, 1_234_500_000_000),
        ({"LastModified": datetime(2001, 2, 3, tzinfo=UTC)}, 981_158_400_000_000_000),
        ({"updated": "2001-02-03T00:00:00+00:00"}, 981_158_400_000_000_000),
        ({"created": 7}, 7_000_000_000),
        ({}, None),
        ({"mtime": "not a time"}, None),
        ({"date_time": (1980, 0, 0, 0, 0, 0)}, None),  # an invalid zip date
    ],
)
def test_times_come_from_info(times: dict[str, Any], expected_ns: int | None) -> None:
    """None: the store keeps no time, so the entry reports when it was mounted."""
    fs = TimedMemoryFileSystem(global_store=False, skip_instance_cache=True)
    fs.times = times
    fs.pipe_file("/r/f", b"x")
    before = time.time_ns()
    got = FsspecStorage(fs, "/r").lstat("f")
    assert got.atime_ns == got.mtime_ns == got.ctime_ns
    if expected_ns is None:
        assert before <= got.mtime_ns <= time.time_ns()
    else:
        assert got.mtime_ns == expected_ns


def test_listdir(storage: FsspecStorage, mem: Any, root: str) -> None:
    for name in ("b", "a", "Z", "sub/x"):
        put(mem, f"{root}/{name}", b"")
    mem.mkdir(f"{root}/empty", create_parents=False)
    got = storage.listdir("")
    assert [e.name for e in got] == ["Z", "a", "b", "empty", "sub"]
    kinds = {e.name: e.kind for e in got}
    assert kinds["sub"] is FileKind.DIRECTORY and kinds["a"] is FileKind.REGULAR
    assert storage.listdir("empty") == []
    assert [e.name for e in storage.listdir("sub")] == ["x"]
    assert errno_of(lambda: storage.listdir("a")) == errno.ENOTDIR
    assert errno_of(lambda: storage.listdir("missing")) == errno.ENOENT


def test_an_empty_root_is_an_empty_directory(mem: Any) -> None:
    s = FsspecStorage(mem, f"/virtwasi-never-made-{uuid.uuid4().hex}")
    assert s.lstat("").kind is FileKind.DIRECTORY
    assert s.listdir("") == []


# -- open files ---------------------------------------------------------------------------


def test_open_flags(storage: FsspecStorage, mem: Any, root: str) -> None:
    put(mem, f"{root}/f", b"old content")
    mem.mkdir(f"{root}/d", create_parents=False)
    assert errno_of(lambda: storage.open("missing")) == errno.ENOENT
    assert errno_of(lambda: storage.open("d")) == errno.EISDIR
    assert errno_of(lambda: storage.open("")) == errno.EISDIR
    assert errno_of(lambda: storage.open("f", create=True, exclusive=True)) == errno.EEXIST
    assert errno_of(lambda: storage.open("nodir/f", create=True)) == errno.ENOENT
    assert errno_of(lambda: storage.open("f/x", create=True)) == errno.ENOTDIR
    assert not mem.exists(f"{root}/nodir")

    f = storage.open("new", create=True, writable=True)
    # O_CREAT: the name exists at once here, in the store with its data at close
    assert storage.lstat("new").size == 0
    assert "new" in [entry.name for entry in storage.listdir("")]
    assert not mem.exists(f"{root}/new")
    f.close()
    assert mem.cat(f"{root}/new") == b""
    t = storage.open("f", truncate=True)
    assert mem.cat(f"{root}/f") == b"old content"  # O_TRUNC: at close, not at once
    t.close()
    assert mem.cat(f"{root}/f") == b""
    ro = storage.open("new")
    assert errno_of(lambda: ro.write(b"x", 0)) == errno.EBADF
    assert errno_of(lambda: ro.truncate(0)) == errno.EBADF
    ro.close()


def test_writes_are_spilled_then_uploaded(storage: FsspecStorage, mem: Any, root: str) -> None:
    put(mem, f"{root}/f", b"abcdef")
    f = storage.open("f", writable=True)
    assert f.write(memoryview(b"XY"), 2) == 2
    assert read_all(f) == b"abXYef"  # the spill started from the stored content
    assert mem.cat(f"{root}/f") == b"abcdef"  # not uploaded yet
    assert f.stat().size == 6
    f.sync()
    assert mem.cat(f"{root}/f") == b"abXYef"
    f.write(b"!", 9)
    assert f.stat().size == 10
    f.close()
    assert mem.cat(f"{root}/f") == b"abXYef\0\0\0!"
    f.close()  # twice: nothing
    assert errno_of(lambda: f.readinto(memoryview(bytearray(1)), 0)) == errno.EBADF


def test_truncate_and_reads_past_the_end(storage: FsspecStorage, mem: Any, root: str) -> None:
    put(mem, f"{root}/f", b"0123456789")
    f = storage.open("f", writable=True)
    buf = bytearray(4)
    assert f.readinto(memoryview(buf), 8) == 2
    assert f.readinto(memoryview(buf), 10) == 0
    assert f.readinto(memoryview(buf), 50) == 0
    f.truncate(3)
    assert read_all(f) == b"012"
    f.truncate(5)
    assert read_all(f) == b"012\0\0"
    f.close()
    assert mem.cat(f"{root}/f") == b"012\0\0"


def test_a_large_spill_moves_to_the_cache_folder_and_uploads(
    storage: FsspecStorage, mem: Any, root: str, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setattr(spill, "MEMORY_LIMIT", 1 << 16)
    monkeypatch.setenv("VIRTWASI_CACHE", str(tmp_path))
    spills = tmp_path / "spill"
    data = os.urandom(3 << 16)
    f = storage.open("big", create=True, writable=True)
    f.write(data[:10_000], 0)
    assert [p.suffix for p in spills.iterdir()] == [".json"]  # in memory, recorded
    for offset in range(10_000, len(data), 10_000):
        f.write(data[offset : offset + 10_000], offset)
    assert read_all(f) == data
    assert sorted(p.suffix for p in spills.iterdir()) == [".json", ".spill"]
    assert [p.stat().st_size for p in spills.glob("*.spill")] == [len(data)]
    f.close()
    assert mem.cat(f"{root}/big") == data
    assert list(spills.iterdir()) == []


def test_other_handles_see_an_upload(storage: FsspecStorage, mem: Any, root: str) -> None:
    put(mem, f"{root}/f", b"before")
    reader = storage.open("f")
    assert read_all(reader) == b"before"
    writer = storage.open("f", writable=True, truncate=True)
    assert read_all(reader) == b""
    writer.write(b"after", 0)
    writer.sync()
    assert read_all(reader) == b"after"
    writer.close()
    reader.close()


def test_open_files_follow_a_rename_and_survive_an_unlink(
    storage: FsspecStorage, mem: Any, root: str
) -> None:
    f = storage.open("a", create=True, writable=True)
    f.write(b"moved", 0)
    storage.rename("a", "b")
    f.close()
    assert mem.cat(f"{root}/b") == b"moved" and not mem.exists(f"{root}/a")

    put(mem, f"{root}/gone", b"still here")
    g = storage.open("gone", writable=True)
    storage.unlink("gone")
    assert read_all(g) == b"still here"
    g.write(b"S", 0)
    assert g.stat().size == 10
    g.close()
    assert not mem.exists(f"{root}/gone")  # closing did not bring the name back


def test_set_times_is_not_supported(storage: FsspecStorage) -> None:
    f = storage.open("f", create=True, writable=True)
    assert errno_of(lambda: f.set_times(1, 2)) == errno.ENOTSUP
    f.close()
    assert errno_of(lambda: storage.set_times("f", 1, None)) == errno.ENOTSUP
    storage.set_times("f", None, None)  # nothing to change
    assert errno_of(lambda: storage.set_times("missing", 1, 1)) == errno.ENOENT


class FlakyMemoryFileSystem(MemoryFileSystem):  # type: ignore[misc]
    """A memory filesystem whose uploads fail while ``failing`` is set."""

    failing = False

    def pipe_file(self, path: str, value: bytes, *args: Any, **kwargs: Any) -> None:
        if self.failing:
            raise ConnectionError("the store went away")
        super().pipe_file(path, value, *args, **kwargs)

    def put_file(self, lpath: str, rpath: str, *args: Any, **kwargs: Any) -> None:
        if self.failing:
            raise TimeoutError("the store went away")
        super().put_file(lpath, rpath, *args, **kwargs)


@pytest.mark.parametrize("spill_limit", [8 << 20, 16], ids=["pipe_file", "put_file"])
def test_a_failed_upload_is_eio_and_keeps_the_data(
    spill_limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spill, "MEMORY_LIMIT", spill_limit)
    fs = FlakyMemoryFileSystem(global_store=False, skip_instance_cache=True)
    fs.pipe_file("/r/f", b"stored")
    s = FsspecStorage(fs, "/r")
    f = s.open("f", writable=True)
    f.write(b"precious data", 0)
    fs.failing = True
    assert errno_of(f.sync) == errno.EIO
    assert errno_of(f.close) == errno.EIO
    assert fs.cat("/r/f") == b"stored"
    assert read_all(f) == b"precious data"  # still open, spill intact
    fs.failing = False
    f.close()  # the retry uploads
    assert fs.cat("/r/f") == b"precious data"


# -- directories and names ----------------------------------------------------------------


def test_directories(storage: FsspecStorage, mem: Any, root: str) -> None:
    storage.mkdir("d")
    assert mem.isdir(f"{root}/d")
    assert errno_of(lambda: storage.mkdir("d")) == errno.EEXIST
    assert errno_of(lambda: storage.mkdir("")) == errno.EEXIST
    assert errno_of(lambda: storage.mkdir("x/y")) == errno.ENOENT
    storage.open("d/f", create=True).close()
    assert errno_of(lambda: storage.mkdir("d/f")) == errno.EEXIST
    assert errno_of(lambda: storage.mkdir("d/f/g")) == errno.ENOTDIR
    assert errno_of(lambda: storage.rmdir("d")) == errno.ENOTEMPTY
    assert errno_of(lambda: storage.rmdir("d/f")) == errno.ENOTDIR
    assert errno_of(lambda: storage.unlink("d")) == errno.EISDIR
    assert errno_of(lambda: storage.rmdir("")) == errno.EBUSY
    storage.unlink("d/f")
    assert errno_of(lambda: storage.unlink("d/f")) == errno.ENOENT
    storage.rmdir("d")
    assert not mem.exists(f"{root}/d")


def test_rename(storage: FsspecStorage, mem: Any, root: str) -> None:
    put(mem, f"{root}/a", b"A")
    put(mem, f"{root}/b", b"B")
    storage.rename("a", "b")
    assert mem.cat(f"{root}/b") == b"A" and not mem.exists(f"{root}/a")
    put(mem, f"{root}/d1/x", b"x")
    mem.mkdir(f"{root}/d1/empty", create_parents=False)
    mem.mkdir(f"{root}/d2", create_parents=False)
    storage.rename("d1", "d2")  # over an empty directory, not into it
    assert [e.name for e in storage.listdir("d2")] == ["empty", "x"]
    assert not mem.exists(f"{root}/d1")
    put(mem, f"{root}/d3/y", b"")
    assert errno_of(lambda: storage.rename("d2", "d3")) == errno.ENOTEMPTY
    assert errno_of(lambda: storage.rename("b", "d3")) == errno.EISDIR
    assert errno_of(lambda: storage.rename("d3", "b")) == errno.ENOTDIR
    assert errno_of(lambda: storage.rename("d3", "d3/sub")) == errno.EINVAL
    assert errno_of(lambda: storage.rename("missing", "z")) == errno.ENOENT
    assert errno_of(lambda: storage.rename("b", "nodir/z")) == errno.ENOENT
    storage.rename("b", "b")
    assert mem.cat(f"{root}/b") == b"A"


def test_rename_takes_glob_characters_literally(
    storage: FsspecStorage, mem: Any, root: str
) -> None:
    put(mem, f"{root}/f1", b"one")
    put(mem, f"{root}/f[1]", b"bracket")
    storage.rename("f[1]", "g")  # fsspec's own mv would move f1 into a new directory g
    assert mem.cat(f"{root}/g") == b"bracket" and mem.cat(f"{root}/f1") == b"one"
    put(mem, f"{root}/d*/sub/x", b"x")
    put(mem, f"{root}/dd/y", b"y")
    storage.rename("d*", "e")
    assert mem.cat(f"{root}/e/sub/x") == b"x" and mem.cat(f"{root}/dd/y") == b"y"
    assert not mem.exists(f"{root}/d*")


def test_no_symlinks_or_hard_links(storage: FsspecStorage) -> None:
    storage.open("f", create=True).close()
    assert errno_of(lambda: storage.symlink("f", "ln")) == errno.ENOTSUP
    assert errno_of(lambda: storage.link("f", "ln")) == errno.ENOTSUP
    assert errno_of(lambda: storage.readlink("f")) == errno.EINVAL
    assert errno_of(lambda: storage.readlink("")) == errno.EINVAL
    assert errno_of(lambda: storage.readlink("missing")) == errno.ENOENT


def test_host_symlinks_seen_through_fsspec_local_are_never_followed(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"hi")
    (tmp_path / "ln").symlink_to("/etc/passwd")
    s = FsspecStorage(fsspec.filesystem("file"), str(tmp_path))
    assert s.lstat("ln").kind is FileKind.SYMLINK
    assert s.lstat("ln").size == len("/etc/passwd")
    assert {e.name: e.kind for e in s.listdir("")}["ln"] is FileKind.SYMLINK
    assert s.readlink("ln") == "/etc/passwd"  # for the caller to resolve inside the mount
    assert errno_of(lambda: s.open("ln")) == errno.ELOOP
    assert errno_of(lambda: s.readlink("f")) == errno.EINVAL


class FailingInfoFileSystem(MemoryFileSystem):  # type: ignore[misc]
    error: BaseException = RuntimeError()

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        raise self.error


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (FileNotFoundError("x"), errno.ENOENT),
        (FileExistsError("x"), errno.EEXIST),
        (IsADirectoryError("x"), errno.EISDIR),
        (NotADirectoryError("x"), errno.ENOTDIR),
        (PermissionError("x"), errno.EACCES),
        (NotImplementedError(), errno.ENOTSUP),
        (RuntimeError("boom"), errno.EIO),
        (KeyError("x"), errno.EIO),
        (OSError(errno.ENOSPC, "full"), errno.ENOSPC),  # already POSIX: kept
    ],
)
def test_fsspec_errors_map_to_errnos(error: Exception, code: int) -> None:
    fs = FailingInfoFileSystem(global_store=False, skip_instance_cache=True)
    fs.error = error
    s = FsspecStorage(fs, "/r")
    assert errno_of(lambda: s.lstat("f/g")) == code


# -- read-only ----------------------------------------------------------------------------


def assert_read_only(s: Storage, file: str, directory: str) -> None:
    mutations: list[Callable[[], object]] = [
        lambda: s.open(file, writable=True),
        lambda: s.open(file, truncate=True),
        lambda: s.open("new", create=True),
        lambda: s.open("missing/new", create=True),  # EROFS before ENOENT
        lambda: s.mkdir("new"),
        lambda: s.mkdir(directory),
        lambda: s.rmdir(directory),
        lambda: s.unlink(file),
        lambda: s.rename(file, "new"),
        lambda: s.symlink("x", "new"),
        lambda: s.link(file, "new"),
        lambda: s.set_times(file, 1, 1),
    ]
    for mutate in mutations:
        assert errno_of(mutate) == errno.EROFS
    f = s.open(file)
    assert errno_of(lambda: f.write(b"x", 0)) == errno.EROFS
    assert errno_of(lambda: f.truncate(0)) == errno.EROFS
    assert errno_of(lambda: f.set_times(1, 1)) == errno.EROFS
    f.close()


def test_the_read_only_view_refuses_every_mutation(mem: Any, root: str) -> None:
    put(mem, f"{root}/d/f", b"keep")
    before = mem.find(root, withdirs=True)
    s = ReadOnlyStorage(FsspecStorage(mem, root))
    assert is_read_only(s)
    assert_read_only(s, "d/f", "d")
    assert mem.find(root, withdirs=True) == before
    assert mem.cat(f"{root}/d/f") == b"keep"


def make_zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)


def test_zip_is_read_only_and_readable(tmp_path: Path) -> None:
    make_zip(tmp_path / "a.zip", {"dir/f.txt": b"hello zip", "top": b"t", "empty/": b""})
    fs = fsspec.filesystem("zip", fo=str(tmp_path / "a.zip"))
    s = open_mount(fs)
    assert isinstance(s, ReadOnlyStorage)  # an archive cannot be written
    assert isinstance(s.inner, FsspecStorage)
    assert [(e.name, e.kind) for e in s.listdir("")] == [
        ("dir", FileKind.DIRECTORY),
        ("empty", FileKind.DIRECTORY),
        ("top", FileKind.REGULAR),
    ]
    assert s.lstat("dir/f.txt").size == 9
    assert s.lstat("dir/f.txt").mtime_ns > 0  # from the member's date_time
    # An implied directory has no time of its own: it reports when it was mounted.
    assert s.lstat("dir").mtime_ns >= s.lstat("dir/f.txt").mtime_ns
    f = s.open("dir/f.txt")
    assert read_all(f) == b"hello zip"
    f.close()
    assert FsspecStorage(fs, "dir").listdir("")[0].name == "f.txt"
    assert_read_only(s, "dir/f.txt", "dir")


class CountingFile(io.FileIO):
    """The zip archive's file, counting what is read from it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "rb")
        self.reads: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.reads.append(len(data))
        return data


def test_zip_members_are_read_lazily(tmp_path: Path) -> None:
    size = 16 << 20
    data = os.urandom(1 << 20) * 16
    make_zip(tmp_path / "big.zip", {"big.bin": data})
    archive = CountingFile(tmp_path / "big.zip")
    s = FsspecStorage(ZipFileSystem(fo=archive), "")
    f = s.open("big.bin")
    archive.reads.clear()
    chunk = memoryview(bytearray(64 << 10))
    assert f.readinto(chunk, 0) == len(chunk)
    assert sum(archive.reads) < 1 << 20  # one chunk, not the member

    digest = hashlib.sha256(chunk)
    offset = len(chunk)
    while n := f.readinto(chunk, offset):
        digest.update(chunk[:n])
        offset += n
    f.close()
    assert offset == size and digest.digest() == hashlib.sha256(data).digest()
    assert max(archive.reads) <= 1 << 20  # never a big read
    assert sum(archive.reads) < size + (1 << 20)  # every byte read about once
    archive.close()


def test_files_are_fsspec_files(storage: FsspecStorage) -> None:
    f = storage.open("x", create=True)
    assert isinstance(f, FsspecFile)
    f.close()
