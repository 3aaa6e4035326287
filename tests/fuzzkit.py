"""A seeded lockstep fuzzer of every preview 1 import, against wasmtime's built-in WASI.

One trampoline module imports all 46 functions and exports each as ``call_NAME`` with the
same raw parameters, plus its memory. It is instantiated on virtwasi (the in-memory default,
a host folder, or the native implementation over one) and on wasmtime with a host folder
preopened at ``/``. Each *episode* starts both from scratch, builds the same small tree
through WASI calls (files, directories, symlinks inside, one pointing outside, one dangling,
one looping), then makes the same seeded calls on both. Before a call, the bytes it is given
(paths, iovec arrays, subscriptions) are written into both memories; after it, the answers
are compared (a trap, an exit, or an errno) and so is all of memory, less what is not
deterministic (clocks, random bytes, inode numbers and times, directory order), after which
wasmtime's memory is made virtwasi's again so that the next call starts equal.

Differences come in kinds: ``trap-vs-errno`` (virtwasi trapped where wasmtime answered an
errno), ``errno-vs-trap``, ``errno`` (both answered, differently), ``memory`` (the same
answer, different bytes written), ``exit``.

Run ``python tests/fuzzkit.py --seeds 1-4 --calls 2500`` (or ``make fuzz``) for figures: it
exits non-zero if a difference is not one of those ``tests/test_fuzz.py`` documents.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import struct
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wasmtime

from virtwasi.client import GuestExit, GuestTrap
from virtwasi.runtime import WasiWorld
from virtwasi.wasi.abi import DIRENT, FILESTAT, IMPORTS, Errno

PAGES = 2
MEMORY = PAGES * 65536
MOUNTS = ("memory", "hostdir", "native")
KINDS = ("trap-vs-errno", "errno-vs-trap", "errno", "memory", "exit")
NAME = "fuzz.wasm"
U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1

# Every import but proc_exit (made now and then: it ends an episode), the ones that open
# and use files more often.
CHOICES = [n for n in IMPORTS if n != "proc_exit"] + ["path_open"] * 6 + [
    "fd_read", "fd_write", "fd_pread", "fd_pwrite", "fd_seek", "fd_readdir",
    "path_filestat_get", "path_rename", "path_unlink_file", "path_remove_directory"]

# --- the trampoline ----------------------------------------------------------------------


def _wasm_type(kind: str) -> str:
    return "i64" if kind in ("u64", "i64") else "i32"


def trampoline() -> bytes:
    """The module: every import, re-exported as ``call_NAME`` with its raw parameters."""
    lines = ["(module"]
    for name, params in IMPORTS.items():
        types = " ".join(_wasm_type(k) for k in params)
        result = "" if name == "proc_exit" else "(result i32)"
        lines.append(f'(import "wasi_snapshot_preview1" "{name}" '
                     f"(func ${name} (param {types}) {result}))")
    lines.append(f'(memory (export "memory") {PAGES} {PAGES})')
    for name, params in IMPORTS.items():
        types = " ".join(_wasm_type(k) for k in params)
        result = "" if name == "proc_exit" else "(result i32)"
        gets = " ".join(f"(local.get {i})" for i in range(len(params)))
        lines.append(f'(func (export "call_{name}") (param {types}) {result} '
                     f"(call ${name} {gets}))")
    lines.append(")")
    return bytes(wasmtime.wat2wasm("\n".join(lines)))


# --- calls -------------------------------------------------------------------------------


@dataclass
class Call:
    """One import called with raw ``args``, after ``data`` (address -> bytes) is written
    into memory; ``masks`` are the (address, length, how) regions whose bytes are not
    deterministic: ``skip`` them, or ``filestat`` / ``dirents`` to compare in part."""

    name: str
    args: tuple[int, ...]
    data: list[tuple[int, bytes]] = field(default_factory=list)
    masks: list[tuple[int, int, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "args": list(self.args),
                "data": [[a, d.hex()] for a, d in self.data],
                "masks": [list(m) for m in self.masks]}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Call:
        return cls(raw["name"], tuple(raw["args"]),
                   [(a, bytes.fromhex(d)) for a, d in raw["data"]],
                   [(a, n, how) for a, n, how in raw["masks"]])

    def __str__(self) -> str:
        shown = []
        for kind, arg in zip(IMPORTS[self.name], self.args, strict=True):
            shown.append(hex(arg) if arg > 0xFFFF and kind != "i64" else str(arg))
        text = f"{self.name}({', '.join(shown)})"
        for addr, raw in self.data:
            text += f" [{addr:#x}]={raw[:40]!r}{'...' if len(raw) > 40 else ''}"
        return text


def _file(path: str, content: bytes, scratch: int = 0x1000) -> list[Call]:
    """Calls that create ``path`` with ``content`` (on fd 3), leaving no fd open."""
    raw = path.encode()
    creat_trunc = 1 | 8
    rights = (1 << 1) | (1 << 6)  # read and write
    return [
        Call("path_open", (3, 0, scratch, len(raw), creat_trunc, rights, rights, 0,
                           scratch + 0x100), [(scratch, raw)]),
        # The fd just opened is the lowest free one, 4 in a fresh episode.
        Call("fd_write", (4, scratch + 0x200, 1, scratch + 0x300),
             [(scratch + 0x200, struct.pack("<II", scratch + 0x400, len(content))),
              (scratch + 0x400, content)]),
        Call("fd_close", (4,)),
    ]


def _at(path: str, name: str, scratch: int = 0x1000) -> Call:
    raw = path.encode()
    return Call(name, (3, scratch, len(raw)), [(scratch, raw)])


def _symlink(target: str, path: str, scratch: int = 0x1000) -> Call:
    old, new = target.encode(), path.encode()
    return Call("path_symlink", (scratch, len(old), 3, scratch + 0x100, len(new)),
                [(scratch, old), (scratch + 0x100, new)])


SETUP: list[Call] = [
    *_file("f", b"hello, world\n"),
    *_file("empty", b""),
    _at("d", "path_create_directory"),
    _at("d/sub", "path_create_directory"),
    _at("e", "path_create_directory"),
    *_file("d/g", b"g"),
    _symlink("f", "link"),
    _symlink("d", "dlink"),
    _symlink("../outside", "out"),
    _symlink("loop", "loop"),
    _symlink("nothing", "broken"),
    _symlink("d/sub/../../f", "deep"),
]

PATHS: list[bytes] = [
    b"f", b"empty", b"d", b"d/g", b"d/sub", b"e", b"link", b"dlink", b"out", b"loop",
    b"broken", b"deep", b"f/", b"d/", b"e/", b"link/", b"dlink/", b"out/", b"broken/",
    b"loop/", b"d/sub/", b"d/g/", b"f/.", b"d/.", b"d/..", b"d/../f", b"d/../..",
    b"..", b".", b"", b"/", b"/f", b"./f", b"d//g", b"d/./g", b"dlink/g", b"out/x",
    b"f\0", b"a\0b", b"\xff", b"new", b"new/", b"newdir", b"d/new", b"e/new", b"nope/x",
    b"x" * 255, b"x" * 256, b"d/" + b"y" * 300, b"a/" * 2100, b"e/" + b"z/" * 1500,
    b"link/.", b"dlink/..", b"../f", b"deep/", b"f/..", b"e/.",
]

# Pointers: inside (a few scratch areas), aligned or not, and at and past the end.
def _pointer(rng: random.Random, size: int = 0, align: int = 1) -> int:
    if rng.random() < 0.75:
        return rng.randrange(0x4000, 0x1C000) // max(align, 1) * max(align, 1)
    return rng.choice([
        0, 1, 2, 4, 7, 8, MEMORY - size, MEMORY - size + 1, MEMORY - max(size, 1) - 1,
        MEMORY - 8, MEMORY - 4, MEMORY - 1, MEMORY, MEMORY + 8, 1 << 31, U32_MAX,
        U32_MAX - 7, U32_MAX - 3, 0x4001, 0x4002, 0x4004,
    ]) & U32_MAX


def _length(rng: random.Random) -> int:
    return rng.choice([0, 0, 1, 2, 7, 8, 24, 64, 100, 512, 4096, MEMORY, MEMORY + 1,
                       1 << 31, U32_MAX, U32_MAX - 7])


def _u64(rng: random.Random) -> int:
    return rng.choice([0, 1, 2, 12, 13, 100, 4096, 1 << 31, 1 << 32, 1 << 62, (1 << 63) - 1,
                       1 << 63, U64_MAX, U64_MAX - 1, 1_700_000_000_000_000_000])


def _flags(rng: random.Random, width: int, defined: int) -> int:
    roll = rng.random()
    if roll < 0.75:
        return rng.randrange(0, 1 << defined)
    if roll < 0.9:
        return 0
    return rng.choice([1 << defined, rng.randrange(0, 1 << width), (1 << width) - 1,
                       1 << (width - 1)])


class Generator:
    """Seeded calls; ``fds`` are the numbers worth trying (it learns the ones opens gave)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fds: set[int] = {0, 1, 2, 3}

    def fd(self, directory: bool = False) -> int:
        """An fd: mostly one that is open (the preopen for a path), sometimes a wild one."""
        rng = self.rng
        roll = rng.random()
        opened = sorted(self.fds - {0, 1, 2, 3})
        if directory and roll < 0.6:
            return 3
        if opened and roll < 0.65:
            return rng.choice(opened)
        if roll < 0.85:
            return rng.choice([0, 1, 2, 3, 4, 5])
        return rng.choice([6, 7, 9, 33, 1 << 16, 1 << 31, U32_MAX, U32_MAX - 1])

    def path(self, data: list[tuple[int, bytes]]) -> tuple[int, int]:
        rng = self.rng
        raw = rng.choice(PATHS)
        roll = rng.random()
        if roll < 0.85:
            ptr = rng.randrange(0x4000, 0x1C000 - len(raw)) if len(raw) < 0x18000 else 0x4000
            data.append((ptr, raw))
            return ptr, len(raw)
        if roll < 0.93 and len(raw) < 0x1000:  # ending exactly at the end of memory
            data.append((MEMORY - len(raw), raw))
            return MEMORY - len(raw), len(raw) + rng.choice([0, 0, 1, 100])
        return _pointer(rng), _length(rng)

    def iovecs(self, data: list[tuple[int, bytes]]) -> tuple[int, int]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.15:
            return _pointer(rng, 8, 4), rng.choice([0, 1, 2, 1 << 24, U32_MAX, (1 << 24) - 1])
        count = rng.choice([0, 1, 1, 1, 2, 3])
        entries = []
        for _ in range(count):
            kind = rng.random()
            if kind < 0.5:
                entries.append((rng.randrange(0x4000, 0x1B000), rng.choice([1, 5, 13, 100,
                                                                              4096])))
            elif kind < 0.7:
                entries.append((_pointer(rng), 0))
            else:
                entries.append((_pointer(rng), _length(rng)))
        raw = b"".join(struct.pack("<II", b & U32_MAX, n & U32_MAX) for b, n in entries)
        if rng.random() < 0.85 or not raw:
            ptr = rng.randrange(0x1C000, 0x1F000) // 4 * 4
        else:
            ptr = MEMORY - len(raw) + rng.choice([0, 0, 4, 1])
        if raw:
            data.append((ptr, raw[: MEMORY - ptr]))
        if rng.random() < 0.1:
            count = rng.choice([count + 1, 1 << 24, U32_MAX])
        return ptr, count

    def subscriptions(self, data: list[tuple[int, bytes]]) -> tuple[int, int]:
        """A subscription array with short timeouts only (a poll must not sleep long)."""
        rng = self.rng
        count = rng.choice([0, 1, 1, 2, 3])
        subs = bytearray()
        for i in range(count):
            tag = rng.choice([0, 0, 1, 2, 3, 200])
            head = struct.pack("<QB7x", 1000 + i, tag)
            if tag == 0:
                clock = rng.choice([0, 1, 1, 2, 3, 7])
                flags = rng.choice([0, 0, 1, 2, 0xFFFF])
                # Timeouts a hair apart would race (which is due when the check runs):
                # none or 2 ms, and absolute times long past.
                timeout = rng.choice([0, 0, 2_000_000]) if not flags & 1 else rng.choice([0, 1])
                body = struct.pack("<I4xQQH6x", clock, timeout, rng.choice([0, U64_MAX]),
                                   flags)
            else:
                body = struct.pack("<I28x", self.fd())
            subs += head + body
        ptr = rng.randrange(0x4000, 0x1A000) // 8 * 8 + rng.choice([0, 0, 0, 4])
        if subs:
            data.append((ptr, bytes(subs)))
        if rng.random() < 0.1:
            return rng.choice([(ptr, U32_MAX), (MEMORY - 48 * max(count, 1) + 48, count),
                               (_pointer(rng), count)])
        return ptr, count

    def call(self) -> Call:
        rng = self.rng
        name = rng.choice(CHOICES)
        if rng.random() < 0.003:
            name = "proc_exit"
        return self.make(name)

    def make(self, name: str) -> Call:
        rng = self.rng
        data: list[tuple[int, bytes]] = []
        masks: list[tuple[int, int, str]] = []

        def out(size: int, align: int, how: str = "") -> int:
            ptr = _pointer(rng, size, align)
            if rng.random() < 0.1:
                ptr = (ptr + rng.choice([1, 2, 4])) & U32_MAX
            if how:
                masks.append((ptr, size, how))
            return ptr

        def lookup() -> int:
            return _flags(rng, 32, 1)

        a: tuple[int, ...]
        if name in ("args_get", "environ_get"):
            a = (out(8, 4), out(32, 1))
        elif name in ("args_sizes_get", "environ_sizes_get"):
            a = (out(4, 4), out(4, 4))
        elif name == "clock_res_get":
            a = (rng.choice([0, 1, 2, 3, 4, 99, U32_MAX]), out(8, 8, "skip"))
        elif name == "clock_time_get":
            a = (rng.choice([0, 1, 2, 3, 4, 99, U32_MAX]), _u64(rng), out(8, 8, "skip"))
        elif name == "fd_advise":
            a = (self.fd(), _u64(rng), _u64(rng), rng.choice([0, 1, 2, 3, 4, 5, 6, 255,
                                                                 U32_MAX]))
        elif name == "fd_allocate":
            a = (self.fd(), _u64(rng), _u64(rng))
        elif name in ("fd_close", "fd_datasync", "fd_sync"):
            a = (self.fd(),)
        elif name == "fd_fdstat_get":
            a = (self.fd(), out(24, 8, "fdstat"))
        elif name == "fd_fdstat_set_flags":
            a = (self.fd(), _flags(rng, 16, 5))
        elif name == "fd_fdstat_set_rights":
            a = (self.fd(), _flags(rng, 64, 30), _flags(rng, 64, 30))
        elif name == "fd_filestat_get":
            a = (self.fd(), out(64, 8, "filestat"))
        elif name == "fd_filestat_set_size":
            a = (self.fd(), rng.choice([0, 1, 5, 13, 100, 1 << 20, 1 << 62, U64_MAX]))
        elif name == "fd_filestat_set_times":
            a = (self.fd(), _u64(rng), _u64(rng), _flags(rng, 16, 4))
        elif name in ("fd_pread", "fd_pwrite"):
            iovs, count = self.iovecs(data)
            a = (self.fd(), iovs, count, _u64(rng), out(4, 4))
        elif name in ("fd_read", "fd_write"):
            iovs, count = self.iovecs(data)
            a = (self.fd(), iovs, count, out(4, 4))
        elif name == "fd_prestat_get":
            a = (self.fd(), out(8, 4, "prestat"))
        elif name == "fd_prestat_dir_name":
            a = (self.fd(), out(4, 1), rng.choice([0, 1, 2, 100, U32_MAX]))
        elif name == "fd_readdir":
            length = rng.choice([0, 1, 23, 24, 25, 100, 4096, U32_MAX])
            a = (self.fd(True), out(min(length, 4096), 1, "dirents"), length,
                 rng.choice([0, 0, 1, 2, 3, 5, 100, U64_MAX]), out(4, 4, "dirents-used"))
        elif name == "fd_renumber":
            a = (self.fd(), self.fd())
        elif name == "fd_seek":
            a = (self.fd(), rng.choice([0, 1, -1, 5, -100, 1 << 62, -(1 << 63), (1 << 63) - 1]),
                 rng.choice([0, 1, 2, 3, 255, U32_MAX]), out(8, 8))
        elif name == "fd_tell":
            a = (self.fd(), out(8, 8))
        elif name == "path_create_directory" or name in ("path_remove_directory",
                                                          "path_unlink_file"):
            ptr, length = self.path(data)
            a = (self.fd(True), ptr, length)
        elif name == "path_filestat_get":
            fd, flags = self.fd(True), lookup()
            ptr, length = self.path(data)
            a = (fd, flags, ptr, length, out(64, 8, "filestat"))
        elif name == "path_filestat_set_times":
            fd, flags = self.fd(True), lookup()
            ptr, length = self.path(data)
            a = (fd, flags, ptr, length, _u64(rng), _u64(rng), _flags(rng, 16, 4))
        elif name == "path_link":
            fd, flags = self.fd(True), lookup()
            old, old_len = self.path(data)
            new_fd = self.fd(True)
            new, new_len = self.path(data)
            a = (fd, flags, old, old_len, new_fd, new, new_len)
        elif name == "path_open":
            fd, flags = self.fd(True), lookup()
            ptr, length = self.path(data)
            common = rng.random() < 0.7  # the flags programs use, else any
            oflags = rng.choice([0, 0, 1, 1, 2, 5, 9]) if common else _flags(rng, 16, 4)
            base = rng.choice([0, 2, 64, 66, (1 << 30) - 1]) if common else _flags(rng, 64, 30)
            inheriting = rng.choice([0, (1 << 30) - 1]) if common else _flags(rng, 64, 30)
            fdflags = rng.choice([0, 0, 0, 1, 4]) if common else _flags(rng, 16, 5)
            a = (fd, flags, ptr, length, oflags, base, inheriting, fdflags, out(4, 4))
        elif name == "path_readlink":
            fd = self.fd(True)
            ptr, length = self.path(data)
            a = (fd, ptr, length, out(16, 1), rng.choice([0, 1, 2, 5, 100, U32_MAX]),
                 out(4, 4))
        elif name == "path_rename":
            fd = self.fd(True)
            old, old_len = self.path(data)
            new_fd = self.fd(True)
            new, new_len = self.path(data)
            a = (fd, old, old_len, new_fd, new, new_len)
        elif name == "path_symlink":
            old, old_len = self.path(data)
            fd = self.fd(True)
            new, new_len = self.path(data)
            a = (old, old_len, fd, new, new_len)
        elif name == "poll_oneoff":
            subs, count = self.subscriptions(data)
            a = (subs, out(32 * max(min(count, 4), 1), 8, "events"), count, out(4, 4))
        elif name == "proc_exit":
            a = (rng.choice([0, 1, 125, 126, 255, U32_MAX]),)
        elif name == "proc_raise":
            a = (rng.choice([0, 1, 15, 30, 31, U32_MAX]),)
        elif name == "sched_yield":
            a = ()
        elif name == "random_get":
            length = rng.choice([0, 0, 1, 16, 4096, MEMORY, U32_MAX])
            a = (out(min(length, 4096), 1, "skip"), length)
            masks[-1] = (a[0], min(length, MEMORY), "skip")
        elif name == "sock_accept":
            a = (self.fd(), _flags(rng, 16, 5), out(4, 4))
        elif name == "sock_recv":
            iovs, count = self.iovecs(data)
            a = (self.fd(), iovs, count, _flags(rng, 16, 2), out(4, 4), out(2, 2))
        elif name == "sock_send":
            iovs, count = self.iovecs(data)
            a = (self.fd(), iovs, count, _flags(rng, 16, 0), out(4, 4))
        elif name == "sock_shutdown":
            a = (self.fd(), _flags(rng, 8, 2))
        else:
            raise AssertionError(name)
        return Call(name, a, data, masks)


