"""The one implementation interface, shaped like ``wasi:filesystem@0.2``.

Every WASI implementation (virtual, native) and every layer (read-only, quota, audit) is an
instance that exports this interface; every client adapter imports it. It is declared here
once: two resource types, ``descriptor`` and ``directory-entry-stream``, defined by the
implementation instance (so only it can make them or see inside them), and the functions
of :data:`FUNCTIONS`, each with its parameters, its result and its :class:`Category`.

The functions follow ``wasi:filesystem/types@0.2`` in name, order of parameters and meaning,
with three departures a Python world needs: buffers are ``memoryview`` windows on the
caller's memory (``read`` fills one and answers a count, as a stream would), stats and
directory entries carry the inode and device the storage knows (preview 1 reports them),
the preopens are two calls (``preopen_paths``, ``preopen``), because the world moves
handles as results only one at a time, and ``open_at`` answers the new descriptor with its
type and flags, which a client needs at once (preview 1 reports both) and would otherwise
ask for in two more calls. A handle ends by being dropped (the world's
``Context.end``); the type's destructor closes what it held, and may answer an error.
Failures are :class:`~virtwasi.filesystem.errors.FsError` with 0.2's ``error-code``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..storage.base import DirEntry, FileKind, Stat
from ..world import Context, Func, ResourceType, Signature, given, lent, value
from .errors import ANSWERS, ErrorCode, FsError

DescriptorType = FileKind
DescriptorStat = Stat
# A directory entry is the storage's own record (name, ino, kind), as a stat is: an
# implementation over storage hands out what the storage listed, without a copy each.
DirectoryEntry = DirEntry

DESCRIPTOR = "descriptor"
STREAM = "directory-entry-stream"


class DescriptorFlags(enum.IntFlag):
    READ = 1 << 0
    WRITE = 1 << 1
    FILE_INTEGRITY_SYNC = 1 << 2
    DATA_INTEGRITY_SYNC = 1 << 3
    REQUESTED_WRITE_SYNC = 1 << 4
    MUTATE_DIRECTORY = 1 << 5


class PathFlags(enum.IntFlag):
    SYMLINK_FOLLOW = 1 << 0


class OpenFlags(enum.IntFlag):
    CREATE = 1 << 0
    DIRECTORY = 1 << 1
    EXCLUSIVE = 1 << 2
    TRUNCATE = 1 << 3


class Advice(enum.IntEnum):
    NORMAL = 0
    SEQUENTIAL = 1
    RANDOM = 2
    WILL_NEED = 3
    DONT_NEED = 4
    NO_REUSE = 5


class Now(enum.Enum):
    """``new-timestamp``'s ``now``; ``None`` is ``no-change``, an int is nanoseconds."""

    NOW = "now"


NOW = Now.NOW
NewTimestamp = int | Now | None


@dataclass(eq=False, slots=True)
class DirectoryListing:
    """What a ``directory-entry-stream`` stands for in an implementation: its entries, read
    by ``load`` when the first one is asked for, and where the reader stands."""

    load: Callable[[], list[DirectoryEntry]]
    entries: list[DirectoryEntry] | None = None
    position: int = 0


def next_entry(listing: DirectoryListing) -> DirectoryEntry | None:
    """``read-directory-entry``: the next entry, or None at the end."""
    if listing.entries is None:
        listing.entries = listing.load()
    if listing.position >= len(listing.entries):
        return None
    listing.position += 1
    return listing.entries[listing.position - 1]


def end_listing(listing: DirectoryListing) -> None:
    """The stream's destructor: the entries go with it."""
    listing.entries = None


# Plain ints of the flags the implementations test on every open.
READ, WRITE = int(DescriptorFlags.READ), int(DescriptorFlags.WRITE)
SYNC_FLAGS = int(DescriptorFlags.FILE_INTEGRITY_SYNC | DescriptorFlags.DATA_INTEGRITY_SYNC
                 | DescriptorFlags.REQUESTED_WRITE_SYNC)
