"""Running one item of a batch, in whichever process an engine gives it.

An item runs as ``virtwasi run`` runs a module: a :class:`~virtwasi.runtime.Session` in a
fresh world, with the item's mounts (its input served alone, read-only, at the plan's
``input_at``; ``/`` a private in-memory tree), its arguments and its limits. Then its
outputs are published (:mod:`.outputs`). The module is compiled once per worker thread:
each thread keeps an engine and the module compiled in it (from virtwasi's compiled-module
cache when it is there), and every item of that thread runs in that engine.

A process-pool worker leaves Ctrl-C to the batch: SIGINT between items only marks the
worker as stopping, so that it starts no other item; during an item it ends a running
guest as it ends ``virtwasi run``'s (nothing of the item is published), and otherwise lets
the item finish. SIGTERM keeps its default action, as the pool expects of it.
"""

from __future__ import annotations

import errno
import functools
import io
import os
import signal
import socket
import threading
import time
from multiprocessing.queues import SimpleQueue
from typing import Any, BinaryIO, cast

from .outputs import Retries, collect, keep_unpublished, publish
from .plan import Item, Plan, expand, expand_source, expand_url, options_for
from .results import STOPPED, ItemResult

WORKER = f"{socket.gethostname()}:{os.getpid()}"


class KeptOutput(io.RawIOBase):
    """A guest's stdout or stderr, kept up to ``limit`` bytes: the first half and the last
    half of what it wrote, with the count of all of it."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._head_limit = limit - limit // 2
        self._tail_limit = limit // 2
        self._head = bytearray()
        self._tail = bytearray()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        n = view.nbytes
        self.size += n
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += view[:room]
            view = view[room:]
        if self._tail_limit and view.nbytes:
            self._tail += view[-self._tail_limit:]
            del self._tail[:-self._tail_limit]
        return n

    def text(self) -> str:
        skipped = self.size - len(self._head) - len(self._tail)
        middle = f"\n[... {skipped} bytes ...]\n".encode() if skipped else b""
        return bytes(self._head + middle + self._tail).decode("utf-8", "replace")


_threads = threading.local()


def _compiled(module: bytes, digest: str, epochs: bool, fuel: bool) -> tuple[Any, Any]:
    """This thread's engine for these limits, and the module compiled in it (the bytes
    themselves when the engine cannot compile them, for the session to say why)."""
    import wasmtime

    from ..client import engine_flavor, load_module, make_engine

    cache: dict[tuple[str, bool, bool], tuple[Any, Any]] = _threads.__dict__.setdefault(
        "compiled", {})
    key = (digest, epochs, fuel)
    if key not in cache:
        engine = make_engine(epochs, fuel)
        try:
            compiled: Any = load_module(engine, module, {}, flavor=engine_flavor(epochs, fuel))
        except (wasmtime.WasmtimeError, ValueError):
            compiled = module
        cache[key] = (engine, compiled)
    return cache[key]


def _read_input(url: str, options: dict[str, Any]) -> bytes:
    from ..storage.fsspec_layout import layout_for
    from ..storage.fsspec_storage import storage_error
    from ..storage.network import open_url

    try:
        fs, path, _ = open_url(url, options)
    except (ImportError, ValueError) as exc:
        raise OSError(errno.EINVAL, str(exc), url) from None
    try:
        return layout_for(fs).read_whole(fs, path)
    except Exception as exc:  # fsspec backends raise whatever their libraries raise
        raise storage_error(exc, url) from exc


def _input_tree(name: str, data: bytes) -> Any:
    """A private tree holding the input alone, under its name."""
    from ..storage.memfs import MemoryStorage

    tree = MemoryStorage()
    f = tree.open(name, create=True, exclusive=True, writable=True)
    try:
        f.write(data, 0)
    finally:
        f.close()
    return tree


def run_item(module: bytes, digest: str, plan: Plan, item: Item,
             signals: tuple[int, ...] = ()) -> ItemResult:
    """Run ``item`` by ``plan`` (``signals``: those that end its guest, in the main thread
    only); a row for the results, or one whose status is :data:`STOPPED`."""
    started = time.perf_counter()
    retries = Retries(plan.retries)
    out, err = KeptOutput(plan.keep_output), KeptOutput(plan.keep_output)
    try:
        status, code, error, published = _run(module, digest, plan, item, signals, retries,
                                              out, err)
    except Exception as exc:  # never lose the worker to a surprise: say it in the row
        status, code, error, published = "error", 2, f"{type(exc).__name__}: {exc}", []
    return ItemResult(
        index=item.index, input=item.path, status=status, exit_code=code, error=error,
        outputs=tuple(published), stdout=out.text(), stderr=err.text(),
        stdout_bytes=out.size, stderr_bytes=err.size, retries=retries.used,
        seconds=round(time.perf_counter() - started, 6), worker=WORKER,
    )


Outcome = tuple[str, int, str | None, list[str]]
"""status, exit code, why (None when ok), the URLs published."""


def _run(module: bytes, digest: str, plan: Plan, item: Item, signals: tuple[int, ...],
         retries: Retries, out: KeptOutput, err: KeptOutput) -> Outcome:
    import wasmtime

    from ..client import TRAP_EXIT_CODE, Limits
    from ..runtime import GuestInterrupted, GuestStopped, Session
    from ..storage.mounts import MountError

    mounts = {guest: expand_source(source, item, plan.folder)
              for guest, source in plan.mount_sources().items()}
    read_only = [*plan.read_only, *plan.shared()]
    if plan.input_at is not None:
        options = options_for(item.path, plan.storage_options)
        try:
            data = retries.run(lambda: _read_input(item.path, options))
        except OSError as exc:
            return "error", 2, f"input: {exc.strerror or exc}", []
        mounts[plan.input_at] = _input_tree(item.name, data)
        read_only.append(plan.input_at)
    layers = []
    if plan.quota is not None:
        from ..layers import quota_layer

        layers.append(("quota", quota_layer(*plan.quota)))
    limits = Limits(plan.timeout, plan.fuel, plan.max_memory, signals)
    engine, compiled = _compiled(module, digest, limits.epochs, plan.fuel is not None)
    try:
        session = Session(compiled, [expand(arg, item) for arg in plan.args], mounts=mounts,
                          read_only=read_only, layers=layers,
                          env=[(key, expand(value, item)) for key, value in plan.env],
                          stdout=cast(BinaryIO, out), stderr=cast(BinaryIO, err),
                          program_name=plan.program_name,
                          timeout=plan.timeout, fuel=plan.fuel, max_memory=plan.max_memory,
                          signals=signals, engine=engine)
    except GuestInterrupted:
        return STOPPED, 130, "stopped before it started", []
    except GuestStopped as stop:
        return "failed", stop.exit_code, str(stop), []
    except (MountError, ValueError, OSError, wasmtime.WasmtimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return "error", 2, first, []
    with session:
        try:
            code = session.start()
        except GuestInterrupted as stop:
            return STOPPED, stop.exit_code, str(stop), []
        except GuestStopped as stop:
            return "failed", stop.exit_code, str(stop), []
        if code == TRAP_EXIT_CODE:  # wasmtime's message ends stderr, its cause last
            cause = (err.text().rstrip().splitlines() or ["see stderr"])[-1].strip()
            return "failed", code, f"trapped: {cause}", []
        if code != 0:
            return "failed", code, f"exited {code}", []
        try:
            pending = _collect(plan, item, session.host.mounts)
        except OSError as exc:
            return "failed", 0, exc.strerror or str(exc), []
    return _publish(pending, plan, retries)


def _collect(plan: Plan, item: Item, storages: dict[str, Any]) -> list[tuple[str, bytes]]:
    pending: list[tuple[str, bytes]] = []
    for output in plan.outputs:
        guest = expand(output.guest, item)
        holder = plan.private_tree_of(guest)
        if holder is None:
            raise OSError(errno.EROFS, f"output {guest}: not in a tree of the item's own")
        inner = guest[len(holder):].strip("/")
        try:
            pending += collect(storages[holder], inner,
                               expand_url(output.url, item, plan.folder),
                               folder=output.guest.endswith("/"))
        except OSError as exc:
            what = "the guest left nothing there" if exc.errno == errno.ENOENT else (
                exc.strerror or str(exc))
            raise OSError(exc.errno, f"output {guest}: {what}") from None
    return pending


def _publish(pending: list[tuple[str, bytes]], plan: Plan, retries: Retries) -> Outcome:
    published: list[str] = []
    for n, (url, data) in enumerate(pending):
        options = options_for(url, plan.storage_options)
        try:
            retries.run(functools.partial(publish, url, data, options))
        except OSError as exc:
            reason = f"upload failed: {exc.strerror or exc}"
            kept = keep_unpublished(pending[n:], reason)
            return "error", 1, f"output {url}: not saved ({reason}); kept in {kept[0]}", \
                published
        published.append(url)
    return "ok", 0, None, published


# -- a process pool's worker ------------------------------------------------------------

_pool: dict[str, Any] = {}
_stopping = False


def _stop_between_items(signum: int, frame: Any) -> None:
    global _stopping
    _stopping = True


def start_pool_worker(module: bytes, digest: str, pids: SimpleQueue[int]) -> None:
    """A process pool's initializer: keep the module, say who this worker is (the batch
    signals its workers on a stop), and take SIGINT as "stop after this item"."""
    _pool.update(module=module, digest=digest)
    pids.put(os.getpid())
    signal.signal(signal.SIGINT, _stop_between_items)


def run_in_pool(plan: Plan, item: Item) -> ItemResult:
    """One item in a process-pool worker; once a stop reached it, none more."""
    global _stopping
    from ..engine import interrupt

    if _stopping:
        return ItemResult(item.index, item.path, STOPPED, 130, "not started: stopping")
    try:
        # Only over Python's default handler does the guest watch for SIGINT.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with interrupt.catching((signal.SIGINT,)) as scope:
            result = run_item(_pool["module"], _pool["digest"], plan, item, (signal.SIGINT,))
        if scope is not None and scope.received:
            _stopping = True
    except KeyboardInterrupt:  # in the moment between the handlers
        _stopping = True
        result = ItemResult(item.index, item.path, STOPPED, 130, "stopped")
    finally:
        signal.signal(signal.SIGINT, _stop_between_items)
    return result


def run_on_dask(module: bytes, digest: str, plan: Plan, item: Item) -> ItemResult:
    """One item in a Dask worker's thread (``module`` arrives once per worker)."""
    return run_item(module, digest, plan, item)