# --- the two runtimes --------------------------------------------------------------------

Outcome = tuple[str, int]  # ("errno", n) | ("trap", 0) | ("exit", code)


def _signed(kind: str, value: int) -> int:
    bits = 64 if kind in ("u64", "i64") else 32
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


class Wasmtime:
    """The trampoline on wasmtime's built-in WASI, ``root`` preopened as ``/``."""

    def __init__(self, module: bytes, root: Path, scratch: Path) -> None:
        self.engine = wasmtime.Engine()
        self.store = wasmtime.Store(self.engine)
        linker = wasmtime.Linker(self.engine)
        linker.define_wasi()
        config = wasmtime.WasiConfig()
        config.argv = [NAME, "one", "two"]
        config.env = [("K", "V")]
        (scratch / "stdin").write_bytes(b"")
        self.stdout_path = scratch / "stdout"
        config.stdin_file = str(scratch / "stdin")
        config.stdout_file = str(self.stdout_path)
        config.stderr_file = str(scratch / "stderr")
        config.preopen_dir(str(root), "/")
        self.store.set_wasi(config)
        self.instance = linker.instantiate(self.store, wasmtime.Module(self.engine, module))
        exports = self.instance.exports(self.store)
        memory = exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self.memory = memory
        self.funcs = {name: exports[f"call_{name}"] for name in IMPORTS}

    def call(self, call: Call) -> Outcome:
        args = [_signed(k, a) for k, a in zip(IMPORTS[call.name], call.args, strict=True)]
        try:
            result = self.funcs[call.name](self.store, *args)  # type: ignore[operator]
        except wasmtime.ExitTrap as exc:
            return ("exit", exc.code)
        except (wasmtime.Trap, wasmtime.WasmtimeError):
            return ("trap", 0)
        return ("errno", result & 0xFFFF if result is not None else 0)

    def read(self) -> bytes:
        return bytes(self.memory.read(self.store, 0, MEMORY))

    def write(self, addr: int, raw: bytes) -> None:
        self.memory.write(self.store, raw, addr)

    def stdout(self) -> bytes:
        return self.stdout_path.read_bytes()

    def close(self) -> None:
        del self.instance, self.store


