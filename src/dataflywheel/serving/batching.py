"""Micro-batching: items submitted one at a time from asyncio handlers, run in batches on one worker thread.

:class:`BatchQueue` collects the items that arrive within a few milliseconds of each other (up to
``max_batch``) and hands them to its batch function together, so concurrent clients share one call (for the
server: one forward pass of ``engine.chat``); results are delivered to the asyncio futures the handlers await.
Nothing here knows about chat: the queue is generic in what goes in and what comes out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from dataflywheel.errors import FlywheelError
from dataflywheel.serving.errors import ServiceUnavailableError, ServingError

__all__ = ["DEFAULT_BATCH_WAIT_S", "DEFAULT_MAX_BATCH", "BatchQueue", "BatchStats", "engine_max_batch"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 16
DEFAULT_BATCH_WAIT_S = 0.005

In = TypeVar("In")
Out = TypeVar("Out")


def engine_max_batch(engine: object) -> int:
    """The engine's batch size when it tells one (``max_batch_size``), else :data:`DEFAULT_MAX_BATCH`."""
    for attr in ("max_batch_size", "max_batch"):
        value = getattr(engine, attr, None)
        if isinstance(value, int) and value >= 1:
            return value
    return DEFAULT_MAX_BATCH


@dataclass
class BatchStats:
    """What the queue has sent to the batch function so far."""

    sizes: Counter[int] = field(default_factory=Counter)
    """Batch size -> how many batches had that size (the counts below are read from it)."""
    busy_s: float = 0.0
    """Seconds spent inside the batch function."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def batches(self) -> int:
        return self.sizes.total()

    @property
    def requests(self) -> int:
        return sum(size * n for size, n in self.sizes.items())

    @property
    def largest_batch(self) -> int:
        return max(self.sizes, default=0)

    def record(self, size: int, seconds: float) -> None:
        with self._lock:
            self.sizes[size] += 1
            self.busy_s += seconds

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "batches": self.batches,
                "requests": self.requests,
                "largest_batch": self.largest_batch,
                "sizes": {str(k): v for k, v in sorted(self.sizes.items())},
                "busy_s": round(self.busy_s, 3),
            }


@dataclass
class _Job(Generic[In, Out]):
    item: In
    future: asyncio.Future[Out]
    loop: asyncio.AbstractEventLoop


def _resolve(job: _Job[In, Out], result: Out | None, error: BaseException | None) -> None:
    """Runs on the job's event loop: deliver the outcome unless the waiter has gone (client hung up)."""
    if job.future.done():
        return
    if result is not None:
        job.future.set_result(result)
    else:
        job.future.set_exception(error or RuntimeError("no result"))


class BatchQueue(Generic[In, Out]):
    """Items in, batches of them out to ``run_batch`` on one worker thread.

    ``run_batch`` answers a list of items with one result per item, in order. The worker blocks for a first
    item, then keeps collecting for ``max_wait_s`` (or until ``max_batch`` items are in hand); while a batch
    runs, new items pile up and form the next batch. If a batch of several fails, each of its items is
    retried alone, so one bad item cannot fail its neighbours.
    """

    def __init__(
        self,
        run_batch: Callable[[Sequence[In]], Sequence[Out]],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_wait_s: float = DEFAULT_BATCH_WAIT_S,
        after_batch: Callable[[], None] | None = None,
    ):
        self.run_batch = run_batch
        self.after_batch = after_batch
        """Called on the worker thread after each batch (while ``run_batch`` is idle)."""
        self.max_batch = max_batch
        if self.max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.max_wait_s = max_wait_s
        self.stats = BatchStats()
        self._queue: queue.SimpleQueue[_Job[In, Out] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> None:
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        if self._closed:
            raise ServiceUnavailableError("the server is shutting down")
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="flywheel-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in progress, fail what is still queued, end the worker."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        self._queue.put(None)
        if thread is not None:
            thread.join(timeout)
        self._fail_pending(ServiceUnavailableError("the server is shutting down"))

    async def submit(self, item: In) -> Out:
        """Queue one item and wait for its result (or the batch function's exception)."""
        loop = asyncio.get_running_loop()
        job: _Job[In, Out] = _Job(item, loop.create_future(), loop)
        with self._lock:  # so that stop() cannot slip between the check and the put
            self._start_locked()
            self._queue.put(job)
        return await job.future

    # worker thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._collect(first)
            live = [j for j in batch if not j.future.done()]  # skip requests whose client is gone
            if live:
                self._execute(live)
            if self.after_batch is not None:
                try:
                    self.after_batch()
                except Exception:
                    logger.exception("after_batch failed")
            if stop:
                return

    def _collect(self, first: _Job[In, Out]) -> tuple[list[_Job[In, Out]], bool]:
        batch = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return batch, True
            batch.append(job)
        return batch, False

    def _execute(self, jobs: list[_Job[In, Out]]) -> None:
        started = time.perf_counter()
        try:
            results = self.run_batch([j.item for j in jobs])
            if len(results) != len(jobs):
                raise RuntimeError(f"the engine returned {len(results)} results for {len(jobs)} requests")
        except Exception as exc:
            self.stats.record(len(jobs), time.perf_counter() - started)
            if len(jobs) > 1:
                logger.warning("a batch of %d failed (%s); retrying its requests one by one", len(jobs), exc)
                for job in jobs:
                    self._execute([job])
                return
            if not isinstance(exc, FlywheelError):
                logger.exception("the engine failed on a request")
            self._deliver(jobs[0], None, exc)
            return
        self.stats.record(len(jobs), time.perf_counter() - started)
        for job, result in zip(jobs, results, strict=True):
            self._deliver(job, result, None)

    @staticmethod
    def _deliver(job: _Job[In, Out], result: Out | None, error: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            job.loop.call_soon_threadsafe(_resolve, job, result, error)

    def _fail_pending(self, error: ServingError) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                self._deliver(job, None, error)
