"""The native implementation: wasmtime's answers, a sandbox nothing escapes, a clean teardown.

Most cases are probes (see ``probekit``): a module makes raw calls and prints each errno and
the memory they wrote; native must print exactly what wasmtime's built-in WASI prints. Values
that legitimately differ (inode numbers, times) are never printed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import test_abi_edges as edges
from conftest import FIXTURES, load_adapter
from probekit import Call, run_probe, script

from virtwasi.runtime import WasiWorld
from virtwasi.storage.mounts import MountError
from virtwasi.wasi.abi import ALL_RIGHTS, IMPORTS, Errno, Fdflags, Fstflags, Oflags, Rights
from virtwasi.wasi.errnos import ANSWERED, WasiError, errno_of
from virtwasi.wasi.memory import GuestMemory
from virtwasi.wasi.preview1 import Preview1
from virtwasi.world import Context, Func, ResourceType, Trap, TrapReason

ALL = ALL_RIGHTS
FOLLOW = 1
# Guest strings from 1024 up to OUT; then where calls write what they answer.
OUT = 8000  # a new fd, a count, a small struct
STAT = 8400  # a filestat
IOV = 8900  # an iovec: 16 bytes at IOV_DATA
IOV_DATA = 9500
NOT_UTF8 = IOV + 16  # one byte, 0xff
BUF = 10000  # a scratch buffer for fdstats, readdir and readlink
SECRET = b"the outside secret"


class Strings:
    """Guest strings placed in memory, each at its own address."""

    def __init__(self) -> None:
        self.data: dict[int, bytes] = {IOV: struct.pack("<II", IOV_DATA, 16),
                                       NOT_UTF8: b"\xff"}
        self._at: dict[str, int] = {}
        self._next = 1024

    def __call__(self, text: str) -> tuple[int, int]:
        raw = text.encode()
        if text not in self._at:
            self._at[text] = self._next
            self.data[self._next] = raw
            self._next += (len(raw) + 8) & ~7
            assert self._next < OUT
        return self._at[text], len(raw)


S = Strings()


def open_(path: str, oflags: int = 0, rights: int = ALL, fdflags: int = 0,
          dirflags: int = 0, fd: int = 3) -> Call:
    return ("path_open", (fd, dirflags, *S(path), oflags, rights, ALL, fdflags, OUT))


def on_path(name: str, path: str, fd: int = 3) -> Call:
    return (name, (fd, *S(path)))


def rename(old: str, new: str, fd: int = 3, new_fd: int = 3) -> Call:
    return ("path_rename", (fd, *S(old), new_fd, *S(new)))


def symlink(target: str, path: str, fd: int = 3) -> Call:
    return ("path_symlink", (*S(target), fd, *S(path)))


def link(old: str, new: str, flags: int = 0, fd: int = 3, new_fd: int = 3) -> Call:
    return ("path_link", (fd, flags, *S(old), new_fd, *S(new)))


def stat(path: str, flags: int = 0, fd: int = 3) -> Call:
    return ("path_filestat_get", (fd, flags, *S(path), STAT))


def readlink(path: str, size: int = 64, fd: int = 3) -> Call:
    return ("path_readlink", (fd, *S(path), BUF, size, OUT))


def set_times(path: str, flags: int, fst: int, fd: int = 3) -> Call:
    return ("path_filestat_set_times", (fd, flags, *S(path), 10**18, 2 * 10**18, fst))


def read(fd: int) -> Call:
    return ("fd_read", (fd, IOV, 1, OUT))


def write(fd: int) -> Call:
    return ("fd_write", (fd, IOV, 1, OUT))


def readdir(fd: int, size: int = 256, cookie: int = 0) -> Call:
    return ("fd_readdir", (fd, BUF, size, cookie, OUT))


# What a probe prints besides the errnos: (address, length) regions, never inode or times.
FD = [(OUT, 4)]
FILETYPE_SIZE = [(STAT + 16, 1), (STAT + 32, 8)]  # filetype, size
FDSTAT = [(OUT, 4), (BUF, 24)]


def tree(root: Path) -> None:
    (root / "d").mkdir()
    (root / "e").mkdir()
    (root / "f").write_bytes(b"hello")
    (root / "d" / "g").write_bytes(b"y")
    for target, name in [("f", "lf"), ("d", "ld"), ("nope", "dl"), ("lf", "llf"),
                         ("loop2", "loop1"), ("loop1", "loop2")]:
        os.symlink(target, root / name)


def planted(root: Path) -> None:
    """The tree, plus symlinks the host planted pointing out of it."""
    tree(root)
    os.symlink(root.parent / "outside" / "secret", root / "abs")
    os.symlink(root.parent / "outside", root / "absdir")
    os.symlink("../outside", root / "up")
    os.symlink("../outside/secret", root / "d" / "upsecret")


ESCAPES = ["../outside/secret", "/etc/passwd", "abs", "absdir/secret", "up/secret", "up",
           "d/../../outside/secret", "d/upsecret", "d/../up/secret", "absdir", ".."]

CASES: dict[str, tuple[list[Call], list[tuple[int, int]]]] = {
    # -- preopens ------------------------------------------------------------------------
    "prestat": ([("fd_prestat_get", (3, OUT)), ("fd_prestat_dir_name", (3, BUF, 1)),
                 ("fd_prestat_dir_name", (3, BUF, 0)), ("fd_prestat_get", (0, OUT)),
                 ("fd_prestat_dir_name", (1, BUF, 8)), ("fd_prestat_get", (4, OUT))],
                [(OUT, 8), (BUF, 1)]),
    "prestat of an opened dir and file": (
        [open_("d"), ("fd_prestat_get", (4, OUT)), ("fd_prestat_dir_name", (4, BUF, 8)),
         open_("f"), ("fd_prestat_get", (5, OUT)), ("fd_prestat_dir_name", (5, BUF, 8))], []),
    "preopen fdstat": ([("fd_fdstat_get", (3, BUF))], [(BUF, 24)]),
    "preopen as a file": ([read(3), write(3), ("fd_seek", (3, 0, 0, OUT)),
                           ("fd_tell", (3, OUT)), ("fd_filestat_set_size", (3, 0)),
                           ("fd_pread", (3, IOV, 1, 0, OUT)), ("fd_sync", (3,)),
                           ("fd_fdstat_set_flags", (3, 1))], []),
    "preopen closed, then used": ([("fd_close", (3,)), open_("f"), ("fd_close", (3,))], []),
    "preopen renumbered": ([("fd_renumber", (3, 2)), open_("f", fd=2),
                            ("fd_prestat_get", (2, OUT))], [(OUT, 8)]),
    "preopen filestat": ([("fd_filestat_get", (3, STAT))], [(STAT + 16, 1)]),
    # -- rights --------------------------------------------------------------------------
    **{f"rights {name}": (
        [open_(path, oflags, rights, fdflags), ("fd_fdstat_get", (4, BUF)), write(4), read(4)],
        FDSTAT)
       for name, path, oflags, rights, fdflags in [
           ("read", "f", 0, Rights.FD_READ, 0), ("write", "f", 0, Rights.FD_WRITE, 0),
           ("none", "f", 0, 0, 0), ("create none", "n", Oflags.CREAT, 0, 0),
           ("truncate none", "f", Oflags.TRUNC, 0, 0), ("readdir", "f", 0, Rights.FD_READDIR, 0),
           ("all", "f", 0, ALL, 0), ("append", "f", 0, ALL, Fdflags.APPEND),
           ("nonblock", "f", 0, ALL, Fdflags.NONBLOCK), ("sync", "f", 0, ALL, Fdflags.SYNC),
           ("dsync", "f", 0, ALL, Fdflags.DSYNC), ("dir read", "d", 0, Rights.FD_READ, 0),
           ("dir write", "d", 0, Rights.FD_WRITE, 0), ("dir none", "d", 0, 0, 0),
           ("dir all", "d", 0, ALL, 0), ("dir flag", "d", Oflags.DIRECTORY, 0, 0),
           ("dir creat", "d", Oflags.DIRECTORY | Oflags.CREAT, 0, 0),
           ("dir trunc", "d", Oflags.DIRECTORY | Oflags.TRUNC, 0, 0),
           ("dir excl", "d", Oflags.DIRECTORY | Oflags.EXCL, 0, 0),
       ]},
    "set_rights": ([open_("f"), ("fd_fdstat_set_rights", (4, 0, 0)),
                    ("fd_fdstat_set_rights", (3, ALL, ALL)), ("fd_fdstat_set_rights", (1, 0, 0)),
                    ("fd_fdstat_set_rights", (4, 1 << 40, 0))], []),
    "set_flags": ([open_("f"), ("fd_fdstat_set_flags", (4, Fdflags.APPEND)),
                   ("fd_fdstat_get", (4, BUF)), ("fd_fdstat_set_flags", (4, Fdflags.SYNC)),
                   ("fd_fdstat_set_flags", (4, 0)), ("fd_fdstat_get", (4, BUF + 24)),
                   ("fd_fdstat_set_flags", (1, 0)), ("fd_fdstat_set_flags", (4, 1 << 6))],
                  [(BUF, 48)]),
    # -- opening -------------------------------------------------------------------------
    "open variants": ([open_(p, o, dirflags=fl) for p, o, fl in [
        ("nope", 0, 0), ("f/", 0, 0), ("d/", 0, 0), ("lf", 0, 0), ("lf", 0, FOLLOW),
        ("ld", Oflags.DIRECTORY, 0), ("ld/", 0, 0), ("ld/.", 0, 0), ("dl", Oflags.CREAT, FOLLOW),
        ("dl", Oflags.CREAT | Oflags.EXCL, FOLLOW), ("f", Oflags.CREAT | Oflags.EXCL, 0),
        ("new/", Oflags.CREAT, 0), ("", 0, 0), (".", 0, 0), ("d/..", 0, 0),
        ("f", Oflags.DIRECTORY, 0),
        ("llf", 0, FOLLOW), ("nope/x", Oflags.CREAT, 0), ("f/x", 0, 0), ("d", Oflags.TRUNC, 0),
    ]], []),
    "odd paths": ([open_(p, dirflags=FOLLOW) for p in [
        "f\0x", "loop1", "loop1/x", "x" * 300, "d/" + "y" * 256, "./f", "d//g", "d/./g/"]]
        + [stat("loop1"), stat("loop1", FOLLOW), on_path("path_create_directory", "loop1/x"),
           on_path("path_unlink_file", "f\0")], []),
    "open through a file fd": ([open_("f"), open_("x", fd=4), open_("x", fd=1),
                                open_("x", fd=77)], []),
    "open, bad utf-8 path": ([("path_open", (3, 0, NOT_UTF8, 1, 0, ALL, ALL, 0, OUT))], []),
    "fd numbers": ([open_("f"), open_("f"), open_("f"), ("fd_close", (4,)), ("fd_close", (5,)),
                    open_("d"), ("fd_fdstat_get", (5, BUF)), open_("d"),
                    ("fd_fdstat_get", (4, BUF + 24)), ("fd_renumber", (6, 9)),
                    ("fd_renumber", (6, 4)), open_("f"), ("fd_fdstat_get", (6, BUF + 48))],
                   [(BUF, 72)]),
    # -- descriptors of each kind ---------------------------------------------------------
    **{f"{kind} fd": (
        [open_("f"), open_("d"), *[(name, (fd, *args)) for name, args in [
            ("fd_advise", (0, 0, 1)), ("fd_allocate", (0, 1)), ("fd_datasync", ()),
            ("fd_sync", ()), ("fd_filestat_set_size", (3,)),
            ("fd_filestat_set_times", (0, 0, 0)), ("fd_pread", (IOV, 1, 0, OUT)),
            ("fd_pwrite", (IOV, 1, 0, OUT)), ("fd_seek", (0, 1, OUT)), ("fd_tell", (OUT,)),
            ("fd_readdir", (BUF, 0, 0, OUT)), ("path_create_directory", S("x")),
            ("path_remove_directory", S("x")), ("path_unlink_file", S("x")),
            ("path_readlink", (*S("x"), BUF, 8, OUT)),
            ("path_filestat_get", (0, *S("x"), STAT)),
            ("sock_shutdown", (1,)), ("sock_recv", (IOV, 1, 0, OUT, OUT + 4)),
            ("fd_fdstat_get", (BUF,)),
        ]]], [])
       for kind, fd in [("stdin", 0), ("stdout", 1), ("preopen", 3), ("file", 4), ("dir", 5),
                        ("forged", 77), ("forged high", 2**31 + 3), ("forged max", 2**32 - 1)]},
    "stdio": ([read(0), read(1), write(0), write(1), ("fd_read", (0, IOV, 0, OUT)),
               ("fd_filestat_get", (1, STAT))], [(OUT, 4), (STAT, 64)]),
    "file positions": ([open_("f"), ("fd_seek", (4, 2, 0, OUT)), read(4),
                        ("fd_tell", (4, OUT + 8)), ("fd_seek", (4, -1, 1, OUT + 16)),
                        ("fd_seek", (4, -10, 1, OUT + 24)), ("fd_seek", (4, -10, 0, OUT + 32)),
                        ("fd_seek", (4, 100, 2, OUT + 40)), write(4),
                        ("fd_filestat_get", (4, STAT)), ("fd_seek", (4, 0, 3, OUT))],
                       [(OUT, 48), (STAT + 32, 8)]),
    "append writes at the end": ([open_("f", fdflags=Fdflags.APPEND), ("fd_seek", (4, 0, 0, OUT)),
                                  write(4), ("fd_tell", (4, OUT + 8)),
                                  ("fd_pwrite", (4, IOV, 1, 0, OUT + 16)),
                                  ("fd_tell", (4, OUT + 24))], [(OUT, 32)]),
    "huge offsets": ([open_("f"), ("fd_pread", (4, IOV, 1, 2**63, OUT)),
                      ("fd_pwrite", (4, IOV, 1, 2**63 + 5, OUT)),
                      ("fd_filestat_set_size", (4, 2**63)), ("fd_seek", (4, 2**62, 0, OUT)),
                      ("fd_seek", (4, 2**62, 1, OUT)), read(4)], [(OUT, 8)]),
    # -- trailing slashes ---------------------------------------------------------------------
    "trailing slashes": ([
        on_path("path_create_directory", "n/"), on_path("path_remove_directory", "n/"),
        on_path("path_remove_directory", "f/"), on_path("path_unlink_file", "f/"),
        on_path("path_unlink_file", "d/"), on_path("path_unlink_file", "lf/"),
        on_path("path_unlink_file", "ld/"), on_path("path_remove_directory", "ld/"),
        on_path("path_remove_directory", "ld"), rename("f", "g/"), rename("d", "e/"),
        rename("e/", "x"), symlink("f", "s/"), link("f", "h/"), readlink("lf/"),
        readlink("ld/"), stat("f/"), stat("d/"), stat("lf/"), stat("lf/", FOLLOW),
        stat("ld/"), stat("dl/"), on_path("path_create_directory", "dl/"),
    ], []),
    # -- the tree ---------------------------------------------------------------------------
    "mkdir": ([on_path("path_create_directory", p) for p in
               ["d", "n", "n", "lf", "dl", ".", "", "d/..", "nope/x", "f/x", "d/new"]], []),
    "rmdir": ([on_path("path_remove_directory", p) for p in
               ["nope", "f", "d", "e", "e", ".", "", "d/..", "lf", "dl"]], []),
    "unlink": ([on_path("path_unlink_file", p) for p in
                ["nope", "d", "lf", "lf", "dl", ".", "", "f", "f"]], []),
    "rename": ([rename(a, b) for a, b in [
        ("nope", "x"), ("f", "g"), ("g", "d"), ("d", "f2"), ("e", "d"), ("lf", "lf2"),
        (".", "x"), ("x", "."), ("d", "d/sub"), ("", "x"), ("ld", "ld2"), ("g", "e/x")]], []),
    "symlink": ([symlink(t, p) for t, p in [
        ("f", "s1"), ("f", "s1"), ("/etc", "s2"), ("../x", "s3"), ("", "s4"), ("f", "d"),
        ("f", ""), ("f", "dl")]] + [readlink(p) for p in ["s1", "s3", "s4", "f", "d", "."]],
        [(BUF, 16)]),
    "nul in a symlink target": ([symlink("a\0b", "s")], []),
    "readlink sizes": ([readlink("lf", n) for n in (0, 1, 2)] + [readlink("llf", 1)],
                       [(OUT, 4), (BUF, 4)]),
    "link": ([link(a, b, fl) for a, b, fl in [
        ("f", "h", 0), ("f", "h", 0), ("nope", "h2", 0), ("d", "h3", 0), ("lf", "h4", 0),
        ("lf", "h5", FOLLOW), ("dl", "h6", 0), ("dl", "h7", FOLLOW), (".", "h8", 0),
        ("f", "d/h9", 0)]]
        + [stat(p) for p in ["h4", "h5"]], FILETYPE_SIZE),
    "filestat": ([stat(p, fl) for p, fl in [
        ("f", 0), ("lf", 0), ("lf", FOLLOW), ("dl", 0), ("dl", FOLLOW), ("nope", 0), (".", 0),
        ("d/..", 0), ("f/.", 0), ("", 0)]] + [stat("lf", FOLLOW)], FILETYPE_SIZE),
    "filestat of a link": ([stat("lf")], FILETYPE_SIZE),
    # -- times --------------------------------------------------------------------------------
    "fstflags": ([
        set_times("f", 0, Fstflags.ATIM | Fstflags.ATIM_NOW),
        set_times("f", 0, Fstflags.MTIM | Fstflags.MTIM_NOW),
        set_times("nope", 0, Fstflags.ATIM | Fstflags.ATIM_NOW),
        set_times("f", 0, Fstflags.MTIM), set_times("nope", 0, 0), set_times("dl", FOLLOW, 0),
        set_times("dl", 0, Fstflags.MTIM), set_times("nope/", 0, 0), set_times("..", 0, 0),
        ("fd_filestat_set_times", (77, 0, 0, Fstflags.ATIM | Fstflags.ATIM_NOW)),
        ("fd_filestat_set_times", (3, 0, 0, Fstflags.ATIM_NOW | Fstflags.MTIM_NOW)),
        ("fd_filestat_set_times", (1, 0, 0, 0)),
    ], []),
    "fstflags unknown bit on an fd": ([("fd_filestat_set_times", (3, 0, 0, 16))], []),
    "fstflags unknown bit on a path": ([set_times("f", 0, 16)], []),
    # -- readdir ------------------------------------------------------------------------------
    **{f"readdir cookie {cookie} size {size}": (
        [open_("d"), readdir(4, size, cookie)], [(OUT, 4)])
       for cookie in (0, 1, 2, 3, 4, 2**63) for size in (0, 1, 24, 25, 26, 27, 80)},
    "readdir names": ([open_("d"), readdir(4, 80, 2)], [(OUT, 4), (BUF + 16, 8), (BUF + 24, 1)]),
    "readdir of a removed directory": ([open_("e"), on_path("path_remove_directory", "e"),
                                        readdir(4, 80)], [(OUT, 4)]),
    "readdir buffer out of bounds": ([("fd_readdir", (3, 131000, 1000, 0, OUT))], []),
    # -- polls, sockets, process ------------------------------------------------------------
    "sockets": ([("sock_accept", (3, 0, OUT)), ("sock_accept", (77, 0, OUT)),
                 ("sock_send", (1, IOV, 1, 0, OUT)), ("sock_shutdown", (0, 3))], []),
    "sock_shutdown bad flags": ([("sock_shutdown", (3, 4))], []),
    "proc_raise and clocks": ([("proc_raise", (9,)), ("clock_time_get", (2, 0, OUT)),
                               ("clock_res_get", (3, OUT)), ("clock_res_get", (1, OUT))],
                              [(OUT, 8)]),
    "exit 126": ([("proc_exit", (126,))], []),
    "exit 7": ([("proc_exit", (7,))], []),
    "rename between kinds": ([on_path("path_create_directory", "d/sub")] + [
        rename(a, b) for a, b in [
        ("d", "e"), ("e", "d"), ("f", "e"), ("e", "f"), ("d", "d/sub/x"), ("d/g", "e/g"),
        ("lf", "e/lf"), ("ld/g", "g2"), ("g2", "ld/g")]], []),
    "from an opened directory": ([open_("d"), open_("..", fd=4), open_("g", fd=4),
                                  stat("../f", fd=4), rename("g", "g3", fd=4, new_fd=3),
                                  rename("f", "f3", fd=3, new_fd=4), link("f3", "f4", 0, 4, 3),
                                  on_path("path_unlink_file", "ld/f3"), readdir(4, 256)],
                                 [(OUT, 4)]),
    "access modes": ([open_("f", rights=Rights.FD_READ), write(4),
                      ("fd_filestat_set_size", (4, 1)), ("fd_pwrite", (4, IOV, 1, 0, OUT)),
                      open_("f", rights=Rights.FD_WRITE), read(5),
                      ("fd_pread", (5, IOV, 1, 0, OUT)), ("fd_filestat_set_size", (5, 1)),
                      ("fd_filestat_get", (5, STAT))], FILETYPE_SIZE),
    "advise": ([open_("f"), open_("d"), ("fd_advise", (4, 0, 0, 4)),
                ("fd_advise", (4, 2**63, 2**63, 1)), ("fd_advise", (5, 0, 0, 0)),
                ("fd_advise", (0, 0, 0, 0))], []),
    "checks in order": ([("path_create_directory", (77, NOT_UTF8, 1)),
                         ("path_open", (77, 0, NOT_UTF8, 1, 0, 0, 0, 0, OUT)),
                         ("path_filestat_set_times", (77, 0, NOT_UTF8, 1, 0, 0, 3)),
                         ("path_link", (3, 1, NOT_UTF8, 1, 77, *S("x"))),
                         ("path_link", (3, 1, NOT_UTF8, 1, 3, *S("x"))),
                         ("path_symlink", (NOT_UTF8, 1, 77, *S("x"))),
                         ("path_rename", (3, NOT_UTF8, 1, 3, *S("/x"))),
                         ("path_open", (3, 0, *S("nope"), 0, 0, 0, Fdflags.SYNC, OUT)),
                         ("path_open", (3, 0, *S("/x"), 2 | 1, 0, 0, 0, OUT))], []),
    "times through links": ([set_times(p, fl, Fstflags.MTIM) for p, fl in [
        ("lf", FOLLOW), ("lf", 0), ("ld", FOLLOW), (".", 0), ("d/..", 0), ("dl", FOLLOW)]]
        + [("fd_filestat_set_times", (3, 0, 10**18, Fstflags.MTIM)), stat(".")],
        [(STAT + 48, 8)]),
    "times": ([open_("f"), ("fd_filestat_set_times", (4, 10**18, 2 * 10**18,
                                                        Fstflags.ATIM | Fstflags.MTIM)),
               ("fd_filestat_get", (4, STAT)), set_times("d", 0, Fstflags.ATIM),
               ("path_filestat_get", (3, 0, *S("d"), STAT + 64))],
              [(STAT + 40, 16), (STAT + 64 + 40, 8)]),
    # -- escapes ------------------------------------------------------------------------------
    "escapes": ([call for p in ESCAPES for call in (
        open_(p, dirflags=FOLLOW), read(4), write(1), ("fd_close", (4,)))]
                + [stat(p, FOLLOW) for p in ESCAPES]
                + [open_(p) for p in ESCAPES]
                + [on_path("path_create_directory", "up/new"), symlink("x", "up/new"),
                   link("abs", "h", FOLLOW), link("f", "up/h"), rename("f", "up/f"),
                   rename("up/secret", "stolen"), readlink("up/secret"),
                   set_times("abs", FOLLOW, Fstflags.MTIM_NOW)], []),
}


def _outcome(runtime: str, case: str, tmp: Path, prepare: Callable[[Path], None]) -> object:
    calls, dumps = CASES[case]
    base = tmp / runtime
    root = base / "root"
    root.mkdir(parents=True)
    (base / "outside").mkdir()
    (base / "outside" / "secret").write_bytes(SECRET)
    prepare(root)
    result = run_probe(runtime, script(calls, S.data, dumps), root, base)
    assert SECRET[:16] not in result.stdout
    assert (base / "outside" / "secret").read_bytes() == SECRET
    assert sorted(p.name for p in (base / "outside").iterdir()) == ["secret"]
    return result.exit_code, result.stdout, sorted(
        (str(p.relative_to(root)), p.is_symlink(), p.is_dir()) for p in root.rglob("*"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_answers_as_wasmtime(case: str, tmp_path: Path) -> None:
    prepare = planted if case == "escapes" else tree
    expected = _outcome("wasmtime_wasi", case, tmp_path, prepare)
    got = _outcome("virtwasi_native", case, tmp_path, prepare)
    assert got == expected


@pytest.mark.parametrize("case", sorted(edges.CASES))
def test_abi_edges_as_wasmtime(case: str, tmp_path: Path) -> None:
    name, args = edges.CASES[case]
    module = tmp_path / "probe.wasm"
    module.write_bytes(edges.probe(name, args))
    (tmp_path / "ref").mkdir()
    (tmp_path / "ours").mkdir()
    expected = load_adapter("wasmtime_wasi").run(module, [], tmp_path / "ref")
    got = load_adapter("virtwasi_native").run(module, [], tmp_path / "ours")
    assert got.exit_code == expected.exit_code, (got, expected)
    assert b"Traceback" not in got.stderr


# -- the native implementation behind the adapter ----------------------------------------

def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))  # counts the listing's own fd each time


def host_fds_under(folder: Path) -> list[int]:
    """This process's fds open on something inside ``folder``."""
    inside = str(folder) + os.sep
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(inside) or target == str(folder):
            found.append(int(fd))
    return found


