"""Ending a running guest from outside: a signal (Ctrl-C, SIGTERM) or a wall-clock deadline.

A guest computing in wasm runs no Python, so a Python signal handler would only run once it
returns, and a guest blocked in a host call (reading stdin, sleeping in ``poll_oneoff``)
is inside a system call that Python restarts after the handler. Both are ended here:

- The engine is built with epoch interruption, and each call into the guest sets its store's
  deadline to the next epoch. One watcher thread per process waits on the signal wakeup
  pipe (:func:`signal.set_wakeup_fd`, written by the C-level handler the moment a signal
  arrives, whatever the main thread is doing) and on the nearest deadline, and bumps the
  engine's epoch: wasm code traps at its next loop back-edge or function entry.
- The Python handler, run in the main thread, raises :class:`StopRequest` when the guest
  is blocked in a known wait (:data:`BLOCKING_WAITS`), so the host call unwinds into a trap;
  a second signal raises it from any host call. A deadline wakes such a wait by sending
  :data:`WAKE_SIGNAL` to the main thread.

Handlers are installed only in the main thread, only while a :func:`catching` scope is open,
and only over a signal's default handler: a handler the application set is left alone.
Outside a guest call (compiling, tearing down) a signal is only recorded, never raised,
so teardown always completes.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import CodeType, FrameType
from typing import Any

import wasmtime

from .raw import in_host_call

DEFAULT_SIGNALS = (signal.SIGINT, signal.SIGTERM)
WAKE_SIGNAL = signal.SIGALRM  # sent to the main thread to break a blocked wait at a deadline

BLOCKING_WAITS: set[CodeType] = set()
"""Code of host functions that may block indefinitely (reading a stream, sleeping): a signal
raised in one of these ends the guest at once."""


class StopRequest(BaseException):
    """Raised inside a blocked host call to unwind the guest; never escapes a guest call."""


class Stop:
    """Why a guest was ended from outside: ``signal`` (its number) or ``timeout``."""

    __slots__ = ("kind", "signum")

    def __init__(self, kind: str, signum: int = 0) -> None:
        self.kind = kind
        self.signum = signum

    def __repr__(self) -> str:
        return f"Stop({self.kind!r}, {self.signum})"


class Guard:
    """One call into a guest, watched: ends it on a signal of the open scope or at
    ``deadline`` (a :func:`time.monotonic` time), by bumping ``engine``'s epoch."""

    def __init__(self, engine: wasmtime.Engine, deadline: float | None,
                 main_thread: bool) -> None:
        self.engine = engine
        self.deadline = deadline
        self.main_thread = main_thread
        self.reason: Stop | None = None
        self.signals_seen = 0
        self.running = False

    def stop(self, reason: Stop) -> None:
        if self.reason is None:
            self.reason = reason
        self.engine.increment_epoch()


class _Scope:
    def __init__(self, signals: frozenset[int]) -> None:
        self.signals = signals
        self.received: list[int] = []
        self.saved: dict[int, Any] = {}
        self.saved_wakeup = -1
        self.can_wake = False


_lock = threading.Lock()
_guards: list[Guard] = []
_scope: _Scope | None = None
_pipe: tuple[int, int] | None = None
_watcher: threading.Thread | None = None


def _ensure_watcher() -> tuple[int, int]:
    global _pipe, _watcher
    with _lock:
        if _pipe is None:
            rfd, wfd = os.pipe()
            os.set_blocking(rfd, False)
            os.set_blocking(wfd, False)
            _pipe = (rfd, wfd)
        if _watcher is None:
            _watcher = threading.Thread(target=_watch, args=(_pipe[0],),
                                        name="virtwasi-interrupts", daemon=True)
            _watcher.start()
        return _pipe


def _poke() -> None:
    """Make the watcher look at the deadlines again."""
    if _pipe is not None:
        with contextlib.suppress(OSError):  # a full pipe will wake it anyway
            os.write(_pipe[1], b"\0")


