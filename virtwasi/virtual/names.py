"""The virtual implementation's calls that name a path from a directory descriptor.

Each resolves the path with the one resolver (:mod:`virtwasi.filesystem.paths`), which
refuses whatever would leave the directory, then asks the storage to act on what it found.
The answers follow wasmtime's built-in WASI; a storage that cannot do something says so
itself (``EROFS``, ``ENOTSUP``).
"""

from __future__ import annotations

from collections.abc import Callable

from ..filesystem import paths
from ..filesystem.errors import ErrorCode, FsError
from ..filesystem.interface import (
    CREATE,
    DIRECTORY,
    EXCLUSIVE,
    MUTATE_DIRECTORY,
    READ,
    SYMLINK_FOLLOW,
    SYNC_FLAGS,
    TRUNCATE,
    WRITE,
    NewTimestamp,
    check_open,
)
from ..filesystem.paths import plain_name
from ..storage.base import FileKind, Stat
from ..storage.opening import Opening, open_rule
from .descriptors import Descriptor, timestamp

# Bound once: a member read off its enum class costs several times a global.
_REGULAR, _DIRECTORY = FileKind.REGULAR, FileKind.DIRECTORY
_READ_OR_WRITE = READ | WRITE
# An open's O_CREAT, O_EXCL (which counts only with O_CREAT), O_TRUNC and O_DIRECTORY, as
# booleans, by its open flags: worked out once instead of on every open.
_ALL_OPEN_FLAGS = CREATE | DIRECTORY | EXCLUSIVE | TRUNCATE
_OPEN_FLAGS = [(bool(f & CREATE), bool(f & CREATE and f & EXCLUSIVE), bool(f & TRUNCATE),
                bool(f & DIRECTORY)) for f in range(_ALL_OPEN_FLAGS + 1)]


def _parent_and_name(d: Descriptor, path: str) -> paths.Resolved:
    d.require_directory()
    return paths.resolve(d.storage, d.path, path, follow=False)


def stat_at(d: Descriptor, path_flags: int, path: str) -> Stat:
    if d.kind is not _DIRECTORY:
        d.require_directory()
    found = paths.status(d.storage, d.path, path, follow=path_flags & SYMLINK_FOLLOW != 0)
    if found is None:
        raise FsError(ErrorCode.NO_ENTRY)
    return found


def open_at(d: Descriptor, path_flags: int, path: str, open_flags: int, flags: int
            ) -> tuple[Descriptor, FileKind, int]:
    """The descriptor to hand out (the world makes the handle), its type and its flags."""
    if d.kind is not _DIRECTORY:
        raise FsError(ErrorCode.NOT_DIRECTORY)  # only open_at says ENOTDIR, as wasmtime
    create, exclusive, truncate, directory = _OPEN_FLAGS[open_flags & _ALL_OPEN_FLAGS]
    if directory or flags & SYNC_FLAGS:  # all check_open refuses has one
        check_open(open_flags, flags)
    writable = flags & WRITE != 0
    flags = flags & _READ_OR_WRITE | d.flags & MUTATE_DIRECTORY
    full = None if directory else plain_name(d.path, path)
    if full is not None:
        # Nothing to walk: the storage's open decides by the open rule itself, as the
        # Storage protocol requires, so a regular file or a missing name needs no status
        # first. What it refuses (a directory to open, a symlink to follow, a refusal
        # that a missing name would answer first) is decided in full below.
        storage = d.storage
        try:
            file = storage.open(full, create=create, exclusive=exclusive,
                                truncate=truncate, writable=writable)
        except FileNotFoundError:
            raise  # the full walk would find nothing there either
        except OSError:
            pass
        else:
            return Descriptor(storage, full, _REGULAR, file, flags), _REGULAR, flags
    # O_CREAT|O_EXCL never follows a final symlink: the name exists, that is enough.
    follow = bool(path_flags & SYMLINK_FOLLOW) and not exclusive
    found = paths.resolve(d.storage, d.path, path, follow=follow, create=create)
    opening = open_rule(found.path, None if found.stat is None else found.stat.kind,
                        create=create, exclusive=exclusive,
                        truncate=truncate, writable=writable,
                        must_be_directory=found.must_be_directory or directory,
                        open_directories=True)
    if opening is Opening.DIRECTORY:
        assert found.stat is not None
        flags = READ | (d.flags & MUTATE_DIRECTORY)
        return (Descriptor(d.storage, found.path, FileKind.DIRECTORY, None, flags,
                           ino=found.stat.ino), FileKind.DIRECTORY, flags)
    file = d.storage.open(found.path, create=create, exclusive=exclusive, truncate=truncate,
                          writable=writable)
    return Descriptor(d.storage, found.path, _REGULAR, file, flags), _REGULAR, flags