class Virtwasi:
    """The trampoline as a client of a virtwasi world over ``mount``."""

    def __init__(self, module: bytes, mount: str, root: Path) -> None:
        if mount == "memory":
            self.world = WasiWorld()
        else:
            self.world = WasiWorld({"/": root}, impl="native" if mount == "native"
                                   else "virtual")
        self.client = self.world.client(module, ["one", "two"], env={"K": "V"}, stdin=b"",
                                        name=NAME)

    def call(self, call: Call) -> Outcome:
        args = [_signed(k, a) for k, a in zip(IMPORTS[call.name], call.args, strict=True)]
        try:
            result = self.client.call(f"call_{call.name}", *args)
        except GuestExit as exc:
            return ("exit", exc.code)
        except GuestTrap:
            return ("trap", 0)
        return ("errno", result & 0xFFFF if result is not None else 0)

    def read(self) -> bytes:
        return self.client.read_memory(0, MEMORY)

    def write(self, addr: int, raw: bytes) -> None:
        self.client.write_memory(addr, raw)

    def stdout(self) -> bytes:
        return self.client.stdout

    def close(self) -> None:
        self.world.close()


# --- comparing ---------------------------------------------------------------------------


def _region(mem: bytearray, ptr: int, length: int) -> tuple[int, int]:
    start = min(ptr, len(mem))
    return start, min(ptr + length, len(mem))


