"""The evaluation stages (base, ICL, customized): score a candidate's deployment on the eval (or ICL) split,
with the judge when the job has one, and the learning curve's adapters for a customized eval.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dataflywheel.errors import FlywheelError
from dataflywheel.jobs.status import TaskStatus
from dataflywheel.workflow.plan import StageKind, stage_key
from dataflywheel.workflow.stages.context import StageCancelled, StageContext
from dataflywheel.workflow.stages.deploy import deployment_alive, deployment_client
from dataflywheel.workflow.stages.paths import eval_dir

if TYPE_CHECKING:
    from dataflywheel.models.client import OpenAIClient

logger = logging.getLogger(__name__)


def run_evaluation(ctx: StageContext) -> dict[str, Any]:
    from dataflywheel.evaluation.runner import (
        EvalCancelled,
        EvalConfig,
        EvalProgress,
        EvalType,
        has_text_references,
        load_dataset,
        run_async,
        run_eval,
    )

    assert ctx.candidate is not None
    run_id = ctx.run_id()
    datasets = ctx.output_of(StageKind.DATASETS)
    deployment = ctx.candidate_run().deployment
    if not deployment_alive(deployment):
        raise FlywheelError(f"the deployment of {ctx.candidate} at {(deployment or {}).get('base_url')} is gone")
    assert deployment is not None
    model = str(deployment["model"])
    if ctx.kind == StageKind.CUSTOMIZED_EVAL:
        adapter = ctx.output_of(StageKind.CUSTOMIZE, ctx.candidate)
        model = adapter["adapter_name"]
        _load_adapter(deployment, model, adapter["adapter_path"])
    dataset = Path(datasets["path"]) / ("icl.jsonl" if ctx.kind == StageKind.ICL_EVAL else "eval.jsonl")
    rows = load_dataset(dataset)
    eval_type = EvalType(ctx.kind.value)
    ctx.store.upsert_evaluation(run_id, eval_type.value, status=TaskStatus.RUNNING, total=len(rows), progress=0.0)
    out_dir = eval_dir(ctx.settings, ctx.job.id, ctx.candidate, eval_type.value)
    executor = ctx.settings.executor
    config = EvalConfig(
        eval_type, ctx.candidate, concurrency=executor.eval_concurrency, max_tokens=executor.eval_max_tokens
    )
    judge = _judge(ctx, datasets)
    # Only text answers are embedded: a tool-only eval set never loads (or pays for) an embedder.
    config.embedder = _eval_embedder(ctx) if has_text_references(rows) else None
    client = deployment_client(
        deployment, max_concurrency=executor.eval_concurrency, timeout=600.0 if deployment.get("local") else 120.0
    )
    cancel = threading.Event()

    async def chat(request: Any) -> Any:
        return await client.chat(request, model)

    def progress(p: EvalProgress) -> None:
        if ctx.throttled("eval", final=p.done == p.total):
            ctx.store.upsert_evaluation(
                run_id, eval_type.value, progress=round(p.percent, 2), done=p.done, total=p.total, eta_s=p.eta_s
            )

    watcher = _CancelWatcher(ctx, cancel)
    try:
        summary = run_async(run_eval(rows, chat, out_dir, config, judge=judge, progress=progress, cancel=cancel))
    except EvalCancelled as exc:
        raise StageCancelled(str(exc)) from exc
    finally:
        watcher.stop()
        close = getattr(config.embedder, "close", None)  # an endpoint embedder holds connections
        if close is not None:
            close()
    curve = _eval_curve(ctx, deployment, rows, config, chat_client=client) if adapter_curve(ctx) else []
    scores = {name: agg["mean"] for name, agg in summary.metrics.items() if agg.get("n")}
    if summary.judge:
        scores["judge"] = summary.judge["score"]["mean"]
    ctx.store.upsert_evaluation(
        run_id,
        eval_type.value,
        fence=ctx.lease,
        status=TaskStatus.COMPLETED,
        progress=100.0,
        done=summary.samples,
        total=len(rows),
        eta_s=0.0,
        scores=scores,
        artifact_path=str(out_dir),
    )
    output: dict[str, Any] = {"summary": summary.to_dict(), "artifact_path": str(out_dir), "model": model}
    if curve:
        output["learning_curve"] = curve
    return output


def adapter_curve(ctx: StageContext) -> list[dict[str, Any]]:
    """The learning curve's adapters a customized eval scores too (none for the other evals)."""
    if ctx.kind != StageKind.CUSTOMIZED_EVAL:
        return []
    return list(ctx.output_of(StageKind.CUSTOMIZE, ctx.candidate).get("learning_curve") or [])


