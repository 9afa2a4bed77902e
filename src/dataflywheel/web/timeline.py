"""A job's stage timeline: every stage of its plan in order, with its bar on the job's clock, its progress and
a line on it (pure: records in, rows out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from dataflywheel.jobs.records import CandidateRunDetail, JobDetail, StageRecord
from dataflywheel.jobs.status import JobKind, TaskStatus
from dataflywheel.web import format as fmt
from dataflywheel.workflow.plan import StageKind, parse_stage_key, plan_feedback, plan_job

__all__ = ["NOT_RUN", "TimelineRow", "candidates_of", "timeline"]


@dataclass(frozen=True)
class TimelineRow:
    key: str
    label: str
    candidate: str | None
    status: str
    progress: float
    """0 to 100."""
    detail: str
    left: float
    """Where the stage's bar starts, in percent of the job's time so far."""
    width: float
    started_at: datetime | None
    finished_at: datetime | None


_STAGE_LABELS = {
    StageKind.DATASETS: "datasets",
    StageKind.JUDGE: "judge check",
    StageKind.DEPLOY: "deploy",
    StageKind.BASE_EVAL: "base eval",
    StageKind.ICL_EVAL: "ICL eval",
    StageKind.CUSTOMIZE: "LoRA training",
    StageKind.CUSTOMIZED_EVAL: "customized eval",
    StageKind.SHUTDOWN: "shut down",
    StageKind.FINALIZE: "result",
    StageKind.FEEDBACK: "feedback loop",
}


def candidates_of(detail: JobDetail) -> list[str]:
    named = [str(c) for c in (detail.job.config or {}).get("candidates") or []]
    return list(dict.fromkeys([*named, *(c.candidate for c in detail.candidates)]))


NOT_RUN = "not run"
"""A planned stage that a finished job never started (it was cancelled or failed first)."""


def timeline(
    detail: JobDetail,
    stages: Sequence[StageRecord],
    now: datetime,
    customizable: Mapping[str, bool] | None = None,
) -> list[TimelineRow]:
    """Every stage of the job's plan in order (recorded, pending, or never run), with its bar on the job's
    clock and its progress; stages recorded outside the plan come last. ``customizable`` as the driver plans
    (False: no LoRA stages for that candidate; default True)."""
    job = detail.job
    if job.kind is JobKind.FEEDBACK:
        plan = plan_feedback()
    else:
        plan = plan_job(candidates_of(detail), dict(customizable or {}))
    by_key = {s.key: s for s in stages}
    keys = [s.key for s in plan] + [s.key for s in stages if s.key not in {p.key for p in plan}]
    start = job.started_at or min((s.started_at for s in stages if s.started_at), default=None) or job.created_at
    end = job.finished_at if job.status.terminal and job.finished_at else now
    span = max((end - start).total_seconds(), 1e-6)
    runs = {r.candidate: r for r in detail.candidates}
    rows = []
    for key in keys:
        stage = by_key.get(key)
        kind, candidate = parse_stage_key(key)
        status = stage.status.value if stage else NOT_RUN if job.status.terminal else TaskStatus.PENDING.value
        progress, detail_text = _stage_progress(kind, runs.get(candidate or ""), stage, detail)
        left = width = 0.0
        if stage is not None and stage.started_at is not None:
            s0 = (stage.started_at - start).total_seconds()
            s1 = ((stage.finished_at or end) - start).total_seconds()
            left = max(0.0, min(100.0, 100 * s0 / span))
            width = max(0.6, min(100.0 - left, 100 * (s1 - s0) / span))
        rows.append(
            TimelineRow(
                key=key,
                label=_STAGE_LABELS.get(kind, kind.value),
                candidate=candidate,
                status=status,
                progress=progress,
                detail=detail_text,
                left=round(left, 2),
                width=round(width, 2),
                started_at=stage.started_at if stage else None,
                finished_at=stage.finished_at if stage else None,
            )
        )
    return rows


def _stage_progress(
    kind: StageKind, run: CandidateRunDetail | None, stage: StageRecord | None, detail: JobDetail
) -> tuple[float, str]:
    """A stage's progress (0-100) and a line on it: samples done, epochs and loss, the error or skip reason."""
    status = stage.status if stage else TaskStatus.PENDING
    if stage is not None and stage.error and status is not TaskStatus.COMPLETED:
        return (100.0 if status.terminal else 0.0), stage.error
    done = 100.0 if status is TaskStatus.COMPLETED else 0.0
    if run is not None and kind in (StageKind.BASE_EVAL, StageKind.ICL_EVAL, StageKind.CUSTOMIZED_EVAL):
        ev = next((e for e in run.evaluations if e.eval_type == kind.value), None)
        if ev is not None:
            text = f"{ev.done}/{ev.total if ev.total is not None else '?'} samples"
            if ev.status is TaskStatus.RUNNING and ev.eta_s:
                text += f", about {fmt.duration(ev.eta_s)} left"
            return (100.0 if ev.status.terminal else ev.progress), text
    if run is not None and kind is StageKind.CUSTOMIZE and run.customization is not None:
        c = run.customization
        text = f"epoch {c.epochs_completed}/{c.total_epochs or '?'}, step {c.steps_completed}/{c.total_steps or '?'}"
        if c.loss is not None:
            text += f", loss {c.loss:.3f}"
        if c.status is TaskStatus.RUNNING and c.eta_s:
            text += f", about {fmt.duration(c.eta_s)} left"
        return (100.0 if c.status.terminal else c.progress), text
    if kind is StageKind.DATASETS and detail.datasets:
        counts = {d.name: d.num_records for d in detail.datasets}
        return done, ", ".join(f"{n} {name}" for name, n in counts.items() if name != "icl")
    if kind is StageKind.DEPLOY and run is not None and run.deployment:
        return done, str(run.deployment.get("base_url") or "")
    return done, ""
