"""One bad line never costs its neighbours: every kind of bad record is a numbered line error, on every log
store backend, and every good line of its batch is stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from dataflywheel.cli.main import app
from dataflywheel.ingest.jsonl import describe_json_error, load_file
from dataflywheel.logstore import LogQuery, open_log_store
from dataflywheel.logstore.base import LogStore
from dataflywheel.records.model import LogRecord
from dataflywheel.settings import load_settings
from tests.factories import tool_record
from tests.logstore.conftest import StoreFactory, elasticsearch_url, store_factory  # noqa: F401 (fixtures)


def deep_json(levels: int) -> bytes:
    """A record whose ``trace`` nests ``levels`` arrays: valid JSON that orjson reads (up to 1024 levels) but
    cannot write beyond 254."""
    record = orjson.dumps(tool_record("deep") | {"trace": "HERE"})
    return record.replace(b'"HERE"', b"[" * levels + b"]" * levels)


BAD_LINES: dict[str, tuple[bytes, str]] = {
    # name: (line, what its error says)
    "timestamp 1e308 as a string": (
        orjson.dumps(tool_record("a") | {"timestamp": "1e308"}),
        "timestamp: out of range",
    ),
    "a 23-digit timestamp string": (
        orjson.dumps(tool_record("b") | {"timestamp": "99999999999999999999999"}),
        "timestamp: out of range",
    ),
    "timestamp -1e308": (orjson.dumps(tool_record("c") | {"timestamp": -1e308}), "timestamp: out of range"),
    "nested 300 levels": (deep_json(300), "nested deeper than 254 levels"),
    "a NUL in workload_id": (orjson.dumps(tool_record("d") | {"workload_id": "w\x00x"}), "workload_id: contains a NUL"),
    "invalid UTF-8": (b'{"workload_id": "w", "x": "caf\xc3\xa9 \xff"}', "not valid UTF-8: byte 0xff at byte 34"),
}


def mixed_file(tmp_path: Path, good: int = 1500) -> tuple[Path, dict[int, str]]:
    """``good`` good lines with every bad line of :data:`BAD_LINES` spread among them (several in the first
    batch of 1000); returns the file and {line number: expected error text}."""
    lines = [orjson.dumps(tool_record(f"question {i}", ts=1_700_000_000 + i)) for i in range(good)]
    expected: dict[int, str] = {}
    for k, (line, says) in enumerate(BAD_LINES.values()):
        lines.insert(3 + k * 150, line)  # inserted in order: each keeps its index
        expected[3 + k * 150 + 1] = says
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, expected


def test_the_cli_stores_every_good_line_and_numbers_every_bad_one(tmp_path: Path) -> None:
    path, expected = mixed_file(tmp_path)
    result = CliRunner().invoke(app, ["logs", "load", str(path), "--json"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["loaded"], report["skipped"]) == (1500, len(BAD_LINES))
    errors = {e["line"]: e["reason"] for e in report["errors"]}
    assert set(errors) == set(expected)
    for line, says in expected.items():
        assert says in errors[line], (line, errors[line])
    # and what is stored reads back: every good line, nothing else
    stats = CliRunner().invoke(app, ["logs", "stats", "--json"], catch_exceptions=False)
    assert json.loads(stats.stdout) == [
        {
            "workload_id": "w",
            "client_id": "c",
            "records": 1500,
            "first_timestamp": 1_700_000_000.0,
            "last_timestamp": 1_700_001_499.0,
        }
    ]


def test_invalid_utf8_is_reported_at_its_byte() -> None:
    line = b'{"a": "caf\xc3\xa9", "b": "\xfe"}\n'
    with pytest.raises(orjson.JSONDecodeError) as err:
        orjson.loads(line)
    assert describe_json_error(line, err.value) == ("not valid UTF-8: byte 0xfe at byte 22 (invalid start byte)")
    assert line.index(b"\xfe") == 21


def nul_content_line() -> bytes:
    return orjson.dumps(tool_record("a NUL \x00 in the question", ts=1_700_000_999))


def test_a_record_the_store_refuses_is_a_line_error_and_its_batch_is_stored(
    store_factory: StoreFactory,  # noqa: F811
    tmp_path: Path,
) -> None:
    """On every backend: a NUL in a question (PostgreSQL cannot store one) and a top-level field the
    Elasticsearch store reserves are each stored, or refused by line; the rest of their batch is stored."""
    store: LogStore = store_factory(batch_size=4)
    good = [orjson.dumps(tool_record(f"q{i}", ts=1_700_000_000 + i)) for i in range(6)]
    reserved = orjson.dumps(tool_record("reserved", ts=1_700_000_998) | {"flywheel_ts": 1})
    path = tmp_path / "store-refusals.jsonl"
    path.write_bytes(b"\n".join([good[0], nul_content_line(), good[1], reserved, *good[2:]]) + b"\n")

    report = load_file(store, path, batch_size=4)

    refused: dict[int, str] = {
        "sqlite": {},
        "postgres": {2: "request.messages[1].content: contains a NUL character"},
        "elasticsearch": {4: "flywheel_ts, which the Elasticsearch log store reserves"},
    }[store.name]
    assert {e.line for e in report.errors} == set(refused)
    for error in report.errors:
        assert refused[error.line] in error.reason, error.reason
    assert report.store.added == 8 - len(refused) and report.skipped == len(refused)
    stored = {r["request"]["messages"][1]["content"] for _, r in store.iter_records(LogQuery("w", "c"))}
    assert {f"q{i}" for i in range(6)} <= stored
    assert report.workloads == {"w/c": 8 - len(refused)}


def test_logs_stats_shows_a_timestamp_no_date_can_hold(tmp_path: Path) -> None:
    """Records stored before timestamps were checked (1e308 loaded as a number) must not crash the stats."""
    good: dict[str, Any] = tool_record("fine")
    with open_log_store(load_settings()) as store:  # the CLI's store: ./.flywheel in the test's folder
        for ts in (1e308, -1e308):
            store.add([LogRecord(ts, "w", "c", good["request"], good["response"])])
    result = CliRunner().invoke(app, ["logs", "stats"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "-1e+308" in result.output and " 1e+308" in result.output
