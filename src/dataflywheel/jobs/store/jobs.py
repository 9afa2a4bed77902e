"""The jobs table and its events: create, read, list, change status, cancel, delete; the job's owner
(claim, heartbeat, release: which worker drives it) and the per-workload summaries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from dataflywheel.jobs.errors import JobFinishedError, JobRunningError
from dataflywheel.jobs.records import EventRecord, JobDetail, JobRecord, WorkloadSummary
from dataflywheel.jobs.status import JOB_UNFINISHED, EventKind, JobKind, JobStatus
from dataflywheel.jobs.store.connection import StoreConnection
from dataflywheel.jobs.store.leases import DEFAULT_STALE_AFTER_S
from dataflywheel.jobs.store.mapping import to_record
from dataflywheel.jobs.store.transitions import (
    add_event,
    change_job_status,
    found,
    job_not_found,
    load_detail,
    lock_job,
)
from dataflywheel.jobs.store.values import UNSET, Unset, clean_values, given
from dataflywheel.jobs.tables import Job, JobEvent, new_job_id, utcnow


class JobRows(StoreConnection):
    """Jobs, their events, their owners and the workload summaries."""

    def create_job(
        self,
        workload_id: str,
        client_id: str,
        config: Mapping[str, Any] | None = None,
        kind: JobKind = JobKind.FLYWHEEL,
    ) -> JobRecord:
        """Store a new pending job. ``config`` holds the request's overrides (JSON-serializable)."""
        now = utcnow()
        with self._tx("create job", write=True) as s:
            job = Job(
                id=new_job_id(),
                kind=JobKind(kind),
                workload_id=workload_id,
                client_id=client_id,
                status=JobStatus.PENDING,
                config=dict(config or {}),
                created_at=now,
                updated_at=now,
                num_records=0,
                progress=0.0,
            )
            s.add(job)
            s.flush()
            add_event(s, job.id, EventKind.STATUS, "created (pending)", data={"to": JobStatus.PENDING.value}, ts=now)
            return to_record(JobRecord, job)

    def get_job(self, job_id: str) -> JobRecord:
        """The job ``job_id``; :class:`JobNotFoundError` if there is none."""
        with self._tx("get job") as s:
            return to_record(JobRecord, found(s.get(Job, job_id), job_not_found, job_id))

    def job_detail(self, job_id: str) -> JobDetail:
        """The job with its candidates (evaluations, customization), judge, datasets and stages, in five queries."""
        with self._tx("read job detail") as s:
            return load_detail(s, job_id)

    def list_jobs(
        self,
        *,
        status: JobStatus | Iterable[JobStatus] | None = None,
        workload_id: str | None = None,
        client_id: str | None = None,
        kind: JobKind | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[JobRecord], int]:
        """A page of jobs, newest first, and the number of jobs matching the filters (all pages)."""
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be >= 0, got limit={limit}, offset={offset}")
        conditions: list[ColumnElement[bool]] = []
        if status is not None:
            statuses = [JobStatus(status)] if isinstance(status, str) else [JobStatus(s) for s in status]
            conditions.append(Job.status.in_(statuses))
        if workload_id is not None:
            conditions.append(Job.workload_id == workload_id)
        if client_id is not None:
            conditions.append(Job.client_id == client_id)
        if kind is not None:
            conditions.append(Job.kind == JobKind(kind))
        with self._tx("list jobs") as s:
            total = s.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
            page = s.scalars(
                select(Job)
                .where(*conditions)
                .order_by(Job.created_at.desc(), Job.id.desc())
                .limit(limit)
                .offset(offset)
            )
            return [to_record(JobRecord, j) for j in page], total

    def set_job_status(self, job_id: str, status: JobStatus, *, error: str | None = None) -> JobRecord:
        """Change the job's status, enforcing :data:`~dataflywheel.jobs.status.JOB_TRANSITIONS`.

        Entering running sets ``started_at`` (the first time only); entering a terminal status sets
        ``finished_at`` (and progress 100 when completed). ``error`` is kept only if the job has none yet:
        the first error is the cause, later ones are consequences (all are in the events). Raises
        :class:`IllegalTransitionError` or :class:`JobNotFoundError`.
        """
        new = JobStatus(status)
        with self._tx("set job status", write=True) as s:
            job = lock_job(s, job_id)
            change_job_status(s, job, new, error)
            return to_record(JobRecord, job)

    def update_job(
        self,
        job_id: str,
        *,
        num_records: int | Unset = UNSET,
        progress: float | Unset = UNSET,
        result: Mapping[str, object] | Unset | None = UNSET,
        owner: str | Unset | None = UNSET,
        heartbeat_at: datetime | Unset | None = UNSET,
    ) -> JobRecord:
        """Set the fields given: ``num_records``, ``progress`` (0-100), ``result``, ``owner``, ``heartbeat_at``
        (timezone-aware). The others are unchanged; None clears a field."""
        fields = clean_values(
            given(num_records=num_records, progress=progress, result=result, owner=owner, heartbeat_at=heartbeat_at)
        )
        with self._tx("update job", write=True) as s:
            job = lock_job(s, job_id)
            for name, value in fields.items():
                setattr(job, name, value)
            job.updated_at = utcnow()
            return to_record(JobRecord, job)

    def request_cancel(self, job_id: str) -> JobRecord:
        """Ask for the job to stop.

        A pending job that no worker holds becomes cancelled at once (nobody else would finish the
        cancellation); a running job, or a pending one a worker has claimed, becomes cancelling and its
        worker stops it. Cancelling again is a no-op. Raises :class:`JobFinishedError` when the job has
        already finished.
        """
        with self._tx("cancel job", write=True) as s:
            job = lock_job(s, job_id)
            if job.status.terminal:
                raise JobFinishedError(f"job {job_id} is already {job.status.value}; there is nothing to cancel")
            if job.status is JobStatus.CANCELLING:
                return to_record(JobRecord, job)
            new = JobStatus.CANCELLED if job.status is JobStatus.PENDING and job.owner is None else JobStatus.CANCELLING
            change_job_status(s, job, new, None, message="cancellation requested")
            return to_record(JobRecord, job)

    def is_cancel_requested(self, job_id: str) -> bool:
        """Whether the job is cancelling or cancelled. One indexed single-column read: poll it freely."""
        with self._tx("read job status") as s:
            status = found(s.scalar(select(Job.status).where(Job.id == job_id)), job_not_found, job_id)
            return status in (JobStatus.CANCELLING, JobStatus.CANCELLED)

    def delete_job(self, job_id: str) -> JobDetail:
        """Delete a finished job and everything of it; return what was deleted (to remove its files).

        Raises :class:`JobRunningError` unless the job is in a terminal status.
        """
        with self._tx("delete job", write=True) as s:
            status = found(
                s.scalar(select(Job.status).where(Job.id == job_id).with_for_update()), job_not_found, job_id
            )
            if not status.terminal:
                raise JobRunningError(f"job {job_id} is {status.value}: cancel it and let it finish before deleting")
            detail = load_detail(s, job_id)
            s.execute(delete(Job).where(Job.id == job_id))  # children go by ON DELETE CASCADE
            return detail

    def add_event(
        self,
        job_id: str,
        kind: EventKind | str,
        message: str,
        *,
        stage: str | None = None,
        data: Mapping[str, object] | None = None,
    ) -> EventRecord:
        """Append an event to the job's history."""
        with self._tx("add event", write=True) as s:
            found(s.scalar(select(Job.id).where(Job.id == job_id)), job_not_found, job_id)
            ev = add_event(s, job_id, kind, message, stage=stage, data=data)
            s.flush()
            return to_record(EventRecord, ev)

    def list_events(self, job_id: str, *, after_id: int = 0, limit: int = 500) -> list[EventRecord]:
        """The job's events with an id above ``after_id``, oldest first (poll with the last id seen)."""
        with self._tx("list events") as s:
            events = list(
                s.scalars(
                    select(JobEvent)
                    .where(JobEvent.job_id == job_id, JobEvent.id > after_id)
                    .order_by(JobEvent.id)
                    .limit(limit)
                )
            )
            if not events and s.scalar(select(Job.id).where(Job.id == job_id)) is None:
                raise job_not_found(job_id)
            return [to_record(EventRecord, e) for e in events]

    def unfinished_jobs(self) -> list[JobRecord]:
        """Jobs that are pending, running or cancelling, oldest first (what a restarted service resumes)."""
        with self._tx("list unfinished jobs") as s:
            jobs = s.scalars(select(Job).where(Job.status.in_(sorted(JOB_UNFINISHED))).order_by(Job.created_at, Job.id))
            return [to_record(JobRecord, j) for j in jobs]

    def claim_job(self, job_id: str, owner: str, *, stale_after_s: float = DEFAULT_STALE_AFTER_S) -> bool:
        """Make ``owner`` the holder of an unfinished job; True if it now holds it.

        It wins when nobody holds the job, when it already does, or when the holder's heartbeat is older
        than ``stale_after_s``. One conditional UPDATE: of two racing claimants exactly one wins.
        """
        now = utcnow()
        stale = now - timedelta(seconds=stale_after_s)
        stmt = (
            update(Job)
            .where(
                Job.id == job_id,
                Job.status.in_(sorted(JOB_UNFINISHED)),
                or_(Job.owner.is_(None), Job.owner == owner, Job.heartbeat_at.is_(None), Job.heartbeat_at < stale),
            )
            .values(owner=owner, heartbeat_at=now, updated_at=now)
        )
        return self._update_one("claim job", stmt)

    def heartbeat(self, job_id: str, owner: str) -> bool:
        """Refresh ``owner``'s hold on the job; False if it no longer holds it (another worker took over)."""
        now = utcnow()
        stmt = update(Job).where(Job.id == job_id, Job.owner == owner).values(heartbeat_at=now)
        return self._update_one("heartbeat", stmt)

    def release_job(self, job_id: str, owner: str) -> bool:
        """Let go of the job; False if ``owner`` did not hold it."""
        stmt = (
            update(Job)
            .where(Job.id == job_id, Job.owner == owner)
            .values(owner=None, heartbeat_at=None, updated_at=utcnow())
        )
        return self._update_one("release job", stmt)

    def workloads(self) -> list[WorkloadSummary]:
        """One summary per (workload_id, client_id): how many jobs, and the newest job's id, status, time.

        Most recently active first.
        """
        group = (Job.workload_id, Job.client_id)
        ranked = select(
            Job.workload_id,
            Job.client_id,
            Job.id,
            Job.status,
            Job.created_at,
            func.row_number().over(partition_by=group, order_by=(Job.created_at.desc(), Job.id.desc())).label("rn"),
            func.count().over(partition_by=group).label("n"),
        ).subquery()
        stmt = (
            select(
                ranked.c.workload_id, ranked.c.client_id, ranked.c.n, ranked.c.id, ranked.c.status, ranked.c.created_at
            )
            .where(ranked.c.rn == 1)
            .order_by(ranked.c.created_at.desc(), ranked.c.workload_id, ranked.c.client_id)
        )
        with self._tx("summarize workloads") as s:
            return [
                WorkloadSummary(
                    workload_id=w, client_id=c, num_jobs=n, last_job_id=i, last_status=st, last_created_at=ts
                )
                for w, c, n, i, st, ts in s.execute(stmt)
            ]
