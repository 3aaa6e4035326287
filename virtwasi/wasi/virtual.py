"""The virtual WASI implementation: an unprivileged library instance over storage.

It is an ordinary world instance. Its only powers are the private resource type it defines
(``descriptor``: an open file or directory, whose destructor closes the file) and the
storage capabilities it was given at instantiation. Clients reach it through the preview 1
adapter, which lends it their descriptors for each call; a borrow reaches its definer as the
representation itself, so an fd operation costs one table lookup and one identity check.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..storage.base import File, FileKind, Stat, Storage
from ..world import Context, Definition, Func, ResourceType, Semantics, borrow, own, shared, value
from . import paths
from .abi import ALL_RIGHTS, Errno, Fdflags, Filetype, Fstflags, Oflags, Rights, Whence
from .errors import WasiError

FILETYPE = {
    FileKind.REGULAR: Filetype.REGULAR_FILE,
    FileKind.DIRECTORY: Filetype.DIRECTORY,
    FileKind.SYMLINK: Filetype.SYMBOLIC_LINK,
    FileKind.CHARACTER_DEVICE: Filetype.CHARACTER_DEVICE,
    FileKind.BLOCK_DEVICE: Filetype.BLOCK_DEVICE,
    FileKind.SOCKET: Filetype.SOCKET_STREAM,
    FileKind.FIFO: Filetype.UNKNOWN,
    FileKind.UNKNOWN: Filetype.UNKNOWN,
}

# The rights wasmtime reports, so that fdstat answers match it bit for bit.
PREOPEN_RIGHTS = 0x7B7FE00
PREOPEN_INHERITING = ALL_RIGHTS & ~(
    Rights.PATH_FILESTAT_SET_SIZE | Rights.SOCK_SHUTDOWN | Rights.SOCK_ACCEPT
)
DIRECTORY_RIGHTS = ALL_RIGHTS & ~(
    Rights.FD_WRITE | Rights.FD_SEEK | Rights.FD_FILESTAT_SET_SIZE | Rights.PATH_FILESTAT_SET_SIZE
)
MAX_OFFSET = 2**63 - 1


@dataclass(eq=False, slots=True)
class Descriptor:
    """The representation behind a descriptor handle: never seen by any client."""

    storage: Storage
    path: str
    kind: FileKind
    file: File | None
    readable: bool
    writable: bool
    flags: int
    rights: int
    inheriting: int
    offset: int = 0
    preopen: str | None = None
    filetype: int = 0

    def __post_init__(self) -> None:
        self.filetype = int(FILETYPE[self.kind])  # once, not on every fdstat

    def require_file(self) -> File:
        if self.file is None:
            raise WasiError(Errno.ISDIR if self.kind is FileKind.DIRECTORY else Errno.BADF)
        return self.file

    def require_directory(self) -> None:
        if self.kind is not FileKind.DIRECTORY:
            raise WasiError(Errno.NOTDIR)


def _close(desc: Descriptor) -> None:
    if desc.file is not None:
        desc.file.close()
        desc.file = None


def _now_or(given: int, flags: int, set_flag: int, now_flag: int) -> int | None:
    if flags & now_flag:
        return time.time_ns()
    if flags & set_flag:
        return given
    return None


def check_times(flags: int) -> None:
    if (flags & Fstflags.ATIM and flags & Fstflags.ATIM_NOW) or (
        flags & Fstflags.MTIM and flags & Fstflags.MTIM_NOW
    ):
        raise WasiError(Errno.INVAL, "a time may be given or 'now', not both")


def virtual_wasi(mounts: Sequence[tuple[str, Storage]]) -> Definition:
    """The definition of a virtual WASI instance serving ``mounts`` (guest path, storage),
    which become its preopened directories in that order."""

    def definition(ctx: Context) -> dict[str, Func | ResourceType]:
        descriptor = ctx.resource_type("descriptor", destructor=_close)
        if ctx.semantics is Semantics.PROPOSAL_2021:
            lent, given = shared(descriptor), shared(descriptor)
        else:
            lent, given = borrow(descriptor), own(descriptor)

        def rep(h: object) -> Descriptor:
            # Under the component model a borrow arrives as the rep; otherwise as a handle.
            if isinstance(h, Descriptor):
                return h
            found: Descriptor = ctx.resource_rep(descriptor, h)  # type: ignore[arg-type]
            return found

        def preopen(index: int) -> int:
            guest, storage = mounts[index]
            return ctx.resource_new(descriptor, Descriptor(
                storage, "", FileKind.DIRECTORY, None, True, False, 0,
                PREOPEN_RIGHTS, PREOPEN_INHERITING, preopen=guest,
            ))

        def preopen_name(h: object) -> str | None:
            return rep(h).preopen

        def stat(h: object) -> Stat:
            d = rep(h)
            return d.file.stat() if d.file is not None else d.storage.lstat(d.path)

        def stat_at(h: object, path: str, follow: bool) -> Stat:
            d = rep(h)
            d.require_directory()
            found = paths.resolve(d.storage, d.path, path, follow=follow)
            if found.stat is None:
                raise WasiError(Errno.NOENT)
            return found.stat

        def open_at(h: object, path: str, follow: bool, oflags: int, fdflags: int,
                    rights: int, inheriting: int) -> int:
            d = rep(h)
            d.require_directory()
            found = paths.resolve(d.storage, d.path, path, follow=follow)
            st = found.stat
            if st is None:
                if not oflags & Oflags.CREAT:
                    raise WasiError(Errno.NOENT)
                if oflags & Oflags.DIRECTORY or found.must_be_directory:
                    raise WasiError(Errno.ISDIR if found.must_be_directory else Errno.NOENT)
            elif oflags & Oflags.CREAT and oflags & Oflags.EXCL:
                raise WasiError(Errno.EXIST)
            elif st.kind is FileKind.SYMLINK:
                raise WasiError(Errno.LOOP)
            elif oflags & Oflags.DIRECTORY and st.kind is not FileKind.DIRECTORY:
                raise WasiError(Errno.NOTDIR)
            readable = bool(rights & (Rights.FD_READ | Rights.FD_READDIR))
            writable = bool(rights & Rights.FD_WRITE) or bool(oflags & Oflags.TRUNC)
            if st is not None and st.kind is FileKind.DIRECTORY:
                if writable or oflags & Oflags.TRUNC:
                    raise WasiError(Errno.ISDIR)
                return ctx.resource_new(descriptor, Descriptor(
                    d.storage, found.path, FileKind.DIRECTORY, None, True, False,
                    fdflags, DIRECTORY_RIGHTS, DIRECTORY_RIGHTS,
                ))
            if oflags & Oflags.CREAT and not d.storage.writable:
                raise WasiError(Errno.ROFS)
            file = d.storage.open(
                found.path, create=bool(oflags & Oflags.CREAT),
                exclusive=bool(oflags & Oflags.EXCL), truncate=bool(oflags & Oflags.TRUNC),
                writable=writable,
            )
            granted = ALL_RIGHTS
            if not writable:
                granted &= ~Rights.FD_WRITE
            if not readable:
                granted &= ~(Rights.FD_READ | Rights.FD_READDIR)
            return ctx.resource_new(descriptor, Descriptor(
                d.storage, found.path, FileKind.REGULAR, file, readable, writable,
                fdflags, granted, granted,
            ))

        # Each call moves one buffer, as wasmtime does (the guest's libc loops on short counts).
        def read(h: object, buf: memoryview) -> int:
            d = rep(h)
            n = _pread(d, buf, d.offset)
            d.offset += n
            return n

        def pread(h: object, buf: memoryview, offset: int) -> int:
            return _pread(rep(h), buf, offset)

        def _pread(d: Descriptor, buf: memoryview, offset: int) -> int:
            file = d.require_file()
            if not d.readable:
                raise WasiError(Errno.BADF)
            return file.readinto(buf, offset)

        def write(h: object, buf: memoryview) -> int:
            d = rep(h)
            file = d.require_file()
            offset = file.stat().size if d.flags & Fdflags.APPEND else d.offset
            n = _pwrite(d, buf, offset)
            d.offset = offset + n
            return n

        def pwrite(h: object, buf: memoryview, offset: int) -> int:
            return _pwrite(rep(h), buf, offset)

        def _pwrite(d: Descriptor, buf: memoryview, offset: int) -> int:
            file = d.require_file()
            if not d.writable:
                raise WasiError(Errno.BADF)
            return file.write(buf, offset)

        def seek(h: object, delta: int, whence: int) -> int:
            d = rep(h)
            file = d.require_file()
            if whence == Whence.SET:
                target = delta
            elif whence == Whence.CUR:
                target = d.offset + delta
            elif whence == Whence.END:
                target = file.stat().size + delta
            else:
                raise WasiError(Errno.INVAL)
            if target < 0 or target > MAX_OFFSET:
                raise WasiError(Errno.INVAL)
            d.offset = target
            return target

        def fdstat(h: object) -> tuple[int, int, int, int]:
            d = rep(h)
            return d.filetype, d.flags, d.rights, d.inheriting

        def set_flags(h: object, flags: int) -> None:
            d = rep(h)
            d.flags = (d.flags & ~Fdflags.APPEND) | (flags & Fdflags.APPEND)

        def set_size(h: object, size: int) -> None:
            d = rep(h)
            file = d.require_file()
            if not d.writable:
                raise WasiError(Errno.BADF)
            file.truncate(size)

        def set_times(h: object, atim: int, mtim: int, flags: int) -> None:
            check_times(flags)
            d = rep(h)
            a = _now_or(atim, flags, Fstflags.ATIM, Fstflags.ATIM_NOW)
            m = _now_or(mtim, flags, Fstflags.MTIM, Fstflags.MTIM_NOW)
            if d.file is not None:
                d.file.set_times(a, m)
            else:
                d.storage.set_times(d.path, a, m)

        def sync(h: object) -> None:
            d = rep(h)
            if d.file is not None:
                d.file.sync()

        def readdir(h: object) -> list[tuple[str, int, int]]:
            """All entries, '.' and '..' first: (name, inode, filetype)."""
            d = rep(h)
            d.require_directory()
            here = d.storage.lstat(d.path)
            parent = d.storage.lstat(d.path.rpartition("/")[0]) if d.path else here
            entries: list[tuple[str, int, int]] = [
                (".", here.ino, Filetype.DIRECTORY), ("..", parent.ino, Filetype.DIRECTORY)
            ]
            entries += [(e.name, e.ino, FILETYPE[e.kind]) for e in d.storage.listdir(d.path)]
            return entries

        def _parent_and_name(d: Descriptor, path: str) -> paths.Resolved:
            d.require_directory()
            return paths.resolve(d.storage, d.path, path, follow=False)

        def mkdir_at(h: object, path: str) -> None:
            d = rep(h)
            found = _parent_and_name(d, path)
            if found.stat is not None:
                raise WasiError(Errno.EXIST)
            d.storage.mkdir(found.path)

        def rmdir_at(h: object, path: str) -> None:
            d = rep(h)
            found = _parent_and_name(d, path)
            if found.stat is None:
                raise WasiError(Errno.NOENT)
            if found.path == d.path:
                raise WasiError(Errno.INVAL)
            d.storage.rmdir(found.path)

        def unlink_at(h: object, path: str) -> None:
            d = rep(h)
            found = _parent_and_name(d, path)
            if found.stat is None:
                raise WasiError(Errno.NOENT)
            if found.must_be_directory or found.stat.kind is FileKind.DIRECTORY:
                raise WasiError(Errno.ISDIR if found.stat.kind is FileKind.DIRECTORY
                                else Errno.NOTDIR)
            d.storage.unlink(found.path)

        def rename_at(h: object, path: str, h2: object, path2: str) -> None:
            src, dst = rep(h), rep(h2)
            if src.storage is not dst.storage:
                raise WasiError(Errno.XDEV)
            found = _parent_and_name(src, path)
            target = _parent_and_name(dst, path2)
            if found.stat is None:
                raise WasiError(Errno.NOENT)
            src.storage.rename(found.path, target.path)

        def symlink_at(target: str, h: object, path: str) -> None:
            d = rep(h)
            found = _parent_and_name(d, path)
            if found.stat is not None:
                raise WasiError(Errno.EXIST)
            if target.startswith("/"):
                raise WasiError(Errno.PERM, "an absolute symlink would point outside")
            d.storage.symlink(target, found.path)

        def readlink_at(h: object, path: str) -> str:
            d = rep(h)
            found = _parent_and_name(d, path)
            if found.stat is None:
                raise WasiError(Errno.NOENT)
            return d.storage.readlink(found.path)

        def link_at(h: object, follow: bool, path: str, h2: object, path2: str) -> None:
            src, dst = rep(h), rep(h2)
            if src.storage is not dst.storage:
                raise WasiError(Errno.XDEV)
            src.require_directory()
            found = paths.resolve(src.storage, src.path, path, follow=follow)
            target = _parent_and_name(dst, path2)
            if found.stat is None:
                raise WasiError(Errno.NOENT)
            if target.stat is not None:
                raise WasiError(Errno.EXIST)
            src.storage.link(found.path, target.path)

        def set_times_at(h: object, follow: bool, path: str, atim: int, mtim: int,
                         flags: int) -> None:
            check_times(flags)
            d = rep(h)
            d.require_directory()
            found = paths.resolve(d.storage, d.path, path, follow=follow)
            if found.stat is None:
                raise WasiError(Errno.NOENT)
            a = _now_or(atim, flags, Fstflags.ATIM, Fstflags.ATIM_NOW)
            m = _now_or(mtim, flags, Fstflags.MTIM, Fstflags.MTIM_NOW)
            d.storage.set_times(found.path, a, m)

        def close(h: int) -> None:
            ctx.resource_drop(descriptor, h)

        f = ctx.func
        return {
            "descriptor": descriptor,
            "preopen_count": f(lambda: len(mounts), [], [value], "preopen_count"),
            "preopen": f(preopen, [value], [given]),
            "preopen_name": f(preopen_name, [lent], [value]),
            "stat": f(stat, [lent], [value]),
            "stat_at": f(stat_at, [lent, value, value], [value]),
            "open_at": f(open_at, [lent, *[value] * 6], [given]),
            "read": f(read, [lent, value], [value]),
            "pread": f(pread, [lent, value, value], [value]),
            "write": f(write, [lent, value], [value]),
            "pwrite": f(pwrite, [lent, value, value], [value]),
            "seek": f(seek, [lent, value, value], [value]),
            "fdstat": f(fdstat, [lent], [value]),
            "set_flags": f(set_flags, [lent, value], []),
            "set_size": f(set_size, [lent, value], []),
            "set_times": f(set_times, [lent, value, value, value], []),
            "sync": f(sync, [lent], []),
            "readdir": f(readdir, [lent], [value]),
            "mkdir_at": f(mkdir_at, [lent, value], []),
            "rmdir_at": f(rmdir_at, [lent, value], []),
            "unlink_at": f(unlink_at, [lent, value], []),
            "rename_at": f(rename_at, [lent, value, lent, value], []),
            "symlink_at": f(symlink_at, [value, lent, value], []),
            "readlink_at": f(readlink_at, [lent, value], [value]),
            "link_at": f(link_at, [lent, value, value, lent, value], []),
            "set_times_at": f(set_times_at, [lent, value, value, value, value, value], []),
            "close": f(close, [given], []),
        }

    return definition