@contextlib.contextmanager
def native_adapter(mounts: dict[str, Path]) -> Iterator[tuple[Preview1, bytearray]]:
    """The preview 1 adapter of a Python client of the native implementation, over a
    memory of its own; the world is closed afterwards."""
    contexts: list[Context] = []

    def client(ctx: Context) -> dict[str, Func | ResourceType]:
        contexts.append(ctx)
        return {}

    with WasiWorld(mounts, impl="native") as world:
        world.world.instantiate("client", client, {"wasi": world.wasi})
        ctx = contexts[0]
        adapter = Preview1(ctx.imports["wasi"], ctx, [], [], None, None, None)
        memory = bytearray(65536)
        adapter.memory = GuestMemory(lambda: memoryview(memory))
        yield adapter, memory


def test_teardown_closes_every_host_fd(tmp_path: Path) -> None:
    with WasiWorld({"/": tmp_path}, impl="native") as host:
        client = host.client(FIXTURES / "noclose.wasm", ["kept.txt"])
        assert client.start() == 3  # it exits without closing the file it wrote
        held = host_fds_under(tmp_path)
        assert len(held) == 2  # the preopen and the file left open
        before = _open_fds()
        client.close()  # teardown drops its handles: the destructor closes each host fd
        assert _open_fds() == before - 2
        assert host_fds_under(tmp_path) == []
        with pytest.raises(Trap) as trapped:  # the client is gone: nothing answers for it
            client.adapter.fd_filestat_get(3, 0)
        assert trapped.value.reason is TrapReason.INSTANCE_DESTROYED
    for fd in held:
        with pytest.raises(OSError) as gone:
            os.fstat(fd)
        assert gone.value.errno == errno.EBADF
    assert (tmp_path / "kept.txt").read_bytes() == b"written, never closed\n"


