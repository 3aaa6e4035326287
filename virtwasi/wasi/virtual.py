"""The virtual WASI implementation: an unprivileged library instance over storage.

It is an ordinary world instance. Its only powers are the private resource types it defines
(``descriptor``: an open file or directory, whose destructor closes the file;
``directory-stream``: a listing of a directory being read, cookie after cookie) and the
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
# Positions are u64 as in wasmtime, but I/O must end by the largest off_t (Linux's EINVAL).
MAX_POSITION = 2**64 - 1
MAX_OFFSET = 2**63 - 1
_APPEND = int(Fdflags.APPEND)  # a plain int: IntFlag arithmetic costs a microsecond a call
# Synchronized I/O: wasmtime offers none of it (ENOTSUP at open, EINVAL from set_flags).
_SYNC_FLAGS = int(Fdflags.DSYNC | Fdflags.RSYNC | Fdflags.SYNC)
_DIRENT_HEADER = 24  # bytes before the name in a preview 1 dirent
Entry = tuple[bytes, int, int]  # a directory entry: (name, inode, filetype)


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
    ino: int = 0  # a directory's, for "." and ".." once its path is gone

    def __post_init__(self) -> None:
        self.filetype = int(FILETYPE[self.kind])  # once, not on every fdstat
        # Plain ints: an IntFlag costs a Python-level conversion every time it is packed.
        self.rights, self.inheriting = int(self.rights), int(self.inheriting)
        self.flags = int(self.flags)

    # wasmtime answers EBADF for a file operation on a directory and for a directory
    # operation on a file (ENOTDIR only from path_open, see open_at).
    def require_file(self) -> File:
        if self.file is None:
            raise WasiError(Errno.BADF)
        return self.file

    def require_directory(self) -> None:
        if self.kind is not FileKind.DIRECTORY:
            raise WasiError(Errno.BADF)


def _close(desc: Descriptor) -> None:
    if desc.file is not None:
        desc.file.close()
        desc.file = None


@dataclass(eq=False, slots=True)
class DirectoryStream:
    """The representation behind a directory-stream handle: a snapshot of one directory's
    entries, "." and ".." first, and the cookie of the next entry to hand out. Reading
    on from that cookie serves the snapshot, so that listing a directory in many small
    calls lists it once; any other cookie takes a new snapshot, as every call does in
    wasmtime, so a reader that starts over sees the directory as it is now."""

    directory: Descriptor
    entries: list[Entry] | None = None
    position: int = -1


def _release(stream: DirectoryStream) -> None:
    stream.entries = None


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
        directory_stream = ctx.resource_type("directory-stream", destructor=_release)
        if ctx.semantics is Semantics.PROPOSAL_2021:
            lent, given = shared(descriptor), shared(descriptor)
            lent_stream, given_stream = shared(directory_stream), shared(directory_stream)
        else:
            lent, given = borrow(descriptor), own(descriptor)
            lent_stream, given_stream = borrow(directory_stream), own(directory_stream)

        def rep(h: object) -> Descriptor:
            # Under the component model a borrow arrives as the rep; otherwise as a handle.
            if isinstance(h, Descriptor):
                return h
            found: Descriptor = ctx.resource_rep(descriptor, h)  # type: ignore[arg-type]
            return found

        def stream_rep(h: object) -> DirectoryStream:
            if isinstance(h, DirectoryStream):
                return h
            found: DirectoryStream = ctx.resource_rep(directory_stream, h)  # type: ignore[arg-type]
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

        # The hot calls take the rep as it arrives (a borrow lent to its definer) inline.
        def stat_at(h: object, path: str, follow: bool) -> Stat:
            d = h if type(h) is Descriptor else rep(h)
            if d.kind is not FileKind.DIRECTORY:
                d.require_directory()
            found = paths.status(d.storage, d.path, path, follow=follow)
            if found is None:
                raise WasiError(Errno.NOENT)
            return found

        def open_at(h: object, path: str, follow: bool, oflags: int, fdflags: int,
                    rights: int, inheriting: int) -> int:
            d = rep(h)
            if d.kind is not FileKind.DIRECTORY:
                raise WasiError(Errno.NOTDIR)
            # As wasmtime: a directory is never created, truncated or opened exclusively.
            if oflags & Oflags.DIRECTORY and oflags & (Oflags.CREAT | Oflags.EXCL | Oflags.TRUNC):
                raise WasiError(Errno.INVAL)
            if fdflags & _SYNC_FLAGS:
                raise WasiError(Errno.NOTSUP)
            create = bool(oflags & Oflags.CREAT)
            exclusive = create and bool(oflags & Oflags.EXCL)
            # O_CREAT|O_EXCL never follows a final symlink: the name exists, that is enough.
            found = paths.resolve(d.storage, d.path, path, follow=follow and not exclusive)
            st = found.stat
            if st is None:
                if not create:
                    raise WasiError(Errno.NOENT)
                if found.must_be_directory:
                    raise WasiError(Errno.ISDIR)
            elif exclusive:
                raise WasiError(Errno.EXIST)
            elif st.kind is FileKind.SYMLINK:
                raise WasiError(Errno.LOOP)
            elif oflags & Oflags.DIRECTORY and st.kind is not FileKind.DIRECTORY:
                raise WasiError(Errno.NOTDIR)
            # Asked for neither reading nor writing, wasmtime opens for reading; truncating
            # opens for writing too.
            readable = bool(rights & Rights.FD_READ) or not rights & Rights.FD_WRITE
            writable = bool(rights & Rights.FD_WRITE) or bool(oflags & Oflags.TRUNC)
            if st is not None and st.kind is FileKind.DIRECTORY:
                if writable or create or oflags & Oflags.TRUNC:
                    raise WasiError(Errno.ISDIR)
                return ctx.resource_new(descriptor, Descriptor(
                    d.storage, found.path, FileKind.DIRECTORY, None, True, False,
                    0, DIRECTORY_RIGHTS, DIRECTORY_RIGHTS, ino=st.ino,
                ))
            file = d.storage.open(
                found.path, create=create, exclusive=exclusive,
                truncate=bool(oflags & Oflags.TRUNC), writable=writable,
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
            d = h if type(h) is Descriptor else rep(h)
            file = d.file
            if file is None:
                file = d.require_file()
            if not d.readable:
                raise WasiError(Errno.BADF)
            if d.offset + buf.nbytes > MAX_OFFSET:
                raise WasiError(Errno.INVAL)
            n = file.readinto(buf, d.offset)
            d.offset += n
            return n

        def pread(h: object, buf: memoryview, offset: int) -> int:
            return _pread(rep(h), buf, offset)

        def _pread(d: Descriptor, buf: memoryview, offset: int) -> int:
            file = d.require_file()
            if not d.readable:
                raise WasiError(Errno.BADF)
            if offset + buf.nbytes > MAX_OFFSET:
                raise WasiError(Errno.INVAL)
            return file.readinto(buf, offset)

        def write(h: object, buf: memoryview) -> int:
            d = h if type(h) is Descriptor else rep(h)
            file = d.file
            if file is None:
                file = d.require_file()
            offset = file.stat().size if d.flags & _APPEND else d.offset
            if not d.writable:
                raise WasiError(Errno.BADF)
            if offset + buf.nbytes > MAX_OFFSET:
                raise WasiError(Errno.INVAL)
            n = file.write(buf, offset)
            d.offset = offset + n
            return n

        def pwrite(h: object, buf: memoryview, offset: int) -> int:
            d = rep(h)
            if d.flags & _APPEND:  # Linux appends whatever the offset, and so does wasmtime
                offset = d.require_file().stat().size
            return _pwrite(d, buf, offset)

        def _pwrite(d: Descriptor, buf: memoryview, offset: int) -> int:
            file = d.require_file()
            if not d.writable:
                raise WasiError(Errno.BADF)
            if offset + buf.nbytes > MAX_OFFSET:
                raise WasiError(Errno.INVAL)
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
            if target < 0 or target > MAX_POSITION:
                raise WasiError(Errno.INVAL)
            d.offset = target
            return target

        def fdstat(h: object) -> tuple[int, int, int, int]:
            d = h if type(h) is Descriptor else rep(h)
            return d.filetype, d.flags, d.rights, d.inheriting

        def set_flags(h: object, flags: int) -> None:
            d = rep(h)
            d.require_file()
            if flags & _SYNC_FLAGS:
                raise WasiError(Errno.INVAL)
            d.flags = flags  # APPEND and NONBLOCK (files never block)

        def set_size(h: object, size: int) -> None:
            d = rep(h)
            file = d.require_file()
            if not d.writable:
                raise WasiError(Errno.INVAL)  # Linux's ftruncate of a read-only fd
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
            rep(h).require_file().sync()

        def advise(h: object) -> None:
            rep(h).require_file()  # advice is only advice: files take it and ignore it

        def allocate(h: object) -> None:
            rep(h).require_file()
            raise WasiError(Errno.NOTSUP)  # as wasmtime, which never preallocates

        def _listing(d: Descriptor) -> list[Entry]:
            """Every entry, "." and ".." first. Both carry the directory's own inode, as
            in wasmtime; a directory removed while open lists only those two."""
            try:
                ino = d.storage.lstat(d.path).ino
                found = d.storage.listdir(d.path)
            except FileNotFoundError:
                ino, found = d.ino, []
            entries: list[Entry] = [
                (b".", ino, Filetype.DIRECTORY), (b"..", ino, Filetype.DIRECTORY)
            ]
            entries += [(e.name.encode(), e.ino, FILETYPE[e.kind]) for e in found]
            return entries

        def open_directory(h: object) -> int:
            d = rep(h)
            d.require_directory()
            return ctx.resource_new(directory_stream, DirectoryStream(d))

        def read_directory(h: object, cookie: int, length: int) -> list[Entry]:
            """The entries from ``cookie`` on that ``length`` bytes of dirents reach into
            (the last one may be cut short); the stream then stands at the first entry not
            handed out whole."""
            s = stream_rep(h)
            entries = s.entries
            if entries is None or cookie != s.position:
                entries = s.entries = _listing(s.directory)
            out: list[Entry] = []
            used = 0
            index = cookie
            while index < len(entries) and used < length:
                entry = entries[index]
                out.append(entry)
                used += _DIRENT_HEADER + len(entry[0])
                index += 1
            s.position = index - 1 if used > length else index
            if s.position >= len(entries):
                s.entries = None  # read to the end: the next reader starts over
            return out

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
            a = _now_or(atim, flags, Fstflags.ATIM, Fstflags.ATIM_NOW)
            m = _now_or(mtim, flags, Fstflags.MTIM, Fstflags.MTIM_NOW)
            if found.stat is None:
                # Linux's utimensat with nothing to set returns before looking the name up;
                # only a missing parent, a trailing slash or a dangling symlink still fail.
                nothing = a is None and m is None and not found.must_be_directory
                if nothing and (not follow or paths.resolve(
                        d.storage, d.path, path, follow=False).stat is None):
                    return
                raise WasiError(Errno.NOENT)
            d.storage.set_times(found.path, a, m)

        # Under proposal-2021 the callee holds only a copy: closing must end the resource
        # itself (every other handle to it becomes null), not just drop that copy.
        end = ctx.resource_destroy if ctx.semantics is Semantics.PROPOSAL_2021 else (
            ctx.resource_drop)

        def close(h: int) -> None:
            end(descriptor, h)

        def close_directory(h: int) -> None:
            end(directory_stream, h)

        f = ctx.func
        return {
            "descriptor": descriptor,
            "directory-stream": directory_stream,
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
            "advise": f(advise, [lent], []),
            "allocate": f(allocate, [lent], []),
            "open_directory": f(open_directory, [lent], [given_stream]),
            "read_directory": f(read_directory, [lent_stream, value, value], [value]),
            "close_directory": f(close_directory, [given_stream], []),
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

