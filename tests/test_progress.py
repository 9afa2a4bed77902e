"""One progress protocol: every long piece of work reports :class:`dataflywheel.progress.Progress` events
(stage, done, total, unit, message), so one consumer follows any of them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from dataflywheel.datasets.build import build_datasets
from dataflywheel.datasets.sources import JsonlSource
from dataflywheel.evaluation.runner import EvalConfig, EvalProgress, EvalType, run_eval
from dataflywheel.ingest.jsonl import IngestProgress, load_file
from dataflywheel.logstore.sqlite import SQLiteLogStore
from dataflywheel.models.types import ChatRequest, ChatResult, Usage
from dataflywheel.progress import Progress
from dataflywheel.settings import load_settings
from dataflywheel.synth.generator import SynthConfig, generate, write_jsonl
from dataflywheel.training.progress import TrainProgress


def test_an_event_says_how_far_and_in_what() -> None:
    scan = Progress(stage="scan", done=2000, total=None, unit="records")
    assert scan.fraction is None and scan.percent is None and scan.describe() == "scan: 2000 records"
    half = Progress(stage="inference", done=5, total=10, unit="records", message="student m", eta_s=12.0)
    assert half.percent == 50.0 and half.describe() == "inference: 5/10 records (50%), eta 12 s; student m"
    assert Progress(stage="empty", done=0, total=0).fraction == 1.0  # nothing to do is done


def test_the_trainers_event_keeps_its_former_names() -> None:
    p = TrainProgress(stage="training", epochs_completed=1, total_epochs=2, done=4, total=8, loss=1.25)
    assert isinstance(p, Progress) and p.unit == "steps"
    assert (p.phase, p.steps_completed, p.total_steps, p.percent) == ("training", 4, 8, 50.0)
    assert p.to_dict()["total_steps"] == 8 and p.to_dict()["percent"] == 50.0


def test_ingestion_reports_bytes_read_and_records_stored(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write_jsonl(SynthConfig(records=30, seed=1, malformed_rate=0.0, duplicate_rate=0.0), path)
    seen: list[Progress] = []
    with SQLiteLogStore(tmp_path / "logs.db") as store:
        load_file(store, path, batch_size=10, progress=seen.append)
    assert seen and all(isinstance(p, IngestProgress) and p.stage == "load" and p.unit == "bytes" for p in seen)
    assert seen[-1].done == seen[-1].total == path.stat().st_size and seen[-1].records == 30


def test_a_dataset_build_reports_each_stage_in_records(tmp_path: Path) -> None:
    config = SynthConfig(records=80, seed=2)
    write_jsonl(config, tmp_path / "t.jsonl")
    settings = load_settings(home=tmp_path / "home", curation_workers=0)
    split = settings.data_split.model_copy(update={"eval_size": 10, "min_total_records": 10})
    seen: list[Progress] = []
    build_datasets(
        JsonlSource(tmp_path / "t.jsonl"),
        settings.model_copy(update={"data_split": split}),
        workload_id=config.workload_id,
        client_id=config.client_id,
        progress=seen.append,
    )
    assert {p.stage for p in seen} >= {"scan", "eval", "icl", "train"}
    assert all(type(p) is Progress and p.unit == "records" for p in seen)
    last_scan = [p for p in seen if p.stage == "scan"][-1]
    assert last_scan.done == last_scan.total == 80


def test_an_eval_reports_samples_with_its_errors(tmp_path: Path) -> None:
    async def chat(request: ChatRequest) -> ChatResult:
        return ChatResult({"role": "assistant", "content": "hello"}, "stop", Usage(1, 1))

    rows: list[dict[str, Any]] = [{"record_id": f"r{i}", **r} for i, r in enumerate(generate(SynthConfig(records=4)))]
    seen: list[Progress] = []
    asyncio.run(run_eval(rows, chat, tmp_path, EvalConfig(EvalType.BASE, "m"), progress=seen.append))
    assert [p.done for p in seen] == [1, 2, 3, 4]
    assert all(isinstance(p, EvalProgress) and p.stage == "eval" and p.unit == "samples" for p in seen)
    assert seen[-1].percent == 100.0 and seen[-1].errors == 0
