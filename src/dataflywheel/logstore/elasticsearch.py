"""Elasticsearch log store (official client, 8.x).

The index follows the NVIDIA blueprint's log index (``workload_id``/``client_id`` keywords, ``timestamp`` a
date in epoch seconds, ``request``/``response`` stored but not indexed, ``ignore_malformed``, a 1000 total
fields limit), except that the top level is ``dynamic: false`` rather than ``strict``, so unknown top-level
fields of a record are kept in ``_source`` (not indexed). Each document's ``_id`` is the record id, so
``add`` is idempotent (bulk ``create``; a 409 conflict is a duplicate).

Two fields are added to each document and stripped again on the way out:

* ``flywheel_id`` (keyword): the record id, the tiebreak of the read order (sorting on ``_id`` is
  discouraged by Elasticsearch and not available everywhere).
* ``flywheel_ts`` (double): the record's ``timestamp`` as a number. Ordering, ``since``/``until`` windows
  and ``counts`` use it rather than the ``timestamp`` date, because a date keeps milliseconds only (records
  a few microseconds apart would tie, and their order would no longer be newest first) and because the
  noida-db emulator used in the tests floors epoch-second dates to whole seconds. A double works exactly
  on both.

Reads stream with the scroll API (pages of ``batch_size``), and the scroll is always cleared.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import orjson
from elasticsearch import ApiError, Elasticsearch, NotFoundError, TransportError

from dataflywheel.errors import StoreError
from dataflywheel.logstore.base import (
    AddResult,
    LogQuery,
    LogStore,
    RejectedRecord,
    WorkloadCount,
    encode_batch,
)
from dataflywheel.records.jsonvalue import JsonObject, JsonValue
from dataflywheel.records.model import LogRecord

DEFAULT_INDEX = "flywheel"
ID_FIELD = "flywheel_id"
TS_FIELD = "flywheel_ts"
RESERVED_FIELDS = (ID_FIELD, TS_FIELD)

_SCROLL_KEEP_ALIVE = "2m"
_FETCH_CHUNK = 500
_MAX_BUCKETS = 10_000
_MAX_PAGE = 10_000  # index.max_result_window's default: a larger page is refused
_REQUEST_TIMEOUT_S = 30

_FIELDS: dict[str, dict[str, str | bool]] = {
    "workload_id": {"type": "keyword"},
    "client_id": {"type": "keyword"},
    "timestamp": {"type": "date", "format": "epoch_second"},
    "request": {"type": "object", "dynamic": False},
    "response": {"type": "object", "dynamic": False},
    ID_FIELD: {"type": "keyword"},
    TS_FIELD: {"type": "double"},
}
MAPPINGS: JsonObject = {"dynamic": False, "properties": {name: {**spec} for name, spec in _FIELDS.items()}}
SETTINGS: JsonObject = {
    "index": {"mapping": {"ignore_malformed": True, "total_fields": {"limit": 1000}}},
}
_SORT: list[JsonObject] = [
    {TS_FIELD: {"order": "desc"}},
    {ID_FIELD: {"order": "asc", "unmapped_type": "keyword"}},
]


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


class ElasticsearchLogStore(LogStore):
    name = "elasticsearch"

    def __init__(
        self,
        url: str,
        index: str = DEFAULT_INDEX,
        api_key: str | None = None,
        batch_size: int = 1000,
    ) -> None:
        self.url = url
        self.index = index
        self.batch_size = self.checked_batch_size(batch_size)
        self._where = redact_url(url)
        try:
            self._es = Elasticsearch(
                url,
                api_key=api_key,
                request_timeout=_REQUEST_TIMEOUT_S,
                max_retries=2,
                retry_on_timeout=True,
            )
        except ValueError as exc:
            raise StoreError(f"invalid Elasticsearch URL {self._where}: {exc}") from exc
        try:
            self._ensure_index()
        except BaseException:
            self._es.close()
            raise

    # Setup -----------------------------------------------------------------------------------------
    def _ensure_index(self) -> None:
        """Create the index if missing; on an existing one, add the two fields this store sorts on."""
        try:
            if not self._es.indices.exists(index=self.index):
                try:
                    self._es.indices.create(index=self.index, mappings=MAPPINGS, settings=SETTINGS)
                    return
                except ApiError as exc:
                    if exc.error != "resource_already_exists_exception":  # created meanwhile: fine
                        raise
            # An index made elsewhere (e.g. by the blueprint, dynamic: strict) would refuse our fields.
            ours = {key: _FIELDS[key] for key in RESERVED_FIELDS}
            try:
                self._es.indices.put_mapping(index=self.index, properties=ours)
            except ApiError as exc:
                # A key allowed to read and write but not to manage the index: go on; if the fields
                # really are missing, the first write says so.
                if exc.meta.status != 403:
                    raise
        except (ApiError, TransportError) as exc:
            self._fail(f"cannot prepare index {self.index!r}", exc)

    def _fail(self, what: str, exc: Exception) -> NoReturn:
        raise StoreError(f"Elasticsearch at {self._where}: {what}: {_describe(exc)}") from exc

    # Writes ----------------------------------------------------------------------------------------
    def _add_batch(self, batch: list[LogRecord]) -> AddResult:
        operations: list[Mapping[str, object]] = []
        positions: list[int] = []
        encoded, rejected = encode_batch(batch)
        for e in encoded:
            data: dict[str, object] = dict(e.record.to_dict())
            clash = [k for k in RESERVED_FIELDS if k in data]
            if clash:
                rejected.append(
                    RejectedRecord(
                        e.index,
                        e.id,
                        f"top-level field(s) {', '.join(clash)}, which the Elasticsearch log store reserves for "
                        "itself; rename them before loading",
                    )
                )
                continue
            data[ID_FIELD] = e.id
            data[TS_FIELD] = float(e.record.timestamp)
            operations.append({"create": {"_index": self.index, "_id": e.id}})
            operations.append(data)
            positions.append(e.index)
        if not operations:
            return AddResult(0, 0, tuple(rejected))
        try:
            resp = self._es.bulk(operations=operations)
        except (ApiError, TransportError) as exc:
            self._fail(f"bulk write of {len(positions)} records (first {operations[1][ID_FIELD]}) failed", exc)
        added = duplicates = 0
        refused: list[str] = []
        for index, item in zip(positions, resp["items"], strict=True):
            result = next(iter(item.values()))
            status = int(result.get("status", 0))
            if 200 <= status < 300:
                added += 1
            elif status == 409:
                duplicates += 1
            else:
                error = result.get("error") or {}
                reason = error.get("reason", error) if isinstance(error, dict) else error
                kind = error.get("type", "error") if isinstance(error, dict) else "error"
                if status == 400:  # this document is at fault (its mapping): refuse it, keep the others
                    rejected.append(
                        RejectedRecord(
                            index, str(result.get("_id", "")), f"Elasticsearch refused it ({kind}): {reason}"
                        )
                    )
                else:
                    refused.append(f"record {result.get('_id')} (HTTP {status}, {kind}): {reason}")
        if refused:
            # The server could not take them (overloaded, shard down): the batch failed; re-running is safe.
            raise StoreError(f"Elasticsearch at {self._where} refused {len(refused)} record(s): {refused[0]}")
        return AddResult(added, duplicates, tuple(sorted(rejected, key=lambda r: r.index)))

    def _after_add(self) -> None:
        self._refresh()

    def _refresh(self) -> None:
        try:
            self._es.indices.refresh(index=self.index)
        except ApiError as exc:
            if exc.meta.status == 403:
                return  # not allowed to refresh: the writes become visible at the next periodic refresh
            self._fail(f"refresh of {self.index!r} failed", exc)
        except TransportError as exc:
            self._fail(f"refresh of {self.index!r} failed", exc)

    def delete(self, workload_id: str, client_id: str | None = None) -> int:
        try:
            resp = self._es.delete_by_query(
                index=self.index,
                query=_filter_query(workload_id, client_id),
                refresh=True,
                conflicts="proceed",
            )
        except (ApiError, TransportError) as exc:
            self._fail("delete failed", exc)
        return int(resp.get("deleted", 0))

    # Reads -----------------------------------------------------------------------------------------
    def iter_raw(self, query: LogQuery) -> Iterator[tuple[str, bytes]]:
        remaining = query.limit
        if remaining is not None and remaining <= 0:
            return
        page = min(self.batch_size, _MAX_PAGE)
        size = page if remaining is None else min(page, remaining)
        filters: list[JsonObject] = [
            {"term": {"workload_id": query.workload_id}},
            {"term": {"client_id": query.client_id}},
        ]
        window: JsonObject = {}
        if query.since is not None:
            window["gte"] = float(query.since)
        if query.until is not None:
            window["lt"] = float(query.until)
        if window:
            filters.append({"range": {TS_FIELD: window}})
        scroll_id: str | None = None
        try:
            resp = self._es.search(
                index=self.index,
                query={"bool": {"filter": filters}},
                sort=_SORT,
                size=size,
                scroll=_SCROLL_KEEP_ALIVE,
            )
            while True:
                scroll_id = resp.get("_scroll_id") or scroll_id
                hits = resp["hits"]["hits"]
                if not hits:
                    return
                for hit in hits:
                    yield hit["_id"], _source_bytes(hit["_source"])
                    if remaining is not None:
                        remaining -= 1
                        if remaining == 0:
                            return
                if scroll_id is None:  # the server gave no way to go on (as the blueprint also handles)
                    return
                resp = self._es.scroll(scroll_id=scroll_id, scroll=_SCROLL_KEEP_ALIVE)
        except (ApiError, TransportError) as exc:
            self._fail(f"query on {self.index!r} failed", exc)
        finally:
            if scroll_id is not None:
                self._clear_scroll(scroll_id)

    def _clear_scroll(self, scroll_id: str) -> None:
        try:
            self._es.clear_scroll(scroll_id=scroll_id)
        except NotFoundError:
            pass  # already gone (expired); noida-db also answers 404 for a scroll it has freed
        except (ApiError, TransportError):
            pass  # best effort: the server frees it after the keep-alive anyway

    def fetch_raw(self, ids: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        for start in range(0, len(ids), _FETCH_CHUNK):
            chunk = list(ids[start : start + _FETCH_CHUNK])
            try:
                resp = self._es.mget(index=self.index, ids=chunk)
            except (ApiError, TransportError) as exc:
                self._fail(f"fetch from {self.index!r} failed", exc)
            for doc in resp["docs"]:
                if doc.get("found"):
                    yield doc["_id"], _source_bytes(doc["_source"])
                elif "error" in doc:
                    error = doc["error"]
                    reason = error.get("reason", error) if isinstance(error, dict) else error
                    raise StoreError(f"Elasticsearch at {self._where}: fetch of {doc.get('_id')} failed: {reason}")

    def counts(self, workload_id: str | None = None, client_id: str | None = None) -> list[WorkloadCount]:
        # A composite aggregation would page through any number of pairs, but noida-db has none
        # ("Unknown aggregation type [composite]"); nested terms aggregations work on both it and
        # Elasticsearch 8. Their buckets are not paged, so more than _MAX_BUCKETS pairs is an error here
        # rather than a silently short answer.
        stats = {"lo": {"min": {"field": TS_FIELD}}, "hi": {"max": {"field": TS_FIELD}}}
        aggs = {
            "workloads": {
                "terms": {"field": "workload_id", "size": _MAX_BUCKETS, "order": {"_key": "asc"}},
                "aggs": {
                    "clients": {
                        "terms": {"field": "client_id", "size": _MAX_BUCKETS, "order": {"_key": "asc"}},
                        "aggs": stats,
                    }
                },
            }
        }
        try:
            resp = self._es.search(index=self.index, query=_filter_query(workload_id, client_id), size=0, aggs=aggs)
        except (ApiError, TransportError) as exc:
            self._fail(f"count on {self.index!r} failed", exc)
        top = resp["aggregations"]["workloads"]
        out: list[WorkloadCount] = []
        truncated = bool(top.get("sum_other_doc_count"))
        for wb in top["buckets"]:
            clients = wb["clients"]
            truncated = truncated or bool(clients.get("sum_other_doc_count"))
            for cb in clients["buckets"]:
                lo, hi = cb["lo"].get("value"), cb["hi"].get("value")
                out.append(
                    WorkloadCount(
                        str(wb["key"]),
                        str(cb["key"]),
                        int(cb["doc_count"]),
                        float(lo) if lo is not None else float("nan"),
                        float(hi) if hi is not None else float("nan"),
                    )
                )
        if truncated:
            raise StoreError(
                f"Elasticsearch at {self._where}: more than {_MAX_BUCKETS} workloads (or clients of one "
                f"workload) in {self.index!r}; narrow the count to one workload"
            )
        out.sort(key=lambda c: (c.workload_id, c.client_id))
        return out

    def close(self) -> None:
        self._es.close()


def _filter_query(workload_id: str | None, client_id: str | None) -> JsonObject:
    filters: list[JsonValue] = []
    if workload_id is not None:
        filters.append({"term": {"workload_id": workload_id}})
    if client_id is not None:
        filters.append({"term": {"client_id": client_id}})
    return {"bool": {"filter": filters}}


def _source_bytes(source: JsonObject) -> bytes:
    for key in RESERVED_FIELDS:
        source.pop(key, None)
    return orjson.dumps(source)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ApiError):
        body = exc.body
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return f"HTTP {exc.meta.status}, {error.get('type', exc.message)}: {error.get('reason', '')}"
        return f"HTTP {exc.meta.status}: {error or exc.message}"
    if isinstance(exc, TransportError):
        return f"{type(exc).__name__}: {exc.message}"
    return str(exc)  # pragma: no cover