MUTATE_DIRECTORY = int(DescriptorFlags.MUTATE_DIRECTORY)
CREATE, DIRECTORY = int(OpenFlags.CREATE), int(OpenFlags.DIRECTORY)
EXCLUSIVE, TRUNCATE = int(OpenFlags.EXCLUSIVE), int(OpenFlags.TRUNCATE)
SYMLINK_FOLLOW = int(PathFlags.SYMLINK_FOLLOW)


def open_mode(open_flags: int, flags: int) -> int:
    """The descriptor ``flags`` a client asks an open for, with the access the open gives
    as wasmtime's ``wasi:filesystem`` opens a file: one not asked to write is opened for
    reading, and one created or truncated is opened for writing too. Both preview 1's
    adapter and WASI 0.2's host ask this of every open."""
    if not flags & WRITE:
        flags |= READ
    if open_flags & (CREATE | TRUNCATE):
        flags |= WRITE
    return flags


def check_open(open_flags: int, flags: int) -> None:
    """What every implementation refuses before it looks at the path, in wasmtime's order:
    synchronized I/O is not offered, and a directory is never created, truncated or
    opened exclusively."""
    if flags & SYNC_FLAGS:
        raise FsError(ErrorCode.UNSUPPORTED, "synchronized I/O is not offered")
    if open_flags & DIRECTORY and open_flags & (CREATE | EXCLUSIVE | TRUNCATE):
        raise FsError(ErrorCode.INVALID,
                      "a directory cannot be created, truncated or opened exclusively")


class Category(enum.Enum):
    """What a function does, which is all a policy layer needs to know to decide about it."""

    READS = "reads"
    """Reads, or changes only the descriptor's own state: any view passes it."""
    OPENS = "opens"
    """Makes a new handle: a view decides from the flags asked for."""
    WRITES = "writes"
    """Writes data through a descriptor: only a descriptor open for writing can."""
    CHANGES_TREE = "changes-tree"
    """Adds, removes or renames a name, or changes metadata: a read-only view refuses."""


class Slot(enum.Enum):
    """What a parameter or result carries across the membrane."""

    VALUE = "value"
    DESCRIPTOR = DESCRIPTOR
    STREAM = STREAM


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    params: tuple[Slot, ...]
    results: tuple[Slot, ...]
    category: Category

    @property
    def result(self) -> Slot | None:
        """The first result, the only one that may be a handle."""
        return self.results[0] if self.results else None

    @property
    def handles(self) -> tuple[tuple[int, str], ...]:
        """(position, resource type name) of each handle parameter."""
        return tuple((i, p.value) for i, p in enumerate(self.params) if p is not Slot.VALUE)


def _fn(name: str, params: str, results: str, category: Category) -> Function:
    slots = {"d": Slot.DESCRIPTOR, "s": Slot.STREAM, "v": Slot.VALUE}
    return Function(name, tuple(slots[p] for p in params), tuple(slots[r] for r in results),
                    category)


_R, _O, _W, _T = Category.READS, Category.OPENS, Category.WRITES, Category.CHANGES_TREE

