"""``POST /api/logs`` on the SQLite and PostgreSQL log stores: the same validation as ``flywheel logs load``;
bad records refused by line (a 422 naming each) while the good ones are stored, never a 500 for bad input."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from dataflywheel.api import create_api
from dataflywheel.logstore import open_log_store
from dataflywheel.settings import Settings, load_settings

NDJSON = {"content-type": "application/x-ndjson"}


def record(i: int, workload_id: str = "wl-1", client_id: str = "client-a") -> dict[str, Any]:
    return {
        "timestamp": 1_700_000_000 + i,
        "workload_id": workload_id,
        "client_id": client_id,
        "request": {"messages": [{"role": "user", "content": f"question {i}"}]},
        "response": {"choices": [{"message": {"role": "assistant", "content": f"answer {i}"}}]},
    }


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def logs_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings whose log store is SQLite, or a fresh PostgreSQL table (the job store stays SQLite)."""
    if request.param == "sqlite":
        return load_settings(home=tmp_path / "home")
    postgres_url: str = request.getfixturevalue("postgres_url")
    table: str = request.getfixturevalue("pg_table")
    return load_settings(
        home=tmp_path / "home",
        log_store={"backend": "postgres", "postgres_url": postgres_url, "postgres_table": table},
    )


@pytest.fixture
def client(logs_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_api(logs_settings, start_jobs=False, recover=False)) as c:
        yield c


def stored(settings: Settings) -> dict[tuple[str, str], int]:
    with open_log_store(settings) as store:
        return {(c.workload_id, c.client_id): c.records for c in store.counts()}


def test_a_json_array_is_stored_and_bad_items_reported_by_position(client: TestClient, logs_settings: Settings) -> None:
    bad_request = {**record(3), "request": {"messages": "not a list"}}
    items = [record(1), record(2), bad_request, "a string", record(4, "wl-2")]
    r = client.post("/api/logs", json=items)

    assert r.status_code == 422, r.text
    body = r.json()
    assert body["detail"] == "2 of 5 records refused (lines or positions 3, 4); the other 3 were stored"
    assert (body["records"], body["loaded"], body["duplicates"], body["skipped"]) == (5, 3, 0, 2)
    assert [e["line"] for e in body["errors"]] == [3, 4]
    assert "request.messages" in body["errors"][0]["error"] and "JSON object" in body["errors"][1]["error"]
    assert body["workloads"] == {"wl-1/client-a": 2, "wl-2/client-a": 1} and not body["errors_truncated"]
    assert stored(logs_settings) == {("wl-1", "client-a"): 2, ("wl-2", "client-a"): 1}


def test_ndjson_lines_are_validated_one_by_one(client: TestClient, logs_settings: Settings) -> None:
    lines = [
        orjson.dumps(record(1)),
        b"",
        b'{"timestamp": 1, "workload_id": "wl-1"',  # truncated
        b"not json at all",
        orjson.dumps({**record(2), "workload_id": ""}),
        orjson.dumps(record(3)),
    ]
    r = client.post("/api/logs", content=b"\n".join(lines) + b"\n", headers=NDJSON)

    assert r.status_code == 422, r.text
    body = r.json()
    assert (body["records"], body["loaded"], body["skipped"]) == (5, 2, 3)
    errors = {e["line"]: e["error"] for e in body["errors"]}
    assert set(errors) == {3, 4, 5}
    assert "truncated" in errors[3] and "not valid JSON" in errors[4] and "workload_id" in errors[5]
    assert stored(logs_settings) == {("wl-1", "client-a"): 2}


def test_sending_again_counts_duplicates(client: TestClient, logs_settings: Settings) -> None:
    first = client.post("/api/logs", json=[record(1), record(2)]).json()
    again = client.post("/api/logs", json=[record(2), record(1), record(3)]).json()
    assert (first["loaded"], first["duplicates"]) == (2, 0)
    assert (again["loaded"], again["duplicates"]) == (1, 2)
    assert stored(logs_settings) == {("wl-1", "client-a"): 3}


def test_query_overrides_and_conversation_form(client: TestClient, logs_settings: Settings) -> None:
    conversation = {
        "messages": [
            {"role": "user", "content": "where is my order?"},
            {"role": "assistant", "content": "let me check"},
        ]
    }
    before = time.time()
    r = client.post(
        "/api/logs", params={"workload_id": "wl-9", "client_id": "client-z"}, json=[conversation, record(1)]
    )
    assert r.status_code == 200 and r.json()["loaded"] == 2, r.text
    assert stored(logs_settings) == {("wl-9", "client-z"): 2}
    with open_log_store(logs_settings) as store:
        [count] = store.counts()
    # A conversation carries no time: it is stamped on arrival.
    assert count.last_timestamp >= int(before) - 1


