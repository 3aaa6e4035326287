"""The ``path_*`` imports of the native implementation.

Each resolves the guest's path with the one resolver (:mod:`virtwasi.wasi.paths`, through
:mod:`.tree`), which refuses whatever would leave the directory, then acts on the result
with the ``*at`` system call from its parent's fd, never following the last component:
the kernel gives the remaining answers (``EEXIST``, ``ENOTEMPTY``, ``EISDIR``...) itself.
"""

from __future__ import annotations

import os

from ..storage.base import FileKind
from ..storage.hostdir import to_stat
from ..wasi.abi import FILESTAT, U32, Errno, Fdflags, Lookupflags, Oflags, Rights
from ..wasi.errors import WasiError, check_flags, check_open_flags
from ..wasi.paths import Resolved
from ..wasi.virtual import FILETYPE
from . import times
from .base import NativeBase
from .fdops import filestat
from .table import OpenDir, OpenFile
from .tree import parent_of, resolve

# O_NONBLOCK: opening a FIFO planted in the tree must not hang (cleared once open);
# O_NOCTTY: nor may a terminal become the runtime's controlling one.
_OPEN = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
_SYNC = Fdflags.DSYNC | Fdflags.RSYNC | Fdflags.SYNC
_FOLLOW = Lookupflags.SYMLINK_FOLLOW


def _names_dot(path: str) -> bool:
    """The last component is ``.`` or ``..`` (trailing slashes aside)."""
    return path.rstrip("/").rpartition("/")[2] in (".", "..")


def _open_at(directory: OpenDir, found: Resolved, flags: int) -> int:
    if found.path == "":
        return os.open(".", flags, dir_fd=directory.fd)
    with parent_of(directory.fd, found.path) as (parent, name):
        return os.open(name, flags, 0o666, dir_fd=parent)


