"""The LogStore contract (see ``dataflywheel.logstore.base``), one suite run against every backend."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import orjson
import pytest

from dataflywheel.errors import StoreError
from dataflywheel.logstore.base import AddResult, LogQuery, LogStore, RejectedRecord, WorkloadCount
from dataflywheel.records.model import LogRecord, parse_record, record_id
from tests.logstore.conftest import StoreFactory, free_port


def make(
    ts: float,
    user: str = "hello",
    *,
    workload_id: str = "w",
    client_id: str = "c",
    arguments: Any = None,
    **extra: Any,
) -> LogRecord:
    """A parsed record; ``arguments`` given means the answer is a tool call with those arguments."""
    if arguments is None:
        message: dict[str, Any] = {"role": "assistant", "content": f"answer to {user}"}
    else:
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "Search", "arguments": arguments}}
            ],
        }
    return parse_record(
        {
            "timestamp": ts,
            "workload_id": workload_id,
            "client_id": client_id,
            "request": {"model": "big", "messages": [{"role": "user", "content": user}]},
            "response": {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]},
            **extra,
        }
    )


def ids_of(store: LogStore, query: LogQuery) -> list[str]:
    return [rid for rid, _ in store.iter_raw(query)]


def expected_order(records: list[LogRecord]) -> list[str]:
    return [r.id for r in sorted(records, key=lambda r: (-float(r.timestamp), r.id))]


Q = LogQuery("w", "c")


def test_add_is_idempotent(store: LogStore) -> None:
    records = [make(1_700_000_000 + i, f"q{i}") for i in range(5)]
    assert store.add(records) == AddResult(5, 0)
    assert store.add(records) == AddResult(0, 5)
    assert store.add([*records[:2], make(1_700_000_100, "new")]) == AddResult(1, 2)
    assert store.count("w", "c") == 6


def test_duplicates_inside_one_batch(store_factory: StoreFactory) -> None:
    store = store_factory(batch_size=10)
    a, b = make(100, "a"), make(200, "b")
    assert store.add([a, a, b, a]) == AddResult(2, 2)
    assert sorted(ids_of(store, Q)) == sorted([a.id, b.id])
    # Across batches of 2 as well: [c, c] then [d, c].
    small = store_factory(batch_size=2)
    c, d = make(300, "c"), make(400, "d")
    assert small.add([c, c, d, c]) == AddResult(2, 2)
    assert store.count("w", "c") == 4


def test_newest_first_ties_broken_by_id(store: LogStore) -> None:
    records = [make(ts, f"q{i}") for i, ts in enumerate([100, 200, 200, 200, 50.5, 100.25, 200, 100])]
    store.add(records)
    got = ids_of(store, Q)
    assert got == expected_order(records)
    ids = [r.id for r in records]
    assert got[:4] == sorted(ids[i] for i in (1, 2, 3, 6))


def test_fractional_timestamps_keep_their_order(store: LogStore) -> None:
    # Microseconds apart: a millisecond date (or one floored to seconds) would tie them.
    base = 1_746_138_417
    records = [make(base + frac, f"q{i}") for i, frac in enumerate([0.000001, 0.000002, 0.5, 0.999999, 0.0])]
    store.add(records)
    assert ids_of(store, Q) == expected_order(records)
    assert ids_of(store, LogQuery("w", "c", since=base + 0.000002, until=base + 0.999999)) == expected_order(
        [records[1], records[2]]
    )


def test_since_inclusive_until_exclusive(store: LogStore) -> None:
    records = {ts: make(ts, f"q{ts}") for ts in (100, 150, 200, 250, 300)}
    store.add(records.values())
    assert ids_of(store, LogQuery("w", "c", since=150, until=250)) == [records[200].id, records[150].id]
    assert ids_of(store, LogQuery("w", "c", since=250)) == [records[300].id, records[250].id]
    assert ids_of(store, LogQuery("w", "c", until=150)) == [records[100].id]
    assert ids_of(store, LogQuery("w", "c", since=150.5, until=199.5)) == []


def test_limit(store: LogStore) -> None:
    records = [make(100 + i, f"q{i}") for i in range(6)]
    store.add(records)
    assert ids_of(store, LogQuery("w", "c", limit=4)) == expected_order(records)[:4]
    assert ids_of(store, LogQuery("w", "c", limit=100)) == expected_order(records)
    assert ids_of(store, LogQuery("w", "c", since=102, limit=2)) == expected_order(records)[:2]
    assert ids_of(store, LogQuery("w", "c", limit=0)) == []


def test_streams_in_pages_smaller_than_the_result(store_factory: StoreFactory) -> None:
    store = store_factory(batch_size=3)
    # Ties across page boundaries: three records per timestamp.
    records = [make(1000 + i // 3, f"q{i}") for i in range(14)]
    assert store.add(records) == AddResult(14, 0)
    assert ids_of(store, Q) == expected_order(records)
    assert ids_of(store, LogQuery("w", "c", limit=7)) == expected_order(records)[:7]
    assert ids_of(store, LogQuery("w", "c", limit=6)) == expected_order(records)[:6]
    # A stream given up half way leaves the store usable.
    stream = store.iter_raw(Q)
    next(stream)
    assert isinstance(stream, Generator)
    stream.close()
    assert store.count("w", "c") == 14
    assert len(ids_of(store, Q)) == 14


def test_records_round_trip(store: LogStore) -> None:
    rec = make(
        1_746_138_417.25,
        "weather?",
        arguments={"city": "Zürich", "days": 3, "nested": {"x": [1, 2.5, None, True]}},
        session={"id": "s-1", "tags": ["a", "b"], "score": 0.125},
        trace_id="t-9",
        empty={},
    )
    store.add([rec])
    expected = rec.to_dict()
    [(rid, raw)] = list(store.iter_raw(Q))
    assert rid == rec.id
    loaded = orjson.loads(raw)
    assert loaded == expected
    assert record_id(loaded) == rid
    assert store.fetch([rid]) == {rid: expected}
    assert dict(store.iter_records(Q)) == {rid: expected}


def test_fetch_by_ids(store: LogStore) -> None:
    records = [make(100 + i, f"q{i}") for i in range(5)]
    store.add(records)
    wanted = [records[0].id, "0" * 32, records[3].id, "not-an-id"]
    got = store.fetch(wanted)
    assert set(got) == {records[0].id, records[3].id}
    assert got[records[3].id] == records[3].to_dict()
    assert store.fetch([]) == {}
    assert {rid for rid, _ in store.fetch_raw([r.id for r in records])} == {r.id for r in records}


def test_fetch_many_ids(store_factory: StoreFactory) -> None:
    store = store_factory(batch_size=200)
    records = [make(i, f"q{i}") for i in range(1200)]
    assert store.add(records) == AddResult(1200, 0)
    got = store.fetch([r.id for r in records] + ["f" * 32])
    assert len(got) == 1200


def test_other_workloads_and_clients_not_returned(store: LogStore) -> None:
    mine = [make(100 + i, f"q{i}") for i in range(3)]
    others = [
        make(150, "x", workload_id="w2"),
        make(150, "x", client_id="c2"),
        make(150, "x", workload_id="W", client_id="C"),
        make(150, "x", workload_id="w-extra"),
    ]
    store.add([*mine, *others])
    assert ids_of(store, Q) == expected_order(mine)
    assert ids_of(store, LogQuery("w", "c2")) == [others[1].id]
    assert ids_of(store, LogQuery("nope", "c")) == []


def test_counts(store: LogStore) -> None:
    store.add([make(100, "a"), make(300.5, "b"), make(200, "c")])
    store.add([make(50, "d", client_id="c2"), make(60, "e", client_id="c2")])
    store.add([make(1_700_000_000, "f", workload_id="v")])
    assert store.counts() == [
        WorkloadCount("v", "c", 1, 1_700_000_000, 1_700_000_000),
        WorkloadCount("w", "c", 3, 100, 300.5),
        WorkloadCount("w", "c2", 2, 50, 60),
    ]
    assert store.counts("w") == [WorkloadCount("w", "c", 3, 100, 300.5), WorkloadCount("w", "c2", 2, 50, 60)]
    assert store.counts("w", "c2") == [WorkloadCount("w", "c2", 2, 50, 60)]
    assert store.counts("missing") == []
    assert store.count("w", "c") == 3
    assert store.count("w", "nobody") == 0
    for row in store.counts():
        assert isinstance(row.first_timestamp, int | float) and isinstance(row.records, int)


def test_delete(store: LogStore) -> None:
    store.add([make(100 + i, f"q{i}") for i in range(3)])
    store.add([make(100 + i, f"q{i}", client_id="c2") for i in range(2)])
    store.add([make(100, "keep", workload_id="v")])
    assert store.delete("w", "c2") == 2
    assert store.count("w", "c2") == 0
    assert store.count("w", "c") == 3
    assert store.delete("w", "c2") == 0
    store.add([make(100, "again", client_id="c2")])
    assert store.delete("w") == 4
    assert store.counts("w") == []
    assert ids_of(store, Q) == []
    assert store.counts() == [WorkloadCount("v", "c", 1, 100, 100)]
    # Deleted records can be added again.
    assert store.add([make(100, "q0")]) == AddResult(1, 0)


def test_string_and_object_tool_arguments_are_one_record(store: LogStore) -> None:
    as_object = make(100, "find x", arguments={"query": "x", "n": 2})
    as_string = make(100, "find x", arguments='{"query": "x", "n": 2}')
    assert as_object.id == as_string.id
    assert store.add([as_object, as_string]) == AddResult(1, 1)
    assert store.add([make(100, "find x", arguments='{"n":2,"query":"x"}')]) == AddResult(0, 1)
    [(_, raw)] = list(store.iter_raw(Q))
    call = orjson.loads(raw)["response"]["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["arguments"] == {"query": "x", "n": 2}


def nested(levels: int) -> Any:
    value: Any = "deep"
    for _ in range(levels):
        value = [value]
    return value


def unchecked(ts: float, user: str, **extra: Any) -> LogRecord:
    """A record built without :func:`parse_record`'s checks (as a caller constructing one might)."""
    good = make(ts, user)
    return LogRecord(good.timestamp, good.workload_id, good.client_id, good.request, good.response, extra)