def _eval_curve(
    ctx: StageContext, deployment: dict[str, Any], rows: list[dict[str, Any]], config: Any, *, chat_client: OpenAIClient
) -> list[dict[str, Any]]:
    """The learning curve, eval side: each fraction's adapter scored on the same eval rows as the full run,
    samples and summary in an eval folder of its own (``customized-eval@25``...)."""
    from dataflywheel.evaluation.runner import run_async, run_eval
    from dataflywheel.training.learning_curve import percent

    assert ctx.candidate is not None
    points = []
    for point in adapter_curve(ctx):
        name = str(point["adapter_name"])
        _load_adapter(deployment, name, str(point["adapter_path"]))
        out_dir = eval_dir(ctx.settings, ctx.job.id, ctx.candidate, f"{ctx.kind.value}@{percent(point['fraction'])}")

        async def chat(request: Any, model: str = name) -> Any:
            return await chat_client.chat(request, model)

        summary = run_async(run_eval(rows, chat, out_dir, config))
        points.append(
            {
                "fraction": point["fraction"],
                "train_examples": point["train_examples"],
                "metrics": summary.metrics,
                "artifact_path": str(out_dir),
            }
        )
    return points


def _eval_embedder(ctx: StageContext) -> Any:
    """The ``icl.embedder`` for ``embedding_similarity`` of text answers, or None (warned) when it cannot be
    built: the metric is optional, the eval runs without it."""
    try:
        from dataflywheel.icl.embedders import make_embedder

        return make_embedder(ctx.settings.icl.embedder)
    except Exception as exc:  # a missing package, a model that cannot load, a bad endpoint setting
        logger.warning("%s of %s: embedding_similarity left out, no embedder: %s", ctx.kind.value, ctx.candidate, exc)
        return None


def _judge(ctx: StageContext, datasets: dict[str, Any]) -> Any:
    """The job's judge, or None when there is none: not configured, or skipped because it did not answer the
    job's check (its stage says why)."""
    judge = ctx.settings.judge
    if not judge.enabled:
        return None
    check = ctx.store.get_stage(ctx.job.id, stage_key(StageKind.JUDGE))
    if check is None or check.status != TaskStatus.COMPLETED:
        return None
    from dataflywheel.evaluation.judge import Judge, JudgeCache, client_judge_chat, judge_client

    assert judge.model
    kind = "tool_calling_correctness" if datasets.get("workload_type") == "tool_calling" else "similarity"
    cache = JudgeCache(ctx.settings.home / "judge-cache.db")
    return Judge(client_judge_chat(judge_client(judge), judge.model), model=judge.model, kind=kind, cache=cache)  # type: ignore[arg-type]


class _CancelWatcher:
    """Sets ``event`` when the job is cancelled, also while no request finishes (a slow model)."""

    def __init__(self, ctx: StageContext, event: threading.Event) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ctx, event), daemon=True)
        self._thread.start()

    def _run(self, ctx: StageContext, event: threading.Event) -> None:
        while not self._stop.wait(0.5):
            if ctx.store.is_cancel_requested(ctx.job.id):
                event.set()
                return

    def stop(self) -> None:
        self._stop.set()


def _load_adapter(deployment: dict[str, Any], name: str, path: str) -> None:
    """Have the candidate's server load the adapter (our server and vLLM share this API)."""
    from dataflywheel.models.client import EndpointError

    with deployment_client(deployment, timeout=300.0, max_retries=0).sync() as client:
        try:
            client.load_lora_adapter(name, path)
        except EndpointError as exc:
            raise FlywheelError(f"cannot load adapter {name} into {deployment['base_url']}: {exc}") from exc
