"""The preview 1 imports that need no filesystem: arguments, environment, clocks,
randomness, the process, polling, sockets and preopen names.

:class:`~virtwasi.wasi.preview1.Preview1` adds the descriptor and path imports, and the
three hooks these need of its fd table: :meth:`~CommonImports.entry`,
:meth:`~CommonImports.prestat_name` and :meth:`~CommonImports.poll_fd`. The answers follow
wasmtime's built-in WASI.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import BinaryIO

from .abi import (
    EVENT,
    IMPORTS,
    PRESTAT,
    SUBSCRIPTION_CLOCK,
    SUBSCRIPTION_FD,
    SUBSCRIPTION_HEAD,
    SUBSCRIPTION_SIZE,
    U32,
    U64,
    Clockid,
    Errno,
    Eventrwflags,
    Eventtype,
    Fdflags,
    Riflags,
    Sdflags,
    Subclockflags,
)
from .errnos import AbiViolation, WasiError, check_enum, check_flags
from .memory import HOSTCALL_FUEL, GuestMemory

# wasmtime refuses exit statuses from 126 up (shells reserve them) with a trap.
MAX_EXIT_STATUS = 125
# The last case of the witx signal enum (SIGSYS); a larger value traps, as any bad enum.
MAX_SIGNAL = 30
# The event flag of a read subscription on a file whose position is at or past its end.
HANGUP = int(Eventrwflags.FD_READWRITE_HANGUP)
MAX_SLEEP_NS = 86_400 * 10**9  # one sleep of at most a day; longer waits loop
CLOCK_RESOLUTION_NS = 1
"""The resolution every clock reports (Linux's, for both clocks, as wasmtime reads it)."""


class ProcExit(Exception):
    """The guest called ``proc_exit``: unwinds it, carrying the exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"exit with code {code}")
        self.code = code


def read_stream(reader: BinaryIO, buf: memoryview) -> int:
    """What stdin has now, up to ``buf``'s size: at most one read of the underlying stream,
    so that a line typed or piped in reaches the guest at once, not once the buffer fills.
    An empty read is EINTR until the stream has ended, as wasmtime answers it."""
    if not buf.nbytes:
        if _stream_ended(reader):
            return 0
        raise WasiError(Errno.INTR)
    readinto1 = getattr(reader, "readinto1", None)
    if readinto1 is not None:
        return int(readinto1(buf) or 0)
    return int(reader.readinto(buf) or 0)  # type: ignore[attr-defined]


def sleep_until(deadline: int) -> None:
    """Sleep until ``time.monotonic_ns()`` reaches ``deadline``. In slices: a timeout of up
    to 2^64-1 ns is more than time.sleep accepts. The loop stays in this frame, so a signal
    still finds this wait (the engine's BLOCKING_WAITS)."""
    while (left := deadline - time.monotonic_ns()) > 0:
        time.sleep(min(left, MAX_SLEEP_NS) / 1e9)


def _stream_ended(reader: BinaryIO) -> bool:
    peek = getattr(reader, "peek", None)
    if peek is not None:
        return not peek(1)
    if reader.seekable():
        here = reader.tell()
        ended = not reader.read(1)
        reader.seek(here)
        return ended
    return False


class CommonImports:
    """The implementation-independent imports of one client. ``memory`` is attached once
    the module is instantiated."""

    memory: GuestMemory

    def __init__(self, args: list[str], env: list[str]) -> None:
        self.args = [a.encode() + b"\0" for a in args]
        self.env = [e.encode() + b"\0" for e in env]

    # -- what a subclass supplies -----------------------------------------------------------
    def entry(self, fd: int) -> object:
        """Whatever ``fd`` holds; ``EBADF`` if nothing."""
        raise NotImplementedError

    def prestat_name(self, fd: int) -> str | None:
        """The guest path ``fd`` was preopened as, None if it is not a preopen; ``EBADF``
        if ``fd`` holds nothing."""
        raise NotImplementedError

    def poll_fd(self, fd: int, write: bool) -> int:
        """The event flags of an fd subscription (every stream and file is always ready);
        ``EBADF`` if ``fd`` cannot be polled in that direction."""
        raise NotImplementedError

    def functions(self) -> dict[str, Callable[..., None]]:
        """Every import by name. Each returns None on success and raises WasiError or
        OSError for an errno answer (see :func:`.errnos.errno_of`)."""
        return {name: getattr(self, name) for name in IMPORTS}

    # -- args, environment ----------------------------------------------------------------
    def _sizes(self, items: list[bytes], count_ptr: int, size_ptr: int) -> None:
        # The size first: where both pointers are one, wasmtime leaves the count there.
        self.memory.pack(U32, size_ptr, sum(map(len, items)))
        self.memory.pack(U32, count_ptr, len(items))

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

    # -- clocks, randomness, process ------------------------------------------------------
    @staticmethod
    def _now(clock: int) -> int:
        check_enum("Clockid", clock, Clockid.THREAD_CPUTIME_ID)
        if clock == Clockid.REALTIME:
            return time.time_ns()
        if clock == Clockid.MONOTONIC:
            return time.monotonic_ns()
        raise WasiError(Errno.BADF, "CPU-time clocks are not provided")

    def clock_res_get(self, clock: int, ptr: int) -> None:
        self._now(clock)
        self.memory.pack(U64, ptr, CLOCK_RESOLUTION_NS)

    def clock_time_get(self, clock: int, precision: int, ptr: int) -> None:
        self.memory.pack(U64, ptr, self._now(clock))

    def random_get(self, buf: int, length: int) -> None:
        if not length:
            return  # wasmtime looks at no memory for nothing, wherever it points
        window = self.memory.window(buf, length)  # checked before any byte is made
        window[:] = os.urandom(length)

    def sched_yield(self) -> None:
        os.sched_yield()

    def proc_exit(self, code: int) -> None:
        if code > MAX_EXIT_STATUS:
            raise AbiViolation("exit with invalid exit status outside of [0..126)")
        raise ProcExit(code)

    def proc_raise(self, signal: int) -> None:
        check_enum("Signal", signal, MAX_SIGNAL)
        raise WasiError(Errno.NOTSUP)

    # -- preopens ---------------------------------------------------------------------------
    def fd_prestat_get(self, fd: int, ptr: int) -> None:
        name = self.prestat_name(fd)
        if name is None:
            raise WasiError(Errno.BADF)
        self.memory.pack(PRESTAT, ptr, 0, len(name.encode()))

    def fd_prestat_dir_name(self, fd: int, ptr: int, length: int) -> None:
        name = self.prestat_name(fd)
        if name is None:
            raise WasiError(Errno.NOTDIR)
        raw = name.encode()
        if length < len(raw):
            raise WasiError(Errno.NAMETOOLONG)
        self.memory.window(ptr, len(raw))[:] = raw

    # -- polling and sockets --------------------------------------------------------------
    def poll_oneoff(self, subs: int, events: int, count: int, nevents: int) -> None:
        """Wait until a subscription is ready, then report every ready one in order.

        As in wasmtime, a malformed subscription (unknown tag, clock or flags) or an fd
        that cannot be polled fails the whole call. Streams and files are always ready, and
        when one is, it is answered at once: clocks, even due ones, only when none is.
        """
        if count == 0:
            raise WasiError(Errno.INVAL)
        # Past one subscription, wasmtime bounds the arrays it would copy before reading any.
        if count > 1 and count * (SUBSCRIPTION_SIZE + EVENT.size) > HOSTCALL_FUEL:
            raise WasiError(Errno.NOMEM, "too many subscriptions")
        start = time.monotonic_ns()
        # (userdata, type, rwflags, due): due is None for an fd, already ready.
        pending: list[tuple[int, int, int, int | None]] = []
        for i in range(count):
            at = subs + i * SUBSCRIPTION_SIZE
            userdata, tag = self.memory.unpack(SUBSCRIPTION_HEAD, at)
            if tag == Eventtype.CLOCK:
                clock, timeout, _, flags = self.memory.unpack(SUBSCRIPTION_CLOCK, at + 16)
                if clock not in (Clockid.REALTIME, Clockid.MONOTONIC) or flags & ~int(
                    Subclockflags.SUBSCRIPTION_CLOCK_ABSTIME
                ):
                    raise WasiError(Errno.INVAL)
                if flags & Subclockflags.SUBSCRIPTION_CLOCK_ABSTIME:
                    timeout = max(0, timeout - self._now(clock))
                pending.append((userdata, tag, 0, start + timeout))
            elif tag in (Eventtype.FD_READ, Eventtype.FD_WRITE):
                (fd,) = self.memory.unpack(SUBSCRIPTION_FD, at + 16)
                pending.append((userdata, tag, self.poll_fd(fd, tag == Eventtype.FD_WRITE),
                                None))
            else:
                raise WasiError(Errno.INVAL)
        ready = [sub for sub in pending if sub[3] is None]
        if not ready:  # only clocks: sleep until the first is due; report all due by then
            first = min(due for *_, due in pending if due is not None)
            sleep_until(first)
            now = max(time.monotonic_ns(), first)
            ready = [sub for sub in pending if sub[3] is not None and sub[3] <= now]
        self.memory.window(events, len(ready) * EVENT.size)
        for i, (userdata, tag, flags, due) in enumerate(ready):
            nbytes = 0 if due is not None else 1
            self.memory.pack(EVENT, events + i * EVENT.size, userdata, 0, tag, nbytes, flags)
        self.memory.pack(U32, nevents, len(ready))

    def _not_a_socket(self, fd: int) -> None:
        self.entry(fd)
        raise WasiError(Errno.NOTSOCK)

    def sock_accept(self, fd: int, flags: int, fd_ptr: int) -> None:
        check_flags("Fdflags", flags, Fdflags)
        self._not_a_socket(fd)

    def sock_recv(self, fd: int, data: int, count: int, flags: int, datalen: int,
                  oflags: int) -> None:
        check_flags("Riflags", flags, Riflags)
        self._not_a_socket(fd)

    def sock_send(self, fd: int, data: int, count: int, flags: int, datalen: int) -> None:
        self._not_a_socket(fd)

    def sock_shutdown(self, fd: int, how: int) -> None:
        check_flags("Sdflags", how, Sdflags)
        self._not_a_socket(fd)

