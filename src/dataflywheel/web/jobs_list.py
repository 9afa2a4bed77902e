"""The jobs list as the page shows it: each job with its status and progress (pure: records in, a view out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from dataflywheel.jobs.records import JobRecord
from dataflywheel.jobs.status import JobStatus
from dataflywheel.web.schedules_view import ScheduleRow

__all__ = ["JobRow", "JobsPage", "job_row", "jobs_page"]


@dataclass(frozen=True)
class JobRow:
    id: str
    kind: str
    workload_id: str
    client_id: str
    status: str
    terminal: bool
    progress: float
    created_at: datetime
    finished_at: datetime | None
    num_records: int
    candidates: list[str]
    error: str | None

    @property
    def can_cancel(self) -> bool:
        return self.status in (JobStatus.PENDING, JobStatus.RUNNING)


@dataclass(frozen=True)
class JobsPage:
    rows: list[JobRow]
    count: int
    limit: int
    offset: int
    workloads: list[tuple[str, str]] = field(default_factory=list)
    """(workload_id, client_id) pairs a new job can name."""
    candidates: list[str] = field(default_factory=list)
    """Candidate names a new job can name (configured, then built-in)."""
    auth: bool = False
    """True: the server wants its API key (the page shows a way to log out)."""
    schedules: list[ScheduleRow] = field(default_factory=list)
    """Each workload's schedule, its next run and last drift check."""

    @property
    def live(self) -> bool:
        return any(not r.terminal for r in self.rows)


def job_row(job: JobRecord, progress: float | None = None) -> JobRow:
    """A job in the list; ``progress`` in percent (None: 100 when completed, else the stored value)."""
    if progress is None:
        progress = 100.0 if job.status is JobStatus.COMPLETED else job.progress
    return JobRow(
        id=job.id,
        kind=job.kind.value,
        workload_id=job.workload_id,
        client_id=job.client_id,
        status=job.status.value,
        terminal=job.status.terminal,
        progress=round(progress, 1),
        created_at=job.created_at,
        finished_at=job.finished_at,
        num_records=job.num_records,
        candidates=[str(c) for c in (job.config or {}).get("candidates") or []],
        error=job.error,
    )


def jobs_page(
    jobs: Sequence[JobRecord],
    progress: Mapping[str, float],
    *,
    count: int,
    limit: int,
    offset: int,
    workloads: Sequence[tuple[str, str]] = (),
    candidates: Sequence[str] = (),
    auth: bool = False,
    schedules: Sequence[ScheduleRow] = (),
) -> JobsPage:
    """The jobs list; ``progress`` of the unfinished jobs by id (the others need none)."""
    return JobsPage(
        rows=[job_row(j, progress.get(j.id)) for j in jobs],
        count=count,
        limit=limit,
        offset=offset,
        workloads=list(workloads),
        candidates=list(candidates),
        auth=auth,
        schedules=list(schedules),
    )
