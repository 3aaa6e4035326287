"""The ``fd_*`` imports of the native implementation: host file descriptors at work.

Files keep their own position and are read and written positionally (``preadv``/``pwrite``
straight between guest memory and the page cache), as wasmtime does; append mode is the
host's ``O_APPEND``, switched with ``fcntl``. Which descriptors each call accepts, and the
errno for the others, follow wasmtime's built-in WASI.
"""

from __future__ import annotations

import fcntl
import os

from ..storage.base import Stat
from ..storage.hostdir import entry_kind, to_stat
from ..wasi.abi import (
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
    Rights,
    Whence,
)
from ..wasi.common import Stdio, read_stream
from ..wasi.errors import WasiError, check_enum, check_flags
from ..wasi.virtual import DIRECTORY_RIGHTS, FILETYPE, PREOPEN_INHERITING, PREOPEN_RIGHTS
from . import times
from .base import NativeBase
from .table import OpenDir, OpenFile

MAX_FILESIZE = 2**64 - 1
_SYNC_FLAGS = Fdflags.DSYNC | Fdflags.RSYNC | Fdflags.SYNC
_ADVICE = {
    Advice.NORMAL: os.POSIX_FADV_NORMAL,
    Advice.SEQUENTIAL: os.POSIX_FADV_SEQUENTIAL,
    Advice.RANDOM: os.POSIX_FADV_RANDOM,
    Advice.WILLNEED: os.POSIX_FADV_WILLNEED,
    Advice.DONTNEED: os.POSIX_FADV_DONTNEED,
    Advice.NOREUSE: os.POSIX_FADV_NOREUSE,
}


def filestat(st: Stat) -> tuple[int, ...]:
    """The fields of a WASI filestat."""
    return (st.dev, st.ino, FILETYPE[st.kind], st.nlink, st.size, st.atime_ns, st.mtime_ns,
            st.ctime_ns)


def set_append(file: OpenFile, append: bool) -> None:
    flags = fcntl.fcntl(file.fd, fcntl.F_GETFL)
    fcntl.fcntl(file.fd, fcntl.F_SETFL,
                flags | os.O_APPEND if append else flags & ~os.O_APPEND)
    file.append = append


def _offset(value: int) -> int:
    # A file offset the host can take (off_t is signed); wasmtime answers EINVAL beyond.
    if value > 2**63 - 1:
        raise WasiError(Errno.INVAL, "offset too large")
    return value


