"""The native implementation's calls that name a path from a directory descriptor.

Each resolves the guest's path with the one resolver (:mod:`virtwasi.filesystem.paths`,
through :mod:`.hosttree`), which refuses whatever would leave the directory, then acts on
the result with the ``*at`` system call from its parent's fd, never following the last
component: the kernel gives the remaining answers (``EEXIST``, ``ENOTEMPTY``...) itself.
"""

from __future__ import annotations

import os
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
    TRUNCATE,
    WRITE,
    NewTimestamp,
    check_open,
)
from ..filesystem.paths import Resolved
from ..storage.base import FileKind, Stat
from ..storage.hostdir import to_stat
from . import times
from .descriptors import HostDescriptor, HostDirectory, HostFile, directory_of
from .hosttree import parent_of, resolve, resolve_entry, walk_parents, walk_two

# O_NONBLOCK: opening a FIFO planted in the tree must not hang (cleared once open);
# O_NOCTTY: nor may a terminal become the runtime's controlling one.
_OPEN = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


def _found(d: HostDescriptor, path: str, follow: bool) -> tuple[HostDirectory, Resolved]:
    directory = directory_of(d)
    return directory, resolve(directory.fd, path, follow=follow)


def _existing(d: HostDescriptor, path: str, follow: bool = False
              ) -> tuple[HostDirectory, Resolved]:
    directory, found = _found(d, path, follow)
    if found.stat is None:
        raise FsError(ErrorCode.NO_ENTRY)
    return directory, found


def open_at(d: HostDescriptor, path_flags: int, path: str, open_flags: int, flags: int
            ) -> tuple[HostDescriptor, FileKind, int]:
    """The descriptor to hand out (the world makes the handle), its type and its flags."""
    if type(d) is not HostDirectory:
        raise FsError(ErrorCode.NOT_DIRECTORY)  # only open_at says ENOTDIR, as wasmtime
    check_open(open_flags, flags)
    exclusive = open_flags & CREATE and open_flags & EXCLUSIVE
    # O_CREAT|O_EXCL never follows a last symlink, not even a dangling one.
    found = resolve(d.fd, path, follow=bool(path_flags & SYMLINK_FOLLOW) and not exclusive,
                    create=bool(open_flags & CREATE))
    if found.stat is None:
        if open_flags & CREATE and found.must_be_directory:
            raise FsError(ErrorCode.IS_DIRECTORY, "open cannot create a directory")
    elif exclusive:
        raise FsError(ErrorCode.EXIST)
    elif found.stat.kind is FileKind.SYMLINK:
        raise FsError(ErrorCode.LOOP, "the last component is a symlink not followed")
    readable, writable = bool(flags & READ), bool(flags & WRITE)
    host = _OPEN | (os.O_RDWR if readable and writable
                    else os.O_WRONLY if writable else os.O_RDONLY)
    if open_flags & CREATE:
        host |= os.O_CREAT | (os.O_EXCL if open_flags & EXCLUSIVE else 0)
    if open_flags & TRUNCATE:
        host |= os.O_TRUNC
    if open_flags & DIRECTORY:
        host |= os.O_DIRECTORY
    if found.path == "":
        fd = os.open(".", host, dir_fd=d.fd)
    else:
        with parent_of(d.fd, found.path) as (parent, name):
            fd = os.open(name, host, 0o666, dir_fd=parent)
    try:
        os.set_blocking(fd, True)
        kind = to_stat(os.fstat(fd)).kind
    except BaseException:
        os.close(fd)
        raise
    if kind is FileKind.DIRECTORY:
        flags = READ | (d.flags & MUTATE_DIRECTORY)
        return HostDirectory(fd, flags), kind, flags
    flags = flags & (READ | WRITE) | d.flags & MUTATE_DIRECTORY
    return HostFile(fd, kind, flags), kind, flags


def stat_at(d: HostDescriptor, path_flags: int, path: str) -> Stat:
    _, found = _existing(d, path, bool(path_flags & SYMLINK_FOLLOW))
    assert found.stat is not None
    return found.stat


def metadata_hash_at(d: HostDescriptor, path_flags: int, path: str) -> tuple[int, int]:
    st = stat_at(d, path_flags, path)
    return st.ino, st.dev


def readlink_at(d: HostDescriptor, path: str) -> str:
    directory, found = _existing(d, path)
    if found.path == "":
        raise FsError(ErrorCode.INVALID, "a directory is not a symlink")
    with parent_of(directory.fd, found.path) as (parent, name):
        target = os.readlink(name, dir_fd=parent)
    try:
        target.encode()
    except UnicodeEncodeError as exc:  # the host's bytes, not UTF-8: no guest string
        raise FsError(ErrorCode.ILLEGAL_BYTE_SEQUENCE, "the target is not UTF-8") from exc
    return target


