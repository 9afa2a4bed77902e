"""A finished flywheel job without a model server or training: the dataset build's files on disk, each eval
run by the real eval runner against a stand-in chat function (the model's answers, token usage and latency are
the test's to choose), the stage outputs stored as the stages store them, then the real finalize stage and the
job completed as the driver completes it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from dataflywheel.evaluation.runner import EvalConfig, EvalType, run_async, run_eval
from dataflywheel.jobs import JobRecord, JobStatus, JobStore, TaskStatus
from dataflywheel.models.types import ChatRequest, ChatResult, Usage
from dataflywheel.records.model import record_id
from dataflywheel.settings import Settings
from dataflywheel.workflow.stages import eval_dir, execute_stage
from tests.factories import tool_record

WORKLOAD, CLIENT = "wl-1", "client-a"
DAY = 86_400


@dataclass(frozen=True)
class EvalPlan:
    """How the stand-in model answers one eval: the first ``right`` records with the logged call, the rest
    with text; every answer with this usage and latency."""

    right: int
    prompt_tokens: int = 900
    completion_tokens: int = 25
    latency_s: float = 0.5


def eval_rows(n: int, *, usage: bool) -> list[dict[str, Any]]:
    """``n`` eval records (alternating two tools), with the logged model's usage (1000 + 10 i prompt tokens,
    20 completion tokens) when ``usage``."""
    rows = []
    for i in range(n):
        record = tool_record(f"question number {i} about my order", "Alpha" if i % 2 else "Beta", ts=1_746_000_000 + i)
        if usage:
            record["response"]["usage"] = {"prompt_tokens": 1000 + 10 * i, "completion_tokens": 20}
        rows.append({"record_id": record_id(record), **record})
    return rows


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


def _stand_in(rows: list[dict[str, Any]], plan: EvalPlan) -> Any:
    right = {r["request"]["messages"][-1]["content"]: r for r in rows[: plan.right]}

    async def chat(request: ChatRequest) -> ChatResult:
        usage = Usage(plan.prompt_tokens, plan.completion_tokens)
        logged = right.get(request.messages[-1]["content"])
        if logged is None:
            return ChatResult({"role": "assistant", "content": "Sorry?"}, "stop", usage, latency_s=plan.latency_s)
        message = logged["response"]["choices"][0]["message"]
        return ChatResult(dict(message), "tool_calls", usage, latency_s=plan.latency_s)

    return chat


def make_finished_job(
    store: JobStore,
    settings: Settings,
    candidate: str,
    evals: dict[str, EvalPlan],
    *,
    n: int = 10,
    usage: bool = True,
    traffic: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    before_finalize: Callable[[str], None] | None = None,
) -> JobRecord:
    """A completed job of one ``candidate`` whose evals (``base-eval``, ... -> plan) ran on ``n`` records;
    ``traffic`` is the manifest's (default: 1,001 records over 10 days, 100 a day). ``before_finalize(job_id)``
    may change what the evals left on disk before the finalize stage reads it."""
    job = store.create_job(WORKLOAD, CLIENT, {"candidates": [candidate], **(config or {})})
    store.set_job_status(job.id, JobStatus.RUNNING)
    build = settings.home / "datasets" / WORKLOAD / CLIENT / "build-1"
    rows = eval_rows(n, usage=usage)
    _write_jsonl(build / "eval.jsonl", rows)
    seen = traffic or {"records": 1001, "first_timestamp": 1_746_000_000, "last_timestamp": 1_746_000_000 + 10 * DAY}
    (build / "manifest.json").write_bytes(orjson.dumps({"workload_id": WORKLOAD, "traffic": seen}))
    store.set_datasets(job.id, [("eval", n, str(build / "eval.jsonl"), build.name)])
    store.finish_stage(job.id, "datasets", TaskStatus.COMPLETED, output={"path": str(build), "build_id": build.name})
    store.finish_stage(job.id, "judge", TaskStatus.SKIPPED, error="no judge configured")
    run = store.add_candidate_run(job.id, candidate)
    for kind, plan in evals.items():
        out = eval_dir(settings, job.id, candidate, kind)
        summary = run_async(run_eval(rows, _stand_in(rows, plan), out, EvalConfig(EvalType(kind), candidate)))
        store.upsert_evaluation(run.id, kind, status=TaskStatus.COMPLETED, progress=100.0, artifact_path=str(out))
        output = {"summary": summary.to_dict(), "artifact_path": str(out), "model": candidate}
        store.finish_stage(job.id, f"{kind}:{candidate}", TaskStatus.COMPLETED, output=output)
    if before_finalize is not None:
        before_finalize(job.id)
    assert execute_stage(store, settings, job.id, "finalize", owner="test") is TaskStatus.COMPLETED
    finalize = store.get_stage(job.id, "finalize")
    assert finalize is not None
    store.update_job(job.id, result=finalize.output)
    return store.set_job_status(job.id, JobStatus.COMPLETED)
