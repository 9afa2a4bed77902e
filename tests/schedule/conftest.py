"""Fixtures of the scheduler tests: settings over a temporary home (SQLite log and job stores), records in the
real log store, and a job whose datasets the real build made from them (the drift check's reference)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dataflywheel.datasets.build import build_datasets
from dataflywheel.datasets.sources import StoreSource
from dataflywheel.jobs import JobRecord, JobStatus, JobStore
from dataflywheel.logstore import LogQuery, open_log_store
from dataflywheel.records.model import parse_record
from dataflywheel.settings import Settings, load_settings
from tests.factories import TOOLS, tool_record

WL, CL = "wl", "c"
TS0 = 1_760_000_000


def schedule_settings(home: Path) -> Settings:
    """Settings over ``home``: small splits, drift without embeddings, no redaction."""
    return load_settings(
        home=home,
        privacy={"redact": "off"},
        data_split={"eval_size": 10, "min_total_records": 10},
        drift={"min_records": 10, "embed": False},
        curation_workers=0,
    )


@pytest.fixture
def sched_settings(tmp_path: Path) -> Settings:
    return schedule_settings(tmp_path / "home")


@pytest.fixture
def job_store(sched_settings: Settings) -> Iterator[JobStore]:
    with JobStore.from_settings(sched_settings) as store:
        yield store


def records(
    n: int, tools: tuple[str, ...], *, start: int, offered: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """``n`` distinct records calling ``tools`` in turn, timestamps from ``start``."""
    out = []
    for i in range(n):
        r = tool_record(
            f"request {start + i}: help with item {i}",
            tools[i % len(tools)],
            ts=start + i,
            workload_id=WL,
            client_id=CL,
        )
        if offered is not None:
            r["request"]["tools"] = offered
        out.append(r)
    return out


def add_logs(settings: Settings, rows: list[dict[str, Any]]) -> None:
    with open_log_store(settings) as logs:
        result = logs.add(parse_record(r) for r in rows)
    assert result.added == len(rows)


def job_with_dataset(store: JobStore, settings: Settings) -> JobRecord:
    """A completed job whose datasets were built (for real) from the workload's logs, stored as the datasets
    stage stores them."""
    job = store.create_job(WL, CL, {"candidates": ["tiny-random-llama"]})
    with open_log_store(settings) as logs:
        build = build_datasets(StoreSource(logs, LogQuery(WL, CL)), settings, workload_id=WL, client_id=CL)
    counts = build.counts
    store.set_datasets(
        job.id,
        [
            (name, counts.get(name, 0), str(build.path / f"{name}.jsonl"), build.path.name)
            for name in ("eval", "icl", "train", "val")
        ],
    )
    store.set_job_status(job.id, JobStatus.RUNNING)
    return store.set_job_status(job.id, JobStatus.COMPLETED)


CHANGED_TOOLS = [
    *TOOLS[:2],
    {
        "type": "function",
        "function": {
            **TOOLS[2]["function"],
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}, "order_id": {"type": "string"}},
            },
        },
    },
]
