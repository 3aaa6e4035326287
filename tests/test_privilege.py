"""The privilege boundary of the virtual WASI implementation, through the public API.

The implementation is an ordinary instance: what it can do is what its Context lets it do.
To act as it, a test swaps in a spying variant of its definition (the real one, run with a
context the test keeps), then tries what a malicious implementation would try. The second
half shows what it can do exactly as the native implementation does.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES
from probekit import script

import virtwasi.runtime
from virtwasi.filesystem import interface
from virtwasi.filesystem.errors import ErrorCode, FsError
from virtwasi.layers import read_only_layer
from virtwasi.runtime import WasiWorld
from virtwasi.virtual import virtual_implementation
from virtwasi.wasi.abi import Errno, Oflags, Rights
from virtwasi.world import (
    Context,
    Definition,
    Func,
    ResourceType,
    Semantics,
    Trap,
    TrapReason,
)

TYPED = [Semantics.COMPONENT_MODEL, Semantics.PROPOSAL_2021]
BADF, PERM, NOENT = int(Errno.BADF), int(Errno.PERM), int(Errno.NOENT)
RW = int(Rights.FD_READ | Rights.FD_WRITE | Rights.FD_SEEK)
CREAT = int(Oflags.CREAT)

# The guest memory of the probes: names, an iovec of 5 bytes, where new fds land.
NAMES = {1024: b"a.txt", 1040: b"b.txt", 1056: b"c.txt", 1072: b"victim.txt"}
IOVEC, FD_OUT, NBYTES, FDSTAT, BYTES = 2048, 3000, 3100, 3200, 4096
DATA = {**NAMES, IOVEC: struct.pack("<II", BYTES, 5), BYTES: b"hello"}


def opens(name_at: int, out: int = FD_OUT) -> tuple[str, tuple[int, ...]]:
    return ("path_open", (3, 0, name_at, len(NAMES[name_at]), CREAT, RW, 0, 0, out))


# Creates a.txt, b.txt, c.txt (fds 4, 5, 6), writes to each, looks at fd 4, closes nothing.
LEAVE_OPEN = script([
    opens(1024), opens(1040), opens(1056),
    ("fd_write", (4, IOVEC, 1, NBYTES)), ("fd_write", (5, IOVEC, 1, NBYTES)),
    ("fd_write", (6, IOVEC, 1, NBYTES)), ("fd_filestat_get", (4, FDSTAT)),
], DATA)


class Spy:
    """The virtual implementation's real definition, run with a context the test keeps.

    ``contexts`` holds the implementation's context in every world made while spying, in
    order. Each call of ``stat`` stashes what the implementation was lent (under the
    component model the representation, under proposal-2021 an index in its own table);
    with ``keep`` it keeps a clone of that handle instead (proposal-2021).
    """

    def __init__(self) -> None:
        self.contexts: list[Context] = []
        self.functions: list[dict[str, Callable[..., Any]]] = []
        self.stashed: list[Any] = []
        self.keep = False

    def wrap(self, definition: Definition) -> Definition:
        def spied(ctx: Context) -> dict[str, Func | ResourceType]:
            self.contexts.append(ctx)
            exports = dict(definition(ctx))
            # The spy is the embedder wrapping a definition: it reaches behind the Funcs the
            # definition made, which no instance can do through its context.
            self.functions.append({n: f._fn for n, f in exports.items() if isinstance(f, Func)})
            stat, descriptor = exports["stat"], exports["descriptor"]
            assert isinstance(stat, Func) and isinstance(descriptor, ResourceType)

            def stash(h: Any) -> Any:
                self.stashed.append(ctx.resource_clone(descriptor, h) if self.keep else h)
                return stat._fn(h)

            exports["stat"] = ctx.func(stash, stat.params, stat.results, name="stat")
            return exports

        return spied


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    watcher = Spy()
    monkeypatch.setattr(virtwasi.runtime, "virtual_implementation",
                        lambda mounts: watcher.wrap(virtual_implementation(mounts)))
    return watcher


def descriptor_of(world: WasiWorld, instance: str = "implementation") -> ResourceType:
    rtype = getattr(world, instance).types["descriptor"]
    assert isinstance(rtype, ResourceType)
    return rtype


def trap_of(action: Callable[..., object], *args: Any) -> TrapReason:
    """The reason of the trap ``action(*args)`` raises. Run inside ``world.entering`` (as
    the code of the instance whose context it uses), the instance's own code catches it: it
    does not escape, so the instance carries on to the next attempt."""
    with pytest.raises(Trap) as caught:
        action(*args)
    return caught.value.reason


def host_fds_on(folder: Path) -> list[str]:
    """The names of the regular files under ``folder`` this process holds open."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = Path(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue  # the listing's own fd, closed by now
        if target.is_relative_to(folder) and target.is_file():
            found.append(target.name)
    return sorted(found)