def test_a_record_that_cannot_be_written_is_rejected_and_its_batch_stored(store_factory: StoreFactory) -> None:
    """One record orjson cannot write (nested too deep, an integer beyond 64 bits) must not cost the other
    records of its batch: it is rejected by position, with where and why."""
    store = store_factory(batch_size=3)
    good = [make(100 + i, f"q{i}") for i in range(4)]
    deep = unchecked(200, "deep", payload=nested(300))
    huge = unchecked(201, "huge", payload={"n": 2**70})
    result = store.add([good[0], deep, good[1], good[2], huge, good[3]])

    assert (result.added, result.duplicates) == (4, 0)
    assert [(r.index, r.record_id) for r in result.rejected] == [(1, ""), (4, "")]
    assert "payload[0][0]" in result.rejected[0].reason and "nested deeper than 254" in result.rejected[0].reason
    assert "payload.n" in result.rejected[1].reason and "64-bit" in result.rejected[1].reason
    assert sorted(ids_of(store, Q)) == sorted(r.id for r in good)
    assert store.add(good) == AddResult(0, 4)


def test_reopened_store_sees_the_data(store_factory: StoreFactory) -> None:
    first = store_factory()
    records = [make(100 + i, f"q{i}") for i in range(3)]
    first.add(records)
    first.close()
    second = store_factory()
    assert ids_of(second, Q) == expected_order(records)
    assert second.add(records) == AddResult(0, 3)


