"""What the API derives from the stored records rather than stores: a task's runtime while it runs, a
candidate's deployment status (the blueprint's), and a job's overall progress and ETA. The job pages
(:mod:`dataflywheel.web`) show the same numbers."""

from __future__ import annotations

from datetime import datetime

from dataflywheel.jobs.records import CandidateRunDetail, CustomizationRecord, EvaluationRecord, JobDetail
from dataflywheel.jobs.status import CandidateStage, JobStatus, TaskStatus

__all__ = ["deployment_status", "job_progress", "task_runtime"]


def task_runtime(runtime_s: float | None, started: datetime | None, finished: datetime | None, now: datetime) -> float:
    """The stored runtime; while running, the time since it started."""
    if runtime_s is not None:
        return max(runtime_s, 0.0)
    if started is None:
        return 0.0
    return max(((finished or now) - started).total_seconds(), 0.0)


def deployment_status(run: CandidateRunDetail) -> str:
    """The blueprint's deployment status of a candidate, from its stage and deployment."""
    stage = run.stage
    if stage.terminal:
        return stage.value
    if stage in (CandidateStage.PENDING, CandidateStage.DEPLOYING) or not run.deployment:
        return "pending"
    return "ready"


_EVALS_PER_CANDIDATE = 3


def job_progress(detail: JobDetail) -> tuple[float, float | None]:
    """The job's progress in percent and an ETA in seconds (None: nothing running reports one).

    Every unit of work counts the same: the datasets, and per candidate each evaluation (three, or two when
    its customization is skipped) and its customization. Ended tasks count as done whatever their end.
    """
    job = detail.job
    if job.status is JobStatus.COMPLETED:
        return 100.0, 0.0
    parts: list[float] = [100.0 if detail.datasets else 0.0]
    etas: list[float] = []
    for run in detail.candidates:
        tasks: list[EvaluationRecord | CustomizationRecord] = list(run.evaluations)
        expected = _EVALS_PER_CANDIDATE
        if run.customization is not None:
            tasks.append(run.customization)
            if run.customization.status is TaskStatus.SKIPPED:
                expected -= 1
        expected += 1  # the customization
        for task in tasks:
            parts.append(100.0 if task.status.terminal else task.progress)
            if task.status is TaskStatus.RUNNING and task.eta_s is not None:
                etas.append(task.eta_s)
        parts.extend(0.0 for _ in range(max(expected - len(tasks), 0)))
    if len(parts) == 1 and not job.status.terminal:
        # Candidates appear once a worker starts the job: until then only the datasets are known.
        parts.extend([0.0] * (_EVALS_PER_CANDIDATE + 1))
    progress = round(sum(parts) / len(parts), 2)
    return min(progress, 100.0), (max(etas) if etas else None)