FUNCTIONS: dict[str, Function] = {f.name: f for f in (
    # descriptor (d: a lent descriptor; v: a value; the result after the comma)
    _fn("read", "dvv", "v", _R),  # (buffer, offset) -> bytes read; 0 at the end
    _fn("write", "dvv", "v", _W),  # (buffer, offset) -> bytes written
    _fn("append", "dv", "v", _W),  # (buffer) -> bytes written at the end
    _fn("advise", "dvvv", "", _R),  # (offset, length, Advice)
    _fn("sync_data", "d", "", _R),
    _fn("sync", "d", "", _R),
    _fn("get_flags", "d", "v", _R),  # -> DescriptorFlags (int)
    _fn("get_type", "d", "v", _R),  # -> DescriptorType
    _fn("set_size", "dv", "", _W),
    _fn("set_times", "dvv", "", _T),  # (NewTimestamp, NewTimestamp)
    _fn("read_directory", "d", "s", _R),  # -> a new directory-entry-stream
    _fn("create_directory_at", "dv", "", _T),
    _fn("stat", "d", "v", _R),  # -> DescriptorStat
    _fn("stat_at", "dvv", "v", _R),  # (PathFlags, path) -> DescriptorStat
    _fn("set_times_at", "dvvvv", "", _T),  # (PathFlags, path, atime, mtime)
    _fn("link_at", "dvvdv", "", _T),  # (PathFlags, old path, new directory, new path)
    # (PathFlags, path, OpenFlags, DescriptorFlags) -> (descriptor, its type, its flags)
    _fn("open_at", "dvvvv", "dvv", _O),
    _fn("readlink_at", "dv", "v", _R),  # (path) -> target
    _fn("remove_directory_at", "dv", "", _T),
    _fn("rename_at", "dvdv", "", _T),  # (old path, new directory, new path)
    _fn("symlink_at", "dvv", "", _T),  # (target, new path)
    _fn("unlink_file_at", "dv", "", _T),
    _fn("is_same_object", "dd", "v", _R),
    _fn("metadata_hash", "d", "v", _R),  # -> (lower, upper)
    _fn("metadata_hash_at", "dvv", "v", _R),  # (PathFlags, path) -> (lower, upper)
    # directory-entry-stream
    _fn("read_directory_entry", "s", "v", _R),  # -> DirectoryEntry, or None at the end
    # preopens
    _fn("preopen_paths", "", "v", _R),  # -> the guest path of each preopen, in order
    _fn("preopen", "v", "d", _O),  # (index) -> a new descriptor of that preopen
)}


def _slot_type(slot: Slot, types: Mapping[str, ResourceType], as_result: bool) -> Signature:
    if slot is Slot.VALUE:
        return value
    return (given if as_result else lent)(types[slot.value])


def signature(function: Function, types: Mapping[str, ResourceType]
              ) -> tuple[list[Signature], list[Signature]]:
    """The world's parameter and result types of ``function`` over ``types`` (by name)."""
    params = [_slot_type(p, types, False) for p in function.params]
    results = [_slot_type(r, types, True) for r in function.results]
    return params, results


def export(ctx: Context, types: Mapping[str, ResourceType],
           functions: Mapping[str, Callable[..., Any]], *, representations: bool = False
           ) -> dict[str, Func | ResourceType]:
    """The exports of an instance serving the interface: its two resource types, and one
    function per declared name from ``functions``, which must name exactly those (with
    ``representations``, see ``Context.func``)."""
    missing = FUNCTIONS.keys() - functions.keys()
    extra = functions.keys() - FUNCTIONS.keys()
    if missing or extra:
        raise TypeError(f"{ctx.name}: not the interface (missing {sorted(missing)}, "
                        f"not declared {sorted(extra)})")
    exported: dict[str, Func | ResourceType] = {DESCRIPTOR: types[DESCRIPTOR],
                                                STREAM: types[STREAM]}
    for name, function in FUNCTIONS.items():
        params, results = signature(function, types)
        exported[name] = ctx.func(functions[name], params, results, name=name,
                                  representations=representations, raises=ANSWERS)
    return exported


def serve(ctx: Context, functions: Mapping[str, Callable[..., Any]],
          destructors: Mapping[str, Callable[[Any], None]]) -> dict[str, Func | ResourceType]:
    """The exports of an implementation written over representations.

    ``destructors`` gives the destructor of ``descriptor`` and of
    ``directory-entry-stream``; the two types are defined here, by ``ctx``'s instance.
    Each function of ``functions`` takes representations where the interface has a handle
    (the world hands them over) and returns a representation where it returns one (the
    world makes the new handle of it, in the caller's table), once for every
    implementation; ``open_at`` returns (representation, type, flags).
    """
    types = {name: ctx.resource_type(name, destructor=destructor, raises=ANSWERS)
             for name, destructor in destructors.items()}
    return export(ctx, types, functions, representations=True)
