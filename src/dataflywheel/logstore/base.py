"""The log store interface. Three backends implement it: SQLite, PostgreSQL and Elasticsearch.

Contract every backend keeps (checked by one shared test suite, ``tests/logstore/test_store_contract.py``):

* ``add`` is idempotent: a record whose :func:`~dataflywheel.records.model.record_id` is already stored is
  counted as a duplicate and not written again. Writes happen in batches; a failed batch raises
  :class:`~dataflywheel.errors.StoreError` and earlier batches stay committed (re-running is safe).
* A record the backend cannot hold (one orjson cannot write; for PostgreSQL one with a NUL character; for
  Elasticsearch one its index mapping refuses) is *rejected*: listed in ``AddResult.rejected`` with its
  position and the reason, while the other records of its batch are stored. One bad record never costs
  its neighbours.
* ``iter_raw``/``iter_records`` stream one workload/client newest first (``timestamp`` descending, then id
  ascending, so the order is total and reproducible), optionally within ``[since, until)``, with a limit,
  fetching pages of ``batch_size``, never the whole result at once.
* ``fetch`` returns stored records by id (any that no longer exist are missing from the result).
* ``counts`` lists (workload_id, client_id) pairs with their record counts and time range.
* ``delete`` removes one workload (optionally of one client) and says how many records went.

PII redaction happens here, in :meth:`LogStore.add`, the one door every write goes through whatever the
backend and whatever the path (``flywheel logs load``, ``POST /api/logs``, the demo, curated write-backs):
:func:`~dataflywheel.logstore.factory.open_log_store` gives the store the redactor ``privacy.redact`` asks for,
and each record is redacted before its id is taken and before the backend sees it.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

import orjson

from dataflywheel.closing import Closing
from dataflywheel.errors import StoreError
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.records.model import LogRecord, encoding_problem, record_id

if TYPE_CHECKING:
    from dataflywheel.privacy.redact import Redactor


@dataclass(frozen=True, slots=True)
class LogQuery:
    """Which records to read: one workload of one client, optionally in a time window, newest first."""

    workload_id: str
    client_id: str
    since: float | None = None
    """Inclusive lower bound on ``timestamp`` (epoch seconds)."""
    until: float | None = None
    """Exclusive upper bound on ``timestamp`` (epoch seconds)."""
    limit: int | None = None

    def describe(self) -> JsonObject:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class WorkloadCount:
    workload_id: str
    client_id: str
    records: int
    first_timestamp: float
    last_timestamp: float


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """A record ``add`` did not store, and why."""

    index: int
    """Its 0-based position among the records given to ``add``."""
    record_id: str
    """Its id, or ``""`` when it has none (a record that cannot even be encoded)."""
    reason: str


@dataclass(frozen=True, slots=True)
class AddResult:
    added: int
    duplicates: int
    rejected: tuple[RejectedRecord, ...] = ()

    def __add__(self, other: AddResult) -> AddResult:
        return AddResult(self.added + other.added, self.duplicates + other.duplicates, self.rejected + other.rejected)

    def shifted(self, offset: int) -> AddResult:
        """The same result with the rejected records' positions moved by ``offset`` (a batch inside a stream)."""
        if not self.rejected or not offset:
            return self
        moved = tuple(RejectedRecord(r.index + offset, r.record_id, r.reason) for r in self.rejected)
        return AddResult(self.added, self.duplicates, moved)


@dataclass(slots=True)
class AddTotals:
    """What the store did with the records of several ``add`` calls: the running sum of their
    :class:`AddResult`, counting the rejected records rather than keeping them (a load, the proxy's log writer)."""

    added: int = 0
    duplicates: int = 0
    rejected: int = 0

    def add(self, result: AddResult) -> None:
        """Count one ``add`` call's result."""
        self.added += result.added
        self.duplicates += result.duplicates
        self.rejected += len(result.rejected)

    @property
    def accepted(self) -> int:
        """Records the store took: the new ones and those it already had (all but the rejected)."""
        return self.added + self.duplicates