def test_a_failed_construction_leaks_nothing(tmp_path: Path) -> None:
    before = _open_fds()
    with pytest.raises(MountError):
        WasiWorld({"/": tmp_path, "/b": tmp_path / "missing"}, impl="native")
    assert _open_fds() == before


def test_mounts_are_preopened_in_order(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with native_adapter({"/data": tmp_path / "a", "/tmp": tmp_path / "b"}) as (wasi, _):
        assert [wasi.prestat_name(fd) for fd in (3, 4)] == ["/data", "/tmp"]
        assert [wasi.prestat_name(fd) for fd in (0, 1, 2)] == [None, None, None]
        with pytest.raises(WasiError):
            wasi.prestat_name(5)
        assert set(wasi.functions()) == set(IMPORTS)
        assert len(host_fds_under(tmp_path)) == 2
    assert host_fds_under(tmp_path) == []


def test_a_symlink_swapped_in_after_resolution_is_not_followed(tmp_path: Path) -> None:
    """Resolution and action are two steps; a host that swaps a checked directory for a
    symlink between them meets ELOOP/ENOTDIR from the walk, never the outside."""
    from virtwasi.native.hosttree import parent_of, resolve

    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "d").mkdir(parents=True)
    outside.mkdir()
    (outside / "f").write_bytes(SECRET)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        found = resolve(fd, "d/f", follow=False)
        assert found.stat is None and found.path == "d/f"
        (root / "d").rmdir()
        os.symlink(outside, root / "d")
        with pytest.raises(OSError) as caught, parent_of(fd, found.path) as (parent, name):
            os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=parent)
        assert caught.value.errno in (20, 40)  # ENOTDIR, ELOOP
    finally:
        os.close(fd)