class FdImports(NativeBase):
    """The imports that act on one descriptor."""

    # -- reading and writing -------------------------------------------------------------
    def fd_read(self, fd: int, iovs: int, count: int, nread: int) -> None:
        entry = self.table.get(fd)
        buf = self.memory.first_buffer(iovs, count)
        if isinstance(entry, OpenFile):
            n = os.preadv(entry.fd, [buf], _offset(entry.position))
            entry.position += n
        elif isinstance(entry, Stdio) and entry.rights & Rights.FD_READ:
            # No stream given: an empty one, as wasmtime's stdin is by default.
            n = read_stream(entry.reader, buf) if entry.reader is not None else 0
        else:
            raise WasiError(Errno.BADF)
        self.memory.pack(U32, nread, n)

    def fd_pread(self, fd: int, iovs: int, count: int, offset: int, nread: int) -> None:
        entry = self.table.get(fd)
        if isinstance(entry, Stdio) and entry.rights & Rights.FD_READ:
            raise WasiError(Errno.SPIPE)
        if not isinstance(entry, OpenFile):
            raise WasiError(Errno.BADF)
        buf = self.memory.first_buffer(iovs, count)
        self.memory.pack(U32, nread, os.preadv(entry.fd, [buf], _offset(offset)))

    def fd_write(self, fd: int, iovs: int, count: int, nwritten: int) -> None:
        entry = self.table.get(fd)
        buf = self.memory.first_buffer(iovs, count)
        if isinstance(entry, OpenFile):
            # With O_APPEND the host writes at the end whatever the offset says.
            n = os.pwrite(entry.fd, buf, _offset(entry.position))
            entry.position = os.fstat(entry.fd).st_size if entry.append else entry.position + n
        elif isinstance(entry, Stdio) and entry.rights & Rights.FD_WRITE:
            n = len(buf)
            if entry.writer is not None:  # no stream: a sink, as in wasmtime
                entry.writer.write(buf)
                entry.writer.flush()
        else:
            raise WasiError(Errno.BADF)
        self.memory.pack(U32, nwritten, n)

    def fd_pwrite(self, fd: int, iovs: int, count: int, offset: int, nwritten: int) -> None:
        entry = self.table.get(fd)
        if isinstance(entry, Stdio) and entry.rights & Rights.FD_WRITE:
            raise WasiError(Errno.SPIPE)
        if not isinstance(entry, OpenFile):
            raise WasiError(Errno.BADF)
        buf = self.memory.first_buffer(iovs, count)
        self.memory.pack(U32, nwritten, os.pwrite(entry.fd, buf, _offset(offset)))

    def fd_seek(self, fd: int, delta: int, whence: int, newoffset: int) -> None:
        check_enum("Whence", whence, Whence.END)
        file = self.table.seekable(fd)
        if whence == Whence.SET:
            target = delta
        elif whence == Whence.CUR:
            target = file.position + delta
        else:
            target = os.fstat(file.fd).st_size + delta
        if not 0 <= target <= MAX_FILESIZE:
            raise WasiError(Errno.INVAL)
        file.position = target
        self.memory.pack(U64, newoffset, target)

    def fd_tell(self, fd: int, ptr: int) -> None:
        self.memory.pack(U64, ptr, self.table.seekable(fd).position)

    # -- the descriptor itself --------------------------------------------------------------
    def fd_close(self, fd: int) -> None:
        self.table.close(fd)

    def fd_renumber(self, fd: int, to: int) -> None:
        self.table.renumber(fd, to)

    def fd_fdstat_get(self, fd: int, ptr: int) -> None:
        entry = self.table.get(fd)
        fields: tuple[int, int, int, int]
        if isinstance(entry, Stdio):
            fields = (Filetype.UNKNOWN, 0, entry.rights, entry.rights)
        elif isinstance(entry, OpenDir):
            if entry.preopen is not None:
                fields = (Filetype.DIRECTORY, 0, PREOPEN_RIGHTS, PREOPEN_INHERITING)
            else:
                fields = (Filetype.DIRECTORY, 0, DIRECTORY_RIGHTS, DIRECTORY_RIGHTS)
        else:
            rights = ALL_RIGHTS  # less what the access mode it was opened with denies
            if not entry.readable:
                rights &= ~(Rights.FD_READ | Rights.FD_READDIR)
            if not entry.writable:
                rights &= ~Rights.FD_WRITE
            flags = (Fdflags.APPEND if entry.append else 0) | (
                Fdflags.NONBLOCK if entry.nonblock else 0)
            fields = (entry.filetype, flags, rights, rights)
        self.memory.pack(FDSTAT, ptr, *fields)

    def fd_fdstat_set_flags(self, fd: int, flags: int) -> None:
        check_flags("Fdflags", flags, Fdflags)
        file = self.table.file(fd)
        if flags & _SYNC_FLAGS:
            raise WasiError(Errno.INVAL, "only APPEND and NONBLOCK can be changed")
        set_append(file, bool(flags & Fdflags.APPEND))
        file.nonblock = bool(flags & Fdflags.NONBLOCK)

    def fd_fdstat_set_rights(self, fd: int, base: int, inheriting: int) -> None:
        check_flags("Rights", base, Rights)
        check_flags("Rights", inheriting, Rights)
        if isinstance(self.table.get(fd), Stdio):
            raise WasiError(Errno.BADF)
        raise WasiError(Errno.NOTSUP, "rights cannot be changed")

    def fd_filestat_get(self, fd: int, ptr: int) -> None:
        entry = self.table.get(fd)
        if isinstance(entry, Stdio):
            fields: tuple[int, ...] = (0, 0, Filetype.UNKNOWN, 0, 0, 0, 0, 0)
        else:
            fields = filestat(to_stat(os.fstat(entry.fd)))
        self.memory.pack(FILESTAT, ptr, *fields)

    def fd_filestat_set_size(self, fd: int, size: int) -> None:
        os.ftruncate(self.table.file(fd).fd, _offset(size))

    def fd_filestat_set_times(self, fd: int, atim: int, mtim: int, flags: int) -> None:
        spec = times.times(atim, mtim, flags)
        entry = self.table.get(fd)
        if isinstance(entry, Stdio):
            raise WasiError(Errno.BADF)
        times.set_times_fd(entry.fd, spec)

    def fd_sync(self, fd: int) -> None:
        os.fsync(self.table.file(fd).fd)

    def fd_datasync(self, fd: int) -> None:
        os.fdatasync(self.table.file(fd).fd)

    def fd_advise(self, fd: int, offset: int, length: int, advice: int) -> None:
        check_enum("Advice", advice, Advice.NOREUSE)
        file = self.table.file(fd)
        os.posix_fadvise(file.fd, _offset(offset), _offset(length), _ADVICE[Advice(advice)])

    def fd_allocate(self, fd: int, offset: int, length: int) -> None:
        self.table.file(fd)
        raise WasiError(Errno.NOTSUP)

    # -- directories ------------------------------------------------------------------------
    def fd_readdir(self, fd: int, buf: int, length: int, cookie: int, bufused: int) -> None:
        """'.' and '..' first (both with the directory's own inode, as wasmtime reports
        them), then the host's entries in the order the host lists them; the cookie of an
        entry is its index plus one."""
        directory = self.table.directory(fd)
        ino = os.fstat(directory.fd).st_ino
        entries = [(".", ino, int(Filetype.DIRECTORY)), ("..", ino, int(Filetype.DIRECTORY))]
        try:
            # scandir reads through a dup of the fd and rewinds it when done.
            with os.scandir(directory.fd) as listing:
                entries += [(e.name, e.inode(), FILETYPE[entry_kind(e)]) for e in listing]
            names = [name.encode() for name, _, _ in entries]
        except UnicodeEncodeError as exc:
            raise WasiError(Errno.ILSEQ, "an entry's name is not UTF-8") from exc
        out = bytearray()
        for index in range(cookie, len(entries)):
            if len(out) >= length:
                break
            _, entry_ino, kind = entries[index]
            record = DIRENT.pack(index + 1, entry_ino, len(names[index]), kind) + names[index]
            out += record[:length - len(out)]
        self.memory.window(buf, len(out))[:] = out
        self.memory.pack(U32, bufused, len(out))

