"""The job store of the flywheel orchestrator: jobs, candidates, evaluations, stages and events.

SQLAlchemy 2 over SQLite (default: ``<home>/jobs.db``) or PostgreSQL (``job_store.url``); the schema is
managed by Alembic migrations that run when the store opens::

    from dataflywheel.jobs import JobStatus, open_job_store

    store = open_job_store(settings)
    job = store.create_job("wl-1", "client-a", {"data_split_config": {"eval_size": 50}})
    store.set_job_status(job.id, JobStatus.RUNNING)

Its errors (:mod:`dataflywheel.jobs.errors`) and records (:mod:`dataflywheel.jobs.records`) are importable
from here too.
"""

from __future__ import annotations

from dataflywheel.jobs import errors, records
from dataflywheel.jobs.errors import *  # noqa: F403 - the store's errors, listed once: errors.__all__
from dataflywheel.jobs.records import *  # noqa: F403 - the records the store returns, listed once: records.__all__
from dataflywheel.jobs.status import (
    CANDIDATE_TERMINAL,
    CANDIDATE_TRANSITIONS,
    JOB_TERMINAL,
    JOB_TRANSITIONS,
    JOB_UNFINISHED,
    TASK_TERMINAL,
    TASK_TRANSITIONS,
    CandidateStage,
    EventKind,
    JobKind,
    JobStatus,
    ScheduleTrigger,
    TaskStatus,
    allowed_next,
    check_transition,
)
from dataflywheel.jobs.store import DEFAULT_STALE_AFTER_S, JobStore, default_url, open_job_store

__all__ = [
    "CANDIDATE_TERMINAL",
    "CANDIDATE_TRANSITIONS",
    "DEFAULT_STALE_AFTER_S",
    "JOB_TERMINAL",
    "JOB_TRANSITIONS",
    "JOB_UNFINISHED",
    "TASK_TERMINAL",
    "TASK_TRANSITIONS",
    "CandidateStage",
    "EventKind",
    "JobKind",
    "JobStatus",
    "JobStore",
    "ScheduleTrigger",
    "TaskStatus",
    "allowed_next",
    "check_transition",
    "default_url",
    "open_job_store",
]
__all__ += errors.__all__
__all__ += records.__all__
