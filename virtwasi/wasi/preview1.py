"""The preview 1 adapter: one function per wasi_snapshot_preview1 import.

It runs with the client's privileges, inside the client instance: it keeps the client's fd
table (fd -> stdio stream, or handle in the client's own handle table), moves bytes between
guest memory and the virtual implementation, and turns every error into an errno. It never
touches a descriptor's representation: that belongs to the implementation instance.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from ..storage.base import Stat
from ..world import Exports
from .abi import (
    DIRENT,
    EVENT,
    FDSTAT,
    FILESTAT,
    IMPORTS,
    PRESTAT,
    SUBSCRIPTION_CLOCK,
    SUBSCRIPTION_FD,
    SUBSCRIPTION_HEAD,
    SUBSCRIPTION_SIZE,
    U32,
    U64,
    Advice,
    Clockid,
    Errno,
    Eventtype,
    Fdflags,
    Filetype,
    Lookupflags,
    Oflags,
    Rights,
    Subclockflags,
    Whence,
)
from .errors import WasiError, check_enum, check_flags
from .memory import GuestMemory
from .virtual import FILETYPE


class ProcExit(Exception):
    """The guest called ``proc_exit``: unwinds it, carrying the exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"exit with code {code}")
        self.code = code


@dataclass(eq=False)
class Stdio:
    """fd 0, 1 or 2: a byte stream of the embedder's, not a descriptor of the implementation."""

    reader: BinaryIO | None
    writer: BinaryIO | None
    rights: int


FdEntry = Stdio | int  # an int is a handle index in the client's table


def _stat_fields(st: Stat) -> tuple[int, ...]:
    return (st.dev, st.ino, FILETYPE[st.kind], st.nlink, st.size, st.atime_ns, st.mtime_ns,
            st.ctime_ns)


