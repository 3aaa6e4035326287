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
from pathlib import Path
from typing import Any

from ..filesystem.errors import ErrorCode, FsError
from ..filesystem.interface import (
    DESCRIPTOR,
    MUTATE_DIRECTORY,
    READ,
    STREAM,
    DirectoryEntry,
    DirectoryListing,
    end_listing,
    next_entry,
    serve,
)
from ..storage.hostdir import entry_kind
from ..world import Context, Definition, Func, ResourceType
from . import descriptors as calls
from .descriptors import HostDescriptor, HostDirectory, close_descriptor, directory_of
from .names import NAMED_CALLS

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def listing(d: HostDescriptor) -> DirectoryListing:
    """The host's entries of a directory, listed when the first is asked for."""
    directory = directory_of(d)

    def load() -> list[DirectoryEntry]:
        # scandir reads through a dup of the fd and rewinds it when done.
        with os.scandir(directory.fd) as found:
            entries = [DirectoryEntry(e.name, e.inode(), entry_kind(e)) for e in found]
        for entry in entries:
            try:
                entry.name.encode()
            except UnicodeEncodeError as exc:
                raise FsError(ErrorCode.ILLEGAL_BYTE_SEQUENCE,
                              "an entry's name is not UTF-8") from exc
        return entries

    return DirectoryListing(load)


def native_implementation(folders: Sequence[tuple[str, str | Path]]) -> Definition:
    """The definition of a native implementation serving host ``folders`` (guest path, host
    path), preopened in that order; with none, a program runs with no preopens."""

    def preopen(index: int) -> HostDirectory:
        if not 0 <= index < len(folders):
            raise FsError(ErrorCode.BAD_DESCRIPTOR, f"there is no preopen {index}")
        return HostDirectory(os.open(folders[index][1], _DIRECTORY), READ | MUTATE_DIRECTORY)

    functions: dict[str, Callable[..., Any]] = {
        "read": calls.read, "write": calls.write, "append": calls.append,
        "advise": calls.advise, "sync_data": calls.sync_data, "sync": calls.sync,
        "get_flags": lambda d: d.flags, "get_type": lambda d: d.kind,
        "set_size": calls.set_size, "set_times": calls.set_times,
        "read_directory": listing, "stat": calls.stat,
        "is_same_object": calls.is_same_object, "metadata_hash": calls.metadata_hash,
        "read_directory_entry": next_entry,
        "preopen_paths": lambda: [guest for guest, _ in folders], "preopen": preopen,
        **NAMED_CALLS,
    }

    def definition(ctx: Context) -> dict[str, Func | ResourceType]:
        return serve(ctx, functions, {DESCRIPTOR: close_descriptor, STREAM: end_listing})

    return definition
