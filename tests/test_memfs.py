"""MemoryStorage: POSIX semantics and Linux's errnos, checked against the host.

Most error cases run the same operation on a MemoryStorage and on a directory of the host
(``os``, never following a final symlink, as the Storage protocol requires) and compare the
outcome; a hypothesis state machine does the same for random sequences and compares the two
trees after every step. The rest checks what the host cannot show side by side: link counts,
which times each operation marks (with a fake clock), readdir cookies under churn, open
files outliving their names, space limits, and the fsspec facade.
"""

from __future__ import annotations

import errno
import itertools
import os
import random
import shutil
import stat
import sys
import tempfile
import threading
import tracemalloc
from array import array
from collections.abc import Callable
from typing import Any, Protocol

import fsspec
import pytest
from conftest import FIXTURES
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from virtwasi import runtime
from virtwasi.storage import DirEntry, File, FileKind, Storage, is_read_only
from virtwasi.storage.memfs import CHUNK, MemoryFile, MemoryStorage
from virtwasi.storage.memfs_fsspec import MemoryTreeFileSystem

# -- the two sides of a differential test ---------------------------------------------------

Status = tuple[str, int | None, int, int]  # kind, size (None for directories), nlink, ino


def outcome(action: Callable[[], object]) -> tuple[str, object]:
    """("ok", result) or ("err", errno name), so two sides compare with ==."""
    try:
        return "ok", action()
    except OSError as exc:
        assert exc.errno is not None, exc
        return "err", errno.errorcode[exc.errno]


class Handle(Protocol):
    def pread(self, size: int, offset: int) -> bytes: ...
    def pwrite(self, data: bytes, offset: int) -> int: ...
    def ftruncate(self, size: int) -> None: ...
    def fstat(self) -> tuple[int, int]: ...  # size, nlink
    def close(self) -> None: ...


class Side(Protocol):
    def lstat(self, path: str) -> Status: ...
    def open(
        self,
        path: str,
        *,
        create: bool = False,
        exclusive: bool = False,
        truncate: bool = False,
        writable: bool = False,
    ) -> Handle: ...
    def listdir(self, path: str) -> list[tuple[str, str]]: ...
    def mkdir(self, path: str) -> None: ...
    def rmdir(self, path: str) -> None: ...
    def unlink(self, path: str) -> None: ...
    def rename(self, src: str, dst: str) -> None: ...
    def link(self, src: str, dst: str) -> None: ...
    def symlink(self, target: str, path: str) -> None: ...
    def readlink(self, path: str) -> str: ...


class MemHandle:
    def __init__(self, file: MemoryFile) -> None:
        self.file = file

    def pread(self, size: int, offset: int) -> bytes:
        buf = bytearray(size)
        n = self.file.readinto(memoryview(buf), offset)
        return bytes(buf[:n])

    def pwrite(self, data: bytes, offset: int) -> int:
        return self.file.write(memoryview(data), offset)

    def ftruncate(self, size: int) -> None:
        self.file.truncate(size)

    def fstat(self) -> tuple[int, int]:
        st_ = self.file.stat()
        return st_.size, st_.nlink

    def close(self) -> None:
        self.file.close()


class MemSide:
    def __init__(self, storage: MemoryStorage | None = None) -> None:
        self.storage = storage if storage is not None else MemoryStorage()

    def lstat(self, path: str) -> Status:
        st_ = self.storage.lstat(path)
        size = None if st_.kind is FileKind.DIRECTORY else st_.size
        return st_.kind.value, size, st_.nlink, st_.ino

    def open(
        self,
        path: str,
        *,
        create: bool = False,
        exclusive: bool = False,
        truncate: bool = False,
        writable: bool = False,
    ) -> Handle:
        flags = {"create": create, "exclusive": exclusive, "truncate": truncate}
        return MemHandle(self.storage.open(path, writable=writable, **flags))

    def listdir(self, path: str) -> list[tuple[str, str]]:
        return sorted((e.name, e.kind.value) for e in self.storage.listdir(path))

    def mkdir(self, path: str) -> None:
        self.storage.mkdir(path)

    def rmdir(self, path: str) -> None:
        self.storage.rmdir(path)

    def unlink(self, path: str) -> None:
        self.storage.unlink(path)

    def rename(self, src: str, dst: str) -> None:
        self.storage.rename(src, dst)

    def link(self, src: str, dst: str) -> None:
        self.storage.link(src, dst)

    def symlink(self, target: str, path: str) -> None:
        self.storage.symlink(target, path)

    def readlink(self, path: str) -> str:
        return self.storage.readlink(path)


class HostHandle:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def pread(self, size: int, offset: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def pwrite(self, data: bytes, offset: int) -> int:
        return os.pwrite(self.fd, data, offset)

    def ftruncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)

    def fstat(self) -> tuple[int, int]:
        st_ = os.fstat(self.fd)
        return st_.st_size, st_.st_nlink

    def close(self) -> None:
        os.close(self.fd)


_HOST_KINDS = {stat.S_IFREG: "regular", stat.S_IFDIR: "directory", stat.S_IFLNK: "symlink"}