class Preview1:
    """The imports of one client. ``memory`` is attached once the module is instantiated."""

    def __init__(
        self,
        wasi: Exports,
        args: list[str],
        env: list[str],
        stdin: BinaryIO | None,
        stdout: BinaryIO | None,
        stderr: BinaryIO | None,
    ) -> None:
        self.wasi = wasi
        # Bound once: looking an export up by name on every call costs more than the call.
        self._fdstat = wasi.fdstat
        self._write = wasi.write
        self._read = wasi.read
        self._stat_at = wasi.stat_at
        self.memory: GuestMemory
        self.args = [a.encode() + b"\0" for a in args]
        self.env = [e.encode() + b"\0" for e in env]
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
        for fd, slot in enumerate(self.fds):
            if slot is None:
                self.fds[fd] = entry
                return fd
        self.fds.append(entry)
        return len(self.fds) - 1

    def path(self, ptr: int, length: int) -> str:
        return self.memory.string(ptr, length)

    def functions(self) -> dict[str, Callable[..., None]]:
        """Every import by name. Each returns None on success and raises WasiError or
        OSError for an errno answer (see :func:`errors.errno_of`)."""
        return {name: getattr(self, name) for name in IMPORTS}

    # -- args, environment, clocks, randomness, process ---------------------------------
    def _sizes(self, items: list[bytes], count_ptr: int, size_ptr: int) -> None:
        self.memory.pack(U32, count_ptr, len(items))
        self.memory.pack(U32, size_ptr, sum(map(len, items)))

    def _strings(self, items: list[bytes], pointers: int, buf: int) -> None:
        for i, item in enumerate(items):
            self.memory.pack(U32, pointers + 4 * i, buf)
            self.memory.window(buf, len(item))[:] = item
            buf += len(item)

    def args_sizes_get(self, count_ptr: int, size_ptr: int) -> None:
        self._sizes(self.args, count_ptr, size_ptr)

    def args_get(self, argv: int, buf: int) -> None:
        self._strings(self.args, argv, buf)

    def environ_sizes_get(self, count_ptr: int, size_ptr: int) -> None:
        self._sizes(self.env, count_ptr, size_ptr)

    def environ_get(self, environ: int, buf: int) -> None:
        self._strings(self.env, environ, buf)

    def clock_res_get(self, clock: int, ptr: int) -> None:
        check_enum("Clockid", clock, Clockid.THREAD_CPUTIME_ID)
        if clock not in (Clockid.REALTIME, Clockid.MONOTONIC):
            raise WasiError(Errno.NOTSUP)
        self.memory.pack(U64, ptr, 1)

    def clock_time_get(self, clock: int, precision: int, ptr: int) -> None:
        if clock == Clockid.REALTIME:
            now = time.time_ns()
        elif clock == Clockid.MONOTONIC:
            now = time.monotonic_ns()
        else:
            check_enum("Clockid", clock, Clockid.THREAD_CPUTIME_ID)
            raise WasiError(Errno.NOTSUP)
        self.memory.pack(U64, ptr, now)

    def random_get(self, buf: int, length: int) -> None:
        self.memory.window(buf, length)[:] = os.urandom(length)

    def sched_yield(self) -> None:
        os.sched_yield()

    def proc_exit(self, code: int) -> None:
        raise ProcExit(code)

    def proc_raise(self, signal: int) -> None:
        raise WasiError(Errno.NOSYS)

    # -- descriptors ----------------------------------------------------------------------
    def fd_write(self, fd: int, iovs: int, count: int, nwritten: int) -> None:
        buf = self.memory.first_buffer(iovs, count)
        entry = self.entry(fd)
        if isinstance(entry, Stdio):
            if entry.writer is None:
                raise WasiError(Errno.BADF)
            total = entry.writer.write(buf) or 0
            entry.writer.flush()
        else:
            total = self._write(entry, buf)
        self.memory.pack(U32, nwritten, total)

    def fd_read(self, fd: int, iovs: int, count: int, nread: int) -> None:
        buf = self.memory.first_buffer(iovs, count)
        entry = self.entry(fd)
        if isinstance(entry, Stdio):
            if entry.reader is None:
                raise WasiError(Errno.BADF)
            total = entry.reader.readinto(buf) or 0  # type: ignore[attr-defined]
        else:
            total = self._read(entry, buf)
        self.memory.pack(U32, nread, total)

    def fd_pread(self, fd: int, iovs: int, count: int, offset: int, nread: int) -> None:
        buf = self.memory.first_buffer(iovs, count)
        handle = self.handle(fd, Errno.SPIPE)
        self.memory.pack(U32, nread, self.wasi.pread(handle, buf, offset))

    def fd_pwrite(self, fd: int, iovs: int, count: int, offset: int, nwritten: int) -> None:
        buf = self.memory.first_buffer(iovs, count)
        handle = self.handle(fd, Errno.SPIPE)
        self.memory.pack(U32, nwritten, self.wasi.pwrite(handle, buf, offset))

    def fd_seek(self, fd: int, delta: int, whence: int, newoffset: int) -> None:
        check_enum("Whence", whence, Whence.END)
        handle = self.handle(fd, Errno.SPIPE)
        self.memory.pack(U64, newoffset, self.wasi.seek(handle, delta, whence))

    def fd_tell(self, fd: int, ptr: int) -> None:
        self.memory.pack(U64, ptr, self.wasi.seek(self.handle(fd, Errno.SPIPE), 0, Whence.CUR))

    def fd_close(self, fd: int) -> None:
        entry = self.entry(fd)
        self.fds[fd] = None
        if not isinstance(entry, Stdio):
            self.wasi.close(entry)

    def fd_renumber(self, fd: int, to: int) -> None:
        entry = self.entry(fd)
        self.entry(to)
        if fd == to:
            return
        self.fd_close(to)
        self.fds[to] = entry
        self.fds[fd] = None

    def fd_fdstat_get(self, fd: int, ptr: int) -> None:
        entry = self.entry(fd)
        if isinstance(entry, Stdio):
            self.memory.pack(FDSTAT, ptr, Filetype.UNKNOWN, 0, entry.rights, entry.rights)
        else:
            self.memory.pack(FDSTAT, ptr, *self._fdstat(entry))

    def fd_fdstat_set_flags(self, fd: int, flags: int) -> None:
        entry = self.entry(fd)
        if not isinstance(entry, Stdio):
            self.wasi.set_flags(entry, flags)

    def fd_fdstat_set_rights(self, fd: int, base: int, inheriting: int) -> None:
        self.entry(fd)

    def fd_filestat_get(self, fd: int, ptr: int) -> None:
        entry = self.entry(fd)
        if isinstance(entry, Stdio):
            self.memory.pack(FILESTAT, ptr, 0, 0, Filetype.UNKNOWN, 0, 0, 0, 0, 0)
        else:
            self.memory.pack(FILESTAT, ptr, *_stat_fields(self.wasi.stat(entry)))

    def fd_filestat_set_size(self, fd: int, size: int) -> None:
        self.wasi.set_size(self.handle(fd), size)

    def fd_filestat_set_times(self, fd: int, atim: int, mtim: int, flags: int) -> None:
        self.wasi.set_times(self.handle(fd), atim, mtim, flags)

    def fd_sync(self, fd: int) -> None:
        self.wasi.sync(self.handle(fd))

    def fd_datasync(self, fd: int) -> None:
        self.wasi.sync(self.handle(fd))

    def fd_advise(self, fd: int, offset: int, length: int, advice: int) -> None:
        check_enum("Advice", advice, Advice.NOREUSE)
        self.handle(fd)

    def fd_allocate(self, fd: int, offset: int, length: int) -> None:
        self.handle(fd)
        raise WasiError(Errno.NOTSUP)

    def fd_prestat_get(self, fd: int, ptr: int) -> None:
        name = self.wasi.preopen_name(self.handle(fd))
        if name is None:
            raise WasiError(Errno.BADF)
        self.memory.pack(PRESTAT, ptr, 0, len(name.encode()))

    def fd_prestat_dir_name(self, fd: int, ptr: int, length: int) -> None:
        name = self.wasi.preopen_name(self.handle(fd))
        if name is None:
            raise WasiError(Errno.BADF)
        raw = name.encode()
        if length < len(raw):
            raise WasiError(Errno.NAMETOOLONG)
        self.memory.window(ptr, len(raw))[:] = raw

    def fd_readdir(self, fd: int, buf: int, length: int, cookie: int, bufused: int) -> None:
        out = self.memory.window(buf, length)
        entries = self.wasi.readdir(self.handle(fd))
        used = 0
        for index in range(cookie, len(entries)):
            if used >= length:
                break
            name, ino, kind = entries[index]
            raw = name.encode()
            record = DIRENT.pack(index + 1, ino, len(raw), kind) + raw
            take = min(len(record), length - used)
            out[used:used + take] = record[:take]
            used += take
        self.memory.pack(U32, bufused, used)

    # -- paths ------------------------------------------------------------------------------
    def path_open(self, fd: int, dirflags: int, path: int, length: int, oflags: int,
                  base: int, inheriting: int, fdflags: int, fd_ptr: int) -> None:
        check_flags("Lookupflags", dirflags, Lookupflags)
        check_flags("Oflags", oflags, Oflags)
        check_flags("Rights", base, Rights)
        check_flags("Rights", inheriting, Rights)
        check_flags("Fdflags", fdflags, Fdflags)
        follow = bool(dirflags & Lookupflags.SYMLINK_FOLLOW)
        handle = self.wasi.open_at(self.handle(fd), self.path(path, length), follow, oflags,
                                   fdflags, base, inheriting)
        self.memory.pack(U32, fd_ptr, self.allocate(handle))

    def path_filestat_get(self, fd: int, flags: int, path: int, length: int, ptr: int) -> None:
        follow = bool(flags & Lookupflags.SYMLINK_FOLLOW)
        st = self._stat_at(self.handle(fd), self.path(path, length), follow)
        self.memory.pack(FILESTAT, ptr, *_stat_fields(st))

    def path_filestat_set_times(self, fd: int, flags: int, path: int, length: int, atim: int,
                                mtim: int, fst: int) -> None:
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

    # -- polling and sockets --------------------------------------------------------------
    def poll_oneoff(self, subs: int, events: int, count: int, nevents: int) -> None:
        if count == 0:
            raise WasiError(Errno.INVAL)
        self.memory.window(subs, count * SUBSCRIPTION_SIZE)  # the whole array must be there
        ready: list[tuple[int, int, int]] = []  # (userdata, errno, type)
        deadline: tuple[int, int] | None = None  # (monotonic ns, userdata)
        for i in range(count):
            at = subs + i * SUBSCRIPTION_SIZE
            userdata, tag = self.memory.unpack(SUBSCRIPTION_HEAD, at)
            if tag == Eventtype.CLOCK:
                clock, timeout, _, flags = self.memory.unpack(SUBSCRIPTION_CLOCK, at + 16)
                if clock not in (Clockid.REALTIME, Clockid.MONOTONIC):
                    ready.append((userdata, Errno.INVAL, tag))
                    continue
                if flags & Subclockflags.SUBSCRIPTION_CLOCK_ABSTIME:
                    now = time.time_ns() if clock == Clockid.REALTIME else time.monotonic_ns()
                    timeout = max(0, timeout - now)
                due = time.monotonic_ns() + timeout
                if deadline is None or due < deadline[0]:
                    deadline = (due, userdata)
            elif tag in (Eventtype.FD_READ, Eventtype.FD_WRITE):
                (fd,) = self.memory.unpack(SUBSCRIPTION_FD, at + 16)
                try:
                    self.entry(fd)
                    ready.append((userdata, Errno.SUCCESS, tag))
                except WasiError as exc:
                    ready.append((userdata, exc.errno, tag))
            else:
                raise WasiError(Errno.INVAL)
        if not ready and deadline is not None:
            time.sleep(max(0, deadline[0] - time.monotonic_ns()) / 1e9)
            ready.append((deadline[1], Errno.SUCCESS, Eventtype.CLOCK))
        self.memory.window(events, len(ready) * EVENT.size)
        for i, (userdata, error, tag) in enumerate(ready):
            self.memory.pack(EVENT, events + i * EVENT.size, userdata, error, tag, 0, 0)
        self.memory.pack(U32, nevents, len(ready))

    def _not_a_socket(self, fd: int) -> None:
        self.entry(fd)
        raise WasiError(Errno.NOTSOCK)

    def sock_accept(self, fd: int, flags: int, fd_ptr: int) -> None:
        self._not_a_socket(fd)

    def sock_recv(self, fd: int, data: int, count: int, flags: int, datalen: int,
                  oflags: int) -> None:
        self._not_a_socket(fd)

    def sock_send(self, fd: int, data: int, count: int, flags: int, datalen: int) -> None:
        self._not_a_socket(fd)

    def sock_shutdown(self, fd: int, how: int) -> None:
        self._not_a_socket(fd)