# Unreachable servers ----------------------------------------------------------------------------------


def test_unreachable_postgres_is_a_store_error() -> None:
    pytest.importorskip("psycopg")
    from dataflywheel.logstore.postgres import PostgresLogStore

    port = free_port()
    with pytest.raises(StoreError) as info:
        PostgresLogStore(f"postgresql://flywheel:s3cret-pw@127.0.0.1:{port}/logs")
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert "s3cret-pw" not in message
    assert "PostgreSQL" in message


def test_unreachable_elasticsearch_is_a_store_error() -> None:
    pytest.importorskip("elasticsearch")
    from dataflywheel.logstore.elasticsearch import ElasticsearchLogStore

    port = free_port()
    with pytest.raises(StoreError) as info:
        ElasticsearchLogStore(f"http://elastic:s3cret-pw@127.0.0.1:{port}", index="logs")
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert "s3cret-pw" not in message
    assert "Elasticsearch" in message


# Backend specifics ------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_rejects_a_nul_record_and_stores_the_rest_of_its_batch(postgres_url: str, pg_table: str) -> None:
    from dataflywheel.logstore.postgres import PostgresLogStore

    good = [make(100 + i, f"q{i}") for i in range(3)]
    bad = make(200, "nul \x00 inside")  # JSONB cannot store U+0000
    literal = make(300, "a backslash and u0000: \\u0000")  # no NUL: must load
    with PostgresLogStore(postgres_url, table=pg_table, batch_size=2) as store:
        result = store.add([*good[:2], bad, good[2]])
        assert (result.added, result.duplicates) == (3, 0)
        [rejected] = result.rejected
        assert (rejected.index, rejected.record_id) == (2, bad.id)
        assert "request.messages[0].content" in rejected.reason and "NUL" in rejected.reason
        assert store.count("w", "c") == 3
        assert store.add([*good, literal]) == AddResult(1, 3)
        assert store.fetch([literal.id]) == {literal.id: literal.to_dict()}