# -- what the virtual instance cannot do ----------------------------------------------------


@pytest.mark.parametrize("semantics", TYPED)
def test_the_virtual_instance_cannot_new_or_rep_a_type_it_did_not_define(
        spy: Spy, semantics: Semantics) -> None:
    with WasiWorld(semantics=semantics) as plain, WasiWorld(
            semantics=semantics, layers=[("read-only", read_only_layer())]) as layered:
        assert plain.client(LEAVE_OPEN).start() == 0
        assert layered.client(script([])).start() == 0  # it holds its preopen, wrapped
        ctx = spy.contexts[0]  # the implementation serving `plain`
        foreign = [
            descriptor_of(layered),  # another world's implementation
            descriptor_of(layered, "wasi"),  # the read-only layer's private wrapper type
            plain.world.instance_type,  # the world's own (instance handles)
        ]
        with plain.world.entering(plain.implementation):
            for rtype in foreign:
                assert trap_of(ctx.resource_new, rtype, "forged") is TrapReason.NOT_DEFINER
                for index in (1, 2, 3, 4):
                    assert trap_of(ctx.resource_rep, rtype, index) is TrapReason.NOT_DEFINER
        # Below the read-only layer, the implementation of `layered` is no better off.
        below = spy.contexts[1]
        wrapper = descriptor_of(layered, "wasi")
        with layered.world.entering(layered.implementation):
            assert trap_of(below.resource_rep, wrapper, 1) is TrapReason.NOT_DEFINER
        assert wrapper.live_count == 1  # the client's preopen, still its own


@pytest.mark.parametrize("semantics", TYPED)
def test_a_client_handle_index_means_nothing_in_the_virtual_instance_table(
        spy: Spy, semantics: Semantics) -> None:
    with WasiWorld(semantics=semantics) as world:
        client = world.client(LEAVE_OPEN)
        assert client.start() == 0 and client.stdout == bytes(7)
        ctx, descriptor = spy.contexts[0], descriptor_of(world)
        # The client holds the preopen and three files at indices 1-4 of its own table; the
        # implementation made them all and holds none of them.
        assert client.instance.handle_count == 4 and ctx.handle_count == 0
        with world.world.entering(world.implementation):
            for index in (0, 1, 2, 3, 4, 5):
                assert trap_of(ctx.resource_rep, descriptor, index) is TrapReason.INVALID_HANDLE
                assert trap_of(ctx.resource_drop, descriptor, index) is TrapReason.INVALID_HANDLE
        assert descriptor.live_count == 4  # nothing it tried closed a client's file


