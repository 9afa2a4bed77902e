"""PostgreSQL log store (psycopg 3).

One table (``flywheel_logs`` unless configured): the record as JSONB beside the columns a query filters on,
with one index matching the read order. Each batch of ``add`` is one transaction; ``INSERT ... ON CONFLICT
(id) DO NOTHING`` makes a re-run idempotent. Reads stream through a server-side (named) cursor on a
connection of their own, so a long stream neither holds the shared connection nor loads the whole result.

JSONB does not keep the key order of the JSON text it was given (nor its whitespace); records come back
equal as dicts, which is what the contract promises.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from dataflywheel.errors import StoreError
from dataflywheel.logstore.base import (
    AddResult,
    Encoded,
    LogQuery,
    LogStore,
    RejectedRecord,
    WorkloadCount,
    encode_batch,
)
from dataflywheel.records.model import LogRecord

DEFAULT_TABLE = "flywheel_logs"
_FETCH_CHUNK = 1000
_CONNECT_TIMEOUT_S = 10
# A JSON \u0000 escape: preceded by an even number of backslashes (an odd one would escape the backslash).
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (URL form and ``key=value`` conninfo form)."""
    if "://" in url:
        try:
            parts = urlsplit(url)
        except ValueError:
            return re.sub(r"//([^:/@]*):[^@]*@", r"//\1:***@", url)
        if parts.password is not None:
            host = parts.netloc.rpartition("@")[2]
            user = parts.username or ""
            return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
        return re.sub(r"(?i)(password=)[^&]*", r"\1***", url)
    return re.sub(r"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", url)