def _dirents(raw: bytes) -> list[tuple[bytes, int]] | bytes:
    """The names and types of whole dirents in ``raw``, sorted (order and inodes are the
    storage's own); the raw length if the buffer ended inside one."""
    found, at = [], 0
    while at + DIRENT.size <= len(raw):
        _, _, namlen, kind = DIRENT.unpack_from(raw, at)
        if at + DIRENT.size + namlen > len(raw):
            break
        found.append((raw[at + DIRENT.size:at + DIRENT.size + namlen], kind))
        at += DIRENT.size + namlen
    return sorted(found)


# The padding bytes of the structs a call writes whole: wasmtime writes field by field and
# leaves them as they were, virtwasi packs each struct in one go, with zeros between fields.
PADDING = {"fdstat": (24, [1, 4, 5, 6, 7]), "prestat": (8, [1, 2, 3]),
           "events": (32, [11, 12, 13, 14, 15, 26, 27, 28, 29, 30, 31])}


def normalized(call: Call, outcome: Outcome, mem: bytes, padding: bool = False
               ) -> tuple[bytes, Any]:
    """Memory with the call's non-deterministic regions blanked, and what stands for them;
    with ``padding``, the padding bytes of the structs it wrote blanked too."""
    out = bytearray(mem)
    extra: list[Any] = []
    used = None
    for ptr, _, how in call.masks:
        if how == "dirents-used" and ptr + 4 <= len(out):
            used = struct.unpack_from("<I", out, ptr)[0]
    for ptr, length, how in call.masks:
        start, end = _region(out, ptr, length)
        if start >= end or outcome != ("errno", 0):
            if how == "skip":
                out[start:end] = bytes(end - start)
            continue
        if how == "filestat" and end - start == FILESTAT.size:
            kind, size = FILESTAT.unpack_from(out, start)[2:5:2]
            extra.append(("filestat", kind, size if kind != 3 else None))
            out[start:end] = bytes(end - start)
        elif how == "dirents":
            take = min(used or 0, end - start)
            listing: Any = _dirents(bytes(out[start:start + take]))
            if call.args[3] > 2:  # which entries a cookie skips is the storage's order
                listing = len(listing)
                used_at = call.args[4]
                out[used_at:used_at + 4] = bytes(4)
            extra.append(("dirents", listing if take < length else "full"))
            out[start:end] = bytes(end - start)
        elif how == "skip":
            out[start:end] = bytes(end - start)
        elif how in PADDING and padding:
            size, holes = PADDING[how]
            for at in range(start, end - size + 1, size):
                for hole in holes:
                    out[at + hole] = 0
    return bytes(out), extra


