"""What the store's methods do inside their transaction: lock the row they change (``FOR NO KEY UPDATE`` on
PostgreSQL), check and apply a status change (:func:`~dataflywheel.jobs.status.check_transition`), keep the
first error, derive timestamps and record every change as an event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from dataflywheel.jobs.errors import JobNotFoundError
from dataflywheel.jobs.records import DatasetRecord, JobDetail, JobRecord, JudgeRecord, StageRecord
from dataflywheel.jobs.status import EventKind, JobStatus, TaskStatus, check_transition
from dataflywheel.jobs.store.mapping import run_detail, to_record
from dataflywheel.jobs.tables import CandidateRun, Job, JobEvent, Stage, utcnow

_T = TypeVar("_T")
_K = TypeVar("_K")


def found(value: _T | None, not_found: Callable[[_K], Exception], key: _K) -> _T:
    """``value``, the read of the row ``key``; None (no such row) raises ``not_found(key)``."""
    if value is None:
        raise not_found(key)
    return value


def job_not_found(job_id: str) -> JobNotFoundError:
    return JobNotFoundError(f"job {job_id!r} not found")


def run_not_found(run_id: int) -> JobNotFoundError:
    return JobNotFoundError(f"candidate run {run_id} not found")


def lock_job(s: Session, job_id: str) -> Job:
    # FOR NO KEY UPDATE: excludes other status changes of the job, yet lets other transactions insert
    # rows that reference it (events, stages), which only need a key-share lock.
    return found(s.scalar(select(Job).where(Job.id == job_id).with_for_update(key_share=True)), job_not_found, job_id)


def lock_run(s: Session, run_id: int) -> CandidateRun:
    stmt = select(CandidateRun).where(CandidateRun.id == run_id).with_for_update(key_share=True)
    return found(s.scalar(stmt), run_not_found, run_id)


def load_detail(s: Session, job_id: str) -> JobDetail:
    # Five queries whatever the job's size: the job joined with its judge, then its datasets, its
    # candidate runs joined with their customizations, all their evaluations, and its stages.
    stmt = (
        select(Job)
        .where(Job.id == job_id)
        .options(
            joinedload(Job.judge),
            selectinload(Job.datasets),
            selectinload(Job.candidate_runs).options(
                joinedload(CandidateRun.customization), selectinload(CandidateRun.evaluations)
            ),
        )
        .execution_options(populate_existing=True)
    )
    job = found(s.scalar(stmt), job_not_found, job_id)
    stages = select(Stage).where(Stage.job_id == job_id).order_by(Stage.id)
    return JobDetail(
        job=to_record(JobRecord, job),
        candidates=tuple(run_detail(run) for run in job.candidate_runs),
        judge=None if job.judge is None else to_record(JudgeRecord, job.judge),
        datasets=tuple(to_record(DatasetRecord, d) for d in job.datasets),
        stages=tuple(to_record(StageRecord, st) for st in s.scalars(stages)),
    )


def change_job_status(s: Session, job: Job, new: JobStatus, error: str | None, message: str | None = None) -> None:
    old = job.status
    check_transition(f"job {job.id}", old, new)
    now = utcnow()
    changed_error = keep_first_error(job, error)
    if new == old:
        if changed_error:
            job.updated_at = now
        return
    job.status = new
    job.updated_at = now
    if new is JobStatus.RUNNING and job.started_at is None:
        job.started_at = now
    if new.terminal:
        job.finished_at = now
        if new is JobStatus.COMPLETED:
            job.progress = 100.0
    text_ = change_message("job", old, new, error)
    add_event(
        s,
        job.id,
        EventKind.STATUS,
        f"{message}: {text_}" if message else text_,
        data={"from": old.value, "to": new.value, "error": error},
        ts=now,
    )


def change_message(what: str, old: Any, new: Any, error: str | None) -> str:
    return f"{what}: {old} -> {new}" + (f" ({error})" if error else "")


def keep_first_error(obj: Any, error: str | None) -> bool:
    """Store ``error`` unless ``obj`` has one already: the first error is the cause."""
    if error and obj.error is None:
        obj.error = error
        return True
    return False


def set_finished(obj: Any, now: datetime) -> None:
    obj.finished_at = now
    if obj.started_at is not None:
        obj.runtime_s = (now - obj.started_at).total_seconds()


def apply_task_fields(
    s: Session, obj: Any, fields: dict[str, Any], *, job_id: str, stage: str, timed: bool = True
) -> None:
    """Apply an upsert's fields to an evaluation, customization or judge row (status checked, first
    error kept, timestamps derived from status changes unless given explicitly)."""
    fields = dict(fields)
    error = fields.pop("error", None)
    keep_first_error(obj, error)
    if "status" in fields:
        new = TaskStatus(fields.pop("status"))
        old = obj.status
        check_transition(f"{stage} of job {job_id}", old, new)
        if new != old:
            now = utcnow()
            obj.status = new
            if timed and new is TaskStatus.RUNNING and obj.started_at is None:
                obj.started_at = now
            if timed and new.terminal:
                set_finished(obj, now)
            add_event(
                s,
                job_id,
                EventKind.STAGE,
                change_message(stage, old, new, error),
                stage=stage,
                data={"from": old.value, "to": new.value, "error": error},
                ts=now,
            )
    for name, value in fields.items():
        setattr(obj, name, value)


def add_event(
    s: Session,
    job_id: str,
    kind: EventKind | str,
    message: str,
    *,
    stage: str | None = None,
    data: Mapping[str, object] | None = None,
    ts: datetime | None = None,
) -> JobEvent:
    ev = JobEvent(job_id=job_id, ts=ts or utcnow(), kind=str(kind), stage=stage, message=message, data=data)
    s.add(ev)
    return ev
