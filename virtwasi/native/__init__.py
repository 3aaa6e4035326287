"""The native WASI implementation: host-privileged, over host folders.

It is written as a runtime writes its WASI, and serves the same implementation interface as
the virtual one (:mod:`virtwasi.filesystem.interface`), behind the same client adapter. Its
privilege is the host's: it is given host folder *paths*, opens them itself, holds real
host file descriptors as the representations of its descriptors, and resolves every guest
path one component at a time from a directory fd with no-follow semantics. Its
descriptors' destructor closes the host fd, so a client torn down closes what it left open.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..filesystem.errors import ErrorCode, FsError
from ..filesystem.interface import (
    DESCRIPTOR,
    MUTATE_DIRECTORY,
    READ,
    STREAM,
    DirectoryEntry,
    serve,
)
from ..storage.hostdir import entry_kind
from ..world import Context, Definition, Func, ResourceType
from . import descriptors as calls
from .descriptors import HostDescriptor, HostDirectory, close_descriptor, directory_of
from .names import NAMED_CALLS

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


@dataclass(eq=False, slots=True)
class HostListing:
    """A directory being listed: the host's entries, read once at the first one asked for."""

    directory: HostDirectory
    entries: list[DirectoryEntry] | None = None
    position: int = 0


def _release(listing: HostListing) -> None:
    listing.entries = None


def read_directory_entry(listing: HostListing) -> DirectoryEntry | None:
    if listing.entries is None:
        # scandir reads through a dup of the fd and rewinds it when done.
        with os.scandir(listing.directory.fd) as found:
            listing.entries = [DirectoryEntry(entry_kind(e), e.name, e.inode()) for e in found]
    if listing.position >= len(listing.entries):
        return None
    entry = listing.entries[listing.position]
    listing.position += 1
    try:
        entry.name.encode()
    except UnicodeEncodeError as exc:
        raise FsError(ErrorCode.ILLEGAL_BYTE_SEQUENCE, "an entry's name is not UTF-8") from exc
    return entry


def native_implementation(folders: Sequence[tuple[str, str | Path]]) -> Definition:
    """The definition of a native implementation serving host ``folders`` (guest path, host
    path), preopened in that order; with none, a program runs with no preopens."""

    def preopen(index: int) -> HostDirectory:
        if not 0 <= index < len(folders):
            raise FsError(ErrorCode.BAD_DESCRIPTOR, f"there is no preopen {index}")
        return HostDirectory(os.open(folders[index][1], _DIRECTORY), READ | MUTATE_DIRECTORY)

    def read_directory(d: HostDescriptor) -> HostListing:
        return HostListing(directory_of(d))

    functions: dict[str, Callable[..., Any]] = {
        "read": calls.read, "write": calls.write, "append": calls.append,
        "advise": calls.advise, "sync_data": calls.sync_data, "sync": calls.sync,
        "get_flags": lambda d: d.flags, "get_type": lambda d: d.kind,
        "set_size": calls.set_size, "set_times": calls.set_times,
        "read_directory": read_directory, "stat": calls.stat,
        "is_same_object": calls.is_same_object, "metadata_hash": calls.metadata_hash,
        "read_directory_entry": read_directory_entry,
        "preopen_paths": lambda: [guest for guest, _ in folders], "preopen": preopen,
        **NAMED_CALLS,
    }

    def definition(ctx: Context) -> dict[str, Func | ResourceType]:
        return serve(ctx, functions, {DESCRIPTOR: close_descriptor, STREAM: _release})

    return definition
