"""Pseudonymized records still teach a model to copy: the arguments of a training row's tool call are the
(stand-in) values of its user turn, exactly, after ingestion and a dataset build from the store."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from dataflywheel.datasets.build import build_datasets
from dataflywheel.datasets.sources import StoreSource
from dataflywheel.ingest.jsonl import load_file
from dataflywheel.logstore import LogQuery, open_log_store
from dataflywheel.settings import load_settings, with_overrides
from dataflywheel.synth.pii_corpus import pii_log_records

IDS = {"workload_id": "account_desk", "client_id": "northwind-pii"}
USER = re.compile(r"^Hi, my name is (?P<name>.+)\. My email is (?P<email>\S+) and my phone is (?P<phone>.+)\. Where is")


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_tool_call_arguments_copied_from_the_user_still_match_after_pseudonymization(tmp_path: Path) -> None:
    records = pii_log_records(40, seed=5)
    originals = {
        v
        for r in records
        for k, v in json.loads(r["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]).items()
        if k != "query"
    }
    source = tmp_path / "calls.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    settings = with_overrides(
        load_settings(home=tmp_path / "home"), data_split={"eval_size": 5, "min_total_records": 10}
    )
    with open_log_store(settings) as store:
        assert load_file(store, source).store.added == 40
        built = build_datasets(StoreSource(store, LogQuery(**IDS)), settings, **IDS)

    rows = _rows(built.path / "train.jsonl") + _rows(built.path / "val.jsonl")
    assert len(rows) == 35
    for row in rows:
        user = next(m["content"] for m in row["messages"] if m["role"] == "user")
        answer = row["messages"][-1]
        args = answer["tool_calls"][0]["function"]["arguments"]
        args = json.loads(args) if isinstance(args, str) else args
        said = USER.match(user)
        assert said, user
        assert args["email"] == said["email"]
        assert args["customer_name"] == said["name"]
        assert args["phone"] == said["phone"]
        assert not [v for v in originals if v in json.dumps(row)], "no original value left in the row"
