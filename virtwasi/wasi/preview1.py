"""The preview 1 adapter: one function per wasi_snapshot_preview1 import.

It runs with the client's privileges, inside the client instance: it keeps the client's fd
table (fd -> stdio stream, or handle in the client's own handle table), moves bytes between
guest memory and the virtual implementation, and turns every error into an errno. It never
touches a descriptor's representation: that belongs to the implementation instance.
"""

from __future__ import annotations

from typing import BinaryIO

from ..storage.base import FileKind, Stat
from ..world import Context, Exports, ResourceType, Semantics
from .abi import (
    DIRENT,
    FDSTAT,
    FILESTAT,
    U32,
    U64,
    Advice,
    Errno,
    Fdflags,
    Filetype,
    Fstflags,
    Lookupflags,
    Rights,
    Whence,
)
from .common import HANGUP, CommonImports, Stdio
from .common import ProcExit as ProcExit
from .common import read_stream as _read_stream
from .errors import WasiError, check_enum, check_flags, check_open_flags
from .memory import GuestMemory
from .virtual import FILETYPE, check_times

FdEntry = Stdio | int  # an int is a handle index in the client's table

# Bound once for the hot calls (plain ints: IntFlag arithmetic costs a microsecond).
_pack_u32 = U32.pack_into
_pack_fdstat = FDSTAT.pack_into
_pack_filestat = FILESTAT.pack_into
_SYMLINK_FOLLOW = int(Lookupflags.SYMLINK_FOLLOW)
_FILETYPE = {kind: int(filetype) for kind, filetype in FILETYPE.items()}
_REGULAR = int(Filetype.REGULAR_FILE)  # enum members hash in Python: test the common one first


def _stat_fields(st: Stat) -> tuple[int, ...]:
    return (st.dev, st.ino, FILETYPE[st.kind], st.nlink, st.size, st.atime_ns, st.mtime_ns,
            st.ctime_ns)


