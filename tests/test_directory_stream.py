"""fd_readdir through the implementation's private directory-stream resource.

A listing read cookie after cookie, as a libc reads a large directory, is taken from the
storage once; any other cookie starts a new listing, so a reader that starts over sees the
directory as it is now. The streams are handles of a type only the implementation can
read, held by the client, and go when the fd is closed, renumbered over or torn down.
"""

from __future__ import annotations

import pytest
import wasmtime

from virtwasi.runtime import Session
from virtwasi.storage.base import DirEntry
from virtwasi.storage.memfs import MemoryStorage
from virtwasi.wasi.abi import DIRENT, U32
from virtwasi.world import ResourceType, Semantics

MEMORY_ONLY = wasmtime.wat2wasm('(module (memory (export "memory") 1) (func (export "_start")))')
BUF, USED = 1024, 0


class CountingStorage(MemoryStorage):
    """A MemoryStorage that counts how often a directory is listed."""

    listings = 0

    def listdir(self, path: str) -> list[DirEntry]:
        self.listings += 1
        return super().listdir(path)


def read(session: Session, fd: int, size: int, cookie: int) -> tuple[list[tuple[int, str]], int]:
    """One fd_readdir call: the (d_next, name) of each whole entry, and the bytes used."""
    session.adapter.fd_readdir(fd, BUF, size, cookie, USED)
    memory = session.adapter.memory
    (used,) = memory.unpack(U32, USED)
    raw = bytes(memory.window(BUF, used))
    out, at = [], 0
    while at + DIRENT.size <= used:
        d_next, _, namlen, _ = DIRENT.unpack_from(raw, at)
        if at + DIRENT.size + namlen > used:
            break
        out.append((d_next, raw[at + DIRENT.size:at + DIRENT.size + namlen].decode()))
        at += DIRENT.size + namlen
    return out, used


def read_all(session: Session, fd: int, size: int) -> list[str]:
    names, cookie = [], 0
    while True:
        entries, used = read(session, fd, size, cookie)
        names += [name for _, name in entries]
        if entries:
            cookie = entries[-1][0]
        if used < size:
            return names


def stream_type(session: Session) -> ResourceType:
    found = session.host.wasi.exports["directory-entry-stream"]
    assert isinstance(found, ResourceType)
    return found


@pytest.mark.parametrize("semantics", list(Semantics))
def test_a_listing_read_in_small_pieces_is_taken_once(semantics: Semantics) -> None:
    tree = CountingStorage()
    names = [f"entry-{i:02}" for i in range(40)]
    for name in names:
        tree.open(name, create=True).close()
    with Session(MEMORY_ONLY, mounts={"/": tree}, semantics=semantics) as session:
        assert read_all(session, 3, 100) == [".", "..", *names]
        assert tree.listings == 1
        assert read_all(session, 3, 100) == [".", "..", *names]  # cookie 0: a new listing
        assert tree.listings == 2


def test_a_listing_keeps_only_what_the_guest_may_still_ask_for() -> None:
    # Read on cookie after cookie, a listing holds what one call took from the stream,
    # not the whole directory: a long listing costs the same per entry as a short one.
    tree = MemoryStorage()
    names = [f"entry-{i:04}" for i in range(2000)]
    for name in names:
        tree.open(name, create=True).close()
    with Session(MEMORY_ONLY, mounts={"/": tree}) as session:
        cookie, seen, held = 0, [], []
        while True:
            entries, used = read(session, 3, 100, cookie)  # two or three entries a call
            seen += [name for _, name in entries]
            opened = session.adapter.opened(3)
            assert opened.listing is not None
            held.append(len(opened.listing.entries))
            if used < 100:
                break
            cookie = entries[-1][0]
        assert seen == [".", "..", *names]
        assert max(held) <= 1  # at most the entry a call cut short


def test_starting_over_sees_the_directory_as_it_is_now() -> None:
    tree = CountingStorage()
    tree.open("a", create=True).close()
    with Session(MEMORY_ONLY, mounts={"/": tree}) as session:
        first, _ = read(session, 3, 60, 0)  # ".", ".." and the start of "a"
        assert [name for _, name in first] == [".", ".."]
        tree.open("b", create=True).close()
        assert read_all(session, 3, 4096) == [".", "..", "a", "b"]
        rest, _ = read(session, 3, 4096, 1)  # not where the stream stands: listed again
        assert [name for _, name in rest] == ["..", "a", "b"]


def test_a_stream_lives_as_long_as_its_fd() -> None:
    tree = CountingStorage()
    tree.mkdir("d")
    for i in range(30):
        tree.open(f"d/{i}", create=True).close()
    with Session(MEMORY_ONLY, mounts={"/": tree}) as session:
        streams = stream_type(session)
        read(session, 3, 64, 0)  # a listing left half read
        assert streams.live_count == 1
        session.adapter.fd_close(3)
        assert streams.live_count == 0
        assert session.host.wasi.exports.preopen_paths() == ["/"]
    with Session(MEMORY_ONLY, mounts={"/": tree}) as session:
        streams = stream_type(session)
        read(session, 3, 64, 0)
        session.adapter.fd_renumber(3, 1)  # the stream moves with its descriptor
        assert streams.live_count == 1
        assert [name for _, name in read(session, 1, 64, 2)[0]] == ["d"]
        assert streams.live_count == 1
        read(session, 1, 64, 0)
        session.close()  # teardown drops what the client still holds
        assert streams.live_count == 0