@pytest.mark.parametrize("impl", ["virtual", "native"])
def test_a_world_given_mount_a_cannot_name_mount_b(
        spy: Spy, impl: str, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (b / "secret").write_bytes(b"only for B")
    os.symlink("../b/secret", a / "rel")
    os.symlink(b / "secret", a / "abs")
    os.symlink("../b", a / "bdir")
    escapes = ["../b/secret", "/../b/secret", "rel", "abs", "bdir/secret", str(b / "secret")]
    args = [arg for path in escapes for arg in ("cat", path)]
    args += ["put", "../b/planted", "x", "put", "bdir/planted", "x", "put", "abs", "x",
             "put", str(b / "planted"), "x", "ls", "..", "ls", "bdir", "ls", str(b)]
    with WasiWorld({"/": b}, impl=impl) as world_b, WasiWorld({"/": a}, impl=impl) as world_a:
        holder = world_b.client(script([opens(1072)], DATA))  # B has a client with a file open
        assert holder.start() == 0
        client = world_a.client(FIXTURES / "fstool.wasm", args)
        assert client.start() == 1
        lines = client.stdout.decode().splitlines()
        assert len(lines) == len(escapes) + 4 + 3  # every command answered
        for line in lines:
            assert line.endswith((f"errno {PERM} (Operation not permitted)",
                                  f"errno {NOENT} (No such file or directory)")), line
        if impl == "virtual":
            mine, theirs = spy.contexts[1], spy.contexts[0]
            assert len(mine.imports) == 0  # no capability but the mounts it was made with
            victim = descriptor_of(world_b)
            assert trap_of(mine.resource_rep, victim, 1) is TrapReason.NOT_DEFINER
            assert theirs is not mine
    assert sorted(os.listdir(b)) == ["secret", "victim.txt"]
    assert (b / "secret").read_bytes() == b"only for B"


def test_a_rep_the_virtual_instance_stashed_finds_its_file_closed_after_client_teardown(
        spy: Spy) -> None:
    with WasiWorld() as world:
        client = world.client(LEAVE_OPEN)
        assert client.start() == 0
        (stashed,) = spy.stashed
        # Under the component model a borrow reaches its definer as the representation:
        # the implementation may keep that object, but it holds no handle to it.
        assert not isinstance(stashed, int) and stashed.file is not None
        read = spy.functions[0]["read"]
        assert read(stashed, memoryview(bytearray(5)), 5) == 0  # at the end of what it wrote
        client.close()
        assert descriptor_of(world).live_count == 0
        assert stashed.file is None  # the destructor closed it in the implementation
        with pytest.raises(FsError) as caught:
            read(stashed, memoryview(bytearray(5)), 0)
        assert caught.value.code is ErrorCode.BAD_DESCRIPTOR
        assert spy.contexts[0].handle_count == 0


def test_an_index_the_virtual_instance_stashed_under_2021_is_invalid_once_the_call_ends(
        spy: Spy) -> None:
    with WasiWorld(semantics=Semantics.PROPOSAL_2021) as world:
        client = world.client(LEAVE_OPEN)
        assert client.start() == 0
        (stashed,) = spy.stashed
        ctx, descriptor = spy.contexts[0], descriptor_of(world)
        assert isinstance(stashed, int)  # its own copy of the handle, for the call only
        assert trap_of(ctx.resource_rep, descriptor, stashed) is TrapReason.INVALID_HANDLE
        client.close()
        assert descriptor.live_count == 0
        assert trap_of(ctx.resource_rep, descriptor, stashed) is TrapReason.INVALID_HANDLE


def test_under_2021_a_clone_the_virtual_instance_keeps_outlives_the_client_until_dropped(
        spy: Spy) -> None:
    spy.keep = True
    with WasiWorld(semantics=Semantics.PROPOSAL_2021) as world:
        client = world.client(LEAVE_OPEN)
        assert client.start() == 0
        (kept,) = spy.stashed
        ctx, descriptor = spy.contexts[0], descriptor_of(world)
        client.close()
        # Teardown dropped the client's handles; the one the definer cloned is its own, as
        # a native implementation's dup() of a client's fd would be.
        assert descriptor.live_count == 1 and ctx.handle_count == 1
        rep = ctx.resource_rep(descriptor, kept)
        assert rep.file is not None and rep.path == "a.txt"
        ctx.resource_drop(descriptor, kept)
        assert descriptor.live_count == 0 and rep.file is None


# -- what it can do, exactly as native does -------------------------------------------------

RUNTIMES = [("virtual", Semantics.COMPONENT_MODEL), ("virtual", Semantics.PROPOSAL_2021),
            ("native", Semantics.COMPONENT_MODEL)]
RUNTIME_IDS = ["virtual-component-model", "virtual-proposal-2021", "native"]


def guesses() -> Iterator[tuple[str, tuple[int, ...]]]:
    """A client's calls on fds it was never given: the victim's fd 4, and beyond."""
    for fd in (4, 5, 6, 100, 2**31 - 1, -1):
        yield ("fd_write", (fd, IOVEC, 1, NBYTES))
        yield ("fd_read", (fd, IOVEC, 1, NBYTES))
        yield ("fd_fdstat_get", (fd, FDSTAT))
        yield ("fd_seek", (fd, 0, 0, NBYTES))
        yield ("path_open", (fd, 0, 1024, 5, CREAT, RW, 0, 0, FD_OUT))
        yield ("fd_close", (fd,))


@pytest.mark.parametrize(("impl", "semantics"), RUNTIMES, ids=RUNTIME_IDS)
def test_a_wasm_client_guessing_fd_numbers_gets_ebadf(
        impl: str, semantics: Semantics, tmp_path: Path) -> None:
    forged = list(guesses())
    # Its own file, closed, then used: the same EBADF.
    after_close = [opens(1056), ("fd_close", (4,)), ("fd_write", (4, IOVEC, 1, NBYTES))]
    with WasiWorld({"/": tmp_path}, impl=impl, semantics=semantics) as world:
        victim = world.client(script([opens(1072), ("fd_write", (4, IOVEC, 1, NBYTES))], DATA))
        assert victim.start() == 0 and victim.stdout == bytes(2)  # victim.txt left open at 4
        thief = world.client(script(forged + after_close, DATA))
        assert thief.start() == 0
        assert thief.stdout == bytes([BADF]) * len(forged) + bytes([0, 0, BADF])
        assert (tmp_path / "victim.txt").read_bytes() == b"hello"
        victim.close()
    assert sorted(os.listdir(tmp_path)) == ["c.txt", "victim.txt"]
    assert (tmp_path / "victim.txt").read_bytes() == b"hello"


@pytest.mark.parametrize(("impl", "semantics"), RUNTIMES, ids=RUNTIME_IDS)
def test_closing_a_client_closes_every_file_it_left_open(
        impl: str, semantics: Semantics, tmp_path: Path) -> None:
    with WasiWorld({"/": tmp_path}, impl=impl, semantics=semantics) as world:
        before = host_fds_on(tmp_path)
        client = world.client(LEAVE_OPEN)
        assert client.start() == 0 and client.stdout == bytes(7)
        assert host_fds_on(tmp_path) == sorted([*before, "a.txt", "b.txt", "c.txt"])
        client.close()
        assert host_fds_on(tmp_path) == before
        assert client.closed
    for name in ("a.txt", "b.txt", "c.txt"):
        assert (tmp_path / name).read_bytes() == b"hello"


@pytest.mark.parametrize("semantics", TYPED)
def test_use_after_close_traps_at_the_world_level(semantics: Semantics) -> None:
    contexts: list[Context] = []

    def app(ctx: Context) -> dict[str, Func | ResourceType]:
        contexts.append(ctx)
        return {}

    with WasiWorld(semantics=semantics) as world:
        app_inst = world.world.instantiate("app", app, {"wasi": world.wasi})
        ctx, descriptor = contexts[0], descriptor_of(world)
        wasi = ctx.imports["wasi"]
        root = wasi.preopen(0)
        h, _, _ = wasi.open_at(root, 0, "f", interface.CREATE, interface.READ | interface.WRITE)
        assert wasi.write(h, memoryview(b"hello"), 0) == 5
        copy = ctx.resource_clone(descriptor, h) if semantics is Semantics.PROPOSAL_2021 else h
        ctx.end(descriptor, h)
        assert descriptor.live_count == 1  # only the preopen: the file was closed
        if semantics is Semantics.PROPOSAL_2021:
            expected = TrapReason.NULL_HANDLE  # close destroyed it under every copy
        else:
            expected = TrapReason.INVALID_HANDLE  # the own handle is gone from its table
        with world.world.entering(app_inst):  # the app's code, which catches the traps
            assert trap_of(wasi.write, copy, memoryview(b"again"), 0) is expected
            assert trap_of(wasi.read, copy, memoryview(bytearray(5)), 0) is expected
        # The trap ended that call only: the app caught it and carries on.
        again, _, _ = wasi.open_at(root, 0, "f", 0, interface.READ)
        buf = bytearray(5)
        assert wasi.read(again, memoryview(buf), 0) == 5 and bytes(buf) == b"hello"