def set_times_at(d: HostDescriptor, path_flags: int, path: str, atime: NewTimestamp,
                 mtime: NewTimestamp) -> None:
    follow = bool(path_flags & SYMLINK_FOLLOW)
    spec = times.times(atime, mtime)
    directory, found = _found(d, path, follow)
    if atime is None and mtime is None and not follow and not found.must_be_directory:
        return  # utimensat changing nothing never looks at the last component itself
    if found.stat is None:
        raise FsError(ErrorCode.NO_ENTRY)
    if found.path == "":
        times.set_times_fd(directory.fd, spec)
        return
    with parent_of(directory.fd, found.path) as (parent, name):
        times.set_times_at(parent, name, spec)


def create_directory_at(d: HostDescriptor, path: str) -> None:
    directory = directory_of(d)
    # mkdir never follows its last component, not even a symlink written "link/".
    found, _ = resolve_entry(directory.fd, path)
    if found.stat is not None:
        raise FsError(ErrorCode.EXIST)
    with parent_of(directory.fd, found.path) as (parent, name):
        os.mkdir(name, 0o777, dir_fd=parent)


def remove_directory_at(d: HostDescriptor, path: str) -> None:
    directory, found = _existing(d, path)
    if found.path == "" or found.must_be_directory:
        # As wasmtime reads it, "d/" names "." inside d: not removable.
        raise FsError(ErrorCode.INVALID, "cannot remove a directory from inside it")
    with parent_of(directory.fd, found.path) as (parent, name):
        os.rmdir(name, dir_fd=parent)


def unlink_file_at(d: HostDescriptor, path: str) -> None:
    directory, found = _existing(d, path)
    assert found.stat is not None
    if found.stat.kind is FileKind.DIRECTORY:
        raise FsError(ErrorCode.IS_DIRECTORY)
    if found.must_be_directory:
        raise FsError(ErrorCode.NOT_DIRECTORY)
    with parent_of(directory.fd, found.path) as (parent, name):
        os.unlink(name, dir_fd=parent)


def rename_at(d: HostDescriptor, old_path: str, new: HostDescriptor, new_path: str) -> None:
    source, target = directory_of(d), directory_of(new)
    walk_two(source.fd, old_path, target.fd, new_path)
    paths.check_rename_dots(old_path, new_path)
    found, found_slash = resolve_entry(source.fd, old_path)
    paths.check_rename_source(found, start=found.path == "")
    to, to_slash = resolve_entry(target.fd, new_path)
    if to.path == "":  # the directory itself, reached without a dot (as "d/..")
        raise FsError(ErrorCode.BUSY, "cannot rename a directory someone stands in")
    paths.check_rename(found, found_slash, to, to_slash)
    with parent_of(source.fd, found.path) as (src, src_name), \
            parent_of(target.fd, to.path) as (dst, dst_name):
        os.rename(src_name, dst_name, src_dir_fd=src, dst_dir_fd=dst)


def symlink_at(d: HostDescriptor, link_target: str, path: str) -> None:
    directory = directory_of(d)
    paths.check_symlink_target(link_target, walked=False)
    walk_parents(directory.fd, path)
    found = resolve(directory.fd, path, follow=False)
    paths.check_symlink_target(link_target, walked=True)
    if found.stat is not None:
        raise FsError(ErrorCode.EXIST)
    if found.must_be_directory:
        raise FsError(ErrorCode.NO_ENTRY, "a symlink is not a directory")
    with parent_of(directory.fd, found.path) as (parent, name):
        os.symlink(link_target, name, dir_fd=parent)


def link_at(d: HostDescriptor, path_flags: int, old_path: str, new: HostDescriptor,
            new_path: str) -> None:
    source, target = directory_of(d), directory_of(new)
    if path_flags & SYMLINK_FOLLOW:
        raise FsError(ErrorCode.INVALID, "a hard link to what a symlink names is not offered")
    walk_two(source.fd, old_path, target.fd, new_path, slash=True)
    found = resolve(source.fd, old_path, follow=False)
    if found.stat is None:  # before the new name is looked at, as linkat does
        raise FsError(ErrorCode.NO_ENTRY)
    to = resolve(target.fd, new_path, follow=False)
    if to.stat is not None:
        raise FsError(ErrorCode.EXIST)
    if to.must_be_directory:
        raise FsError(ErrorCode.NO_ENTRY, "a hard link is not a directory")
    if found.path == "":
        raise FsError(ErrorCode.NOT_PERMITTED, "a directory cannot be hard-linked")
    with parent_of(source.fd, found.path) as (src, src_name), \
            parent_of(target.fd, to.path) as (dst, dst_name):
        os.link(src_name, dst_name, src_dir_fd=src, dst_dir_fd=dst, follow_symlinks=False)


NAMED_CALLS: dict[str, Callable[..., object]] = {
    "open_at": open_at, "stat_at": stat_at, "metadata_hash_at": metadata_hash_at,
    "readlink_at": readlink_at, "set_times_at": set_times_at,
    "create_directory_at": create_directory_at, "remove_directory_at": remove_directory_at,
    "unlink_file_at": unlink_file_at, "rename_at": rename_at, "symlink_at": symlink_at,
    "link_at": link_at,
}
"""Every call of this module, by interface name."""
