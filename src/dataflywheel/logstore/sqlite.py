"""SQLite log store: the embedded default, one file under ``home``.

One table; the record is kept as its JSON text, with the columns a query filters on beside it. WAL mode
lets a build read while an ingestion writes. Each batch is one transaction, so an interrupted load leaves
whole batches and a re-run (idempotent by record id) completes it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from dataflywheel.errors import StoreError
from dataflywheel.logstore.base import AddResult, LogQuery, LogStore, WorkloadCount, encode_batch
from dataflywheel.records.model import LogRecord
from dataflywheel.sqlite_wal import set_wal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log_records (
    id TEXT PRIMARY KEY,
    workload_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    timestamp REAL NOT NULL,
    ingested_at REAL NOT NULL,
    record BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS log_records_by_workload
    ON log_records (workload_id, client_id, timestamp DESC, id);
"""

_FETCH_CHUNK = 500
_OPEN_TIMEOUT_S = 10.0
"""How long opening waits for another connection that holds the file (the busy handler's timeout, and the
retries of ``PRAGMA journal_mode=WAL``, which SQLite answers "database is locked" without waiting while
another connection creates the file or changes its mode)."""


def _connect(path: Path) -> sqlite3.Connection:
    """A WAL-mode autocommit connection to ``path`` with the schema in place; two processes opening a new
    file at once both succeed (found by the proxy's tests: the log writer's thread and a reader)."""
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=_OPEN_TIMEOUT_S)
    try:
        set_wal(conn, _OPEN_TIMEOUT_S)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


class SQLiteLogStore(LogStore):
    name = "sqlite"

    def __init__(self, path: str | Path, batch_size: int = 1000) -> None:
        self.path = Path(path)
        self.batch_size = batch_size
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = _connect(self.path)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open SQLite log store {self.path}: {exc}") from exc
        self._lock = threading.Lock()

    def _add_batch(self, batch: list[LogRecord]) -> AddResult:
        now = time.time()
        encoded, rejected = encode_batch(batch)
        rows = [
            (e.id, e.record.workload_id, e.record.client_id, float(e.record.timestamp), now, e.body) for e in encoded
        ]
        if not rows:
            return AddResult(0, 0, tuple(rejected))
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                before = self._conn.total_changes
                self._conn.executemany(
                    "INSERT OR IGNORE INTO log_records "
                    "(id, workload_id, client_id, timestamp, ingested_at, record) VALUES (?,?,?,?,?,?)",
                    rows,
                )
                added = self._conn.total_changes - before
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StoreError(f"SQLite write failed: {exc}") from exc
        return AddResult(added, len(rows) - added, tuple(rejected))

    def iter_raw(self, query: LogQuery) -> Iterator[tuple[str, bytes]]:
        sql, params = _select(query)
        try:
            cur = self._conn.execute(sql, params)
            while page := cur.fetchmany(self.batch_size):
                yield from page
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite query failed: {exc}") from exc

    def fetch_raw(self, ids: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        for start in range(0, len(ids), _FETCH_CHUNK):
            chunk = list(ids[start : start + _FETCH_CHUNK])
            marks = ",".join("?" * len(chunk))
            try:
                rows = self._conn.execute(f"SELECT id, record FROM log_records WHERE id IN ({marks})", chunk).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite fetch failed: {exc}") from exc
            yield from rows

    def counts(self, workload_id: str | None = None, client_id: str | None = None) -> list[WorkloadCount]:
        where, params = _filters(workload_id, client_id)
        rows = self._conn.execute(
            "SELECT workload_id, client_id, COUNT(*), MIN(timestamp), MAX(timestamp) FROM log_records"
            f"{where} GROUP BY workload_id, client_id ORDER BY workload_id, client_id",
            params,
        ).fetchall()
        return [WorkloadCount(w, c, n, lo, hi) for w, c, n, lo, hi in rows]

    def delete(self, workload_id: str, client_id: str | None = None) -> int:
        where, params = _filters(workload_id, client_id)
        with self._lock:
            try:
                cur = self._conn.execute(f"DELETE FROM log_records{where}", params)
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite delete failed: {exc}") from exc
        return cur.rowcount

    def close(self) -> None:
        self._conn.close()


def _filters(workload_id: str | None, client_id: str | None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if workload_id is not None:
        clauses.append("workload_id = ?")
        params.append(workload_id)
    if client_id is not None:
        clauses.append("client_id = ?")
        params.append(client_id)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _select(query: LogQuery) -> tuple[str, list[Any]]:
    sql = "SELECT id, record FROM log_records WHERE workload_id = ? AND client_id = ?"
    params: list[Any] = [query.workload_id, query.client_id]
    if query.since is not None:
        sql += " AND timestamp >= ?"
        params.append(query.since)
    if query.until is not None:
        sql += " AND timestamp < ?"
        params.append(query.until)
    sql += " ORDER BY timestamp DESC, id ASC"
    if query.limit is not None:
        sql += " LIMIT ?"
        params.append(query.limit)
    return sql, params