@pytest.mark.parametrize(
    ("content", "content_type", "says"),
    [
        (b'{"a": 1}', "application/json", "expected a JSON array"),
        (b'"text"', "application/json", "got a JSON string"),
        (b"42", "application/json", "got a JSON number"),
        (b"[1, 2", "application/json", "not a JSON array"),
        (b"", "application/json", "empty"),
        (b"  \n ", "application/x-ndjson", "empty"),
        (b"a=1&b=2", "application/x-www-form-urlencoded", "unsupported Content-Type"),
        (b"\xff\xfe", "application/octet-stream", "unsupported Content-Type"),
    ],
)
def test_a_body_that_is_no_list_nor_ndjson_is_422(
    client: TestClient, content: bytes, content_type: str, says: str
) -> None:
    r = client.post("/api/logs", content=content, headers={"content-type": content_type})
    assert r.status_code == 422 and says in r.json()["detail"], r.text


def test_curl_default_content_type_is_sniffed(client: TestClient) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}  # what curl -d sends
    r = client.post("/api/logs", content=orjson.dumps([record(1)]), headers=form)
    assert r.status_code == 200 and r.json()["loaded"] == 1
    r = client.post("/api/logs", content=orjson.dumps(record(2)) + b"\n" + orjson.dumps(record(3)), headers=form)
    assert r.status_code == 200 and r.json()["loaded"] == 2


def test_garbage_bytes_in_ndjson_are_line_errors_not_500(client: TestClient) -> None:
    r = client.post("/api/logs", content=b"\xff\xfe\x00garbage\n\x00\n[]\n", headers=NDJSON)
    assert r.status_code == 422
    body = r.json()
    assert body["loaded"] == 0 and body["skipped"] == 3 and [e["line"] for e in body["errors"]] == [1, 2, 3]
    assert body["errors"][0]["error"] == "not valid UTF-8: byte 0xff at byte 1 (invalid start byte)"


def test_records_no_store_can_write_are_refused_by_position_and_the_rest_stored(
    client: TestClient, logs_settings: Settings
) -> None:
    """Items that orjson reads but cannot write (nested 300 deep), or timestamps no date holds, were a 500
    that stored nothing; now each is refused by position and the others are stored."""
    items = [
        record(1),
        {**record(2), "trace": "DEEP"},  # made 300 arrays deep below: orjson cannot write it
        record(3),
        {**record(4), "timestamp": "1e308"},
        {**record(5), "timestamp": "99999999999999999999999"},
        {**record(6), "workload_id": "wl\x00-1"},
        record(7),
    ]
    body = orjson.dumps(items).replace(b'"DEEP"', b"[" * 300 + b"]" * 300)
    r = client.post("/api/logs", content=body, headers={"content-type": "application/json"})

    assert r.status_code == 422, r.text
    answer = r.json()
    assert (answer["loaded"], answer["skipped"]) == (3, 4)
    errors = {e["line"]: e["error"] for e in answer["errors"]}
    assert set(errors) == {2, 4, 5, 6}
    assert "nested deeper than 254 levels" in errors[2] and errors[2].startswith("trace[0]")
    assert errors[4].startswith("timestamp: out of range") and errors[5].startswith("timestamp: out of range")
    assert "workload_id: contains a NUL character" in errors[6]
    assert stored(logs_settings) == {("wl-1", "client-a"): 3}


def test_ndjson_deep_lines_are_refused_by_line(client: TestClient, logs_settings: Settings) -> None:
    deep_line = orjson.dumps({**record(2), "trace": "X"}).replace(b'"X"', b"[" * 600 + b"]" * 600)
    lines = [orjson.dumps(record(1)), deep_line, orjson.dumps(record(3))]
    r = client.post("/api/logs", content=b"\n".join(lines), headers=NDJSON)
    assert r.status_code == 422, r.text
    assert [e["line"] for e in r.json()["errors"]] == [2]
    assert stored(logs_settings) == {("wl-1", "client-a"): 2}


def test_a_record_the_log_store_cannot_hold_is_refused_and_its_neighbours_stored(
    client: TestClient, logs_settings: Settings
) -> None:
    """A NUL inside a message: SQLite stores it; PostgreSQL cannot, and refused the whole batch (a 503)."""
    nul = {**record(2), "request": {"messages": [{"role": "user", "content": "nul \x00 here"}]}}
    r = client.post("/api/logs", json=[record(1), nul, record(3)])
    if logs_settings.log_store.backend.value == "postgres":
        assert r.status_code == 422, r.text
        [error] = r.json()["errors"]
        assert error["line"] == 2 and "request.messages[0].content: contains a NUL character" in error["error"]
        assert stored(logs_settings) == {("wl-1", "client-a"): 2}
    else:
        assert r.status_code == 200, r.text
        assert stored(logs_settings) == {("wl-1", "client-a"): 3}


@pytest.mark.parametrize(
    "params",
    [{"workload_id": "wl\x00"}, {"client_id": "c" * 256}],
)
def test_bad_query_overrides_are_422(client: TestClient, logs_settings: Settings, params: dict[str, str]) -> None:
    r = client.post("/api/logs", params=params, json=[record(1)])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][0] == "query", r.text
    assert stored(logs_settings) == {}