@pytest.mark.elasticsearch
def test_elasticsearch_on_a_blueprint_index(elasticsearch_url: str) -> None:
    """An index made by the blueprint (dynamic: strict) gets the store's two fields added and works;
    a record with an unknown top-level field is then refused, naming the record."""
    from elasticsearch import Elasticsearch

    from dataflywheel.logstore.elasticsearch import ElasticsearchLogStore

    index = "test-blueprint-logs"
    with Elasticsearch(elasticsearch_url) as es:
        es.indices.delete(index=index, ignore_unavailable=True)
        es.indices.create(
            index=index,
            mappings={
                "dynamic": "strict",
                "properties": {
                    "workload_id": {"type": "keyword"},
                    "client_id": {"type": "keyword"},
                    "timestamp": {"type": "date"},
                    "request": {"type": "object", "dynamic": False},
                    "response": {"type": "object", "dynamic": False},
                },
            },
        )
        try:
            with ElasticsearchLogStore(elasticsearch_url, index=index, batch_size=2) as store:
                records = [make(1_700_000_000 + i, f"q{i}") for i in range(3)]
                assert store.add(records) == AddResult(3, 0)
                assert ids_of(store, Q) == expected_order(records)
                odd = make(1_700_000_100, "odd", trace_id="t-1")
                fine = make(1_700_000_101, "fine")
                result = store.add([odd, fine])
                assert (result.added, result.duplicates) == (1, 0)
                [rejected] = result.rejected
                assert (rejected.index, rejected.record_id) == (0, odd.id) and "trace_id" in rejected.reason
        finally:
            es.indices.delete(index=index, ignore_unavailable=True)


@pytest.mark.elasticsearch
def test_elasticsearch_reserved_fields_refused(elasticsearch_url: str) -> None:
    from elasticsearch import Elasticsearch

    from dataflywheel.logstore.elasticsearch import ID_FIELD, ElasticsearchLogStore

    index = "test-reserved-logs"
    try:
        with ElasticsearchLogStore(elasticsearch_url, index=index) as store:
            mine = make(100, "x", **{ID_FIELD: "mine"})
            result = store.add([mine, make(101, "y")])
            assert result.added == 1
            assert result.rejected == (RejectedRecord(0, mine.id, result.rejected[0].reason),)
            assert ID_FIELD in result.rejected[0].reason
            assert store.count("w", "c") == 1
    finally:
        with Elasticsearch(elasticsearch_url) as es:
            es.indices.delete(index=index, ignore_unavailable=True)