class HostSide:
    """The same operations on a host directory, with the protocol's no-follow rules."""

    def __init__(self, root: str) -> None:
        self.root = root

    def at(self, path: str) -> str:
        return os.path.join(self.root, path) if path else self.root

    def lstat(self, path: str) -> Status:
        st_ = os.lstat(self.at(path))
        kind = _HOST_KINDS[stat.S_IFMT(st_.st_mode)]
        return kind, None if kind == "directory" else st_.st_size, st_.st_nlink, st_.st_ino

    def open(
        self,
        path: str,
        *,
        create: bool = False,
        exclusive: bool = False,
        truncate: bool = False,
        writable: bool = False,
    ) -> Handle:
        flags = os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_RDWR if writable else os.O_RDONLY)
        flags |= (os.O_CREAT if create else 0) | (os.O_EXCL if exclusive else 0)
        flags |= os.O_TRUNC if truncate else 0
        fd = os.open(self.at(path), flags, 0o644)
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.close(fd)  # the protocol opens regular files only
            raise OSError(errno.EISDIR, "Is a directory", path)
        return HostHandle(fd)

    def listdir(self, path: str) -> list[tuple[str, str]]:
        fd = os.open(self.at(path), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            names = os.listdir(fd)
        finally:
            os.close(fd)
        prefix = f"{path}/" if path else ""
        return sorted((name, self.lstat(prefix + name)[0]) for name in names)

    def mkdir(self, path: str) -> None:
        os.mkdir(self.at(path))

    def rmdir(self, path: str) -> None:
        os.rmdir(self.at(path))

    def unlink(self, path: str) -> None:
        os.unlink(self.at(path))

    def rename(self, src: str, dst: str) -> None:
        os.rename(self.at(src), self.at(dst))

    def link(self, src: str, dst: str) -> None:
        os.link(self.at(src), self.at(dst), follow_symlinks=False)

    def symlink(self, target: str, path: str) -> None:
        os.symlink(target, self.at(path))

    def readlink(self, path: str) -> str:
        return os.readlink(self.at(path))

    def symlinked_parent(self, path: str) -> bool:
        """Whether the host would follow a symlink in a parent of ``path`` (the protocol's
        caller resolves those, so a backend refuses them)."""
        here = self.root
        for name in path.split("/")[:-1]:
            here = os.path.join(here, name)
            try:
                mode = os.lstat(here).st_mode
            except OSError:
                return False
            if stat.S_ISLNK(mode):
                return True
            if not stat.S_ISDIR(mode):
                return False
        return False


def _host_dir_nlink_is_posix() -> bool:
    with tempfile.TemporaryDirectory() as top:
        os.mkdir(os.path.join(top, "sub"))
        return os.lstat(top).st_nlink == 3  # not so on btrfs, for one


HOST_DIR_NLINK = _host_dir_nlink_is_posix()


def _fast_tmp() -> str | None:
    # The state machine makes and removes hundreds of trees: on tmpfs that takes
    # microseconds, where an ext4 rmdir here takes milliseconds. Either is a real host
    # filesystem to compare against (the error table above runs on pytest's tmp_path).
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


FAST_TMP = _fast_tmp()


def snapshot(side: Side) -> dict[str, object]:
    """Everything two trees must agree on: each path's kind, size, link count, contents or
    target, and which paths are hard links of one another."""
    tree: dict[str, object] = {}
    inodes: dict[int, list[str]] = {}

    def walk(directory: str) -> None:
        for name, _ in side.listdir(directory):
            path = f"{directory}/{name}" if directory else name
            kind, size, nlink, ino = side.lstat(path)
            if kind == "directory":
                tree[path] = (kind, nlink if HOST_DIR_NLINK else None)
                walk(path)
                continue
            inodes.setdefault(ino, []).append(path)
            if kind == "symlink":
                tree[path] = (kind, size, nlink, side.readlink(path))
            else:
                handle = side.open(path)
                try:
                    tree[path] = (kind, size, nlink, handle.pread(1 << 16, 0))
                finally:
                    handle.close()

    walk("")
    tree[""] = side.lstat("")[2] if HOST_DIR_NLINK else None
    tree["<links>"] = sorted(sorted(paths) for paths in inodes.values())
    return tree


# -- errno, side by side with the host -----------------------------------------------------

TREE: list[tuple[str, ...]] = [
    ("mkdir", "d"),
    ("mkdir", "d/sub"),
    ("file", "d/f"),
    ("mkdir", "e"),
    ("file", "f"),
    ("symlink", "nowhere", "s"),
    ("symlink", "d", "sd"),
]

LONG = "x" * 256

# (operation, arguments, the errno Linux gives, or None for success)
ERROR_CASES: list[tuple[str, tuple[Any, ...], str | None]] = [
    ("lstat", ("missing",), "ENOENT"),
    ("lstat", ("f/x",), "ENOTDIR"),
    ("lstat", ("missing/x",), "ENOENT"),
    ("lstat", (LONG,), "ENAMETOOLONG"),
    ("lstat", (f"missing/{LONG}",), "ENOENT"),
    ("lstat", ("x" * 255,), "ENOENT"),
    ("open", ("missing",), "ENOENT"),
    ("open", ("d",), "EISDIR"),
    ("open", ("s",), "ELOOP"),
    ("open", ("sd",), "ELOOP"),
    ("open", ("f/x",), "ENOTDIR"),
    ("open_w", ("d",), "EISDIR"),
    ("create", ("d",), "EISDIR"),
    ("create", ("s",), "ELOOP"),
    ("create", ("missing/x",), "ENOENT"),
    ("create", ("f/x",), "ENOTDIR"),
    ("create", ("new",), None),
    ("create", ("f",), None),
    ("create_excl", ("f",), "EEXIST"),
    ("create_excl", ("d",), "EEXIST"),
    ("create_excl", ("s",), "EEXIST"),
    ("create_excl", ("new",), None),
    ("open_trunc", ("f",), None),
    ("open_trunc", ("d",), "EISDIR"),
    ("mkdir", ("f",), "EEXIST"),
    ("mkdir", ("d",), "EEXIST"),
    ("mkdir", ("s",), "EEXIST"),
    ("mkdir", ("missing/x",), "ENOENT"),
    ("mkdir", ("f/x",), "ENOTDIR"),
    ("mkdir", (LONG,), "ENAMETOOLONG"),
    ("mkdir", ("new",), None),
    ("rmdir", ("missing",), "ENOENT"),
    ("rmdir", ("f",), "ENOTDIR"),
    ("rmdir", ("s",), "ENOTDIR"),
    ("rmdir", ("sd",), "ENOTDIR"),
    ("rmdir", ("d",), "ENOTEMPTY"),
    ("rmdir", ("e",), None),
    ("unlink", ("d",), "EISDIR"),
    ("unlink", ("missing",), "ENOENT"),
    ("unlink", ("f/x",), "ENOTDIR"),
    ("unlink", ("sd",), None),
    ("unlink", ("s",), None),
    ("unlink", ("d/f",), None),
    ("rename", ("missing", "x"), "ENOENT"),
    ("rename", ("f", "d"), "EISDIR"),
    ("rename", ("sd", "e"), "EISDIR"),
    ("rename", ("d", "f"), "ENOTDIR"),
    ("rename", ("d", "s"), "ENOTDIR"),
    ("rename", ("e", "d"), "ENOTEMPTY"),
    ("rename", ("d", "e"), None),
    ("rename", ("d", "d/sub"), "EINVAL"),
    ("rename", ("d", "d/sub/x"), "EINVAL"),
    ("rename", ("d", "d/new"), "EINVAL"),
    ("rename", ("d/sub", "d"), "ENOTEMPTY"),
    ("rename", ("d/f", "d"), "ENOTEMPTY"),
    ("rename", ("f", "f"), None),
    ("rename", ("d", "d"), None),
    ("rename", ("f", "missing/x"), "ENOENT"),
    ("rename", ("f", "f/x"), "ENOTDIR"),
    ("rename", ("missing/x", "f/x"), "ENOENT"),
    ("rename", ("s", "f"), None),
    ("rename", ("f", "s"), None),
    ("rename", ("f", "d/f"), None),
    ("rename", ("d/sub", "e/moved"), None),
    ("link", ("d", "x"), "EPERM"),
    ("link", ("d", "f"), "EEXIST"),
    ("link", ("missing", "f"), "ENOENT"),
    ("link", ("f", "missing/x"), "ENOENT"),
    ("link", ("f", "f/x"), "ENOTDIR"),
    ("link", ("f", "d/f"), "EEXIST"),
    ("link", ("f", "s"), "EEXIST"),
    ("link", ("f", "x"), None),
    ("link", ("s", "x"), None),
    ("symlink", ("t", "f"), "EEXIST"),
    ("symlink", ("t", "s"), "EEXIST"),
    ("symlink", ("", "x"), "ENOENT"),
    ("symlink", ("t", "missing/x"), "ENOENT"),
    ("symlink", ("/abs/target", "x"), None),
    ("readlink", ("f",), "EINVAL"),
    ("readlink", ("d",), "EINVAL"),
    ("readlink", ("missing",), "ENOENT"),
    ("readlink", ("sd",), None),
    ("listdir", ("f",), "ENOTDIR"),
    ("listdir", ("s",), "ENOTDIR"),
    ("listdir", ("sd",), "ENOTDIR"),
    ("listdir", ("missing",), "ENOENT"),
    ("listdir", ("d",), None),
    ("write_ro", ("f",), "EBADF"),
    ("truncate_ro", ("f",), "EINVAL"),
    ("truncate_neg", ("f",), "EINVAL"),
]


def run(side: Side, op: str, *args: Any) -> object:
    """One operation of ERROR_CASES or TREE on either side."""
    if op == "file":
        side.open(args[0], create=True, writable=True).pwrite(b"hello", 0)
        return None
    opens = {
        "open": {},
        "open_w": {"writable": True},
        "create": {"create": True},
        "create_excl": {"create": True, "exclusive": True},
        "open_trunc": {"truncate": True},
    }
    if op in opens:
        side.open(args[0], **opens[op]).close()
        return None
    if op == "write_ro":
        handle = side.open(args[0])
        try:
            return handle.pwrite(b"x", 0)
        finally:
            handle.close()
    if op in ("truncate_ro", "truncate_neg"):
        handle = side.open(args[0], writable=op == "truncate_neg")
        try:
            handle.ftruncate(-1 if op == "truncate_neg" else 1)
            return None
        finally:
            handle.close()
    result: object = getattr(side, op)(*args)
    return result


@pytest.mark.parametrize(
    ("op", "args", "expected"),
    ERROR_CASES,
    ids=[f"{op}({','.join(a[:12] for a in args)})" for op, args, _ in ERROR_CASES],
)
def test_errors_match_linux(
    tmp_path: Any, op: str, args: tuple[Any, ...], expected: str | None
) -> None:
    host, mem = HostSide(str(tmp_path)), MemSide()
    for side in (host, mem):
        for step in TREE:
            run(side, *step)
    got_host = outcome(lambda: run(host, op, *args))
    got_mem = outcome(lambda: run(mem, op, *args))
    assert got_mem == got_host
    assert got_mem[1 if expected else 0] == (expected or "ok")
    # A failed operation changes nothing, a successful one the same thing on both sides.
    assert snapshot(mem) == snapshot(host)


def test_root_errors_match_linux_on_slash() -> None:
    # The host's "/" cannot be touched side by side; these are what Linux answers there.
    s = MemoryStorage()
    s.mkdir("a")
    assert s.lstat("").kind is FileKind.DIRECTORY
    cases: list[tuple[Callable[[], object], int]] = [
        (lambda: s.rmdir(""), errno.EBUSY),
        (lambda: s.rename("", "x"), errno.EBUSY),
        (lambda: s.rename("a", ""), errno.EBUSY),
        (lambda: s.unlink(""), errno.EISDIR),
        (lambda: s.mkdir(""), errno.EEXIST),
        (lambda: s.open(""), errno.EISDIR),
        (lambda: s.open("", create=True, exclusive=True), errno.EEXIST),
        (lambda: s.link("a", ""), errno.EEXIST),
        (lambda: s.link("", "x"), errno.EPERM),
        (lambda: s.symlink("t", ""), errno.EEXIST),
        (lambda: s.readlink(""), errno.EINVAL),
    ]
    for action, code in cases:
        with pytest.raises(OSError) as info:
            action()
        assert info.value.errno == code, action
    assert [e.name for e in s.listdir("")] == ["a"]


@pytest.mark.parametrize("path", ["a/../b", "./a", "a//b", "/a", "a/", ".", "..", "a\0b"])
def test_malformed_paths_are_einval(path: str) -> None:
    s = MemoryStorage()
    s.mkdir("a")
    with pytest.raises(OSError) as info:
        s.lstat(path)
    assert info.value.errno == errno.EINVAL


def test_a_symlink_in_a_parent_is_eloop_never_followed() -> None:
    s = MemoryStorage()
    s.mkdir("d")
    s.open("d/f", create=True).close()
    s.symlink("d", "link")
    for action in (
        lambda: s.lstat("link/f"),
        lambda: s.open("link/f"),
        lambda: s.mkdir("link/x"),
        lambda: s.unlink("link/f"),
        lambda: s.rename("d/f", "link/g"),
    ):
        with pytest.raises(OSError) as info:
            action()
        assert info.value.errno == errno.ELOOP
    assert [e.name for e in s.listdir("d")] == ["f"]


def test_errors_are_the_matching_oserror_subclasses() -> None:
    s = MemoryStorage()
    with pytest.raises(FileNotFoundError):
        s.lstat("nope")
    s.mkdir("d")
    with pytest.raises(FileExistsError):
        s.mkdir("d")
    with pytest.raises(IsADirectoryError):
        s.open("d")


def test_implements_the_protocols() -> None:
    s: Storage = MemoryStorage()  # mypy checks the signatures, isinstance the names
    assert isinstance(s, Storage)
    assert not is_read_only(s) and s.supports_symlinks and s.supports_hardlinks
    f: File = s.open("f", create=True)
    assert isinstance(f, File)
    f.close()


# -- link counts, inodes, hard links ------------------------------------------------------


def test_directory_nlink_is_two_plus_subdirectories() -> None:
    s = MemoryStorage()
    assert s.lstat("").nlink == 2
    s.mkdir("a")
    s.mkdir("a/b")
    s.mkdir("a/c")
    s.open("a/file", create=True).close()
    s.symlink("x", "a/link")
    assert (s.lstat("").nlink, s.lstat("a").nlink, s.lstat("a/b").nlink) == (3, 4, 2)
    s.rename("a/b", "b")  # moves a ".." from a to the root
    assert (s.lstat("").nlink, s.lstat("a").nlink) == (4, 3)
    s.rename("b", "a/c")  # over an empty directory: the root loses b, a loses the old c
    assert (s.lstat("").nlink, s.lstat("a").nlink) == (3, 3)
    s.rmdir("a/c")
    assert s.lstat("a").nlink == 2


def test_hard_links_share_the_inode_and_count() -> None:
    s = MemoryStorage()
    s.mkdir("d")
    with s.open("f", create=True, writable=True) as f:
        f.write(b"shared", 0)
    s.link("f", "d/g")
    s.link("d/g", "h")
    assert s.lstat("f").ino == s.lstat("d/g").ino == s.lstat("h").ino
    assert s.lstat("f").nlink == 3
    with s.open("h", writable=True) as f:
        f.write(b"S", 0)
    assert read_all(s, "d/g") == b"Shared"
    s.unlink("f")
    assert s.lstat("h").nlink == 2
    with pytest.raises(OSError) as info:
        s.link("d", "d2")
    assert info.value.errno == errno.EPERM
    s.symlink("target", "sym")
    s.link("sym", "sym2")  # a link to the symlink itself, as linkat without FOLLOW
    assert s.lstat("sym").nlink == 2 and s.readlink("sym2") == "target"


def test_inode_numbers_are_unique_and_never_reused() -> None:
    s = MemoryStorage()
    seen = {s.lstat("").ino}
    for i in range(20):
        s.open(f"f{i}", create=True).close()
        ino = s.lstat(f"f{i}").ino
        assert ino not in seen
        seen.add(ino)
        s.unlink(f"f{i}")
    s.mkdir("d")
    assert s.lstat("d").ino not in seen
    assert s.lstat("d").dev == s.lstat("").dev


def test_rename_onto_the_same_inode_does_nothing() -> None:
    clock = itertools.count(1000)
    s = MemoryStorage(clock=lambda: next(clock))
    s.open("a", create=True).close()
    s.link("a", "b")
    before = (s.lstat("a"), s.lstat(""))
    s.rename("a", "b")  # two names of one inode: POSIX says both stay
    s.rename("a", "a")
    assert (s.lstat("a"), s.lstat("")) == before
    assert [e.name for e in s.listdir("")] == ["a", "b"]


def test_rename_replaces_atomically_and_releases_the_old_inode() -> None:
    s = MemoryStorage()
    for name, data in (("a", b"new"), ("b", b"old")):
        with s.open(name, create=True, writable=True) as f:
            f.write(data, 0)
    old = s.open("b")
    s.rename("a", "b")
    assert read_all(s, "b") == b"new"
    assert [e.name for e in s.listdir("")] == ["b"]
    assert old.stat().nlink == 0 and read_handle(old) == b"old"
    old.close()


# -- open files outlive their names -----------------------------------------------------------


def test_an_open_file_keeps_working_after_unlink() -> None:
    s = MemoryStorage()
    f = s.open("f", create=True, writable=True)
    f.write(b"hello", 0)
    ino = f.stat().ino
    s.unlink("f")
    assert f.stat().nlink == 0
    f.write(b" world", 5)
    assert read_handle(f) == b"hello world"
    assert f.stat().size == 11 and f.stat().ino == ino
    s.open("f", create=True).close()  # a new file under the old name is another inode
    assert s.lstat("f").ino != ino and s.lstat("f").size == 0
    f.close()
    f.close()  # closing twice does nothing
    with pytest.raises(OSError) as info:
        f.stat()
    assert info.value.errno == errno.EBADF


def test_an_open_file_follows_its_inode_through_renames() -> None:
    s = MemoryStorage()
    s.mkdir("d")
    f = s.open("f", create=True, writable=True)
    s.rename("f", "d/g")
    f.write(b"moved", 0)
    assert read_all(s, "d/g") == b"moved"
    assert f.stat().ino == s.lstat("d/g").ino
    f.close()


def test_read_only_handles_refuse_writes_but_allow_set_times() -> None:
    s = MemoryStorage()
    s.open("f", create=True).close()
    with s.open("f") as f:
        refused: list[tuple[Callable[[], object], int]] = [
            (lambda: f.write(b"x", 0), errno.EBADF),
            (lambda: f.truncate(0), errno.EINVAL),  # Linux's ftruncate on an O_RDONLY fd
        ]
        for action, code in refused:
            with pytest.raises(OSError) as info:
                action()
            assert info.value.errno == code
        f.set_times(5, 6)
        assert (f.stat().atime_ns, f.stat().mtime_ns) == (5, 6)
        f.sync()
    closed: list[Callable[[], object]] = [
        lambda: f.readinto(memoryview(bytearray(1)), 0),
        f.sync,
        lambda: f.set_times(1, 1),
    ]
    for after in closed:
        with pytest.raises(OSError) as info:
            after()
        assert info.value.errno == errno.EBADF


def test_negative_offsets_are_einval() -> None:
    s = MemoryStorage()
    with s.open("f", create=True, writable=True) as f:
        negative: list[Callable[[], object]] = [
            lambda: f.write(b"x", -1),
            lambda: f.readinto(memoryview(bytearray(1)), -1),
        ]
        for action in negative:
            with pytest.raises(OSError) as info:
                action()
            assert info.value.errno == errno.EINVAL


# -- contents: sparse growth, memoryviews, limits --------------------------------------------


def test_writing_or_truncating_past_the_end_fills_with_zeros() -> None:
    s = MemoryStorage()
    with s.open("f", create=True, writable=True) as f:
        f.write(b"ab", 0)
        f.write(b"cd", 6)
        assert read_handle(f) == b"ab\0\0\0\0cd"
        f.truncate(3)
        f.truncate(6)  # the bytes cut off must not come back
        assert read_handle(f) == b"ab\0\0\0\0"
        f.write(b"XYZ", 4)  # straddles the end
        assert read_handle(f) == b"ab\0\0XYZ"
        f.truncate(1 << 20)
        assert f.stat().size == 1 << 20
        buf = bytearray(b"\xff" * 100)
        assert f.readinto(memoryview(buf), (1 << 20) - 50) == 50
        assert buf[:50] == bytes(50) and buf[50:] == b"\xff" * 50
        assert f.readinto(memoryview(buf), 1 << 20) == 0
        assert f.readinto(memoryview(buf), 5 << 20) == 0


def test_readinto_and_write_accept_any_memoryview() -> None:
    s = MemoryStorage()
    words = array("i", [1, 2, 3])
    with s.open("f", create=True, writable=True) as f:
        assert f.write(memoryview(words), 0) == words.itemsize * 3
        out = array("i", [0, 0, 0])
        assert f.readinto(memoryview(out), 0) == words.itemsize * 3
        assert out == words
        big = bytearray(range(256)) * 4
        assert f.write(memoryview(big)[10:20], 100) == 10  # a slice of a larger buffer
        target = bytearray(30)
        assert f.readinto(memoryview(target)[5:15], 100) == 10
        assert target[5:15] == big[10:20] and target[:5] == bytes(5)


def test_large_transfers_copy_straight_between_buffers() -> None:
    # No intermediate bytes object: a 16 MiB read or overwrite allocates next to nothing.
    size = 16 << 20
    s = MemoryStorage()
    source = bytearray(b"\xab" * size)
    target = bytearray(size)
    with s.open("big", create=True, writable=True) as f:
        f.write(memoryview(source), 0)
        tracemalloc.start()
        try:
            assert f.readinto(memoryview(target), 0) == size
            assert f.write(memoryview(source), 0) == size
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert target == source
    assert peak < 64 << 10, f"{peak} bytes allocated for a {size}-byte transfer"


def test_impossible_sizes_are_oserrors_and_huge_ones_are_holes() -> None:
    s = MemoryStorage()
    with s.open("f", create=True, writable=True) as f:
        f.write(b"keep", 0)
        for action, codes in (
            (lambda: f.truncate(2**63), {errno.EFBIG}),
            (lambda: f.write(b"xy", 2**63 - 1), {errno.EFBIG}),
            (lambda: f.truncate(-1), {errno.EINVAL}),
        ):
            with pytest.raises(OSError) as info:
                action()
            assert info.value.errno in codes
        assert read_handle(f) == b"keep" and s.used_bytes == 4
        # As on tmpfs, any size up to the largest off_t is a hole: it holds nothing.
        f.truncate(2**62)
        f.write(b"x", 2**63 - 2)
        # Only the last chunk is held, from its start (bytes are held a chunk at a time).
        assert f.stat().size == 2**63 - 1 and s.used_bytes == 4 + (2**63 - 1) % CHUNK
        buf = bytearray(3)
        assert f.readinto(memoryview(buf), 2**63 - 4) == 3 and buf == b"\0\0x"
        f.truncate(4)
        assert read_handle(f) == b"keep" and s.used_bytes == 4


def test_holes_read_as_zeros_across_chunks_and_shrinking_forgets_bytes() -> None:
    s = MemoryStorage()
    with s.open("f", create=True, writable=True) as f:
        f.write(b"a" * (CHUNK + 10), CHUNK - 5)  # a gap, then across a chunk boundary
        assert s.used_bytes == CHUNK + 10 + CHUNK - 5  # the first chunk's gap is held
        f.write(b"z", 5 * CHUNK + 3)
        assert read_handle(f) == bytes(CHUNK - 5) + b"a" * (CHUNK + 10) + bytes(
            3 * CHUNK - 2) + b"z"
        f.truncate(CHUNK)
        f.truncate(3 * CHUNK)  # what was cut off comes back as zeros, not as the old bytes
        assert read_handle(f) == bytes(CHUNK - 5) + b"a" * 5 + bytes(2 * CHUNK)
        assert s.used_bytes == CHUNK


def test_capacity_is_enospc_and_unlinked_bytes_free_at_last_close() -> None:
    s = MemoryStorage(capacity=100)
    f = s.open("f", create=True, writable=True)
    f.write(bytes(60), 0)
    with s.open("g", create=True, writable=True) as g:
        with pytest.raises(OSError) as info:
            g.write(bytes(41), 0)
        assert info.value.errno == errno.ENOSPC
        g.truncate(1000)  # a hole: it holds no bytes
        g.truncate(0)
        g.write(bytes(40), 0)
    assert s.used_bytes == 100 and s.lstat("g").size == 40
    s.unlink("f")
    assert s.used_bytes == 100  # still open: its bytes still exist
    f.close()
    assert s.used_bytes == 40
    s.rename("g", "h")
    s.open("h", truncate=True).close()
    assert s.used_bytes == 0


def test_an_unlinked_file_dropped_unclosed_frees_its_bytes() -> None:
    s = MemoryStorage(capacity=100)
    f = s.open("f", create=True, writable=True)
    f.write(bytes(60), 0)
    other = s.open("f")
    s.unlink("f")
    del f
    assert s.used_bytes == 60  # the other open file still reads them
    buf = bytearray(60)
    assert other.readinto(memoryview(buf), 0) == 60
    del other
    assert s.used_bytes == 0
    with s.open("g", create=True, writable=True) as g:
        assert g.write(bytes(100), 0) == 100  # the whole capacity is there again


def test_operations_are_atomic_across_threads() -> None:
    # A reader in another thread never sees a rename half done: exactly one name exists.
    s = MemoryStorage()
    s.mkdir("d")
    s.open("d/a", create=True).close()
    stop = threading.Event()
    seen: list[list[str]] = []

    def watch() -> None:
        while not stop.is_set():
            seen.append([e.name for e in s.listdir("d")])

    watcher = threading.Thread(target=watch)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    watcher.start()
    try:
        for _ in range(10000):
            s.rename("d/a", "d/b")
            s.rename("d/b", "d/a")
    finally:
        stop.set()
        watcher.join()
        sys.setswitchinterval(interval)
    assert seen and all(len(names) == 1 for names in seen)


def test_a_stat_sees_each_change_whole_from_another_thread() -> None:
    # A stat reads without the lock: whatever another thread is changing, it sees a state
    # the file was in, never some fields from before a change and some from after.
    ticks = itertools.count(1)
    s = MemoryStorage(clock=lambda: next(ticks))
    s.mkdir("d")
    f = s.open("d/f", create=True, writable=True)
    other = s.open("d/f")

    def state(st: Any) -> tuple[int, ...]:
        return st.size, st.nlink, st.atime_ns, st.mtime_ns, st.ctime_ns

    was = {state(f.stat())}
    stop = threading.Event()
    seen: set[tuple[int, ...]] = set()

    def watch() -> None:
        while not stop.is_set():
            seen.add(state(s.lstat("d/f")))
            seen.add(state(other.stat()))

    watcher = threading.Thread(target=watch)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    watcher.start()
    try:
        for k in range(3000):
            change = k % 4
            if change == 0:
                f.write(b"x", k)
            elif change == 1:
                f.truncate(k % 7)
            elif change == 2:
                s.set_times("d/f", k, None)
            else:
                s.link("d/f", "d/g")
                was.add(state(f.stat()))
                s.unlink("d/g")
            was.add(state(f.stat()))
    finally:
        stop.set()
        watcher.join()
        sys.setswitchinterval(interval)
    assert len(seen) > 1 and seen <= was


# -- times ---------------------------------------------------------------------------------


def test_times_are_nanoseconds_of_the_wall_clock() -> None:
    import time

    before = time.time_ns()
    s = MemoryStorage()
    s.open("f", create=True).close()
    st_ = s.lstat("f")
    assert before <= st_.mtime_ns == st_.ctime_ns == st_.atime_ns <= time.time_ns()


def test_each_operation_marks_the_times_posix_says() -> None:
    ticks = itertools.count(1)
    s = MemoryStorage(clock=lambda: next(ticks))

    def times(path: str) -> tuple[int, int, int]:
        st_ = s.lstat(path)
        return st_.atime_ns, st_.mtime_ns, st_.ctime_ns

    s.mkdir("d")
    s.mkdir("e")
    f = s.open("d/f", create=True, writable=True)
    a0, m0, _ = times("d/f")
    assert times("d")[1:] == (m0, m0)  # creating an entry marks the directory
    f.write(b"data", 0)
    a1, m1, c1 = times("d/f")
    assert a1 == a0 and m1 == c1 > m0
    f.write(b"", 0)  # an empty write marks nothing
    assert times("d/f") == (a1, m1, c1)
    f.readinto(memoryview(bytearray(2)), 0)
    a2, m2, c2 = times("d/f")
    assert a2 > a1 and (m2, c2) == (m1, c1)
    f.truncate(2)
    a3, m3, c3 = times("d/f")
    assert a3 == a2 and m3 == c3 > m2
    d_before = times("d")
    s.rename("d/f", "e/f")  # the inode's ctime, both directories' mtime and ctime
    a4, m4, c4 = times("e/f")
    assert (a4, m4) == (a3, m3) and c4 > c3
    assert times("d")[1] == times("d")[2] == times("e")[1] == c4 and times("d")[0] == d_before[0]
    s.link("e/f", "d/g")
    assert times("e/f")[2] > c4 and times("d")[1] == times("e/f")[2]
    s.unlink("d/g")
    assert times("e/f")[2] == times("d")[1]
    s.set_times("e/f", 7, 8)
    assert times("e/f")[:2] == (7, 8) and times("e/f")[2] > times("d")[1]
    s.set_times("e/f", None, 9)
    assert times("e/f")[:2] == (7, 9)
    t = times("e/f")
    s.set_times("e/f", None, None)  # both omitted: not even ctime moves
    assert times("e/f") == t
    atime = times("e")[0]
    s.listdir("e")
    assert times("e")[0] > atime
    s.symlink("x", "e/s")
    s.set_times("e/s", 1, 2)  # the link itself, not its target
    assert times("e/s")[:2] == (1, 2)
    f.close()


# -- readdir order and cookies ---------------------------------------------------------------


def test_listdir_is_creation_order_and_cookies_count_up_from_one() -> None:
    s = MemoryStorage()
    names = ["zeta", "alpha", "mid", "b"]
    for name in names:
        s.open(name, create=True).close()
    assert [e.name for e in s.listdir("")] == names
    pairs = s.listdir_from("", 0)
    assert [c for c, _ in pairs] == [1, 2, 3, 4]
    assert [e for _, e in pairs] == s.listdir("")
    assert pairs[0][1].ino == s.lstat("zeta").ino and pairs[0][1].kind is FileKind.REGULAR
    assert [e.name for _, e in s.listdir_from("", 2)] == ["mid", "b"]
    assert [e.name for _, e in s.listdir_from("", 0, limit=2)] == ["zeta", "alpha"]
    s.unlink("alpha")  # resuming from a removed entry's cookie still works
    assert [e.name for _, e in s.listdir_from("", 2)] == ["mid", "b"]
    s.open("new", create=True).close()
    assert s.listdir_from("", 4) == [(5, s.listdir("")[-1])]
    with pytest.raises(OSError) as info:
        s.listdir_from("zeta", 0)
    assert info.value.errno == errno.ENOTDIR


def test_a_replaced_name_keeps_its_cookie() -> None:
    s = MemoryStorage()
    for name in ("a", "b", "c"):
        s.open(name, create=True).close()
    s.rename("c", "a")  # "a" never stopped existing: same cookie, same place
    assert [(c, e.name) for c, e in s.listdir_from("", 0)] == [(1, "a"), (2, "b")]
    s.rename("a", "z")  # a new name is a new entry
    assert [(c, e.name) for c, e in s.listdir_from("", 0)] == [(2, "b"), (4, "z")]


def test_a_listing_hands_out_each_entry_made_once() -> None:
    # A listing makes nothing per entry: a long one allocates no more than a short one.
    s = MemoryStorage()
    s.mkdir("d")
    for i in range(100):
        s.open(f"d/f{i}", create=True).close()
    first, again = s.listdir("d"), s.listdir("d")
    assert len(first) == 100 and all(a is b for a, b in zip(first, again, strict=True))
    assert [e for _, e in s.listdir_from("d", 0)] == first
    old = s.lstat("d/f1").ino
    s.rename("d/f2", "d/f1")  # a name that now names another file: its entry says so
    assert [e for e in s.listdir("d") if e.name == "f1"] == [
        DirEntry("f1", s.lstat("d/f1").ino, FileKind.REGULAR)]
    assert s.lstat("d/f1").ino != old


@pytest.mark.parametrize("seed", range(12))
def test_resuming_from_a_cookie_never_skips_nor_repeats_under_churn(seed: int) -> None:
    rng = random.Random(seed)
    s = MemoryStorage()
    s.mkdir("d")
    initial = [f"e{i}" for i in range(rng.randint(0, 80))]
    for name in initial:
        s.open(f"d/{name}", create=True).close()
    alive, gone, ever = set(initial), set[str](), set(initial)
    fresh = itertools.count()
    seen: list[str] = []
    cookie = 0
    while batch := s.listdir_from("d", cookie, limit=rng.randint(1, 9)):
        assert [c for c, _ in batch] == sorted(c for c, _ in batch) and batch[0][0] > cookie
        seen += [entry.name for _, entry in batch]
        cookie = batch[-1][0]
        for _ in range(rng.randint(0, 8)):
            action = rng.random()
            if action < 0.4 and alive:
                victim = rng.choice(sorted(alive))
                s.unlink(f"d/{victim}")
                alive.discard(victim)
                gone.add(victim)
            elif action < 0.7:
                name = f"n{next(fresh)}"
                s.open(f"d/{name}", create=True).close()
                alive.add(name)
                ever.add(name)
            elif len(alive) >= 2:  # one name replaces another; the replaced name survives
                src, dst = rng.sample(sorted(alive), 2)
                s.rename(f"d/{src}", f"d/{dst}")
                alive.discard(src)
                gone.add(src)
    assert len(seen) == len(set(seen)), "an entry came twice"
    assert set(initial) - gone <= set(seen), "an entry that stayed was skipped"
    assert set(seen) <= ever
    assert [e.name for e in s.listdir("d")] == [
        e.name for _, e in sorted(s.listdir_from("d", 0), key=lambda p: p[0])
    ]


def test_cookies_survive_heavy_deletion() -> None:
    s = MemoryStorage()
    for i in range(300):
        s.open(f"f{i:03}", create=True).close()
    for i in range(300):
        if i % 50:
            s.unlink(f"f{i:03}")
    assert [e.name for e in s.listdir("")] == [f"f{i:03}" for i in range(0, 300, 50)]
    assert [(c, e.name) for c, e in s.listdir_from("", 120)] == [
        (151, "f150"),
        (201, "f200"),
        (251, "f250"),
    ]


# -- isolation ---------------------------------------------------------------------------------


def test_each_storage_is_its_own_tree() -> None:
    one, two = MemoryStorage(), MemoryStorage()
    one.mkdir("only-in-one")
    one.fs.pipe("/file", b"1")
    assert two.listdir("") == [] and not two.fs.exists("/file")
    assert one.lstat("").dev != two.lstat("").dev
    assert one.fs is one.fs and one.fs is not two.fs and one.fs != two.fs
    assert MemoryTreeFileSystem().storage is not MemoryTreeFileSystem().storage


# -- the fsspec facade ---------------------------------------------------------------------------


def test_fsspec_facade_fills_and_reads_the_tree() -> None:
    s = MemoryStorage()
    fs = s.fs
    assert isinstance(fs, fsspec.AbstractFileSystem)
    fs.makedirs("/in/sub")
    fs.makedirs("in/sub", exist_ok=True)
    with pytest.raises(FileExistsError):
        fs.makedirs("in/sub")
    fs.pipe("/in/sub/a.txt", b"hello")
    assert read_all(s, "in/sub/a.txt") == b"hello"  # the storage sees it at once
    assert fs.cat("in/sub/a.txt") == fs.cat("/in/sub/a.txt") == fs.cat("memtree://in/sub/a.txt")
    assert fs.cat_file("in/sub/a.txt", start=1, end=-1) == b"ell"
    with fs.open("in/b", "wb") as f:
        f.write(b"abc")
    with fs.open("/in/b", "ab") as f:
        f.write(b"def")
    with fs.open("in/b", "rb") as f:
        assert f.read(2) == b"ab"
        f.seek(-2, os.SEEK_END)
        assert f.read() == b"ef"
    with fs.open("in/x", "xb") as f:
        f.write(b"x")
    with pytest.raises(FileExistsError):
        fs.open("in/x", "xb")
    fs.write_text("in/t.txt", "text ✓\n")
    assert fs.read_text("/in/t.txt") == "text ✓\n"
    # Results written by a run through the Storage API read back through fsspec.
    with s.open("out.bin", create=True, writable=True) as out:
        out.write(b"result", 0)
    assert fs.cat("/out.bin") == b"result"

    assert sorted(fs.ls("/in", detail=False)) == ["/in/b", "/in/sub", "/in/t.txt", "/in/x"]
    assert fs.ls("in", detail=False) == fs.ls("/in/", detail=False)
    info = fs.info("in/b")
    assert (info["name"], info["type"], info["size"]) == ("/in/b", "file", 6)
    assert info["ino"] == s.lstat("in/b").ino and fs.size("/in/b") == 6
    assert fs.info("/in")["type"] == "directory"
    assert fs.exists("in/b") and fs.exists("/in") and not fs.exists("in/nope")
    assert fs.isdir("/in/sub") and not fs.isdir("in/b")
    assert fs.isfile("in/b") and not fs.isfile("in")
    assert fs.find("/") == ["/in/b", "/in/sub/a.txt", "/in/t.txt", "/in/x", "/out.bin"]
    assert fs.modified("in/b").timestamp() == pytest.approx(s.lstat("in/b").mtime_ns / 1e9)

    fs.mv("in/b", "/in/c")
    assert not fs.exists("in/b") and fs.cat("in/c") == b"abcdef"
    fs.mv("/in/c", "in/sub")  # into an existing directory, as shutil.move does
    assert fs.cat("in/sub/c") == b"abcdef"
    fs.cp_file("in/sub/c", "in/copy")
    assert fs.cat("in/copy") == b"abcdef"
    fs.mkdir("/empty")
    with pytest.raises(FileExistsError):
        fs.mkdir("empty")
    with pytest.raises(FileNotFoundError):
        fs.mkdir("no/parent", create_parents=False)
    fs.rmdir("empty")
    with pytest.raises(OSError) as info_exc:
        fs.rmdir("in")
    assert info_exc.value.errno == errno.ENOTEMPTY
    fs.rm("in/copy")
    fs.touch("/touched")
    assert fs.cat("touched") == b""
    fs.rm("/in", recursive=True)
    assert fs.ls("/", detail=False) == ["/out.bin", "/touched"]
    assert s.lstat("").nlink == 2


def test_fsspec_facade_follows_symlinks_inside_the_tree() -> None:
    s = MemoryStorage()
    fs = s.fs
    fs.pipe("/data/file", b"payload")
    s.symlink("data", "rel")
    s.symlink("/data/file", "abs")
    s.symlink("../../../data", "data/up")  # ".." stops at the root
    s.symlink("nowhere", "dangling")
    s.symlink("loop", "loop")
    assert fs.cat("rel/file") == fs.cat("abs") == fs.cat("data/up/file") == b"payload"
    assert fs.info("rel")["type"] == "directory" and fs.info("rel")["islink"]
    assert fs.info("abs")["destination"] == "/data/file"
    listed = {entry["name"]: entry for entry in fs.ls("/")}
    assert listed["/dangling"]["type"] == "other" and listed["/rel"]["type"] == "directory"
    with pytest.raises(FileNotFoundError):
        fs.info("dangling")
    assert not fs.exists("dangling") and fs.lexists("dangling")
    with pytest.raises(OSError) as info:
        fs.cat("loop")
    assert info.value.errno == errno.ELOOP
    fs.rm("rel")  # removes the link, not what it points to
    assert not fs.lexists("rel") and fs.cat("data/file") == b"payload"


def test_fsspec_instances_are_never_cached_or_shared() -> None:
    assert MemoryTreeFileSystem.cachable is False
    a, b = MemoryTreeFileSystem(), MemoryTreeFileSystem()
    a.pipe("/x", b"1")
    assert a is not b and a != b and not b.exists("/x")
    s = MemoryStorage()
    c, d = MemoryTreeFileSystem(s), MemoryTreeFileSystem(s)
    c.pipe("/y", b"2")
    assert c is not d and d.cat("/y") == b"2"
    assert c == d and hash(c) == hash(d)  # fsspec's equality: the same tree


def test_fsspec_knows_mem_as_a_private_tree_per_filesystem() -> None:
    a, b = fsspec.filesystem("mem"), fsspec.filesystem("mem")
    assert isinstance(a, MemoryTreeFileSystem) and a is not b
    a.pipe("/notes.txt", b"mine")
    assert a.cat("mem://notes.txt") == b"mine" and not b.exists("/notes.txt")
    fs, path = fsspec.core.url_to_fs("mem://d/e.txt")
    assert isinstance(fs, MemoryTreeFileSystem) and path == "/d/e.txt"
    # Mounted as a filesystem object, a guest sees what was put there.
    a.pipe("/in.txt", b"hello from fsspec\n")
    result = runtime.run(str(FIXTURES / "fstool.wasm"), ["cat", "/in.txt"], mounts={"/": a})
    assert result.stdout == b"cat /in.txt: hello from fsspec\n\n"


# -- helpers ------------------------------------------------------------------------------------


def read_handle(f: MemoryFile) -> bytes:
    buf = bytearray(f.stat().size)
    assert f.readinto(memoryview(buf), 0) == len(buf)
    return bytes(buf)


def read_all(s: MemoryStorage, path: str) -> bytes:
    with s.open(path) as f:
        return read_handle(f)


# -- the differential state machine -------------------------------------------------------------

# Depth 1 and 2 twice as often as 3, so that most operations find their parent and names
# meet often (renames between hard links, into a subtree, over an ancestor...).
_DEPTH = [
    st.sampled_from(["/".join(p) for p in itertools.product("abc", repeat=n)]) for n in (1, 2, 3)
]
paths = st.one_of(_DEPTH[0], _DEPTH[0], _DEPTH[1], _DEPTH[1], _DEPTH[2])
targets = st.sampled_from(["a", "b/a", "/abs", "../c", "c"])


class AgainstTheHost(RuleBasedStateMachine):
    """Random mkdir/create/write/truncate/rename/unlink/rmdir/link/symlink sequences and
    open handles, on a MemoryStorage and on a host directory, must agree step by step."""

    def __init__(self) -> None:
        super().__init__()
        self.root = tempfile.mkdtemp(prefix="memfs-vs-host-", dir=FAST_TMP)
        self.host = HostSide(self.root)
        self.mem = MemSide()
        self.handles: list[tuple[Handle, Handle]] = []

    @initialize()
    def populate(self) -> None:
        # A start with something in it, so that a few steps reach the interesting states.
        for side in (self.host, self.mem):
            side.mkdir("a")
            side.mkdir("a/a")
            for path in ("b", "a/b"):
                handle = side.open(path, create=True, writable=True)
                handle.pwrite(b"0123456789", 0)
                handle.close()
            side.link("b", "c")

    def teardown(self) -> None:
        for host, mem in self.handles:
            host.close()
            mem.close()
        shutil.rmtree(self.root)

    def both(self, action: Callable[[Side], object], *paths: str) -> tuple[str, object]:
        if any(self.host.symlinked_parent(p) for p in paths):
            # The host would follow that symlink; the protocol forbids it.
            got = outcome(lambda: action(self.mem))
            assert got[0] == "err", got
            if len(paths) == 1:
                assert got[1] == "ELOOP"
            return got
        got_host = outcome(lambda: action(self.host))
        got_mem = outcome(lambda: action(self.mem))
        assert got_mem == got_host
        return got_mem

    @rule(p=paths)
    def mkdir(self, p: str) -> None:
        self.both(lambda side: side.mkdir(p), p)

    @rule(p=paths, exclusive=st.booleans(), truncate=st.booleans(), writable=st.booleans())
    def create(self, p: str, exclusive: bool, truncate: bool, writable: bool) -> None:
        flags = {"exclusive": exclusive, "truncate": truncate, "writable": writable}
        self.both(lambda side: side.open(p, create=True, **flags).close(), p)

    @rule(p=paths, offset=st.integers(0, 24), data=st.binary(max_size=16))
    def write(self, p: str, offset: int, data: bytes) -> None:
        def act(side: Side) -> int:
            handle = side.open(p, writable=True)
            try:
                return handle.pwrite(data, offset)
            finally:
                handle.close()

        self.both(act, p)

    @rule(p=paths, size=st.integers(0, 40))
    def truncate(self, p: str, size: int) -> None:
        def act(side: Side) -> None:
            handle = side.open(p, writable=True)
            try:
                handle.ftruncate(size)
            finally:
                handle.close()

        self.both(act, p)

    @rule(src=paths, dst=paths)
    def rename(self, src: str, dst: str) -> None:
        self.both(lambda side: side.rename(src, dst), src, dst)

    @rule(src=paths, dst=paths)
    def link(self, src: str, dst: str) -> None:
        self.both(lambda side: side.link(src, dst), src, dst)

    @rule(to=targets, p=paths)
    def symlink(self, to: str, p: str) -> None:
        self.both(lambda side: side.symlink(to, p), p)

    @rule(p=paths)
    def unlink(self, p: str) -> None:
        self.both(lambda side: side.unlink(p), p)

    @rule(p=paths)
    def rmdir(self, p: str) -> None:
        self.both(lambda side: side.rmdir(p), p)

    @rule(p=paths)
    def look(self, p: str) -> None:
        self.both(lambda side: side.readlink(p), p)
        self.both(lambda side: side.listdir(p), p)
        self.both(lambda side: side.lstat(p)[:3], p)

    @rule(p=paths, writable=st.booleans())
    def open_handle(self, p: str, writable: bool) -> None:
        if self.host.symlinked_parent(p) or len(self.handles) >= 4:
            return
        got = outcome(lambda: self.host.open(p, writable=writable))
        got_mem = outcome(lambda: self.mem.open(p, writable=writable))
        if got[0] == "ok" and got_mem[0] == "ok":
            assert isinstance(got[1], HostHandle) and isinstance(got_mem[1], MemHandle)
            self.handles.append((got[1], got_mem[1]))
        else:
            assert got_mem == got

    @precondition(lambda self: self.handles)
    @rule(i=st.integers(0, 3), offset=st.integers(0, 24), data=st.binary(max_size=16))
    def handle_write(self, i: int, offset: int, data: bytes) -> None:
        host, mem = self.handles[i % len(self.handles)]
        assert outcome(lambda: mem.pwrite(data, offset)) == outcome(
            lambda: host.pwrite(data, offset)
        )

    @precondition(lambda self: self.handles)
    @rule(i=st.integers(0, 3), size=st.integers(0, 40))
    def handle_truncate(self, i: int, size: int) -> None:
        host, mem = self.handles[i % len(self.handles)]
        assert outcome(lambda: mem.ftruncate(size)) == outcome(lambda: host.ftruncate(size))

    @precondition(lambda self: self.handles)
    @rule(i=st.integers(0, 3))
    def handle_close(self, i: int) -> None:
        host, mem = self.handles.pop(i % len(self.handles))
        host.close()
        mem.close()

    @invariant()
    def same_trees_and_handles(self) -> None:
        assert snapshot(self.mem) == snapshot(self.host)
        for host, mem in self.handles:
            assert mem.fstat() == host.fstat()
            assert mem.pread(1 << 16, 0) == host.pread(1 << 16, 0)


AgainstTheHost.TestCase.settings = settings(max_examples=200, stateful_step_count=50, deadline=None)
TestAgainstTheHost = AgainstTheHost.TestCase