def _watch(rfd: int) -> None:
    main = threading.main_thread().ident
    while True:
        with _lock:
            deadlines = [g.deadline for g in _guards if g.deadline is not None]
        wait = None if not deadlines else max(0.0, min(deadlines) - time.monotonic())
        ready, _, _ = select.select([rfd], [], [], wait)
        data = b""
        if ready:
            with contextlib.suppress(BlockingIOError):
                data = os.read(rfd, 512)
        now = time.monotonic()
        with _lock:
            scope = _scope
            for guard in _guards:
                if not guard.running:
                    continue
                for signum in data:
                    if signum and scope is not None and signum in scope.signals:
                        guard.stop(Stop("signal", signum))
                if guard.deadline is not None and now >= guard.deadline:
                    guard.deadline = None
                    guard.stop(Stop("timeout"))
                    if guard.main_thread and scope is not None and scope.can_wake and main:
                        # A guest blocked in a host call runs no wasm: break its wait.
                        signal.pthread_kill(main, WAKE_SIGNAL)


def _running() -> Guard | None:
    for guard in reversed(_guards):
        if guard.running and guard.main_thread:
            return guard
    return None


def _on_signal(signum: int, frame: FrameType | None) -> None:
    scope = _scope
    if scope is not None and signum != WAKE_SIGNAL:
        scope.received.append(signum)
    guard = _running()
    if guard is None:
        return  # compiling or tearing down: recorded, never raised
    if signum == WAKE_SIGNAL:
        if guard.reason is not None and _blocked(frame):
            raise StopRequest
        return
    guard.signals_seen += 1
    guard.stop(Stop("signal", signum))
    if _blocked(frame) or (guard.signals_seen > 1 and in_host_call(frame)):
        raise StopRequest


def _blocked(frame: FrameType | None) -> bool:
    return frame is not None and frame.f_code in BLOCKING_WAITS


def _is_default(signum: int) -> bool:
    current = signal.getsignal(signum)
    return current in (signal.SIG_DFL, signal.default_int_handler)


@contextlib.contextmanager
def catching(signals: Iterable[int] = DEFAULT_SIGNALS) -> Iterator[_Scope | None]:
    """Within this scope, ``signals`` end the running guest instead of their default action
    (and are recorded in the scope's ``received``). Nested scopes reuse the outer one; off
    the main thread nothing is installed and None is given."""
    global _scope
    if _scope is not None:
        yield _scope
        return
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    _, wfd = _ensure_watcher()
    scope = _Scope(frozenset(s for s in signals if _is_default(s)))
    handled = sorted(scope.signals)
    if _is_default(WAKE_SIGNAL):
        handled.append(WAKE_SIGNAL)
        scope.can_wake = True
    for signum in handled:
        scope.saved[signum] = signal.signal(signum, _on_signal)
    scope.saved_wakeup = signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
    _scope = scope
    try:
        yield scope
    finally:
        # signal.signal() runs pending handlers first: ours, with no guest running.
        for signum, previous in scope.saved.items():
            signal.signal(signum, previous)
        signal.set_wakeup_fd(scope.saved_wakeup)
        _scope = None


@contextlib.contextmanager
def guarded(engine: wasmtime.Engine, store: wasmtime.Store, *, epochs: bool,
            signals: Iterable[int], timeout: float | None) -> Iterator[Guard]:
    """One call into a guest of ``store``: ended by ``signals`` (when epochs are on and this
    is the main thread) or after ``timeout`` seconds. The guard's ``reason`` says why."""
    main = threading.current_thread() is threading.main_thread()
    deadline = None if timeout is None else time.monotonic() + timeout
    guard = Guard(engine, deadline, main)
    if not epochs:
        yield guard
        return
    store.set_epoch_deadline(1)
    listen = tuple(signals)
    scope_cm = catching(listen) if (listen or timeout is not None) and main else (
        contextlib.nullcontext(None))
    with scope_cm as scope:
        _ensure_watcher()
        with _lock:
            _guards.append(guard)
            guard.running = True
        if deadline is not None:
            _poke()
        try:
            if scope is not None and scope.received and set(scope.received) & set(listen):
                guard.stop(Stop("signal", scope.received[-1]))
            yield guard
        finally:
            with _lock:
                guard.running = False
                _guards.remove(guard)


def stopped_by(guard: Guard, error: BaseException | None) -> Stop | None:
    """Why ``guard``'s call ended early, if it was ended from outside."""
    if guard.reason is not None:
        return guard.reason
    if isinstance(error, StopRequest):
        return Stop("signal", signal.SIGINT)
    return None


def blocking(fn: Callable[..., Any]) -> None:
    """Registers ``fn`` (a function or method) as a wait a signal may break."""
    code = getattr(fn, "__code__", None)
    if code is not None:
        BLOCKING_WAITS.add(code)