@dataclass
class Difference:
    kind: str
    call: Call
    virtwasi: Outcome
    wasmtime: Outcome
    detail: str
    index: int  # the call's place in its episode (0 = first after setup)
    prefix: list[Call]  # the calls before it in its episode

    def __str__(self) -> str:
        return (f"{self.kind}: {self.call} -> virtwasi {_show(self.virtwasi)}, wasmtime "
                f"{_show(self.wasmtime)}{' ' + self.detail if self.detail else ''}")


def _show(outcome: Outcome) -> str:
    what, value = outcome
    if what == "errno":
        return Errno(value).name if value in Errno._value2member_map_ else str(value)
    return "trap" if what == "trap" else f"exit {value}"


def classify(virt: Outcome, ref: Outcome) -> str | None:
    if virt == ref:
        return None
    if virt[0] == "trap" and ref[0] == "errno":
        return "trap-vs-errno"
    if virt[0] == "errno" and ref[0] == "trap":
        return "errno-vs-trap"
    if virt[0] == ref[0] == "errno":
        return "errno"
    return "exit"


def _first_difference(a: bytes, b: bytes) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x != y:
            return f"memory first differs at {i:#x}: {a[i:i + 16].hex()} vs {b[i:i + 16].hex()}"
    return ""


# --- running -----------------------------------------------------------------------------


