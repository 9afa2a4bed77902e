"""The stages every job starts with: build the datasets from the logs, check the judge."""

from __future__ import annotations

from dataflywheel.jobs.status import TaskStatus
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.workflow.stages.context import StageContext, StageSkipped


def run_datasets(ctx: StageContext) -> JsonObject:
    from dataflywheel.datasets.build import build_datasets
    from dataflywheel.datasets.sources import StoreSource
    from dataflywheel.logstore import LogQuery, open_log_store

    job = ctx.job
    with open_log_store(ctx.settings) as logs:
        source = StoreSource(logs, LogQuery(job.workload_id, job.client_id))
        build = build_datasets(source, ctx.settings, workload_id=job.workload_id, client_id=job.client_id)
    counts = build.counts
    ctx.store.set_datasets(
        job.id,
        [
            (name, counts.get(name, 0), str(build.path / f"{name}.jsonl"), build.path.name)
            for name in ("eval", "icl", "train", "val")
        ],
        fence=ctx.lease,
    )
    ctx.store.update_job(job.id, num_records=build.stats.total_records)
    return {
        "path": str(build.path),
        "build_id": build.path.name,
        "counts": {**counts},
        "workload_type": build.manifest.get("workload_type"),
    }


def run_judge(ctx: StageContext) -> JsonObject:
    judge = ctx.settings.judge
    if not judge.enabled:
        ctx.store.upsert_judge(ctx.job.id, kind="disabled", status=TaskStatus.SKIPPED)
        raise StageSkipped("no judge configured (judge.enabled is false): judge metrics are left out")
    from dataflywheel.evaluation.judge import JudgeUnavailableError, check_judge, client_judge_chat, judge_client
    from dataflywheel.evaluation.runner import run_async

    assert judge.base_url and judge.model
    ctx.store.upsert_judge(
        ctx.job.id, kind="remote", model=judge.model, base_url=judge.base_url, status=TaskStatus.RUNNING
    )
    # Bounded: a judge that hangs must not hold the LoRA runs and deployments that wait for this check.
    client = judge_client(judge, timeout=judge.check_timeout_s, max_retries=1, backoff=0.5)
    problem = run_async(check_judge(client_judge_chat(client, judge.model)))
    if problem:
        reason = f"judge {judge.model} at {judge.base_url}: {problem}"
        if judge.required:  # fails the job; deploy and customize wait for this stage, so nothing has started
            raise JudgeUnavailableError(f"{reason} (judge.required is true: the job stops before any training)")
        ctx.store.upsert_judge(ctx.job.id, status=TaskStatus.SKIPPED, error=reason)
        raise StageSkipped(f"{reason}; judge metrics are left out (judge.required is false)")
    ctx.store.upsert_judge(ctx.job.id, status=TaskStatus.COMPLETED)
    return {"model": judge.model, "base_url": judge.base_url}
