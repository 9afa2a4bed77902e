"""Writes proxied calls into the log store out of band: a bounded queue that callers only ever ``put`` into
without waiting, and one background thread that turns calls into records and writes them in batches.

A full queue drops the call (counted, and logged at most once per second); a batch the store refuses or a
store that is down costs that batch (counted and logged), never a caller: nothing here raises into the
request path. The thread opens the store itself (a store is used from the thread that opened it) and opens
it again after a failure.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import orjson

from dataflywheel.errors import FlywheelError
from dataflywheel.logstore.base import AddTotals, LogStore
from dataflywheel.proxy.calls import NotLoggable, ProxiedCall, record_of
from dataflywheel.records.jsonvalue import JsonObject, attributes
from dataflywheel.records.model import LogRecord, parse_record

logger = logging.getLogger(__name__)

_STOP: Final = object()
_DROP_LOG_EVERY_S: Final = 1.0


@dataclass
class LogStats:
    """Counters of the log writer (``/proxy/stats``)."""

    queued: int = 0
    """Calls put in the queue."""
    dropped_queue_full: int = 0
    """Calls not logged because the queue was full."""
    store: AddTotals = field(default_factory=AddTotals)
    """What the store did with the records of the batches written: stored (``written``: new; ``duplicates``)
    or refused (``rejected``: one it cannot hold)."""
    invalid: int = 0
    """Calls that make no valid record (a request that is not a chat completion, no answer)."""
    failed: int = 0
    """Records lost with a batch the store failed to write (down, unreachable)."""
    batches: int = 0
    """Batches written."""
    store_errors: int = 0
    queue_depth: int = 0

    def to_dict(self) -> JsonObject:
        """The ``log`` part of ``/proxy/stats``."""
        return {
            **attributes(self, "queued", "dropped_queue_full"),
            "written": self.store.added,
            "duplicates": self.store.duplicates,
            "rejected": self.store.rejected,
            **attributes(self, "invalid", "failed", "batches", "store_errors", "queue_depth"),
        }


class LogWriter:
    """``writer.submit(call)`` from any thread or event loop, never blocking; ``close()`` writes what is queued
    (within ``drain_timeout_s``) and stops the thread."""

    def __init__(
        self,
        open_store: Callable[[], LogStore],
        *,
        queue_size: int = 10_000,
        batch_size: int = 200,
        flush_interval_s: float = 0.2,
    ) -> None:
        self._open_store = open_store
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._stats = LogStats()
        self._lock = threading.Lock()
        self._last_drop_log = 0.0
        self._store: LogStore | None = None
        self._thread = threading.Thread(target=self._run, name="proxy-log-writer", daemon=True)
        self._started = False

    def start(self) -> LogWriter:
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def submit(self, call: ProxiedCall) -> bool:
        """Queue a call to be logged; False (and counted) when the queue is full. Never blocks, never raises."""
        try:
            self._queue.put_nowait(call)
        except queue.Full:
            with self._lock:
                self._stats.dropped_queue_full += 1
                dropped = self._stats.dropped_queue_full
                now = time.monotonic()
                speak = now - self._last_drop_log >= _DROP_LOG_EVERY_S
                if speak:
                    self._last_drop_log = now
            if speak:
                logger.warning(
                    "proxy log queue full (%d calls): call not logged (%d dropped so far)", self._queue.maxsize, dropped
                )
            return False
        with self._lock:
            self._stats.queued += 1
        return True

    def stats(self) -> LogStats:
        with self._lock:
            out = copy.deepcopy(self._stats)
        out.queue_depth = self._queue.qsize()
        return out

    # the thread ------------------------------------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[ProxiedCall] = []
            first = self._queue.get()
            if first is _STOP:
                break
            batch.append(first)  # type: ignore[arg-type]
            deadline = time.monotonic() + self.flush_interval_s
            while len(batch) < self.batch_size:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=max(remaining, 0.0)) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)  # type: ignore[arg-type]
            self._write(batch)
        if self._store is not None:
            try:
                self._store.close()
            except Exception:
                logger.warning("proxy log writer: closing the log store failed", exc_info=True)

    def _records(self, batch: list[ProxiedCall]) -> list[LogRecord]:
        records = []
        for call in batch:
            try:
                records.append(parse_record(record_of(call)))
            except (FlywheelError, NotLoggable, orjson.JSONDecodeError) as exc:
                with self._lock:
                    self._stats.invalid += 1
                logger.debug("proxied call of %s not logged: %s", call.attribution, exc)
            time.sleep(0)  # hand the GIL to the event loop between records: callers come first
        return records

    def _write(self, batch: list[ProxiedCall]) -> None:
        records = self._records(batch)
        if not records:
            return
        try:
            if self._store is None:
                self._store = self._open_store()
            result = self._store.add(records)
        except Exception as exc:
            with self._lock:
                self._stats.failed += len(records)
                self._stats.store_errors += 1
            logger.warning("proxy log writer: %d record(s) not logged: %s", len(records), exc)
            store, self._store = self._store, None
            if store is not None:
                with contextlib.suppress(Exception):
                    store.close()
            return
        with self._lock:
            self._stats.store.add(result)
            self._stats.batches += 1
        for rejected in result.rejected[:3]:
            logger.warning("proxy log writer: a record was refused by the store: %s", rejected.reason)

    def close(self, drain_timeout_s: float = 10.0) -> None:
        """Write what is queued (for up to ``drain_timeout_s``) and stop."""
        if not self._started:
            return
        try:
            self._queue.put(_STOP, timeout=drain_timeout_s)
        except queue.Full:
            logger.warning("proxy log writer: queue still full at shutdown; %d call(s) not logged", self._queue.qsize())
            return
        self._thread.join(timeout=drain_timeout_s)