@dataclass
class Report:
    mount: str
    calls: int = 0
    differences: list[Difference] = field(default_factory=list)

    def counts(self) -> Counter[str]:
        return Counter(d.kind for d in self.differences)

    def summary(self) -> str:
        counts = self.counts()
        kinds = ", ".join(f"{k} {counts.get(k, 0)}" for k in KINDS)
        return f"{self.mount}: {self.calls} calls; {kinds}"


_MODULE: bytes | None = None


def module() -> bytes:
    global _MODULE
    if _MODULE is None:
        _MODULE = trampoline()
    return _MODULE


class Episode:
    """Both runtimes from scratch over ``mount``, the same tree built on both."""

    def __init__(self, mount: str, scratch: Path) -> None:
        self.scratch = scratch
        (scratch / "ref").mkdir()
        (scratch / "virt").mkdir()
        (scratch / "io").mkdir()
        self.ref = Wasmtime(module(), scratch / "ref", scratch / "io")
        self.virt = Virtwasi(module(), mount, scratch / "virt")
        self.done = False
        self.prefix: list[Call] = []
        for call in SETUP:
            virt, ref, _ = self.step(call)
            assert virt == ref, f"setup {call}: virtwasi {virt}, wasmtime {ref}"
        self.prefix = []

    def step(self, call: Call) -> tuple[Outcome, Outcome, str]:
        """Make ``call`` on both; the outcomes and how memory differed ('' if it did not)."""
        for addr, raw in call.data:
            if not raw:
                continue
            self.virt.write(addr, raw)
            self.ref.write(addr, raw)
        virt = self.virt.call(call)
        ref = self.ref.call(call)
        self.prefix.append(call)
        vm, rm = self.virt.read(), self.ref.read()
        detail = ""
        # After a trap the guest is gone: what the call wrote before it is seen by no one.
        if vm != rm:
            nv, ev = normalized(call, virt, vm)
            nr, er = normalized(call, ref, rm)
            if virt[0] == ref[0] == "trap":
                pass
            elif nv != nr:
                if normalized(call, virt, vm, True)[0] == normalized(call, ref, rm, True)[0]:
                    detail = "padding: " + _first_difference(nv, nr)
                else:
                    detail = _first_difference(nv, nr)
            elif ev != er:
                detail = f"{ev} vs {er}"
            self.ref.write(0, vm)
        if virt[0] == "exit" or ref[0] == "exit":
            self.done = True
        return virt, ref, detail

    def close(self) -> None:
        self.virt.close()
        self.ref.close()


