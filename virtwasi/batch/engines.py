"""Where a batch's items run: a local process pool, or a Dask cluster.

Both take items a few at a time (twice the workers for the pool; for Dask, whose every
task makes a round trip through the scheduler, at least 64), so that a stop has little to
cancel and a million items are never all in flight, and hand each finished item's row to
``record`` as it comes. Both return whether Ctrl-C (KeyboardInterrupt) stopped them.

* The process pool (``concurrent.futures``, spawned processes, one per core by default)
  gives each worker the module once, when it starts. A worker that dies (killed, out of
  memory) breaks the pool and every item in flight with it: those items run again on a
  fresh pool, and an item in flight at three such deaths is reported as lost. On Ctrl-C
  the items not started are cancelled, the workers are told to stop (SIGINT: a running
  guest ends, nothing of its item is published, and an item already publishing finishes),
  and what finished meanwhile is recorded.
* Dask (``dask.distributed``) gets the module scattered to every worker once, then each
  item as a task naming it. The scheduler runs a lost worker's tasks elsewhere, up to its
  own limit (``distributed.scheduler.allowed-failures``), past which the item is reported
  as lost. On Ctrl-C the unfinished tasks are cancelled; a task already running may still
  finish on its worker (Dask does not stop running code), publishing its outputs whole,
  without a row: ``--resume`` runs it again.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from itertools import islice
from typing import Any

from .plan import Item, Plan
from .results import ItemResult
from .worker import WORKER, run_in_pool, run_on_dask, start_pool_worker

Record = Callable[[ItemResult], None]
LOSSES_ALLOWED = 3  # deaths of a worker an item may be in flight at, as Dask allows
DASK_WINDOW = 64  # tasks in flight at least: each waits for a round trip to the scheduler


def _lost(item: Item, why: str) -> ItemResult:
    return ItemResult(item.index, item.path, "error", 2, f"worker lost: {why}",
                      worker=WORKER)


@contextlib.contextmanager
def _ignoring_stops() -> Iterator[None]:
    """While a stop is carried out, another Ctrl-C or SIGTERM waits for it to finish."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


# -- the process pool -------------------------------------------------------------------


class ProcessPool:
    """``workers`` local processes (default: one per core)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._context = multiprocessing.get_context("spawn")
        self._pids: set[int] = set()

    def run(self, module: bytes, digest: str, plan: Plan, items: Iterable[Item],
            record: Record) -> bool:
        todo = deque(items)
        losses: Counter[int] = Counter()
        while todo:
            pids = self._context.SimpleQueue()
            with ProcessPoolExecutor(self.workers, mp_context=self._context,
                                     initializer=start_pool_worker,
                                     initargs=(module, digest, pids)) as pool:
                stopped = self._drain(pool, pids, plan, todo, losses, record)
            if stopped:
                return True
        return False

    def _drain(self, pool: ProcessPoolExecutor, pids: Any, plan: Plan, todo: deque[Item],
               losses: Counter[int], record: Record) -> bool:
        """Run ``todo`` on ``pool`` until it is done (False), stopped (True) or broken
        (False, with the items to run again back in ``todo``)."""
        running: dict[Future[ItemResult], Item] = {}
        try:
            while todo or running:
                while todo and len(running) < 2 * self.workers:
                    item = todo.popleft()
                    running[pool.submit(run_in_pool, plan, item)] = item
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                broken = self._settle(done, running, todo, losses, record)
                if broken:  # every other item in flight fails with the pool
                    self._settle(wait(running).done, running, todo, losses, record)
                    return False
            return False
        except KeyboardInterrupt:
            with _ignoring_stops():
                self._stop(pool, pids, running, record)
            return True

    @staticmethod
    def _settle(done: Iterable[Future[ItemResult]], running: dict[Future[ItemResult], Item],
                todo: deque[Item], losses: Counter[int], record: Record) -> bool:
        """Record what finished; put back what a broken pool lost. Whether it broke."""
        broken = False
        for future in done:
            item = running.pop(future)
            try:
                result = future.result()
            except BrokenProcessPool:
                broken = True
            else:
                if result.finished:
                    record(result)
                    continue
                # A SIGINT that reached its worker alone (not the batch) stopped it.
            losses[item.index] += 1
            if losses[item.index] >= LOSSES_ALLOWED:
                record(_lost(item, f"its worker process died or stopped {LOSSES_ALLOWED} "
                             "times"))
            else:
                todo.appendleft(item)
        return broken

    def _stop(self, pool: ProcessPoolExecutor, pids: Any,
              running: dict[Future[ItemResult], Item], record: Record) -> None:
        for future in running:
            future.cancel()
        while not pids.empty():
            self._pids.add(pids.get())
        ours = {child.pid for child in multiprocessing.active_children()}
        for pid in self._pids & ours:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
        for future in running:
            if future.cancelled():
                continue
            try:
                result = future.result()
            except BrokenProcessPool:
                continue
            if result.finished:
                record(result)
        pool.shutdown(wait=True, cancel_futures=True)


# -- Dask -------------------------------------------------------------------------------


class Dask:
    """The workers of ``client``, a ``dask.distributed.Client``."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def run(self, module: bytes, digest: str, plan: Plan, items: Iterable[Item],
            record: Record) -> bool:
        from distributed import as_completed

        client = self.client
        # A key of its own: one named by the content could be released by an earlier batch.
        shipped = client.scatter(module, broadcast=True, hash=False)
        window = max(2 * sum(client.nthreads().values()), DASK_WINDOW)
        batch = uuid.uuid4().hex[:12]
        todo = iter(items)
        running: dict[Any, Item] = {}

        def submit(item: Item) -> Any:
            future = client.submit(run_on_dask, shipped, digest, plan, item, pure=False,
                                   key=f"virtwasi-map-{batch}-{item.index}")
            running[future] = item
            return future

        # Its own client's loop: as_completed would take the default client's, the last made.
        stream = as_completed([submit(item) for item in islice(todo, window)],
                              loop=client.loop)
        try:
            for future in stream:
                item = running.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # KilledWorker, or the task itself could not run
                    result = _lost(item, f"{type(exc).__name__}: {exc}")
                record(result)
                following = next(todo, None)
                if following is not None:
                    stream.add(submit(following))
            return False
        except KeyboardInterrupt:
            with _ignoring_stops():
                client.cancel(list(running))
            return True