class PostgresLogStore(LogStore):
    name = "postgres"

    def __init__(self, url: str, table: str = DEFAULT_TABLE, batch_size: int = 1000) -> None:
        if not _TABLE_NAME.match(table):
            raise StoreError(
                f"invalid PostgreSQL table name {table!r}: use letters, digits and underscores "
                "(at most 63, not starting with a digit)"
            )
        self.url = url
        self.table = table
        self.batch_size = self.checked_batch_size(batch_size)
        self._where = redact_url(url)
        self._ident = sql.Identifier(table)
        self._lock = threading.Lock()
        self._conn = self._connect()
        try:
            self._create_schema()
        except psycopg.Error as exc:
            self._conn.close()
            raise StoreError(f"cannot create PostgreSQL log table {table!r} at {self._where}: {exc}") from exc

    # Connections -----------------------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {self._where}: {_plain(exc)}") from exc

    def _shared(self) -> psycopg.Connection[Any]:
        """The shared connection (call with the lock held), opened again if the server dropped it."""
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        return self._conn

    def _create_schema(self) -> None:
        index = sql.Identifier(f"{self.table[:50]}_by_workload")
        with self._lock, self._conn.transaction():
            # Serialize concurrent creators: CREATE TABLE IF NOT EXISTS alone can still race on pg_type.
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"flywheel:{self.table}",))
            self._conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} ("
                    " id TEXT PRIMARY KEY,"
                    " workload_id TEXT NOT NULL,"
                    " client_id TEXT NOT NULL,"
                    ' "timestamp" DOUBLE PRECISION NOT NULL,'
                    " ingested_at DOUBLE PRECISION NOT NULL,"
                    " record JSONB NOT NULL)"
                ).format(self._ident)
            )
            self._conn.execute(
                sql.SQL('CREATE INDEX IF NOT EXISTS {} ON {} (workload_id, client_id, "timestamp" DESC, id)').format(
                    index, self._ident
                )
            )

    # Writes ----------------------------------------------------------------------------------------
    def _add_batch(self, batch: list[LogRecord]) -> AddResult:
        now = time.time()
        ids: list[str] = []
        workloads: list[str] = []
        clients: list[str] = []
        stamps: list[float] = []
        bodies: list[str] = []
        seen: set[str] = set()
        encoded, rejected = encode_batch(batch)
        for e in encoded:
            if e.id in seen:  # a duplicate inside the batch: counted, not sent
                continue
            nul = _nul_in(e)
            if nul is not None:
                # JSONB and TEXT cannot hold U+0000: this record is refused, the rest of the batch is written.
                rejected.append(
                    RejectedRecord(
                        e.index, e.id, f"{nul}: contains a NUL character (\\u0000), which PostgreSQL cannot store"
                    )
                )
                continue
            seen.add(e.id)
            ids.append(e.id)
            workloads.append(e.record.workload_id)
            clients.append(e.record.client_id)
            stamps.append(float(e.record.timestamp))
            bodies.append(e.body.decode())
        if not ids:
            return AddResult(0, len(batch) - len(rejected), tuple(sorted(rejected, key=lambda r: r.index)))
        query = sql.SQL(
            'INSERT INTO {} (id, workload_id, client_id, "timestamp", ingested_at, record) '
            "SELECT i, w, c, t, %s, r::jsonb "
            "FROM unnest(%s::text[], %s::text[], %s::text[], %s::float8[], %s::text[]) AS u(i, w, c, t, r) "
            "ON CONFLICT (id) DO NOTHING"
        ).format(self._ident)
        with self._lock:
            try:
                conn = self._shared()
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(query, (now, ids, workloads, clients, stamps, bodies))
                    added = max(cur.rowcount, 0)
            except psycopg.Error as exc:
                raise StoreError(
                    f"PostgreSQL write to {self.table!r} failed (batch of {len(batch)} records starting "
                    f"with {ids[0]}): {_plain(exc)}"
                ) from exc
        return AddResult(added, len(batch) - len(rejected) - added, tuple(sorted(rejected, key=lambda r: r.index)))

    def delete(self, workload_id: str, client_id: str | None = None) -> int:
        where, params = _filters(workload_id, client_id)
        with self._lock:
            try:
                conn = self._shared()
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(sql.SQL("DELETE FROM {}").format(self._ident) + where, params)
                    return max(cur.rowcount, 0)
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL delete from {self.table!r} failed: {_plain(exc)}") from exc

    # Reads -----------------------------------------------------------------------------------------
    def iter_raw(self, query: LogQuery) -> Iterator[tuple[str, bytes]]:
        if query.limit is not None and query.limit <= 0:
            return
        stmt, params = self._select(query)
        # A connection of its own: the named cursor needs an open transaction for as long as the caller
        # takes to consume the stream, and the shared connection stays free for other calls meanwhile.
        conn = self._connect()
        try:
            with conn.transaction(), conn.cursor(name=f"flywheel_{uuid.uuid4().hex[:16]}") as cur:
                cur.itersize = self.batch_size
                cur.execute(stmt, params)
                while page := cur.fetchmany(self.batch_size):
                    for rid, text in page:
                        yield rid, text.encode()
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL query on {self.table!r} failed: {_plain(exc)}") from exc
        finally:
            conn.close()

    def _select(self, query: LogQuery) -> tuple[sql.Composed, list[Any]]:
        parts: list[sql.Composable] = [
            sql.SQL("SELECT id, record::text FROM {} WHERE workload_id = %s AND client_id = %s").format(self._ident)
        ]
        params: list[Any] = [query.workload_id, query.client_id]
        if query.since is not None:
            parts.append(sql.SQL(' AND "timestamp" >= %s'))
            params.append(float(query.since))
        if query.until is not None:
            parts.append(sql.SQL(' AND "timestamp" < %s'))
            params.append(float(query.until))
        parts.append(sql.SQL(' ORDER BY "timestamp" DESC, id ASC'))
        if query.limit is not None:
            parts.append(sql.SQL(" LIMIT %s"))
            params.append(query.limit)
        return sql.Composed(parts), params

    def fetch_raw(self, ids: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        stmt = sql.SQL("SELECT id, record::text FROM {} WHERE id = ANY(%s)").format(self._ident)
        for start in range(0, len(ids), _FETCH_CHUNK):
            chunk = list(ids[start : start + _FETCH_CHUNK])
            with self._lock:
                try:
                    rows = self._shared().execute(stmt, (chunk,)).fetchall()
                except psycopg.Error as exc:
                    raise StoreError(f"PostgreSQL fetch from {self.table!r} failed: {_plain(exc)}") from exc
            for rid, text in rows:
                yield rid, text.encode()

    def counts(self, workload_id: str | None = None, client_id: str | None = None) -> list[WorkloadCount]:
        where, params = _filters(workload_id, client_id)
        stmt = (
            sql.SQL('SELECT workload_id, client_id, COUNT(*), MIN("timestamp"), MAX("timestamp") FROM {}').format(
                self._ident
            )
            + where
            # Byte order (COLLATE "C"), as the SQLite and Elasticsearch backends sort, whatever the locale.
            + sql.SQL(' GROUP BY workload_id, client_id ORDER BY workload_id COLLATE "C", client_id COLLATE "C"')
        )
        with self._lock:
            try:
                rows = self._shared().execute(stmt, params).fetchall()
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL count on {self.table!r} failed: {_plain(exc)}") from exc
        return [WorkloadCount(w, c, int(n), float(lo), float(hi)) for w, c, n, lo, hi in rows]

    def close(self) -> None:
        self._conn.close()


def _filters(workload_id: str | None, client_id: str | None) -> tuple[sql.Composed, list[Any]]:
    clauses: list[sql.Composable] = []
    params: list[Any] = []
    if workload_id is not None:
        clauses.append(sql.SQL("workload_id = %s"))
        params.append(workload_id)
    if client_id is not None:
        clauses.append(sql.SQL("client_id = %s"))
        params.append(client_id)
    if not clauses:
        return sql.Composed([]), params
    return sql.Composed([sql.SQL(" WHERE "), sql.SQL(" AND ").join(clauses)]), params


def _nul_in(encoded: Encoded) -> str | None:
    """The field path of a NUL character (U+0000) in an encoded record, or None when it has none."""
    body = encoded.body
    if b"\\u0000" not in body or not _NUL_ESCAPE.search(body):
        return None
    stack: list[tuple[Any, str]] = [(encoded.record.to_dict(), "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return path or "record"
        elif isinstance(value, dict):
            if any("\x00" in key for key in value):
                return f"{path} (a key)" if path else "record (a key)"
            # Pushed last first, so the first one found is the first in the record.
            stack.extend((child, f"{path}.{key}" if path else key) for key, child in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((child, f"{path}[{i}]") for i, child in reversed(list(enumerate(value))))
    return "record"


def _plain(exc: psycopg.Error) -> str:
    """The driver's message on one line (libpq messages span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__