def _scratch(mount: str) -> tempfile.TemporaryDirectory[str]:
    """Where an episode's folders go. The in-memory tree is compared with wasmtime over
    Linux's own in-memory file system, tmpfs, whose largest file (2**63 - 1 bytes) is the
    in-memory tree's; a disk's is smaller (16 TiB on ext4)."""
    shm = Path("/dev/shm")
    where = str(shm) if mount == "memory" and shm.is_dir() and os.access(shm, os.W_OK) else None
    return tempfile.TemporaryDirectory(prefix="virtwasi-fuzz-", dir=where)


def run(seed: int, calls: int, mount: str, episode_length: int = 100,
        report: Report | None = None) -> Report:
    """``calls`` seeded calls over ``mount``, in episodes of ``episode_length``."""
    report = report or Report(mount)
    gen = Generator(seed)
    made = 0
    while made < calls:
        with _scratch(mount) as tmp:
            episode = Episode(mount, Path(tmp))
            gen.fds = {0, 1, 2, 3}
            try:
                for _ in range(min(episode_length, calls - made)):
                    call = gen.call()
                    made += 1
                    report.calls += 1
                    _record(report, episode, call, gen)
                    if episode.done:
                        break
                if not episode.done and episode.virt.stdout() != episode.ref.stdout():
                    report.differences.append(Difference(
                        "memory", Call("fd_write", (1, 0, 0, 0)), ("errno", 0), ("errno", 0),
                        "stdout differs at the end of the episode", len(episode.prefix),
                        list(episode.prefix)))
            finally:
                episode.close()
    return report


