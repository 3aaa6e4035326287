"""The preview 1 adapter: one function per ``wasi_snapshot_preview1`` import, over the
implementation interface (:mod:`virtwasi.filesystem.interface`).

It runs with the client's privileges, inside the client instance, as the official
preview1-to-preview2 adapter does: it keeps the client's fd table (:mod:`.fdtable`), holds
every descriptor as a handle in the client's own table, moves bytes between guest memory
and the implementation, and turns every failure into an errno. Everything preview 1 has and
the interface lacks lives here and nowhere else: rights, fd numbers, stdio as fds, file
positions and the append flag, readdir cookies and dirents, the order in which flags are
checked, errno numbers and struct packing. Whichever implementation is behind it (virtual,
native, a stack of layers), the marshalling is this one.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush
from typing import BinaryIO

from ..filesystem.interface import (
    DESCRIPTOR,
    MUTATE_DIRECTORY,
    NOW,
    READ,
    STREAM,
    WRITE,
    DescriptorFlags,
    NewTimestamp,
    open_mode,
)
from ..storage.base import FileKind, Stat
from ..world import Context, Exports, ResourceType
from .abi import (
    ALL_RIGHTS,
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
    Oflags,
    Rights,
    Whence,
)
from .common import HANGUP, CommonImports, read_stream
from .errnos import (
    MAX_FD,
    MAX_LOOKUP,
    MAX_OPEN,
    MAX_RIGHTS,
    WasiError,
    check_enum,
    check_flags,
    check_open_flags,
)
from .fdtable import Entry, FdTable, Listing, Opened, Stdio
from .memory import GuestMemory

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
_FILETYPE = {kind: int(filetype) for kind, filetype in FILETYPE.items()}
_REGULAR_KIND = FileKind.REGULAR
_REGULAR = int(Filetype.REGULAR_FILE)  # enum members hash in Python: test the common one first
_DIRECTORY = int(Filetype.DIRECTORY)

# The rights wasmtime reports, so that fdstat answers match it bit for bit.
PREOPEN_RIGHTS = 0x7B7FE00
PREOPEN_INHERITING = ALL_RIGHTS & ~(
    Rights.PATH_FILESTAT_SET_SIZE | Rights.SOCK_SHUTDOWN | Rights.SOCK_ACCEPT)
DIRECTORY_RIGHTS = ALL_RIGHTS & ~(
    Rights.FD_WRITE | Rights.FD_SEEK | Rights.FD_FILESTAT_SET_SIZE | Rights.PATH_FILESTAT_SET_SIZE)
# What a directory that may not be changed (no mutate-directory flag) cannot do.
MUTATING_RIGHTS = int(
    Rights.FD_FILESTAT_SET_TIMES | Rights.PATH_CREATE_DIRECTORY | Rights.PATH_CREATE_FILE
    | Rights.PATH_LINK_SOURCE | Rights.PATH_LINK_TARGET | Rights.PATH_RENAME_SOURCE
    | Rights.PATH_RENAME_TARGET | Rights.PATH_FILESTAT_SET_SIZE
    | Rights.PATH_FILESTAT_SET_TIMES | Rights.PATH_SYMLINK | Rights.PATH_REMOVE_DIRECTORY
    | Rights.PATH_UNLINK_FILE)
MAX_POSITION = 2**64 - 1
_SYNC_FDFLAGS = int(Fdflags.DSYNC | Fdflags.RSYNC | Fdflags.SYNC)
_APPEND, _NONBLOCK = int(Fdflags.APPEND), int(Fdflags.NONBLOCK)
_SYMLINK_FOLLOW = int(Lookupflags.SYMLINK_FOLLOW)

# Bound once for the hot calls (plain ints: IntFlag arithmetic costs a microsecond).
_pack_u32 = U32.pack_into
_pack_fdstat = FDSTAT.pack_into
_pack_filestat = FILESTAT.pack_into


def _short_string(view: memoryview, ptr: int, length: int) -> str | None:
    """What ``GuestMemory.string`` answers, for a hot call, when the string is in bounds
    and valid UTF-8; None otherwise (ask ``string``, which says what is wrong)."""
    end = ptr + length
    try:
        # Copied out first: bytes decode faster than str() of a view names its encoding.
        return view[ptr:end].tobytes().decode() if end <= len(view) else None
    except UnicodeDecodeError:
        return None


def rights_of(kind: FileKind, flags: int, preopen: bool) -> tuple[int, int]:
    """The rights preview 1 reports for a descriptor of ``kind`` with descriptor
    ``flags``: wasmtime's, less what the flags deny (a descriptor reached through a
    directory that may not be changed, with no ``mutate-directory``, has no right that
    could change the tree). Worked out once for each combination: an open asks again."""
    key = (kind, flags, preopen)
    found = _RIGHTS.get(key)
    if found is None:
        found = _RIGHTS[key] = _work_out_rights(kind, flags, preopen)
        if kind is FileKind.REGULAR and not preopen:
            _FILE_RIGHTS[flags] = found
    return found


_RIGHTS: dict[tuple[FileKind, int, bool], tuple[int, int]] = {}
# The same for an opened regular file, by its flags alone (path_open looks there first).
_FILE_RIGHTS: dict[int, tuple[int, int]] = {}


def _work_out_rights(kind: FileKind, flags: int, preopen: bool) -> tuple[int, int]:
    if kind is FileKind.DIRECTORY:
        base, inheriting = ((PREOPEN_RIGHTS, int(PREOPEN_INHERITING)) if preopen
                            else (int(DIRECTORY_RIGHTS), int(DIRECTORY_RIGHTS)))
    else:
        base = ALL_RIGHTS
        if not flags & READ:
            base &= ~int(Rights.FD_READ | Rights.FD_READDIR)
        if not flags & WRITE:
            base &= ~int(Rights.FD_WRITE)
        inheriting = base
    if not flags & MUTATE_DIRECTORY:
        base, inheriting = base & ~MUTATING_RIGHTS, inheriting & ~MUTATING_RIGHTS
    return int(base), int(inheriting)


def _filestat(st: Stat) -> tuple[int, ...]:
    return (st.dev, st.ino, _FILETYPE[st.kind], st.nlink, st.size, st.atime_ns, st.mtime_ns,
            st.ctime_ns)


def check_times(flags: int) -> None:
    if (flags & Fstflags.ATIM and flags & Fstflags.ATIM_NOW) or (
            flags & Fstflags.MTIM and flags & Fstflags.MTIM_NOW):
        raise WasiError(Errno.INVAL, "a time may be given or 'now', not both")


def _timestamp(given: int, flags: int, set_flag: int, now_flag: int) -> NewTimestamp:
    if flags & now_flag:
        return NOW
    return given if flags & set_flag else None


_FD_READ, _FD_WRITE = int(Rights.FD_READ), int(Rights.FD_WRITE)
_CREAT_OR_TRUNC = int(Oflags.CREAT | Oflags.TRUNC)
_SYNC_OF_FDFLAG = ((int(Fdflags.SYNC), int(DescriptorFlags.FILE_INTEGRITY_SYNC)),
                   (int(Fdflags.DSYNC), int(DescriptorFlags.DATA_INTEGRITY_SYNC)),
                   (int(Fdflags.RSYNC), int(DescriptorFlags.REQUESTED_WRITE_SYNC)))


_FD_READ_OR_WRITE = _FD_READ | _FD_WRITE


def descriptor_flags(oflags: int, base: int, fdflags: int) -> int:
    """The descriptor flags a ``path_open`` asks for: its rights to read and write and its
    synchronized I/O, with the access the open gives (:func:`open_mode`; preview 1's oflags
    have the bits of the interface's open flags)."""
    flags = MUTATE_DIRECTORY
    if base & _FD_READ:
        flags |= READ
    if base & _FD_WRITE:
        flags |= WRITE
    if fdflags & _SYNC_FDFLAGS:
        for fdflag, flag in _SYNC_OF_FDFLAG:
            if fdflags & fdflag:
                flags |= flag
    return open_mode(oflags, flags)


# descriptor_flags without synchronized I/O, by (base & (FD_READ|FD_WRITE)) | (oflags &
# (CREAT|TRUNC)): the rights bits and the oflags bits do not overlap.
_READ_WRITE_OF = {rights | oflags: descriptor_flags(oflags, rights, 0)
                  for rights in (0, _FD_READ, _FD_WRITE, _FD_READ_OR_WRITE)
                  for oflags in (0, int(Oflags.CREAT), int(Oflags.TRUNC), _CREAT_OR_TRUNC)}


class Preview1(CommonImports):
    """The imports of one client over the interface ``wasi`` (as the client calls it).
    ``memory`` is attached once the module is instantiated."""

    def __init__(self, wasi: Exports, client: Context, args: list[str], env: list[str],
                 stdin: BinaryIO | None, stdout: BinaryIO | None,
                 stderr: BinaryIO | None) -> None:
        super().__init__(args, env)
        self.wasi = wasi
        self._client = client
        self._descriptor = self._type(DESCRIPTOR)
        self._stream = self._type(STREAM)
        # Bound once: looking an export up by name on every call costs more than the call.
        self._read = wasi.read.lowered
        self._write = wasi.write.lowered
        self._append = wasi.append.lowered
        self._stat = wasi.stat.lowered
        self._stat_at = wasi.stat_at.lowered
        self._open_at = wasi.open_at.lowered
        self._get_type = wasi.get_type.lowered
        self._get_flags = wasi.get_flags.lowered
        self._end_descriptor = client.ender(self._descriptor)
        self._read_directory = wasi.read_directory.lowered
        self._read_directory_entry = wasi.read_directory_entry.lowered
        self._end_stream = client.ender(self._stream)
        self.memory: GuestMemory
        self.place: Callable[[Opened], int]
        """The fd a newly opened descriptor gets."""
        self.table = FdTable([
            Stdio(stdin, None, _FD_READ),  # plain ints: IntFlag arithmetic costs 0.5 us
            Stdio(None, stdout, _FD_WRITE),
            Stdio(None, stderr, _FD_WRITE),
        ])
        self.place = self.table.add
        # The table's free numbers while this adapter numbers fds itself: path_open and
        # fd_close take and give back numbers there without a call (see FdTable).
        self._free: list[int] | None = self.table.free
        for index, guest in enumerate(wasi.preopen_paths()):
            self.table.add(self._described(wasi.preopen(index), preopen=guest))

    def _type(self, name: str) -> ResourceType:
        rtype = self.wasi[name]
        assert isinstance(rtype, ResourceType)
        return rtype

    def _described(self, handle: int, *, preopen: str | None = None) -> Opened:
        """What ``handle`` is, as the implementation describes it when asked."""
        return self._opened(handle, self._get_type(handle), self._get_flags(handle), 0,
                            preopen)

    def _opened(self, handle: int, kind: FileKind, flags: int, fdflags: int = 0,
                preopen: str | None = None) -> Opened:
        """The fd table's entry for a descriptor handle of ``kind`` opened with descriptor
        ``flags`` and preview 1's ``fdflags``."""
        rights = rights_of(kind, flags, preopen is not None)
        if kind is FileKind.DIRECTORY:  # a directory keeps no fdflags, as in wasmtime
            return Opened(handle, _DIRECTORY, rights[0], rights[1], 0, False, False, preopen)
        return Opened(handle, _FILETYPE[kind], rights[0], rights[1], 0,
                      fdflags & _APPEND != 0, fdflags & _NONBLOCK != 0, preopen)

    # -- the fd table ----------------------------------------------------------------------
    def entry(self, fd: int) -> Entry:
        return self.table.get(fd)

    def opened(self, fd: int, on_stream: Errno = Errno.BADF) -> Opened:
        """The descriptor behind ``fd``; ``on_stream`` answers for stdio."""
        entry = self.entry(fd)
        if type(entry) is not Opened:
            raise WasiError(on_stream)
        return entry

    def file(self, fd: int, on_stream: Errno = Errno.BADF) -> Opened:
        """A descriptor that is not a directory (``EBADF`` for one)."""
        entry = self.opened(fd, on_stream)
        if entry.filetype == _DIRECTORY:
            raise WasiError(Errno.BADF)
        return entry

    def handle(self, fd: int) -> int:
        return self.opened(fd).handle

    def directory_entry(self, fd: int) -> Opened:
        """A directory fd: anything else is ``EBADF``, as the fd a path is looked up from
        in wasmtime, checked before the path is read."""
        entry = self.entry(fd)
        if type(entry) is not Opened or entry.filetype != _DIRECTORY:
            raise WasiError(Errno.BADF)
        return entry

    def directory(self, fd: int) -> int:
        return self.directory_entry(fd).handle

    def path(self, ptr: int, length: int) -> str:
        return self.memory.string(ptr, length)

    def prestat_name(self, fd: int) -> str | None:
        entry = self.entry(fd)
        return entry.preopen if type(entry) is Opened else None

    def poll_fd(self, fd: int, write: bool) -> int:
        entry = self.entry(fd)
        if type(entry) is not Opened:
            if not entry.rights & (_FD_WRITE if write else _FD_READ):
                raise WasiError(Errno.BADF)
            return 0
        if entry.filetype != _REGULAR:
            raise WasiError(Errno.BADF)
        if write:
            return 0
        return HANGUP if entry.position >= self._stat(entry.handle).size else 0

    def _end(self, entry: Entry) -> None:
        """Close what ``entry`` holds: its listing's stream, then its descriptor (whose
        destructor may answer an error, as a close does)."""
        if type(entry) is not Opened:
            return
        if entry.listing is not None:
            self._end_listing(entry)
        self._end_descriptor(entry.handle)

    # -- reading and writing -----------------------------------------------------------
    # The hot calls do inline what entry() and memory.pack() do, and fall back to them for
    # anything unusual (a stdio or missing fd, a pointer that needs a check).
    def fd_write(self, fd: int, iovs: int, count: int, nwritten: int) -> None:
        memory = self.memory
        ptr, size = memory.first_iovec(iovs, count)
        try:
            entry: Entry | None = self.table.slots[fd]
        except IndexError:
            entry = None
        if type(entry) is not Opened:
            entry = self.entry(fd)
        view = memory.view
        if isinstance(entry, Opened):
            buf = (view[ptr:ptr + size] if ptr + size <= len(view)
                   else self._file_buffer(entry, ptr, size))
            if entry.append:
                total = self._append(entry.handle, buf)
                entry.position = self._stat(entry.handle).size
            else:
                total = self._write(entry.handle, buf, entry.position)
                entry.position += total
        elif entry.rights & _FD_WRITE:
            buf = memory.window(ptr, size)
            total = len(buf)
            if entry.writer is not None:  # no stream: a sink, as in wasmtime
                entry.writer.write(buf)
                entry.writer.flush()
        else:
            raise WasiError(Errno.BADF)
        view = memory.view
        if nwritten & 3 or nwritten + 4 > len(view):
            memory.pack(U32, nwritten, total)
        else:
            _pack_u32(view, nwritten, total)

    def fd_read(self, fd: int, iovs: int, count: int, nread: int) -> None:
        memory = self.memory
        ptr, size = memory.first_iovec(iovs, count)
        try:
            entry: Entry | None = self.table.slots[fd]
        except IndexError:
            entry = None
        if type(entry) is not Opened:
            entry = self.entry(fd)
        view = memory.view
        if isinstance(entry, Opened):
            buf = (view[ptr:ptr + size] if ptr + size <= len(view)
                   else self._file_buffer(entry, ptr, size))
            total = self._read(entry.handle, buf, entry.position)
            entry.position += total
        elif entry.rights & _FD_READ:
            # No stream given: an empty one, as wasmtime's stdin is by default.
            reader = entry.reader
            total = 0 if reader is None else memory.read_into(
                ptr, size, lambda buf: read_stream(reader, buf))
        else:
            raise WasiError(Errno.BADF)
        view = memory.view
        if nread & 3 or nread + 4 > len(view):
            memory.pack(U32, nread, total)
        else:
            _pack_u32(view, nread, total)

    def _file_buffer(self, entry: Opened, ptr: int, size: int) -> memoryview:
        """The buffer of a read or write on ``entry``: a directory answers EBADF before the
        buffer's bounds are checked, as in wasmtime."""
        if entry.filetype == _DIRECTORY:
            raise WasiError(Errno.BADF)
        return self.memory.window(ptr, size)

    # Positional I/O on stdio: ESPIPE where the stream goes the right way, else EBADF.
    def _positional(self, fd: int, right: int) -> Opened:
        entry = self.entry(fd)
        if type(entry) is not Opened:
            raise WasiError(Errno.SPIPE if entry.rights & right else Errno.BADF)
        return entry

    def fd_pread(self, fd: int, iovs: int, count: int, offset: int, nread: int) -> None:
        ptr, size = self.memory.first_iovec(iovs, count)
        handle = self._positional(fd, _FD_READ).handle
        # As wasmtime, which reads through a stream, only the bytes read must fit.
        read = self.memory.read_into(ptr, size, lambda buf: self._read(handle, buf, offset))
        self.memory.pack(U32, nread, read)

    def fd_pwrite(self, fd: int, iovs: int, count: int, offset: int, nwritten: int) -> None:
        ptr, size = self.memory.first_iovec(iovs, count)
        entry = self._positional(fd, _FD_WRITE)
        buf = self._file_buffer(entry, ptr, size)
        if entry.append:  # Linux appends whatever the offset, and so does wasmtime
            written = self._append(entry.handle, buf)
        else:
            written = self._write(entry.handle, buf, offset)
        self.memory.pack(U32, nwritten, written)

    def fd_seek(self, fd: int, delta: int, whence: int, newoffset: int) -> None:
        check_enum("Whence", whence, Whence.END)
        entry = self.file(fd, Errno.SPIPE)
        if whence == Whence.SET:
            target = delta
        elif whence == Whence.CUR:
            target = entry.position + delta
        else:
            target = self._stat(entry.handle).size + delta
        if not 0 <= target <= MAX_POSITION:
            raise WasiError(Errno.INVAL)
        entry.position = target
        self.memory.pack(U64, newoffset, target)

    def fd_tell(self, fd: int, ptr: int) -> None:
        self.memory.pack(U64, ptr, self.file(fd, Errno.SPIPE).position)

    # -- the descriptor itself -----------------------------------------------------------
    def fd_close(self, fd: int) -> None:
        slots = self.table.slots
        try:
            entry: Entry | None = slots[fd] if fd >= 0 else None
        except IndexError:
            entry = None
        if type(entry) is Opened and entry.listing is None:
            # FdTable.remove's steps, then what _end does, inline: every close comes here
            slots[fd] = None
            heappush(self.table.free, -fd)
            self._end_descriptor(entry.handle)
        else:
            self._end(self.table.remove(fd))

    def fd_renumber(self, fd: int, to: int) -> None:
        entry = self.entry(fd)
        replaced = self.entry(to)
        if fd == to:
            return
        self.table.put(to, entry)
        self.table.remove(fd)
        self._end(replaced)

    def fd_fdstat_get(self, fd: int, ptr: int) -> None:
        try:
            entry: Entry | None = self.table.slots[fd]
        except IndexError:
            entry = None
        if entry is None:
            entry = self.entry(fd)
        if type(entry) is Opened:
            flags = (1 if entry.append else 0) | (4 if entry.nonblock else 0)  # Fdflags bits
            filetype, rights, inheriting = entry.filetype, entry.rights, entry.inheriting
        else:
            filetype, flags, rights, inheriting = 0, 0, entry.rights, entry.rights
        view = self.memory.view
        if ptr & 7 or ptr + 24 > len(view):
            self.memory.pack(FDSTAT, ptr, filetype, flags, rights, inheriting)
        else:  # spelled out: a *args call here costs more than the packing
            _pack_fdstat(view, ptr, filetype, flags, rights, inheriting)

    def fd_fdstat_set_flags(self, fd: int, flags: int) -> None:
        check_flags("Fdflags", flags, Fdflags)
        entry = self.file(fd)
        if flags & _SYNC_FDFLAGS:
            raise WasiError(Errno.INVAL, "only APPEND and NONBLOCK can be changed")
        entry.append = bool(flags & Fdflags.APPEND)
        entry.nonblock = bool(flags & Fdflags.NONBLOCK)  # files never block

    def fd_fdstat_set_rights(self, fd: int, base: int, inheriting: int) -> None:
        check_flags("Rights", base, Rights)
        check_flags("Rights", inheriting, Rights)
        self.opened(fd)
        # Rights are not enforced (as in wasmtime), so none can be dropped either.
        raise WasiError(Errno.NOTSUP)

    def fd_filestat_get(self, fd: int, ptr: int) -> None:
        entry = self.entry(fd)
        if type(entry) is Opened:
            self.memory.pack(FILESTAT, ptr, *_filestat(self._stat(entry.handle)))
        else:
            self.memory.pack(FILESTAT, ptr, 0, 0, Filetype.UNKNOWN, 0, 0, 0, 0, 0)

    def fd_filestat_set_size(self, fd: int, size: int) -> None:
        self.wasi.set_size(self.handle(fd), size)

    def fd_filestat_set_times(self, fd: int, atim: int, mtim: int, flags: int) -> None:
        check_flags("Fstflags", flags, Fstflags)
        check_times(flags)  # before the fd, as in wasmtime
        self.wasi.set_times(self.handle(fd),
                            _timestamp(atim, flags, Fstflags.ATIM, Fstflags.ATIM_NOW),
                            _timestamp(mtim, flags, Fstflags.MTIM, Fstflags.MTIM_NOW))

    def fd_sync(self, fd: int) -> None:
        self.wasi.sync(self.file(fd).handle)  # EBADF for a directory, as in wasmtime

    def fd_datasync(self, fd: int) -> None:
        self.wasi.sync_data(self.file(fd).handle)

    def fd_advise(self, fd: int, offset: int, length: int, advice: int) -> None:
        check_enum("Advice", advice, Advice.NOREUSE)
        self.wasi.advise(self.handle(fd), offset, length, advice)

    def fd_allocate(self, fd: int, offset: int, length: int) -> None:
        self.file(fd)
        raise WasiError(Errno.NOTSUP)  # as wasmtime, which never preallocates

    # -- directories --------------------------------------------------------------------
    def fd_readdir(self, fd: int, buf: int, length: int, cookie: int, bufused: int) -> None:
        """Dirents from ``cookie`` on ("." and ".." first, both with the directory's own
        inode, as wasmtime reports them), the last one cut short when the buffer ends
        inside it. Reading on from where the last call stopped goes on with the same
        listing; any other cookie starts a new one, as every call does in wasmtime."""
        entry = self.directory_entry(fd)
        listing = entry.listing
        if listing is None or cookie != listing.next_cookie:
            listing = self._new_listing(entry)
        out = bytearray()
        index = cookie
        cut = False
        while len(out) < length:
            dirent = self._dirent(listing, index)
            if dirent is None:
                break
            name, ino, kind = dirent
            record = DIRENT.pack(index + 1, ino, len(name), kind) + name
            take = min(len(record), length - len(out))
            out += record[:take]
            cut = take < len(record)
            index += 1
        # The listing stands at the first entry not handed out whole.
        listing.next_cookie = index - 1 if cut else index
        del listing.entries[:listing.next_cookie - listing.first]
        listing.first = listing.next_cookie
        used = len(out)
        if used:  # as wasmtime, the buffer's bounds are those of what is written
            self.memory.window(buf, used)[:] = out
        self.memory.pack(U32, bufused, used)

    def _new_listing(self, entry: Opened) -> Listing:
        self._end_listing(entry)
        stream = self._read_directory(entry.handle)
        ino = self._stat(entry.handle).ino
        entry.listing = Listing(stream, [(b".", ino, _DIRECTORY), (b"..", ino, _DIRECTORY)])
        return entry.listing

    def _end_listing(self, entry: Opened) -> None:
        listing, entry.listing = entry.listing, None
        if listing is not None:
            self._end_stream(listing.stream)

    def _dirent(self, listing: Listing, index: int) -> tuple[bytes, int, int] | None:
        entries = listing.entries
        index -= listing.first
        while index >= len(entries) and not listing.ended:
            found = self._read_directory_entry(listing.stream)
            if found is None:
                listing.ended = True
            else:
                entries.append((found.name.encode(), found.ino, _FILETYPE[found.kind]))
        return entries[index] if index < len(entries) else None

    # -- paths --------------------------------------------------------------------------
    def path_open(self, fd: int, dirflags: int, path: int, length: int, oflags: int,
                  base: int, inheriting: int, fdflags: int, fd_ptr: int) -> None:
        if (dirflags > MAX_LOOKUP or oflags > MAX_OPEN or base > MAX_RIGHTS
                or inheriting > MAX_RIGHTS or fdflags > MAX_FD):
            check_open_flags(dirflags, oflags, base, inheriting, fdflags)
        memory = self.memory
        view = memory.view
        end = path + length
        try:  # _short_string, inline: every open reads a path
            name = view[path:end].tobytes().decode() if end <= len(view) else None
        except UnicodeDecodeError:
            name = None
        if name is None:  # the path before the fd, as in wasmtime
            name = memory.string(path, length)
        try:
            entry: Entry | None = self.table.slots[fd]
        except IndexError:
            entry = None
        if type(entry) is not Opened:
            entry = self.opened(fd)
        # descriptor_flags, inline for an open that asks for no synchronized I/O
        flags = (_READ_WRITE_OF[(base & _FD_READ_OR_WRITE) | (oflags & _CREAT_OR_TRUNC)]
                 if not fdflags & _SYNC_FDFLAGS else descriptor_flags(oflags, base, fdflags))
        # dirflags is 0 or SYMLINK_FOLLOW, its only flag: the check above saw to that
        handle, kind, flags = self._open_at(entry.handle, dirflags, name, oflags, flags)
        rights = _FILE_RIGHTS.get(flags) if kind is _REGULAR_KIND else None
        if rights is not None:  # _opened's common case, inline
            opened = (Opened(handle, _REGULAR, rights[0], rights[1]) if not fdflags else
                      Opened(handle, _REGULAR, rights[0], rights[1], 0,
                             fdflags & _APPEND != 0, fdflags & _NONBLOCK != 0))
            free = self._free
            if free:  # FdTable.add's common case, inline: every open comes here
                new_fd = -heappop(free)
                self.table.slots[new_fd] = opened
            else:
                new_fd = self.place(opened)
        else:
            new_fd = self.place(self._opened(handle, kind, flags, fdflags))
        view = memory.view
        if fd_ptr & 3 or fd_ptr + 4 > len(view):
            memory.pack(U32, fd_ptr, new_fd)
        else:
            _pack_u32(view, fd_ptr, new_fd)

    def path_filestat_get(self, fd: int, flags: int, path: int, length: int, ptr: int) -> None:
        if flags & ~_SYMLINK_FOLLOW:
            check_flags("Lookupflags", flags, Lookupflags)
        try:
            entry: Entry | None = self.table.slots[fd]
        except IndexError:
            entry = None
        if type(entry) is not Opened or entry.filetype != _DIRECTORY:
            entry = self.directory_entry(fd)
        memory = self.memory
        name = _short_string(memory.view, path, length)
        if name is None:
            name = memory.string(path, length)
        st = self._stat_at(entry.handle, flags, name)
        view = memory.view
        if ptr & 7 or ptr + 64 > len(view):
            memory.pack(FILESTAT, ptr, *_filestat(st))
        else:
            kind = st.kind
            _pack_filestat(view, ptr, st.dev, st.ino,
                           _REGULAR if kind is _REGULAR_KIND else _FILETYPE[kind],
                           st.nlink, st.size, st.atime_ns, st.mtime_ns, st.ctime_ns)

    def path_filestat_set_times(self, fd: int, flags: int, path: int, length: int, atim: int,
                                mtim: int, fst: int) -> None:
        check_flags("Lookupflags", flags, Lookupflags)
        check_flags("Fstflags", fst, Fstflags)
        check_times(fst)  # before the fd, as in wasmtime
        self.wasi.set_times_at(self.directory(fd), flags, self.path(path, length),
                               _timestamp(atim, fst, Fstflags.ATIM, Fstflags.ATIM_NOW),
                               _timestamp(mtim, fst, Fstflags.MTIM, Fstflags.MTIM_NOW))

    def path_create_directory(self, fd: int, path: int, length: int) -> None:
        self.wasi.create_directory_at(self.directory(fd), self.path(path, length))

    def path_remove_directory(self, fd: int, path: int, length: int) -> None:
        self.wasi.remove_directory_at(self.directory(fd), self.path(path, length))

    def path_unlink_file(self, fd: int, path: int, length: int) -> None:
        # wasmtime reads this one path without bounding its length first.
        self.wasi.unlink_file_at(self.directory(fd),
                                 self.memory.string(path, length, bounded=False))

    def path_rename(self, fd: int, old: int, old_len: int, new_fd: int, new: int,
                    new_len: int) -> None:
        source, target = self.directory(fd), self.directory(new_fd)  # both, then the paths
        self.wasi.rename_at(source, self.path(old, old_len), target, self.path(new, new_len))

    def path_symlink(self, old: int, old_len: int, fd: int, new: int, new_len: int) -> None:
        self.wasi.symlink_at(self.directory(fd), self.path(old, old_len),
                             self.path(new, new_len))

    def path_readlink(self, fd: int, path: int, length: int, buf: int, buf_len: int,
                      bufused: int) -> None:
        target = self.wasi.readlink_at(self.directory(fd), self.path(path, length)).encode()
        take = min(len(target), buf_len)
        self.memory.window(buf, take)[:] = target[:take]
        self.memory.pack(U32, bufused, take)

    def path_link(self, fd: int, flags: int, old: int, old_len: int, new_fd: int, new: int,
                  new_len: int) -> None:
        check_flags("Lookupflags", flags, Lookupflags)
        source, target = self.directory(fd), self.directory(new_fd)  # both, then the paths
        self.wasi.link_at(source, flags, self.path(old, old_len), target,
                          self.path(new, new_len))