def encode_record(record: LogRecord) -> tuple[str, bytes]:
    """(id, JSON bytes) of a record as every backend stores it. Raises ``orjson.JSONEncodeError`` for one
    that cannot be written (see :func:`encode_batch`)."""
    data = record.to_dict()
    return record_id(data), orjson.dumps(data)


@dataclass(frozen=True, slots=True)
class Encoded:
    """A record of a batch, ready to write."""

    index: int
    """Its position in the batch."""
    record: LogRecord
    id: str
    body: bytes


def encode_batch(batch: Sequence[LogRecord]) -> tuple[list[Encoded], list[RejectedRecord]]:
    """Encode every record of a batch; one that cannot be written is rejected (with where and why) instead of
    failing the batch. Records from :func:`~dataflywheel.records.model.parse_record` always encode."""
    encoded: list[Encoded] = []
    rejected: list[RejectedRecord] = []
    for index, record in enumerate(batch):
        try:
            rid, body = encode_record(record)
        except orjson.JSONEncodeError as exc:
            problem = encoding_problem(record.to_dict())
            where, why = problem if problem is not None else ("", str(exc))
            rejected.append(RejectedRecord(index, "", f"{where or 'record'}: cannot be stored: {why}"))
            continue
        encoded.append(Encoded(index, record, rid, body))
    return encoded, rejected


class LogStore(Closing):
    """Where production logs live. Use as a context manager or call :meth:`close`."""

    name: str = "abstract"
    batch_size: int = 1000
    redactor: Redactor | None = None
    """Redacts every record :meth:`add` stores (set by ``open_log_store`` from ``privacy.redact``)."""

    @staticmethod
    def checked_batch_size(batch_size: int) -> int:
        """``batch_size`` as given to a store that reads and writes in pages: :class:`StoreError` unless at
        least 1."""
        if batch_size < 1:
            raise StoreError(f"batch_size must be at least 1, got {batch_size}")
        return batch_size

    def add(self, records: Iterable[LogRecord]) -> AddResult:
        """Store records (idempotently) in batches of ``batch_size``; return how many were new, how many were
        already stored and which were rejected (positions among ``records``). A failed batch raises
        StoreError; the batches before it stay stored."""
        total = AddResult(0, 0)
        offset = 0
        redactor = self.redactor
        it = iter(records) if redactor is None else map(redactor.redact_record, records)
        try:
            while batch := list(islice(it, self.batch_size)):
                total += self._add_batch(batch).shifted(offset)
                offset += len(batch)
        finally:
            if total.added:
                self._after_add()
        return total

    @abstractmethod
    def _add_batch(self, batch: list[LogRecord]) -> AddResult:
        """Store one batch in one transaction (or one bulk request); rejected positions are the batch's."""

    def _after_add(self) -> None:
        """Make the added records visible to readers (Elasticsearch refreshes; only some backends need it)."""

    @abstractmethod
    def iter_raw(self, query: LogQuery) -> Iterator[tuple[str, bytes]]:
        """Stream ``(id, JSON bytes)`` for the query, newest first."""

    @abstractmethod
    def fetch_raw(self, ids: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        """``(id, JSON bytes)`` of the stored records among ``ids``, in any order."""

    @abstractmethod
    def counts(self, workload_id: str | None = None, client_id: str | None = None) -> list[WorkloadCount]:
        """Record counts per (workload_id, client_id), sorted by workload then client."""

    @abstractmethod
    def delete(self, workload_id: str, client_id: str | None = None) -> int:
        """Delete a workload's records (of one client, or of all); return how many were deleted."""

    def close(self) -> None:
        """Release connections (backends without resources need nothing)."""

    # Derived operations ------------------------------------------------------------------------------
    def iter_records(self, query: LogQuery) -> Iterator[tuple[str, dict[str, Any]]]:
        """Stream ``(id, record dict)`` for the query, newest first."""
        for rid, raw in self.iter_raw(query):
            yield rid, orjson.loads(raw)

    def fetch(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored records among ``ids`` as ``{id: record dict}``."""
        return {rid: orjson.loads(raw) for rid, raw in self.fetch_raw(ids)}

    def count(self, workload_id: str, client_id: str) -> int:
        rows = self.counts(workload_id, client_id)
        return rows[0].records if rows else 0
