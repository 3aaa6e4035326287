"""Transparent semantics at the preview 1 level: fds are the implementation's own indices.

Under "take one" a wasm client's adapter keeps no private table for descriptors: fd N
(N >= 3) is index N - 2 of the implementation's table, so every client shares one fd
namespace. Numbers the table does not hold answer EBADF; fd_renumber answers ENOTSUP.
"""

from __future__ import annotations

from conftest import FIXTURES
from probekit import script

from virtwasi.client import Client
from virtwasi.runtime import Session, WasiWorld
from virtwasi.wasi.abi import Errno
from virtwasi.wasi.preview1 import Preview1
from virtwasi.wasi.transparent import TransparentPreview1
from virtwasi.world import Semantics

HOLDER = FIXTURES / "holder.wasm"


def create(client: Client, path: str, text: bytes = b"") -> int:
    buffer = client.call("text")
    client.write_memory(buffer, path.encode() + b"\0")
    fd: int = client.call("create")
    if text:
        client.write_memory(buffer, text)
        assert client.call("put", fd, len(text)) == len(text)
    return fd


def read(client: Client, fd: int) -> bytes | int:
    got: int = client.call("get", fd)
    return client.read_memory(client.call("text"), got) if got >= 0 else got


def test_every_client_shares_the_implementations_numbers() -> None:
    with WasiWorld(semantics=Semantics.TRANSPARENT) as host:
        alice = host.client(HOLDER, name="alice")
        bob = host.client(HOLDER, name="bob")
        assert isinstance(alice.adapter, TransparentPreview1)
        assert isinstance(bob.adapter, TransparentPreview1)
        assert alice.adapter.preopens == [3] and bob.adapter.preopens == [4]
        fd = create(alice, "/a.txt", b"alice's")
        assert fd == 5  # index 3: after the two preopens
        slot = host.implementation.held(fd - 2)
        assert slot.type_name == "descriptor" and slot.definer_name == "wasi-virtual"
        assert read(bob, fd) == b"alice's"  # a number bob never opened reaches her file
        assert alice.instance.handle_count == bob.instance.handle_count == 0


def test_a_closed_number_goes_to_the_next_open_of_any_client() -> None:
    with WasiWorld(semantics=Semantics.TRANSPARENT) as host:
        alice = host.client(HOLDER, name="alice")
        bob = host.client(HOLDER, name="bob")
        fd = create(alice, "/a.txt")
        assert alice.call("shut", fd) == 0
        assert create(bob, "/b.txt", b"bob's") == fd
        assert alice.call("put", fd, 3) == 3  # alice's stale write lands in bob's file
        assert alice.call("shut", fd) == 0  # and her double close closes it
        assert bob.call("put", fd, 1) == -Errno.BADF


def test_the_private_semantics_keep_a_table_per_client() -> None:
    for semantics in (Semantics.COMPONENT_MODEL, Semantics.PROPOSAL_2021):
        with WasiWorld(semantics=semantics) as host:
            alice = host.client(HOLDER, name="alice")
            bob = host.client(HOLDER, name="bob")
            assert type(alice.adapter) is Preview1
            fd = create(alice, "/a.txt", b"alice's")
            assert read(bob, fd) == -Errno.BADF


def test_the_hot_calls_fall_back_to_the_shared_numbers() -> None:
    # Their fast paths look in the adapter's own table, which holds only stdio here.
    calls = [
        ("fd_fdstat_get", (3, 1024)),
        ("path_filestat_get", (3, 0, 100, 1, 2048)),
        ("fd_fdstat_get", (40, 1024)),
        ("path_filestat_get", (40, 0, 100, 1, 2048)),
        ("fd_write", (40, 0, 0, 0)),
    ]
    module = script(calls, {100: b"."}, dumps=[(1024, 1), (2048 + 16, 1)])
    with Session(module, semantics=Semantics.TRANSPARENT) as session:
        assert session.start() == 0
        out = session.stdout
    assert list(out[:len(calls)]) == [0, 0] + [Errno.BADF] * 3
    assert list(out[len(calls):]) == [3, 3]  # both see the preopen: a directory


def test_empty_numbers_answer_ebadf_and_renumber_enotsup() -> None:
    calls = [
        ("fd_fdstat_get", (40, 0)),
        ("fd_close", (40,)),
        ("fd_read", (100_000, 0, 0, 0)),
        ("fd_prestat_get", (4, 0)),
        ("fd_renumber", (3, 1)),
        ("fd_renumber", (1, 2)),
        ("fd_fdstat_set_rights", (40, 0, 0)),
        ("fd_prestat_get", (3, 0)),
    ]
    with Session(script(calls), semantics=Semantics.TRANSPARENT) as session:
        assert session.start() == 0
        errnos = list(session.stdout[:len(calls)])
    assert errnos == [Errno.BADF] * 4 + [Errno.NOTSUP] * 2 + [Errno.BADF, 0]


def test_a_number_naming_a_directory_stream_still_traps() -> None:
    # fd_readdir keeps a directory stream in the implementation's table, at index 2, which
    # is fd 4: only an empty number answers EBADF, a handle of the wrong type traps.
    calls = [("fd_readdir", (3, 1024, 256, 0, 2048)), ("fd_read", (4, 0, 0, 0))]
    with Session(script(calls), semantics=Semantics.TRANSPARENT) as session:
        assert session.start() == 134
        assert b"type-mismatch" in session.stderr