class Preview1(CommonImports):
    """The imports of one client. ``memory`` is attached once the module is instantiated.
    Those that do not depend on the implementation come from :class:`CommonImports`."""

    def __init__(
        self,
        wasi: Exports,
        args: list[str],
        env: list[str],
        stdin: BinaryIO | None,
        stdout: BinaryIO | None,
        stderr: BinaryIO | None,
        client: Context | None = None,
    ) -> None:
        self.wasi = wasi
        # Under proposal-2021 a close destroys the resource but leaves this client's own
        # handle null in its table; the client's context lets the adapter drop it.
        self._client = client if client is not None and (
            client.semantics is Semantics.PROPOSAL_2021) else None
        # Bound once: looking an export up by name on every call costs more than the call.
        # Lowered: the membrane call specialized for this client and function, no wrapper.
        self._fdstat = wasi.fdstat.lowered
        self._write = wasi.write.lowered
        self._read = wasi.read.lowered
        self._stat_at = wasi.stat_at.lowered
        self.memory: GuestMemory
        self._streams: dict[int, int] = {}  # fd -> its directory-stream handle
        super().__init__(args, env)
        self.fds: list[FdEntry | None] = [
            Stdio(stdin, None, Rights.FD_READ),
            Stdio(None, stdout, Rights.FD_WRITE),
            Stdio(None, stderr, Rights.FD_WRITE),
        ]
        for index in range(wasi.preopen_count()):
            self.fds.append(wasi.preopen(index))

    # -- the fd table --------------------------------------------------------------------
    def entry(self, fd: int) -> FdEntry:
        entry = self.fds[fd] if fd < len(self.fds) else None
        if entry is None:
            raise WasiError(Errno.BADF)
        return entry

    def handle(self, fd: int, on_stream: Errno = Errno.BADF) -> int:
        """The descriptor handle behind ``fd``; ``on_stream`` answers for stdio."""
        entry = self.entry(fd)
        if isinstance(entry, Stdio):
            raise WasiError(on_stream)
        return entry

    def allocate(self, entry: FdEntry) -> int:
        # wasmtime hands out the highest free number first, not POSIX's lowest: programs
        # that lose stdout to fd_renumber (yosys's abc pass) see the next file opened take
        # the old stdout number under lowest-first, and their log lands in that file.
        fds = self.fds
        for fd in range(len(fds) - 1, -1, -1):
            if fds[fd] is None:
                fds[fd] = entry
                return fd
        fds.append(entry)
        return len(fds) - 1

    def path(self, ptr: int, length: int) -> str:
        return self.memory.string(ptr, length)

    def prestat_name(self, fd: int) -> str | None:
        entry = self.entry(fd)
        return None if isinstance(entry, Stdio) else self.wasi.preopen_name(entry)

    def poll_fd(self, fd: int, write: bool) -> int:
        entry = self.entry(fd)
        if isinstance(entry, Stdio):
            if not entry.rights & (Rights.FD_WRITE if write else Rights.FD_READ):
                raise WasiError(Errno.BADF)
            return 0
        if self._fdstat(entry)[0] != Filetype.REGULAR_FILE:
            raise WasiError(Errno.BADF)
        if write:
            return 0
        at_end = self.wasi.seek(entry, 0, Whence.CUR) >= self.wasi.stat(entry).size
        return HANGUP if at_end else 0

    # -- descriptors ----------------------------------------------------------------------
    # The hot calls (fd_write, fd_read, fd_fdstat_get, path_filestat_get) do inline what
    # entry() and memory.pack() do, and fall back to them for anything unusual (a stdio or
    # missing fd, a pointer that needs a check): the answers are the same, faster.
    def fd_write(self, fd: int, iovs: int, count: int, nwritten: int) -> None:
        memory = self.memory
        buf = memory.first_buffer(iovs, count)
        try:
            entry = self.fds[fd]
        except IndexError:
            entry = None
        if type(entry) is not int:
            entry = self.entry(fd)
        if isinstance(entry, Stdio):
            if entry.writer is None:
                raise WasiError(Errno.BADF)
            total = entry.writer.write(buf) or 0
            entry.writer.flush()
        else:
            total = self._write(entry, buf)
        view = memory.view
        if nwritten & 3 or nwritten + 4 > len(view):
            memory.pack(U32, nwritten, total)
        else:
            _pack_u32(view, nwritten, total)

    def fd_read(self, fd: int, iovs: int, count: int, nread: int) -> None:
        memory = self.memory
        buf = memory.first_buffer(iovs, count)
        try:
            entry = self.fds[fd]
        except IndexError:
            entry = None
        if type(entry) is not int:
            entry = self.entry(fd)
        if isinstance(entry, Stdio):
            if entry.reader is None:
                raise WasiError(Errno.BADF)
            total = _read_stream(entry.reader, buf)
        else:
            total = self._read(entry, buf)
        view = memory.view
        if nread & 3 or nread + 4 > len(view):
            memory.pack(U32, nread, total)
        else:
            _pack_u32(view, nread, total)

    # Positional I/O on stdio: ESPIPE where the stream goes the right way, else EBADF.
    def fd_pread(self, fd: int, iovs: int, count: int, offset: int, nread: int) -> None:
        buf = self.memory.first_buffer(iovs, count)
        entry = self.entry(fd)
        if isinstance(entry, Stdio):
            raise WasiError(Errno.SPIPE if entry.reader is not None else Errno.BADF)
        self.memory.pack(U32, nread, self.wasi.pread(entry, buf, offset))

    def fd_pwrite(self, fd: int, iovs: int, count: int, offset: int, nwritten: int) -> None:
        buf = self.memory.first_buffer(iovs, count)
        entry = self.entry(fd)
        if isinstance(entry, Stdio):
            raise WasiError(Errno.SPIPE if entry.writer is not None else Errno.BADF)
        self.memory.pack(U32, nwritten, self.wasi.pwrite(entry, buf, offset))

    def fd_seek(self, fd: int, delta: int, whence: int, newoffset: int) -> None:
        check_enum("Whence", whence, Whence.END)
        handle = self.handle(fd, Errno.SPIPE)
        self.memory.pack(U64, newoffset, self.wasi.seek(handle, delta, whence))

    def fd_tell(self, fd: int, ptr: int) -> None:
        self.memory.pack(U64, ptr, self.wasi.seek(self.handle(fd, Errno.SPIPE), 0, Whence.CUR))

    def fd_close(self, fd: int) -> None:
        entry = self.entry(fd)
        self.fds[fd] = None
        self._drop_stream(fd)
        if not isinstance(entry, Stdio):
            self.wasi.close(entry)
            self._drop_own(entry, "descriptor")

    def fd_renumber(self, fd: int, to: int) -> None:
        entry = self.entry(fd)
        self.entry(to)
        if fd == to:
            return
        self.fd_close(to)
        self.fds[to] = entry
        self.fds[fd] = None
        stream = self._streams.pop(fd, None)
        if stream is not None:
            self._streams[to] = stream

    def fd_fdstat_get(self, fd: int, ptr: int) -> None:
        try:
            entry = self.fds[fd]
        except IndexError:
            entry = None
        if type(entry) is not int:
            entry = self.entry(fd)
        if isinstance(entry, Stdio):
            filetype, flags, rights, inheriting = Filetype.UNKNOWN, 0, entry.rights, entry.rights
        else:
            filetype, flags, rights, inheriting = self._fdstat(entry)
        view = self.memory.view
        if ptr & 7 or ptr + 24 > len(view):
            self.memory.pack(FDSTAT, ptr, filetype, flags, rights, inheriting)
        else:  # spelled out: a *args call here costs more than the packing
            _pack_fdstat(view, ptr, filetype, flags, rights, inheriting)

    def fd_fdstat_set_flags(self, fd: int, flags: int) -> None:
        check_flags("Fdflags", flags, Fdflags)
        self.wasi.set_flags(self.handle(fd), flags)

    def fd_fdstat_set_rights(self, fd: int, base: int, inheriting: int) -> None:
        check_flags("Rights", base, Rights)
        check_flags("Rights", inheriting, Rights)
        self.handle(fd)
        # Rights are not enforced (as in wasmtime), so none can be dropped either.
        raise WasiError(Errno.NOTSUP)

    def fd_filestat_get(self, fd: int, ptr: int) -> None:
        entry = self.entry(fd)
        if isinstance(entry, Stdio):
            self.memory.pack(FILESTAT, ptr, 0, 0, Filetype.UNKNOWN, 0, 0, 0, 0, 0)
        else:
            self.memory.pack(FILESTAT, ptr, *_stat_fields(self.wasi.stat(entry)))

    def fd_filestat_set_size(self, fd: int, size: int) -> None:
        self.wasi.set_size(self.handle(fd), size)

    def fd_filestat_set_times(self, fd: int, atim: int, mtim: int, flags: int) -> None:
        check_flags("Fstflags", flags, Fstflags)
        check_times(flags)  # before the fd, as in wasmtime
        self.wasi.set_times(self.handle(fd), atim, mtim, flags)

    def fd_sync(self, fd: int) -> None:
        self.wasi.sync(self.handle(fd))

    def fd_datasync(self, fd: int) -> None:
        self.wasi.sync(self.handle(fd))

    def fd_advise(self, fd: int, offset: int, length: int, advice: int) -> None:
        check_enum("Advice", advice, Advice.NOREUSE)
        self.wasi.advise(self.handle(fd))

    def fd_allocate(self, fd: int, offset: int, length: int) -> None:
        self.wasi.allocate(self.handle(fd))

    def fd_readdir(self, fd: int, buf: int, length: int, cookie: int, bufused: int) -> None:
        """Dirents from ``cookie`` on, through a directory stream of the implementation
        kept per fd (see ``DirectoryStream``): a listing read in many calls is taken once.
        The last dirent is cut short when the buffer ends inside it, as in wasmtime."""
        out = self.memory.window(buf, length)
        handle = self.handle(fd)
        stream = self._streams.get(fd)
        if stream is None:
            stream = self._streams[fd] = self.wasi.open_directory(handle)
        used = 0
        for index, (name, ino, kind) in enumerate(
                self.wasi.read_directory(stream, cookie, length), cookie):
            record = DIRENT.pack(index + 1, ino, len(name), kind) + name
            take = min(len(record), length - used)
            out[used:used + take] = record[:take]
            used += take
        self.memory.pack(U32, bufused, used)

    def _drop_stream(self, fd: int) -> None:
        stream = self._streams.pop(fd, None)
        if stream is not None:
            self.wasi.close_directory(stream)
            self._drop_own(stream, "directory-stream")

    def _drop_own(self, handle: int, type_name: str) -> None:
        if self._client is not None:
            rtype = self.wasi[type_name]
            assert isinstance(rtype, ResourceType)
            self._client.resource_drop(rtype, handle)

    # -- paths ------------------------------------------------------------------------------
    def path_open(self, fd: int, dirflags: int, path: int, length: int, oflags: int,
                  base: int, inheriting: int, fdflags: int, fd_ptr: int) -> None:
        check_open_flags(dirflags, oflags, base, inheriting, fdflags)
        follow = bool(dirflags & Lookupflags.SYMLINK_FOLLOW)
        handle = self.wasi.open_at(self.handle(fd), self.path(path, length), follow, oflags,
                                   fdflags, base, inheriting)
        self.memory.pack(U32, fd_ptr, self.allocate(handle))

    def path_filestat_get(self, fd: int, flags: int, path: int, length: int, ptr: int) -> None:
        try:
            entry = self.fds[fd]
        except IndexError:
            entry = None
        if type(entry) is not int:
            entry = self.handle(fd)
        memory = self.memory
        view = memory.view
        end = path + length
        try:
            name = str(view[path:end], "utf-8") if end <= len(view) else None
        except UnicodeDecodeError:
            name = None
        if name is None:
            name = memory.string(path, length)
        st = self._stat_at(entry, name, flags & _SYMLINK_FOLLOW != 0)
        view = memory.view
        if ptr & 7 or ptr + 64 > len(view):
            memory.pack(FILESTAT, ptr, *_stat_fields(st))
        else:
            kind = st.kind
            _pack_filestat(view, ptr, st.dev, st.ino,
                           _REGULAR if kind is FileKind.REGULAR else _FILETYPE[kind],
                           st.nlink, st.size, st.atime_ns, st.mtime_ns, st.ctime_ns)

    def path_filestat_set_times(self, fd: int, flags: int, path: int, length: int, atim: int,
                                mtim: int, fst: int) -> None:
        check_flags("Lookupflags", flags, Lookupflags)
        check_flags("Fstflags", fst, Fstflags)
        check_times(fst)  # before the fd, as in wasmtime
        follow = bool(flags & Lookupflags.SYMLINK_FOLLOW)
        self.wasi.set_times_at(self.handle(fd), follow, self.path(path, length), atim, mtim, fst)

    def path_create_directory(self, fd: int, path: int, length: int) -> None:
        self.wasi.mkdir_at(self.handle(fd), self.path(path, length))

    def path_remove_directory(self, fd: int, path: int, length: int) -> None:
        self.wasi.rmdir_at(self.handle(fd), self.path(path, length))

    def path_unlink_file(self, fd: int, path: int, length: int) -> None:
        self.wasi.unlink_at(self.handle(fd), self.path(path, length))

    def path_rename(self, fd: int, old: int, old_len: int, new_fd: int, new: int,
                    new_len: int) -> None:
        self.wasi.rename_at(self.handle(fd), self.path(old, old_len), self.handle(new_fd),
                            self.path(new, new_len))

    def path_symlink(self, old: int, old_len: int, fd: int, new: int, new_len: int) -> None:
        self.wasi.symlink_at(self.path(old, old_len), self.handle(fd), self.path(new, new_len))

    def path_readlink(self, fd: int, path: int, length: int, buf: int, buf_len: int,
                      bufused: int) -> None:
        target = self.wasi.readlink_at(self.handle(fd), self.path(path, length)).encode()
        take = min(len(target), buf_len)
        self.memory.window(buf, take)[:] = target[:take]
        self.memory.pack(U32, bufused, take)

    def path_link(self, fd: int, flags: int, old: int, old_len: int, new_fd: int, new: int,
                  new_len: int) -> None:
        follow = bool(flags & Lookupflags.SYMLINK_FOLLOW)
        self.wasi.link_at(self.handle(fd), follow, self.path(old, old_len),
                          self.handle(new_fd), self.path(new, new_len))
