from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dataflywheel.cli.main import app
from dataflywheel.ingest.jsonl import load_file
from dataflywheel.logstore import LogQuery
from dataflywheel.logstore.sqlite import SQLiteLogStore
from tests.factories import tool_record


def _lines(tmp_path: Path) -> Path:
    good = [json.dumps(tool_record(f"question {i}", ts=1000 + i)) for i in range(5)]
    missing_request = tool_record("no request")
    del missing_request["request"]
    lines = [
        good[0],
        good[1][: len(good[1]) // 2],  # truncated
        good[2],
        "this is not json",
        json.dumps(missing_request),
        good[3],
        "",
        good[4],
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_lines_are_reported_and_good_ones_loaded(tmp_path: Path) -> None:
    path = _lines(tmp_path)
    with SQLiteLogStore(tmp_path / "logs.db", batch_size=2) as store:
        report = load_file(store, path, batch_size=2)
        assert report.store.added == 4 and report.skipped == 3 and report.blank == 1
        assert [(e.line, e.reason.split(":")[0]) for e in report.errors] == [
            (2, "truncated JSON"),
            (4, "not valid JSON"),
            (5, "request"),
        ]
        assert "request: missing" in str(report.errors[2])
        stored = [r["request"]["messages"][1]["content"] for _, r in store.iter_records(LogQuery("w", "c"))]
        assert stored == [f"question {i}" for i in (4, 3, 2, 0)]  # newest first; 1 was truncated
        # a re-run is idempotent and reports the same problems
        again = load_file(store, path)
        assert again.store.added == 0 and again.store.duplicates == 4 and again.skipped == 3
        assert store.count("w", "c") == 4


def test_command_line_overrides_ids(tmp_path: Path) -> None:
    path = _lines(tmp_path)
    result = CliRunner().invoke(app, ["logs", "load", str(path), "--workload-id", "W2", "--client-id", "C2", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["loaded"] == 4 and data["workloads"] == {"W2/C2": 4}
    assert [e["line"] for e in data["errors"]] == [2, 4, 5]


def test_a_file_of_only_bad_lines_fails(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("nope\n{\n")
    result = CliRunner().invoke(app, ["logs", "load", str(path)], terminal_width=160)
    assert result.exit_code == 1
    assert "Bad lines" in result.output


def test_conversation_form_is_idempotent_by_file_time(tmp_path: Path) -> None:
    path = tmp_path / "conv.jsonl"
    conv = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    path.write_text(json.dumps(conv) + "\n")
    with SQLiteLogStore(tmp_path / "logs.db") as store:
        first = load_file(store, path, workload_id="w", client_id="c")
        second = load_file(store, path, workload_id="w", client_id="c")
        assert (first.store.added, second.store.added, second.store.duplicates) == (1, 0, 1)
