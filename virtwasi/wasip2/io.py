"""``wasi:io``: streams, pollables and errors, as client-side resource types.

The three types are defined by the component instance's own context (as the preview 1
adapter's state lives in the client), so only this host code makes or reads them; the
component's core code holds them as handles and drops them. Every stream here is
synchronous: a read or write happens in the call, so a stream is always ready, and a
pollable waits only for a clock. What each operation answers follows wasmtime's built-in
WASI 0.2 (``wasmtime-wasi-io`` and its file, stdio and pipe streams):

- ``read`` gives at most ``len`` bytes (at most 64 KiB at once), ``closed`` at the end; a
  stream that failed reports ``last-operation-failed`` once, then ``closed``;
- a file output stream offers 1 MiB in ``check-write``; a failed ``write`` is reported by the
  next ``check-write`` or ``flush``, and a ``write`` before that traps, as in wasmtime;
- ``blocking-write-and-flush`` and ``blocking-write-zeroes-and-flush`` of more than 4096
  bytes, ``write-zeroes`` beyond ``check-write``, and ``poll`` of nothing, trap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, BinaryIO

from ..component.hosting import HostInterface
from ..component.values import Err, Ok, Trap, Variant
from ..filesystem.errors import FsError, code_of
from ..wasi.common import read_stream, sleep_until
from ..world import Context

MAX_READ = 64 * 1024
"""The most one read gives (wasmtime's ``MAX_READ_SIZE_ALLOC``)."""
WRITE_BUDGET = 1024 * 1024
"""What ``check-write`` offers (wasmtime's, for files and stdio)."""
MAX_BLOCKING_WRITE = 4096
"""The most a ``blocking-write-and-flush`` may carry (wasmtime traps beyond it)."""

FAILURES = (FsError, OSError)
"""What a stream reports as ``last-operation-failed``; anything else ends the guest."""


def filled(buf: bytearray, count: int) -> bytearray:
    """A read's answer: ``buf`` cut to the ``count`` bytes read into it, in place, so the
    bytes are copied once more only into the guest's memory."""
    del buf[count:]
    return buf


class Closed(Exception):
    """The stream has ended: ``stream-error::closed``."""


class Failed(Exception):
    """The last operation failed with ``cause``: ``stream-error::last-operation-failed``."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class InputStream:
    """What an ``input-stream`` handle stands for: ``take`` reads at most ``size`` bytes
    (``size`` > 0), an empty answer being the end. A failure or the end closes it."""

    closed = False

    def release(self) -> None:
        """The handle was dropped (the stream's destructor)."""

    def take(self, size: int) -> bytes | bytearray:
        raise NotImplementedError

    def read(self, size: int) -> bytes | bytearray:
        if self.closed:
            raise Closed
        if not size:
            return b""
        try:
            data = self.take(min(size, MAX_READ))
        except FAILURES as exc:
            self.closed = True
            raise Failed(exc) from exc
        if not data:
            self.closed = True
            raise Closed
        return data


class ReaderInput(InputStream):
    """Standard input: an embedder's byte stream, read as preview 1 reads it (one read of
    what is there now; Ctrl-C breaks the wait). No stream is one that has ended."""

    def __init__(self, reader: BinaryIO | None) -> None:
        self.reader = reader
        self.closed = reader is None

    def take(self, size: int) -> bytes | bytearray:
        assert self.reader is not None
        buf = bytearray(size)
        return filled(buf, read_stream(self.reader, memoryview(buf)))


class OutputStream:
    """What an ``output-stream`` handle stands for: ``put`` writes all of ``data`` now.

    A failure of ``write`` is kept for the next ``check-write`` or ``flush`` to report, as
    wasmtime's file streams report a background write's failure (``deferred``); a stream
    whose writes fail at once (stdio) reports them from ``write`` itself."""

    deferred = False
    closed = False
    failure: BaseException | None = None

    def put(self, data: bytes | bytearray) -> None:
        raise NotImplementedError

    def release(self) -> None:
        """The handle was dropped (the stream's destructor)."""

    def settle(self) -> None:
        """Report a pending failure (once: the stream is closed after it), or the end."""
        if self.failure is not None:
            failure, self.failure = self.failure, None
            self.closed = True
            raise Failed(failure)
        if self.closed:
            raise Closed

    def check_write(self) -> int:
        self.settle()
        return WRITE_BUDGET

    def write(self, data: bytes | bytearray) -> None:
        if self.failure is not None:
            raise Trap("write not permitted: check-write not called first")
        if self.closed:
            raise Closed
        try:
            self.put(data)
        except FAILURES as exc:
            if not self.deferred:
                raise Failed(exc) from exc
            self.failure = exc

    def flush(self) -> None:
        self.settle()

    def blocking_write_and_flush(self, data: bytes | bytearray) -> None:
        self.settle()
        try:
            self.put(data)
        except FAILURES as exc:
            self.closed = True
            raise Failed(exc) from exc


class WriterOutput(OutputStream):
    """Standard output or error: an embedder's byte stream, flushed at each write as
    preview 1 does; no stream is a sink, as in wasmtime."""

    def __init__(self, writer: BinaryIO | None) -> None:
        self.writer = writer

    def put(self, data: bytes | bytearray) -> None:
        if self.writer is not None:
            self.writer.write(data)
            self.writer.flush()


class Pollable:
    """What a ``pollable`` handle stands for: ready from ``deadline`` (a
    ``time.monotonic_ns`` time) on, or at once (``None``: a stream's, always ready).

    As in wasmtime, a clock subscribed for no time at all (``due``) is not ready the first
    time it is looked at, only the next: a poll of it with a stream answers the stream
    alone. ``key`` orders a poll's answer as wasmtime orders it: by the table index of the
    stream a pollable watches, or of the clock pollable itself."""

    __slots__ = ("deadline", "due", "key")

    def __init__(self, deadline: int | None, *, due: bool = False, key: int = 0) -> None:
        self.deadline = deadline
        self.due = due
        self.key = key

    def ready(self, now: int) -> bool:
        if self.due:
            self.due = False  # wasmtime's clock yields once before it is ready
            return False
        return self.deadline is None or self.deadline <= now


class StreamError:
    """What a ``stream-error`` is made of: the ``error`` resource the failure becomes."""

    __slots__ = ("cause",)

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause

    def debug_string(self) -> str:
        if isinstance(self.cause, FsError | OSError):
            return f"{code_of(self.cause).wit_name}: {self.cause}"
        return str(self.cause)


def _release(stream: InputStream | OutputStream) -> None:
    stream.release()


class Io:
    """The ``wasi:io`` resource types of one component instance, and the handles made of
    them. The filesystem, clocks and cli families make their streams and pollables here."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.input_stream = ctx.resource_type("input-stream", _release)
        self.output_stream = ctx.resource_type("output-stream", _release)
        self.pollable = ctx.resource_type("pollable")
        self.error = ctx.resource_type("error")

    # -- handles ------------------------------------------------------------------------
    def new_input(self, stream: InputStream) -> int:
        return self.ctx.resource_new(self.input_stream, stream)

    def new_output(self, stream: OutputStream) -> int:
        return self.ctx.resource_new(self.output_stream, stream)

    def new_pollable(self, stream: int) -> int:
        """A pollable of the stream at index ``stream``: every stream here is ready."""
        return self.ctx.resource_new(self.pollable, Pollable(None, key=stream))

    def new_clock(self, deadline: int) -> int:
        """A pollable ready from ``deadline``, a ``time.monotonic_ns`` time."""
        now = time.monotonic_ns()
        rep = Pollable(max(deadline, now), due=deadline <= now)
        rep.key = handle = self.ctx.resource_new(self.pollable, rep)
        return handle

    def cause(self, error: int) -> BaseException:
        """The failure behind an ``error`` handle."""
        rep: StreamError = self.ctx.resource_rep(self.error, error)
        return rep.cause

    def _in(self, handle: int) -> InputStream:
        rep: InputStream = self.ctx.resource_rep(self.input_stream, handle)
        return rep

    def _out(self, handle: int) -> OutputStream:
        rep: OutputStream = self.ctx.resource_rep(self.output_stream, handle)
        return rep

    def answer(self, operation: Callable[[], Any]) -> Ok | Err:
        """``operation``'s value as ``result<_, stream-error>``."""
        try:
            return Ok(operation())
        except Closed:
            return Err(Variant("closed"))
        except Failed as failed:
            error = self.ctx.resource_new(self.error, StreamError(failed.cause))
            return Err(Variant("last-operation-failed", error))

    # -- wasi:io/streams ----------------------------------------------------------------
    def read(self, stream: int, size: int) -> Ok | Err:
        return self.answer(lambda: self._in(stream).read(size))

    def skip(self, stream: int, size: int) -> Ok | Err:
        return self.answer(lambda: len(self._in(stream).read(size)))

    def subscribe(self, stream: int) -> int:
        return self.new_pollable(stream)

    def check_write(self, stream: int) -> Ok | Err:
        return self.answer(self._out(stream).check_write)

    def write(self, stream: int, contents: bytes) -> Ok | Err:
        return self.answer(lambda: self._out(stream).write(contents))

    def blocking_write_and_flush(self, stream: int, contents: bytes) -> Ok | Err:
        if len(contents) > MAX_BLOCKING_WRITE:
            raise Trap(f"blocking-write-and-flush of {len(contents)} bytes: at most "
                       f"{MAX_BLOCKING_WRITE} may be written at once")
        return self.answer(lambda: self._out(stream).blocking_write_and_flush(contents))

    def flush(self, stream: int) -> Ok | Err:
        return self.answer(self._out(stream).flush)

    def write_zeroes(self, stream: int, size: int) -> Ok | Err:
        out = self._out(stream)

        def zeroes() -> None:
            if size > out.check_write():
                raise Trap("write-zeroes of more bytes than check-write allows")
            out.write(bytes(size))

        return self.answer(zeroes)

    def blocking_write_zeroes_and_flush(self, stream: int, size: int) -> Ok | Err:
        if size > MAX_BLOCKING_WRITE:
            raise Trap(f"blocking-write-zeroes-and-flush of {size} bytes: at most "
                       f"{MAX_BLOCKING_WRITE} may be written at once")
        return self.answer(lambda: self._out(stream).blocking_write_and_flush(bytes(size)))

    def splice(self, stream: int, source: int, size: int, blocking: bool) -> Ok | Err:
        out, src = self._out(stream), self._in(source)

        def move() -> int:
            size_now = min(size, out.check_write())
            data = src.read(size_now) if size_now else b""
            if data:
                (out.blocking_write_and_flush if blocking else out.write)(data)
            return len(data)

        return self.answer(move)

    # -- wasi:io/poll ---------------------------------------------------------------------
    def _pollable(self, handle: int) -> Pollable:
        rep: Pollable = self.ctx.resource_rep(self.pollable, handle)
        return rep

    def ready(self, pollable: int) -> bool:
        return self._pollable(pollable).ready(time.monotonic_ns())

    def block(self, pollable: int) -> None:
        wait = self._pollable(pollable)
        while not wait.ready(time.monotonic_ns()):
            sleep_until(wait.deadline or 0)

    def poll(self, pollables: list[int]) -> list[int]:
        """The positions of the ready ones, waiting for the first if none is; each
        pollable looked at once a round, even if listed twice, as wasmtime does."""
        if not pollables:
            raise Trap("poll of an empty list")
        waits = [self._pollable(p) for p in pollables]
        while True:
            now = time.monotonic_ns()
            states = {wait: wait.ready(now) for wait in dict.fromkeys(waits)}
            ready = [i for i, wait in enumerate(waits) if states[wait]]
            if ready:
                return sorted(ready, key=lambda i: (waits[i].key, i))
            # Only clocks are not ready, each with its deadline; one due is ready next round.
            sleep_until(min(wait.deadline or 0 for wait in waits))

    # -- the interfaces -------------------------------------------------------------------
    def interfaces(self) -> dict[str, HostInterface]:
        streams: dict[str, Callable[..., Any]] = {
            "[method]input-stream.read": self.read,
            "[method]input-stream.blocking-read": self.read,
            "[method]input-stream.skip": self.skip,
            "[method]input-stream.blocking-skip": self.skip,
            "[method]input-stream.subscribe": self.subscribe,
            "[method]output-stream.check-write": self.check_write,
            "[method]output-stream.write": self.write,
            "[method]output-stream.blocking-write-and-flush": self.blocking_write_and_flush,
            "[method]output-stream.flush": self.flush,
            "[method]output-stream.blocking-flush": self.flush,
            "[method]output-stream.subscribe": self.subscribe,
            "[method]output-stream.write-zeroes": self.write_zeroes,
            "[method]output-stream.blocking-write-zeroes-and-flush":
                self.blocking_write_zeroes_and_flush,
            "[method]output-stream.splice":
                lambda out, src, size: self.splice(out, src, size, blocking=False),
            "[method]output-stream.blocking-splice":
                lambda out, src, size: self.splice(out, src, size, blocking=True),
        }
        return {
            "wasi:io/error": HostInterface(
                {"[method]error.to-debug-string": lambda error: self._error(error)},
                {"error": self.error}),
            "wasi:io/poll": HostInterface(
                {"[method]pollable.ready": self.ready, "[method]pollable.block": self.block,
                 "poll": self.poll},
                {"pollable": self.pollable}),
            "wasi:io/streams": HostInterface(streams, {
                "input-stream": self.input_stream, "output-stream": self.output_stream,
                "error": self.error, "pollable": self.pollable}),
        }

    def _error(self, error: int) -> str:
        rep: StreamError = self.ctx.resource_rep(self.error, error)
        return rep.debug_string()
