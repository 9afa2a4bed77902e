"""The last stage: the job's result (metrics per candidate and eval, training summaries, cost, latency and
the recommendation).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from dataflywheel.jobs.status import TaskStatus
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.workflow.plan import StageKind, stage_key
from dataflywheel.workflow.stages.context import StageContext

logger = logging.getLogger(__name__)


def run_finalize(ctx: StageContext) -> JsonObject:
    """The job's result: per candidate and eval type, every metric with its interval, the same per reference
    class, and the confusion counts of reference class against predicted outcome; per customized candidate,
    how its LoRA run went (:func:`training_summary`); then what it all means (:mod:`dataflywheel.decision`):
    ``cost`` (per 1,000 requests and per month, against the logged model's), ``latency`` and the
    ``recommendation``. A cost that cannot be computed is stored as unknown with the reason; it never fails
    the job."""
    from dataflywheel.decision.decide import FinishedEval, decide, without_cost
    from dataflywheel.decision.schema import eval_type_name
    from dataflywheel.training.learning_curve import CurvePoint

    detail = ctx.store.job_detail(ctx.job.id)
    results: dict[str, Any] = {}
    training: dict[str, Any] = {}
    curves: dict[str, list[CurvePoint]] = {}
    finished: list[FinishedEval] = []
    for run in detail.candidates:
        evals: dict[str, Any] = {}
        for kind in (StageKind.BASE_EVAL, StageKind.ICL_EVAL, StageKind.CUSTOMIZED_EVAL):
            stage = ctx.store.get_stage(ctx.job.id, stage_key(kind, run.candidate))
            if stage is not None and stage.status == TaskStatus.COMPLETED and stage.output:
                summary = stage.output["summary"]
                artifacts = stage.output.get("artifact_path")
                finished.append(
                    FinishedEval(
                        run.candidate, eval_type_name(kind.value), summary, Path(artifacts) if artifacts else None
                    )
                )
                if stage.output.get("learning_curve"):
                    full = CurvePoint(1.0, _train_examples(ctx, run.candidate), summary["metrics"])
                    curves[run.candidate] = [CurvePoint.of(p) for p in stage.output["learning_curve"]] + [full]
                evals[kind.value] = {
                    "metrics": summary["metrics"],
                    "per_class": summary.get("per_class") or {},
                    "confusion": summary.get("confusion") or {},
                    "judge": summary.get("judge") or None,
                    "samples": summary["samples"],
                    "errors": summary["errors"],
                }
        results[run.candidate] = evals
        if run.customization is not None and run.customization.metrics:
            from dataflywheel.training.report import training_summary

            training[run.candidate] = training_summary(run.customization.metrics)
    try:
        dataset_dir = Path(ctx.output_of(StageKind.DATASETS)["path"])
        decision = decide(ctx.settings, finished, results, training, dataset_dir, learning_curves=curves)
    except Exception as exc:  # the accuracy results stand without the cost: store it as unknown, say why
        logger.exception("the cost of job %s could not be computed", ctx.job.id)
        reason = f"the cost could not be computed: {type(exc).__name__}: {exc}"
        decision = without_cost(ctx.settings, results, training, reason, curves)
    result: dict[str, Any] = {
        "candidates": results,
        "training": training,
        "judge": _judge_check(ctx),
        **decision.to_result(),
    }
    if curves:
        result["learning_curve"] = {name: [p.to_dict() for p in points] for name, points in curves.items()}
    return result


def _train_examples(ctx: StageContext, candidate: str) -> int:
    """The train rows of a candidate's (full) LoRA run, from its customize stage's output."""
    stage = ctx.store.get_stage(ctx.job.id, stage_key(StageKind.CUSTOMIZE, candidate))
    return int(((stage.output if stage is not None else None) or {}).get("train_examples") or 0)


def _judge_check(ctx: StageContext) -> dict[str, Any]:
    """How the job's judge check ended, for the result: ``completed`` (judge metrics are in the evals) or
    ``skipped`` with the reason (none configured, or it did not answer)."""
    stage = ctx.store.get_stage(ctx.job.id, stage_key(StageKind.JUDGE))
    judge = ctx.settings.judge
    return {
        "status": stage.status.value if stage is not None else TaskStatus.SKIPPED.value,
        "model": judge.model if judge.enabled else None,
        "reason": stage.error if stage is not None else None,
    }