class PathImports(NativeBase):
    """The imports that name a path relative to a directory fd."""

    def _found(self, fd: int, path: int, length: int, follow: bool) -> tuple[OpenDir, Resolved]:
        directory = self.table.directory(fd)
        return directory, resolve(directory.fd, self.path(path, length), follow=follow)

    def _existing(self, fd: int, path: int, length: int,
                  follow: bool = False) -> tuple[OpenDir, Resolved]:
        directory, found = self._found(fd, path, length, follow)
        if found.stat is None:
            raise WasiError(Errno.NOENT)
        return directory, found

    # -- opening ----------------------------------------------------------------------------
    def path_open(self, fd: int, dirflags: int, path: int, length: int, oflags: int,
                  base: int, inheriting: int, fdflags: int, fd_ptr: int) -> None:
        check_open_flags(dirflags, oflags, base, inheriting, fdflags)
        text = self.path(path, length)
        entry = self.table.get(fd)
        if isinstance(entry, OpenFile):
            raise WasiError(Errno.NOTDIR)
        if not isinstance(entry, OpenDir):
            raise WasiError(Errno.BADF)
        if fdflags & _SYNC:
            raise WasiError(Errno.NOTSUP, "synchronous writes are not offered")
        if oflags & Oflags.DIRECTORY and oflags & (Oflags.CREAT | Oflags.EXCL | Oflags.TRUNC):
            raise WasiError(Errno.INVAL, "a directory cannot be created, truncated or exclusive")
        exclusive = oflags & Oflags.CREAT and oflags & Oflags.EXCL
        # O_CREAT|O_EXCL never follows a last symlink, not even a dangling one.
        found = resolve(entry.fd, text, follow=bool(dirflags & _FOLLOW) and not exclusive)
        if found.stat is None:
            if oflags & Oflags.CREAT and found.must_be_directory:
                raise WasiError(Errno.ISDIR, "open cannot create a directory")
        elif exclusive:
            raise WasiError(Errno.EXIST)
        elif found.stat.kind is FileKind.SYMLINK:
            raise WasiError(Errno.LOOP, "the last component is a symlink not followed")
        # As in wasmtime: creating or truncating writes; not asking to write means reading.
        writable = bool(base & Rights.FD_WRITE or oflags & (Oflags.CREAT | Oflags.TRUNC))
        readable = bool(base & Rights.FD_READ or not base & Rights.FD_WRITE)
        flags = _OPEN | (os.O_RDWR if readable and writable
                         else os.O_WRONLY if writable else os.O_RDONLY)
        if oflags & Oflags.CREAT:
            flags |= os.O_CREAT | (os.O_EXCL if oflags & Oflags.EXCL else 0)
        if oflags & Oflags.TRUNC:
            flags |= os.O_TRUNC
        if oflags & Oflags.DIRECTORY:
            flags |= os.O_DIRECTORY
        if fdflags & Fdflags.APPEND:
            flags |= os.O_APPEND
        host = _open_at(entry, found, flags)
        try:
            os.set_blocking(host, True)
            kind = to_stat(os.fstat(host)).kind
            opened: OpenDir | OpenFile
            if kind is FileKind.DIRECTORY:
                opened = OpenDir(host)
            else:
                opened = OpenFile(host, FILETYPE[kind], readable, writable,
                                  append=bool(fdflags & Fdflags.APPEND),
                                  nonblock=bool(fdflags & Fdflags.NONBLOCK))
            new = self.table.push(opened)
        except BaseException:
            os.close(host)
            raise
        try:
            self.memory.pack(U32, fd_ptr, new)
        except BaseException:
            self.table.close(new)
            raise

    # -- looking ------------------------------------------------------------------------------
    def path_filestat_get(self, fd: int, flags: int, path: int, length: int, ptr: int) -> None:
        check_flags("Lookupflags", flags, Lookupflags)
        _, found = self._existing(fd, path, length, bool(flags & _FOLLOW))
        assert found.stat is not None
        self.memory.pack(FILESTAT, ptr, *filestat(found.stat))

    def path_readlink(self, fd: int, path: int, length: int, buf: int, buf_len: int,
                      bufused: int) -> None:
        directory, found = self._existing(fd, path, length)
        if found.path == "":
            raise WasiError(Errno.INVAL, "a directory is not a symlink")
        with parent_of(directory.fd, found.path) as (parent, name):
            target = os.readlink(name, dir_fd=parent)
        try:
            raw = target.encode()
        except UnicodeEncodeError as exc:  # the host's bytes, not UTF-8: no guest string
            raise WasiError(Errno.ILSEQ, "the symlink's target is not UTF-8") from exc
        take = min(len(raw), buf_len)
        self.memory.window(buf, take)[:] = raw[:take]
        self.memory.pack(U32, bufused, take)

    def path_filestat_set_times(self, fd: int, flags: int, path: int, length: int, atim: int,
                                mtim: int, fst: int) -> None:
        check_flags("Lookupflags", flags, Lookupflags)
        spec = times.times(atim, mtim, fst)
        follow = bool(flags & _FOLLOW)
        directory, found = self._found(fd, path, length, follow)
        if not fst and not follow and not found.must_be_directory:
            # utimensat changing nothing never looks at the last component itself.
            return
        if found.stat is None:
            raise WasiError(Errno.NOENT)
        if found.path == "":
            times.set_times_fd(directory.fd, spec)
            return
        with parent_of(directory.fd, found.path) as (parent, name):
            times.set_times_at(parent, name, spec)

    # -- changing the tree ----------------------------------------------------------------------
    def path_create_directory(self, fd: int, path: int, length: int) -> None:
        directory = self.table.directory(fd)
        text = self.path(path, length)
        # mkdir never follows its last component, not even a symlink written "link/".
        found = resolve(directory.fd, text.rstrip("/") or text, follow=False)
        if found.stat is not None:
            raise WasiError(Errno.EXIST)
        with parent_of(directory.fd, found.path) as (parent, name):
            os.mkdir(name, 0o777, dir_fd=parent)

    def path_remove_directory(self, fd: int, path: int, length: int) -> None:
        directory, found = self._existing(fd, path, length)
        if found.path == "" or found.must_be_directory:
            # As wasmtime reads it, "d/" names "." inside d: not removable.
            raise WasiError(Errno.INVAL, "cannot remove a directory from inside it")
        with parent_of(directory.fd, found.path) as (parent, name):
            os.rmdir(name, dir_fd=parent)

    def path_unlink_file(self, fd: int, path: int, length: int) -> None:
        directory, found = self._existing(fd, path, length)
        assert found.stat is not None
        if found.stat.kind is FileKind.DIRECTORY:
            raise WasiError(Errno.ISDIR)
        if found.must_be_directory:
            raise WasiError(Errno.NOTDIR)
        with parent_of(directory.fd, found.path) as (parent, name):
            os.unlink(name, dir_fd=parent)

    def path_rename(self, fd: int, old: int, old_len: int, new_fd: int, new: int,
                    new_len: int) -> None:
        source = self.table.directory(fd)
        target = self.table.directory(new_fd)
        old_path, new_path = self.path(old, old_len), self.path(new, new_len)
        found = resolve(source.fd, old_path, follow=False)
        to = resolve(target.fd, new_path, follow=False)
        if _names_dot(old_path) or _names_dot(new_path) or "" in (found.path, to.path):
            raise WasiError(Errno.BUSY, "cannot rename a directory someone stands in")
        if found.stat is None:
            raise WasiError(Errno.NOENT)
        if (found.must_be_directory or to.must_be_directory) and (
                found.stat.kind is not FileKind.DIRECTORY):
            raise WasiError(Errno.NOTDIR, "a trailing slash names a directory")
        with parent_of(source.fd, found.path) as (src, src_name), \
                parent_of(target.fd, to.path) as (dst, dst_name):
            os.rename(src_name, dst_name, src_dir_fd=src, dst_dir_fd=dst)

    def path_symlink(self, old: int, old_len: int, fd: int, new: int, new_len: int) -> None:
        directory = self.table.directory(fd)
        link_target = self.path(old, old_len)
        found = resolve(directory.fd, self.path(new, new_len), follow=False)
        if found.stat is not None:
            raise WasiError(Errno.EXIST)
        if found.must_be_directory:
            raise WasiError(Errno.NOENT, "a symlink is not a directory")
        if link_target.startswith("/"):
            raise WasiError(Errno.PERM, "an absolute symlink would point outside")
        if "\0" in link_target:
            raise WasiError(Errno.INVAL, "a path may not contain NUL")
        with parent_of(directory.fd, found.path) as (parent, name):
            os.symlink(link_target, name, dir_fd=parent)

    def path_link(self, fd: int, flags: int, old: int, old_len: int, new_fd: int, new: int,
                  new_len: int) -> None:
        check_flags("Lookupflags", flags, Lookupflags)
        source = self.table.directory(fd)
        target = self.table.directory(new_fd)
        old_path, new_path = self.path(old, old_len), self.path(new, new_len)
        if flags & _FOLLOW:
            raise WasiError(Errno.INVAL, "a hard link to what a symlink names is not offered")
        found = resolve(source.fd, old_path, follow=False)
        to = resolve(target.fd, new_path, follow=False)
        if found.stat is None:
            raise WasiError(Errno.NOENT)
        if to.stat is not None:
            raise WasiError(Errno.EXIST)
        if to.must_be_directory:
            raise WasiError(Errno.NOENT, "a hard link is not a directory")
        if found.path == "":
            raise WasiError(Errno.PERM, "a directory cannot be hard-linked")
        with parent_of(source.fd, found.path) as (src, src_name), \
                parent_of(target.fd, to.path) as (dst, dst_name):
            os.link(src_name, dst_name, src_dir_fd=src, dst_dir_fd=dst, follow_symlinks=False)