def _record(report: Report, episode: Episode, call: Call, gen: Generator
            ) -> Difference | None:
    prefix = list(episode.prefix)
    virt, ref, detail = episode.step(call)
    kind = classify(virt, ref) or ("memory" if detail else None)
    if kind is None:
        if call.name == "path_open" and virt == ("errno", 0):
            _learn_fd(episode, call, gen)
        return None
    diff = Difference(kind, call, virt, ref, detail, len(prefix), prefix)
    report.differences.append(diff)
    return diff


def _learn_fd(episode: Episode, call: Call, gen: Generator) -> None:
    ptr = call.args[-1]
    if ptr + 4 <= MEMORY:
        gen.fds.add(struct.unpack("<I", episode.virt.read()[ptr:ptr + 4])[0])


def replay(calls: Sequence[Call], mount: str) -> list[tuple[Outcome, Outcome, str]]:
    """``calls`` in one fresh episode over ``mount``: each one's outcomes and memory
    difference."""
    with _scratch(mount) as tmp:
        episode = Episode(mount, Path(tmp))
        try:
            return [episode.step(call) for call in calls]
        finally:
            episode.close()


def differs(results: Sequence[tuple[Outcome, Outcome, str]]) -> bool:
    virt, ref, detail = results[-1]
    return virt != ref or bool(detail)


def shrink(diff: Difference, mount: str) -> list[Call]:
    """The shortest sequence found that still ends in the difference: the call alone, or
    the call after a few of the calls before it."""
    for keep in (0, 1, 2, 4, 8, 16):
        if keep > len(diff.prefix):
            break
        calls = [*diff.prefix[len(diff.prefix) - keep:], diff.call]
        if differs(replay(calls, mount)):
            return calls
    return [*diff.prefix, diff.call]


def signature(diff: Difference) -> str:
    """A key grouping differences that are likely one cause: the import, the kind and
    the two answers."""
    return f"{diff.call.name} {diff.kind} {_show(diff.virtwasi)}/{_show(diff.wasmtime)}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1-4", help="e.g. 1-4 or 1,7,9")
    parser.add_argument("--calls", type=int, default=2500, help="calls per seed and mount")
    parser.add_argument("--mounts", default="memory,hostdir,native")
    parser.add_argument("--show", type=int, default=3, help="examples shown per signature")
    parser.add_argument("--corpus", type=Path, help="append shrunk cases to this JSON file")
    args = parser.parse_args(argv)
    seeds: list[int] = []
    for part in args.seeds.split(","):
        lo, _, hi = part.partition("-")
        seeds.extend(range(int(lo), int(hi or lo) + 1))
    from test_fuzz import documented  # the differences left on purpose, with why

    total = 0
    for mount in args.mounts.split(","):
        report = Report(mount)
        for seed in seeds:
            run(seed, args.calls, mount, report=report)
        reasons = Counter(documented(diff) for diff in report.differences)
        known = sum(n for reason, n in reasons.items() if reason is not None)
        print(f"{report.summary()}; of which documented {known}"
              + "".join(f", {r} {n}" for r, n in reasons.items() if r is not None))
        total += len(report.differences) - known
        groups: dict[str, list[Difference]] = {}
        for diff in report.differences:
            reason = documented(diff)
            key = signature(diff) + (f" (documented: {reason})" if reason else "")
            groups.setdefault(key, []).append(diff)
        for key, diffs in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            print(f"  {len(diffs):5d}  {key}")
            for diff in diffs[: args.show]:
                print(f"         {diff}")
        if args.corpus is not None:
            _extend_corpus(args.corpus, mount, groups)
    return 1 if total else 0


def _extend_corpus(path: Path, mount: str, groups: dict[str, list[Difference]]) -> None:
    cases = json.loads(path.read_text()) if path.exists() else []
    for key, diffs in groups.items():
        calls = shrink(diffs[0], mount)
        digest = hashlib.sha1(json.dumps([c.to_json() for c in calls]).encode()).hexdigest()
        cases.append({"id": digest[:12], "found": key, "mount": mount,
                      "calls": [c.to_json() for c in calls]})
    path.write_text(json.dumps(cases, indent=1) + "\n")


def iter_corpus(path: Path) -> Iterator[tuple[str, list[Call]]]:
    for case in json.loads(path.read_text()):
        yield case["id"], [Call.from_json(c) for c in case["calls"]]


if __name__ == "__main__":
    sys.exit(main())
