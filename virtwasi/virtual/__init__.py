"""The virtual WASI implementation: an unprivileged library instance over storage.

It is an ordinary world instance serving the implementation interface
(:mod:`virtwasi.filesystem.interface`). Its only powers are the private resource types it
defines (``descriptor``: an open file or directory, whose destructor closes the file;
``directory-entry-stream``: a listing being read) and the storage capabilities it was given
at instantiation, one per preopened directory. A client lends it a descriptor for each
call; a borrow reaches its definer as the representation itself, so a call costs one table
lookup and one identity check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..filesystem.errors import ErrorCode, FsError
from ..filesystem.interface import (
    DESCRIPTOR,
    MUTATE_DIRECTORY,
    READ,
    STREAM,
    end_listing,
    next_entry,
    serve,
)
from ..storage.base import FileKind, Storage
from ..world import Context, Definition, Func, ResourceType
from . import descriptors as calls
from .descriptors import Descriptor, close_descriptor, listing
from .names import NAMED_CALLS, open_at


def virtual_implementation(mounts: Sequence[tuple[str, Storage]]) -> Definition:
    """The definition of a virtual implementation serving ``mounts`` (guest path, storage),
    which become its preopened directories in that order."""

    def preopen(index: int) -> Descriptor:
        if not 0 <= index < len(mounts):
            raise FsError(ErrorCode.BAD_DESCRIPTOR, f"there is no preopen {index}")
        return Descriptor(mounts[index][1], "", FileKind.DIRECTORY, None,
                          READ | MUTATE_DIRECTORY)

    functions: dict[str, Callable[..., Any]] = {
        "read": calls.read, "write": calls.write, "append": calls.append,
        "advise": calls.advise, "sync_data": calls.sync, "sync": calls.sync,
        "get_flags": lambda d: d.flags, "get_type": lambda d: d.kind,
        "set_size": calls.set_size, "set_times": calls.set_times,
        "read_directory": listing, "stat": calls.stat,
        "open_at": open_at, "is_same_object": calls.is_same_object,
        "metadata_hash": calls.metadata_hash,
        "read_directory_entry": next_entry,
        "preopen_paths": lambda: [guest for guest, _ in mounts], "preopen": preopen,
        **NAMED_CALLS,
    }

    def definition(ctx: Context) -> dict[str, Func | ResourceType]:
        return serve(ctx, functions, {DESCRIPTOR: close_descriptor, STREAM: end_listing})

    return definition
