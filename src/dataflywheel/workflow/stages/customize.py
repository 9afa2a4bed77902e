"""The customization stage: a LoRA run of the candidate on the train split (and the learning curve's runs)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dataflywheel.jobs.status import CandidateStage, TaskStatus
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.workflow.plan import StageKind
from dataflywheel.workflow.stages.context import StageCancelled, StageContext, StageSkipped
from dataflywheel.workflow.stages.paths import folder_name, training_run_name


def run_customize(ctx: StageContext) -> JsonObject:
    from dataflywheel.models.registry import resolve_model
    from dataflywheel.training import TrainingCancelled, TrainProgress, customize

    assert ctx.candidate is not None
    spec = resolve_model(ctx.candidate, ctx.settings)
    run_id = ctx.run_id()
    if spec.engine != "local" or not spec.customizable:
        ctx.store.upsert_customization(run_id, status=TaskStatus.SKIPPED)
        raise StageSkipped(f"{ctx.candidate} is not customizable (remote endpoint or customizable: false)")
    datasets = ctx.output_of(StageKind.DATASETS)
    started = time.monotonic()
    ctx.store.upsert_customization(run_id, status=TaskStatus.RUNNING, progress=0.0)
    if ctx.candidate_run().stage not in (CandidateStage.EVALUATING, CandidateStage.DEPLOYING):
        ctx.store.set_candidate_stage(run_id, CandidateStage.CUSTOMIZING)

    def progress(p: TrainProgress) -> None:
        if ctx.throttled("train", final=p.phase == "done"):
            ctx.store.upsert_customization(
                run_id,
                progress=round(p.percent, 2),
                epochs_completed=p.epochs_completed,
                total_epochs=p.total_epochs,
                steps_completed=p.steps_completed,
                total_steps=p.total_steps,
                loss=p.loss,
                tokens_per_s=p.tokens_per_s,
                eta_s=p.eta_s,
            )

    # The run id is the job's and the candidate's: a retried stage resumes the same run from its checkpoint.
    training_run = training_run_name(ctx.job.id, run_id)
    try:
        result = customize(
            ctx.settings,
            ctx.candidate,
            Path(datasets["path"]),
            overrides=(ctx.job.config or {}).get("training_config") or {},
            run_id=training_run,
            progress=progress,
            should_cancel=ctx.should_cancel,
        )
        curve = _train_curve(ctx, Path(datasets["path"]), training_run)
    except TrainingCancelled as exc:
        raise StageCancelled(str(exc)) from exc
    ctx.store.upsert_customization(
        run_id,
        fence=ctx.lease,
        status=TaskStatus.COMPLETED,
        progress=100.0,
        adapter_name=result.adapter.name,
        adapter_path=str(result.adapter.path),
        metrics=_small(result.metrics),
        eta_s=0.0,
        runtime_s=time.monotonic() - started,
    )
    output: dict[str, Any] = {
        "adapter_name": result.adapter.name,
        "adapter_path": str(result.adapter.path),
        "training_run": training_run,
        "train_examples": result.metrics.get("train_examples"),
    }
    if curve:
        output["learning_curve"] = curve
    return output


def _train_curve(ctx: StageContext, dataset: Path, training_run: str) -> list[dict[str, Any]]:
    """The job's learning curve, training side: one LoRA run per fraction of the train split (same overrides,
    a run id of its own so a retried stage resumes each), its adapter registered for the customized eval."""
    from dataflywheel.training import customize
    from dataflywheel.training.learning_curve import parse_fractions, percent, write_subset

    assert ctx.candidate is not None
    points = []
    for fraction in parse_fractions((ctx.job.config or {}).get("learning_curve")):
        subset = (
            ctx.settings.home / "jobs" / ctx.job.id / "learning-curve" / folder_name(ctx.candidate) / percent(fraction)
        )
        examples = write_subset(dataset, fraction, subset)
        run = customize(
            ctx.settings,
            ctx.candidate,
            subset,
            overrides=(ctx.job.config or {}).get("training_config") or {},
            run_id=f"{training_run}-lc{percent(fraction)}",
            should_cancel=ctx.should_cancel,
            name_suffix=f"-lc{percent(fraction)}",
        )
        points.append(
            {
                "fraction": fraction,
                "train_examples": examples,
                "adapter_name": run.adapter.name,
                "adapter_path": str(run.adapter.path),
            }
        )
    return points


def _small(metrics: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "recipe",
        "config",
        "class_counts",
        "best_epoch",
        "best_val_function_name_accuracy",
        "stopped_early",
        "final_train_loss",
        "final_val_loss",
        "epochs",
        "tokens_per_s",
        "train_examples",
        "val_examples",
        "skipped_count",
        "total_steps",
        "device",
        "dtype",
        "runtime_seconds",
    )
    return {k: metrics.get(k) for k in keep}