def test_nothing_outside_is_reached(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_bytes(SECRET)
    planted(root)
    with native_adapter({"/": root}) as (wasi, memory):
        calls = wasi.functions()
        for path in ESCAPES:
            raw = path.encode()
            memory[1024:1024 + len(raw)] = raw
            for follow in (0, FOLLOW):
                with pytest.raises(ANSWERED) as caught:
                    calls["path_open"](3, follow, 1024, len(raw), 0, ALL, ALL, 0, 0)
                assert errno_of(caught.value) in (Errno.PERM, Errno.NOENT, Errno.LOOP), path
            with pytest.raises(ANSWERED) as caught:  # unfollowed, a link is its own
                calls["path_filestat_get"](3, FOLLOW, 1024, len(raw), 0)
            assert errno_of(caught.value) in (Errno.PERM, Errno.NOENT), path
        assert len(list(wasi.table.items())) == 4  # stdio and the preopen: nothing opened
        assert host_fds_under(tmp_path / "outside") == []


def test_forged_fds_are_ebadf(tmp_path: Path) -> None:
    """Every number the table never handed out (or took back) is EBADF, never a host fd."""
    (tmp_path / "f").write_bytes(b"x")
    with native_adapter({"/": tmp_path}) as (wasi, memory):
        memory[100:101] = b"f"
        calls = wasi.functions()
        calls["path_open"](3, 0, 100, 1, 0, ALL, ALL, 0, 200)
        opened = int.from_bytes(memory[200:204], "little")
        (host_fd,) = host_fds_under(tmp_path / "f")
        calls["fd_close"](opened)
        for fd in (opened, host_fd, 5, 77, 1024, 2**31, 2**32 - 1):
            for name in IMPORTS:
                params = IMPORTS[name]
                if name in ("path_symlink",):
                    args = [100, 1, fd, 100, 1]
                elif name.startswith(("fd_", "path_", "sock_")):
                    args = [fd] + [0] * (len(params) - 1)
                else:
                    continue
                with pytest.raises(WasiError) as caught:
                    calls[name](*args)
                assert caught.value.errno is Errno.BADF, (name, fd)


# -- layers stack on the native implementation as on the virtual one ----------------------

def test_layers_stack_on_the_native_implementation(tmp_path: Path) -> None:
    from virtwasi.layers import audit_layer, quota_layer, read_only_layer

    (tmp_path / "notes.txt").write_bytes(b"buy milk\n")
    fstool = FIXTURES / "fstool.wasm"
    log = tmp_path.parent / "native-audit.jsonl"
    # notes.txt counts: 9 bytes of 20, then 5 more fit and 7 do not.
    layers = [("quota", quota_layer(max_bytes=20)), ("audit", audit_layer(log)),
              ("read-only", read_only_layer())]
    with WasiWorld({"/": tmp_path}, impl="native", layers=layers[2:]) as world:
        client = world.client(fstool, ["cat", "/notes.txt", "put", "/new.txt", "x"])
        assert client.start() == 1
        assert client.stdout.decode().splitlines() == [
            "cat /notes.txt: buy milk", "", "put /new.txt: errno 69 (Read-only file system)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    with WasiWorld({"/": tmp_path}, impl="native", layers=layers[:2]) as world:
        client = world.client(fstool, ["put", "/a.txt", "small", "put", "/b.txt", "too big"])
        assert client.start() == 1
        assert client.stdout.decode().splitlines() == [
            "put /a.txt: ok", "put /b.txt: errno 19 (Quota exceeded)"]
        assert [i.name for i in world.stack] == ["wasi-native", "quota", "audit"]
    assert (tmp_path / "a.txt").read_bytes() == b"small"
    assert (tmp_path / "b.txt").read_bytes() == b""  # created, then refused whole
    assert '"call":"open_at"' in log.read_text()