def create_directory_at(d: Descriptor, path: str) -> None:
    d.require_directory()
    # mkdir never follows its last component, not even a symlink written "link/".
    found, _ = paths.resolve_entry(d.storage, d.path, path)
    if found.stat is not None:
        raise FsError(ErrorCode.EXIST)
    d.storage.mkdir(found.path)


def remove_directory_at(d: Descriptor, path: str) -> None:
    found = _parent_and_name(d, path)
    if found.stat is None:
        raise FsError(ErrorCode.NO_ENTRY)
    if found.path == d.path or found.must_be_directory:
        # As wasmtime reads it, "d/" names "." inside d: not removable.
        raise FsError(ErrorCode.INVALID, "cannot remove a directory from inside it")
    d.storage.rmdir(found.path)


def unlink_file_at(d: Descriptor, path: str) -> None:
    found = _parent_and_name(d, path)
    if found.stat is None:
        raise FsError(ErrorCode.NO_ENTRY)
    if found.stat.kind is FileKind.DIRECTORY:
        raise FsError(ErrorCode.IS_DIRECTORY)
    if found.must_be_directory:
        raise FsError(ErrorCode.NOT_DIRECTORY)
    d.storage.unlink(found.path)


def rename_at(d: Descriptor, old_path: str, new: Descriptor, new_path: str) -> None:
    if d.storage is not new.storage:
        raise FsError(ErrorCode.CROSS_DEVICE)
    d.require_directory()
    new.require_directory()
    paths.walk_two((d.storage, d.path, old_path), (new.storage, new.path, new_path))
    paths.check_rename_dots(old_path, new_path)
    found, found_slash = paths.resolve_entry(d.storage, d.path, old_path)
    paths.check_rename_source(found)
    target, target_slash = paths.resolve_entry(new.storage, new.path, new_path)
    paths.check_rename(found, found_slash, target, target_slash)
    d.storage.rename(found.path, target.path)


def symlink_at(d: Descriptor, target: str, path: str) -> None:
    paths.check_symlink_target(target, walked=False)
    paths.walk_parents(d.storage, d.path, path, slash=True)
    found = _parent_and_name(d, path)
    paths.check_symlink_target(target, walked=True)
    if found.stat is not None:
        raise FsError(ErrorCode.EXIST)
    if found.must_be_directory:
        raise FsError(ErrorCode.NO_ENTRY, "a symlink is not a directory")
    d.storage.symlink(target, found.path)


def readlink_at(d: Descriptor, path: str) -> str:
    found = _parent_and_name(d, path)
    if found.stat is None:
        raise FsError(ErrorCode.NO_ENTRY)
    return d.storage.readlink(found.path)


def link_at(d: Descriptor, path_flags: int, old_path: str, new: Descriptor,
            new_path: str) -> None:
    if d.storage is not new.storage:
        raise FsError(ErrorCode.CROSS_DEVICE)
    d.require_directory()
    if path_flags & SYMLINK_FOLLOW:
        raise FsError(ErrorCode.INVALID, "a hard link to what a symlink names is not offered")
    paths.walk_two((d.storage, d.path, old_path), (new.storage, new.path, new_path),
                   slash=True)
    found = paths.resolve(d.storage, d.path, old_path, follow=False)
    if found.stat is None:  # before the new name is looked at, as linkat does
        raise FsError(ErrorCode.NO_ENTRY)
    target = _parent_and_name(new, new_path)
    if target.stat is not None:
        raise FsError(ErrorCode.EXIST)
    if target.must_be_directory:
        raise FsError(ErrorCode.NO_ENTRY, "a hard link is not a directory")
    d.storage.link(found.path, target.path)


def set_times_at(d: Descriptor, path_flags: int, path: str, atime: NewTimestamp,
                 mtime: NewTimestamp) -> None:
    follow = bool(path_flags & SYMLINK_FOLLOW)
    d.require_directory()
    found = paths.resolve(d.storage, d.path, path, follow=follow)
    a, m = timestamp(atime), timestamp(mtime)
    if found.stat is None:
        # Linux's utimensat with nothing to set returns before looking the name up, when
        # it is not to be followed; only a missing parent or a trailing slash still fail.
        if a is None and m is None and not found.must_be_directory and not follow:
            return
        raise FsError(ErrorCode.NO_ENTRY)
    d.storage.set_times(found.path, a, m)


def metadata_hash_at(d: Descriptor, path_flags: int, path: str) -> tuple[int, int]:
    st = stat_at(d, path_flags, path)
    return st.ino, st.dev


NAMED_CALLS: dict[str, Callable[..., object]] = {
    "stat_at": stat_at, "create_directory_at": create_directory_at,
    "remove_directory_at": remove_directory_at, "unlink_file_at": unlink_file_at,
    "rename_at": rename_at, "symlink_at": symlink_at, "readlink_at": readlink_at,
    "link_at": link_at, "set_times_at": set_times_at, "metadata_hash_at": metadata_hash_at,
}
"""The calls of this module that need nothing but representations, by interface name."""
