"""The read-only layer: an unprivileged instance stacked on the WASI implementation.

Real wasm clients read through it and every write path is refused, with the tree untouched;
what they leave open is closed below when they are torn down; and a read-only handle never
turns back into a writable one (the "dynamic cast" question of the 2021 notes).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from conftest import FIXTURES
from probekit import script

from virtwasi.filesystem import interface
from virtwasi.filesystem.errors import ErrorCode, FsError
from virtwasi.filesystem.interface import FUNCTIONS
from virtwasi.layers import read_only_layer
from virtwasi.runtime import WasiWorld
from virtwasi.storage.memfs import MemoryStorage
from virtwasi.storage.tree import snapshot
from virtwasi.wasi.abi import Errno, Fdflags, Fstflags, Oflags, Rights
from virtwasi.wasi.preview1 import MUTATING_RIGHTS
from virtwasi.world import (
    Context,
    Func,
    Instance,
    ResourceType,
    Semantics,
    Trap,
    TrapReason,
    lent,
)

FSTOOL = str(FIXTURES / "fstool.wasm")
MEDIATED = [Semantics.COMPONENT_MODEL, Semantics.PROPOSAL_2021]
ROFS, BADF = int(Errno.ROFS), int(Errno.BADF)


def folder() -> MemoryStorage:
    tree = MemoryStorage()
    tree.fs.pipe("/notes.txt", b"buy milk\n")
    tree.fs.pipe("/d/inside.txt", b"deep\n")
    return tree


def read_only(tree: MemoryStorage, semantics: Semantics) -> WasiWorld:
    return WasiWorld({"/": tree}, semantics=semantics, layers=[("read-only", read_only_layer())])


def held_types(inst: Instance) -> set[tuple[str, str]]:
    """The types of the handles ``inst`` holds, each as (its definer's name, its name)."""
    return {(held.definer_name, held.type_name) for held in inst.holdings()}


def types(world: WasiWorld) -> tuple[ResourceType, ResourceType]:
    """(the implementation's descriptor type, the layer's read-only one)."""
    return (world.implementation.types["descriptor"], world.wasi.types["descriptor"])


@pytest.mark.parametrize("semantics", list(Semantics))
def test_reads_pass_and_every_write_path_is_erofs(semantics: Semantics) -> None:
    tree = folder()
    before = snapshot(tree)
    with read_only(tree, semantics) as world:
        client = world.client(FSTOOL, [
            "cat", "/notes.txt", "ls", "/", "ls", "/d", "stat", "/d/inside.txt",
            "put", "/notes.txt", "gone", "put", "/new.txt", "hi", "append", "/notes.txt", "x",
            "mkdir", "/e", "rm", "/notes.txt", "mv", "/notes.txt", "/moved.txt",
        ])
        assert client.start() == 1  # fstool exits 1 when any command failed
        assert client.stdout.decode().splitlines() == [
            "cat /notes.txt: buy milk", "",
            "ls /: d notes.txt",
            "ls /d: inside.txt",
            "stat /d/inside.txt: file, 5 bytes",
            "put /notes.txt: errno 69 (Read-only file system)",
            "put /new.txt: errno 69 (Read-only file system)",
            "append /notes.txt: errno 69 (Read-only file system)",
            "mkdir /e: errno 69 (Read-only file system)",
            "rm /notes.txt: errno 69 (Read-only file system)",
            "mv /notes.txt: errno 69 (Read-only file system)",
        ]
    assert snapshot(tree) == before


def test_the_same_commands_write_without_the_layer() -> None:
    tree = folder()
    with WasiWorld({"/": tree}) as world:
        client = world.client(FSTOOL, ["put", "/new.txt", "hi", "mkdir", "/e"])
        assert client.start() == 0
    assert tree.fs.cat("/new.txt") == b"hi" and tree.lstat("e").kind.value == "directory"


# A probe (see probekit): each call's errno, then the bytes read and two fdstats.
NOTES, LINK, NEW, DIR = 1024, 1040, 1060, 1080
IOVEC, FD_OUT, NBYTES, FD_OUT2, FDSTATS = 2048, 3000, 3004, 3008, 3016
DATA = {NOTES: b"notes.txt", LINK: b"link", NEW: b"new.txt", DIR: b"d",
        IOVEC: struct.pack("<II", 4096, 4)}
READ = int(Rights.FD_READ | Rights.FD_SEEK)
NOW = int(Fstflags.MTIM_NOW)
PROBE = [  # (import, args, errno through the read-only layer)
    ("path_open", (3, 0, NOTES, 9, 0, READ, 0, 0, FD_OUT), 0),  # fd 4
    ("fd_read", (4, IOVEC, 1, NBYTES), 0),
    ("fd_write", (4, IOVEC, 1, NBYTES), BADF),
    ("fd_pwrite", (4, IOVEC, 1, 0, NBYTES), BADF),
    ("fd_filestat_set_size", (4, 0), BADF),
    ("fd_allocate", (4, 0, 10), int(Errno.NOTSUP)),  # never offered, as in wasmtime
    ("fd_filestat_set_times", (4, 0, 0, NOW), ROFS),
    ("path_filestat_set_times", (3, 0, NOTES, 9, 0, 0, NOW), ROFS),
    ("path_symlink", (NOTES, 9, 3, LINK, 4), ROFS),
    ("path_link", (3, 0, NOTES, 9, 3, LINK, 4), ROFS),
    ("path_open", (3, 0, NOTES, 9, 0, READ | int(Rights.FD_WRITE), 0, 0, FD_OUT2), ROFS),
    ("path_open", (3, 0, NEW, 7, int(Oflags.CREAT), READ, 0, 0, FD_OUT2), ROFS),
    ("path_open", (3, 0, NOTES, 9, int(Oflags.TRUNC), READ, 0, 0, FD_OUT2), ROFS),
    # Appending is writing: the open passes (as a read-only one), the append does not.
    ("path_open", (3, 0, NOTES, 9, 0, READ, 0, int(Fdflags.APPEND), FD_OUT2), 0),  # fd 5
    ("fd_write", (5, IOVEC, 1, NBYTES), BADF),
    ("path_create_directory", (3, NEW, 7), ROFS),
    ("path_remove_directory", (3, DIR, 1), ROFS),
    ("path_unlink_file", (3, NOTES, 9), ROFS),
    ("path_rename", (3, NOTES, 9, 3, NEW, 7), ROFS),
    ("fd_fdstat_get", (3, FDSTATS), 0),
    ("fd_fdstat_get", (4, FDSTATS + 24), 0),
    ("fd_close", (4,), 0),
    ("fd_read", (4, IOVEC, 1, NBYTES), BADF),
]


@pytest.mark.parametrize("semantics", list(Semantics))
def test_every_preview1_write_path_through_the_layer(semantics: Semantics) -> None:
    tree = folder()
    before = snapshot(tree)
    module = script([(name, args) for name, args, _ in PROBE], DATA, [(4096, 4), (FDSTATS, 48)])
    with read_only(tree, semantics) as world:
        client = world.client(module)
        assert client.start() == 0
        out = client.stdout
    assert list(out[:len(PROBE)]) == [errno for _, _, errno in PROBE]
    assert out[len(PROBE):len(PROBE) + 4] == b"buy "
    for at in (len(PROBE) + 4, len(PROBE) + 4 + 24):  # fdstats: no right to change the tree
        rights, inheriting = struct.unpack_from("<QQ", out, at + 8)
        assert rights & MUTATING_RIGHTS == 0 and inheriting & MUTATING_RIGHTS == 0
        assert rights & Rights.FD_READ or rights & Rights.PATH_OPEN
    assert snapshot(tree) == before


def test_set_times_succeeds_without_the_layer() -> None:
    module = script([PROBE[0][:2], PROBE[6][:2], PROBE[7][:2]], DATA)
    with WasiWorld({"/": folder()}) as world:
        client = world.client(module)
        assert client.start() == 0 and client.stdout[:3] == b"\0\0\0"


# Opens a file and a directory, starts listing the directory, and closes nothing.
LEAVE_OPEN = script([
    ("path_open", (3, 0, NOTES, 9, 0, READ, 0, 0, FD_OUT)),
    ("path_open", (3, 0, DIR, 1, int(Oflags.DIRECTORY), int(Rights.FD_READDIR), 0, 0, FD_OUT)),
    ("fd_readdir", (5, 5000, 256, 0, NBYTES)),
], DATA)


@pytest.mark.parametrize("semantics", MEDIATED)
def test_teardown_closes_below_what_a_client_left_open(semantics: Semantics) -> None:
    tree = folder()
    with read_only(tree, semantics) as world:
        descriptor, ro = types(world)
        stream = world.implementation.types["directory-entry-stream"]
        client = world.client(LEAVE_OPEN)
        assert client.start() == 0 and client.stdout == b"\0\0\0"
        # Preopen, file and directory, each once below and once as its read-only wrapper.
        assert descriptor.live_count == ro.live_count == 3 and stream.live_count == 1
        # The client holds only the layer's types; the lower handles stay in the layer.
        assert held_types(client.instance) == {
            (ro.definer_name, ro.name), (world.wasi.name, "ro-directory-entry-stream")}
        assert world.wasi.handle_count == 4
        # Unlinked while open: its bytes live until the last open file closes.
        tree.unlink("notes.txt")
        assert tree.used_bytes == len(b"buy milk\n") + len(b"deep\n")
        client.close()
        assert descriptor.live_count == ro.live_count == stream.live_count == 0
        assert world.wasi.handle_count == 0
        assert tree.used_bytes == len(b"deep\n")  # the storage file was closed too


@pytest.mark.parametrize("semantics", MEDIATED)
def test_fd_close_through_the_layer_closes_below_at_once(semantics: Semantics) -> None:
    module = script([PROBE[0][:2], ("fd_close", (4,))], DATA)
    with read_only(folder(), semantics) as world:
        descriptor, ro = types(world)
        client = world.client(module)
        assert client.start() == 0 and client.stdout == b"\0\0"
        assert descriptor.live_count == ro.live_count == 1  # only the preopen is left


def test_transparent_teardown_tells_nobody() -> None:
    with read_only(folder(), Semantics.TRANSPARENT) as world:
        descriptor, ro = types(world)
        client = world.client(LEAVE_OPEN)
        client.start()
        client.close()
        assert descriptor.live_count == ro.live_count == 3  # leaked, layer or not


@pytest.mark.parametrize("semantics", list(Semantics))
def test_tearing_the_layer_down_closes_everything_below(semantics: Semantics) -> None:
    with read_only(folder(), semantics) as world:
        descriptor, ro = types(world)
        client = world.client(LEAVE_OPEN)
        assert client.start() == 0
        world.world.destroy(world.wasi)  # while the client still holds its handles
        assert descriptor.live_count == ro.live_count == 0
        assert world.implementation.handle_count == 0


def test_the_layer_serves_every_function_of_the_interface() -> None:
    with read_only(folder(), Semantics.COMPONENT_MODEL) as world:
        below, above = world.implementation, world.wasi
        assert set(below.functions) == set(above.functions) == set(FUNCTIONS)
        assert set(above.types) == set(below.types)
        for name, rtype in above.types.items():
            assert above.defines(rtype) and rtype.name == f"ro-{below.types[name].name}"


def test_what_changes_the_tree_is_refused_by_category() -> None:
    with read_only(folder(), Semantics.COMPONENT_MODEL) as world:
        ro = world.wasi.exports
        root = ro.preopen(0)
        for call, args in (("create_directory_at", ("new",)),
                           ("set_times_at", (0, "notes.txt", None, None)),
                           ("unlink_file_at", ("notes.txt",))):
            with pytest.raises(FsError) as refused:
                getattr(ro, call)(root, *args)
            assert refused.value.code is ErrorCode.READ_ONLY
        with pytest.raises(FsError) as refused:
            ro.open_at(root, 0, "notes.txt", 0, interface.READ | interface.WRITE)
        assert refused.value.code is ErrorCode.READ_ONLY


# -- the dynamic cast ----------------------------------------------------------------------


class Sneaky:
    """An instance ("X" in the notes) whose run() is given a read-only descriptor, and which
    also imports the writable implementation: can it write through what it was given?"""

    def __init__(self) -> None:
        self.attempts: dict[str, str] = {}
        self.look_at_table: Callable[[], set[tuple[str, str]]] = set  # set once instantiated
        self.table_during_run: set[tuple[str, str]] = set()

    def __call__(self, ctx: Context) -> dict[str, Func | ResourceType]:
        rw = ctx.imports["rw"]
        ro = ctx.imports["ro"]["descriptor"]
        assert isinstance(ro, ResourceType)

        def attempt(what: str, action: Callable[[], Any]) -> None:
            try:
                action()
                self.attempts[what] = "done"
            except Trap as trap:
                self.attempts[what] = trap.reason.value
            except FsError as error:  # reached the implementation, which refused
                self.attempts[what] = error.code.name

        def run(h: int) -> None:
            attempt("mkdir", lambda: rw.create_directory_at(h, "cast"))
            attempt("open for writing",
                    lambda: rw.open_at(h, 0, "notes.txt", 0, interface.READ | interface.WRITE))
            for guess in range(1, 6):  # forged: the indices of its own table
                attempt(f"forged {guess}",
                        partial(rw.create_directory_at, guess, f"forged-{guess}"))
            self.table_during_run = self.look_at_table()
            if ctx.semantics is Semantics.COMPONENT_MODEL:
                ctx.resource_drop(ro, h)  # a borrow ends before the call returns

        return {"run": ctx.func(run, [lent(ro)], [], name="run")}


def cast(semantics: Semantics) -> tuple[Sneaky, MemoryStorage, bool]:
    """Sneaky after its attempts, the tree after them, and whether it was unchanged."""
    tree = folder()
    before = snapshot(tree)
    seen: list[Context] = []

    def app(ctx: Context) -> dict[str, Func | ResourceType]:
        seen.append(ctx)
        return {}

    with read_only(tree, semantics) as world:
        sneaky = Sneaky()
        x = world.world.instantiate("x", sneaky, {"ro": world.wasi, "rw": world.implementation})
        world.world.instantiate("app", app, {"ro": world.wasi, "x": x})
        sneaky.look_at_table = lambda: held_types(x)
        ctx = seen[0]
        root = ctx.imports["ro"].preopen(0)
        ctx.imports["ro"].open_at(root, 0, "notes.txt", 0, interface.READ)
        ctx.imports["x"].run(root)
        # Whatever Sneaky did, it held nothing but the read-only handle it was lent.
        if semantics is not Semantics.TRANSPARENT:
            ro = types(world)[1]
            assert sneaky.table_during_run == {(ro.definer_name, ro.name)}
    return sneaky, tree, snapshot(tree) == before


@pytest.mark.parametrize("semantics", MEDIATED)
def test_a_read_only_handle_cannot_be_cast_to_a_writable_one(semantics: Semantics) -> None:
    sneaky, _, unchanged = cast(semantics)
    attempts = sneaky.attempts
    mismatch = TrapReason.TYPE_MISMATCH.value
    assert attempts["mkdir"] == attempts["open for writing"] == mismatch
    # Its own table holds at most the read-only handle it was lent: every other index is
    # empty, and that one is the wrong type.
    forged = [attempts[f"forged {g}"] for g in range(1, 6)]
    assert set(forged) <= {mismatch, TrapReason.INVALID_HANDLE.value}
    assert unchanged


def test_transparent_types_let_the_cast_through() -> None:
    sneaky, tree, unchanged = cast(Semantics.TRANSPARENT)
    attempts = sneaky.attempts
    # The read-only handle's number names the layer's writable preopen in the
    # implementation's table: the view was read-only in name only.
    assert attempts["mkdir"] == attempts["open for writing"] == "done"
    assert tree.lstat("cast").kind.value == "directory"
    assert not unchanged
