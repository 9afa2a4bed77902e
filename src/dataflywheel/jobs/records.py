"""What the job store returns: frozen dataclasses, detached from any database session.

They are plain values, safe to pass between threads and to serialize (pydantic accepts dataclasses).
JSON fields (``config``, ``result``, ``scores``...) are fresh dicts per call; changing one changes nothing
stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dataflywheel.jobs.status import CandidateStage, JobKind, JobStatus, ScheduleTrigger, TaskStatus
from dataflywheel.records.jsonvalue import JsonObject

__all__ = [
    "CandidateRunDetail",
    "CandidateRunRecord",
    "CustomizationRecord",
    "DatasetRecord",
    "EvaluationRecord",
    "EventRecord",
    "JobDetail",
    "JobRecord",
    "JudgeRecord",
    "ScheduleRecord",
    "StageLease",
    "StageRecord",
    "WorkloadSummary",
]


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job's own row (``fw_jobs``)."""

    id: str
    kind: JobKind
    workload_id: str
    client_id: str
    status: JobStatus
    config: dict[str, Any]
    """The request's overrides (data_split_config, training_config, icl_config, candidates...)."""
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    error: str | None
    """The first error; later ones are in the events."""
    num_records: int
    progress: float
    """0 to 100."""
    result: dict[str, Any] | None
    owner: str | None
    """The worker that holds the job, if any."""
    heartbeat_at: datetime | None


@dataclass(frozen=True, slots=True)
class EvaluationRecord:
    """One evaluation of a candidate (``fw_evaluations``)."""

    id: int
    candidate_run_id: int
    eval_type: str
    status: TaskStatus
    progress: float
    done: int
    total: int | None
    eta_s: float | None
    scores: JsonObject
    artifact_path: str | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    runtime_s: float | None


@dataclass(frozen=True, slots=True)
class CustomizationRecord:
    """The fine-tuning of a candidate (``fw_customizations``)."""

    id: int
    candidate_run_id: int
    status: TaskStatus
    progress: float
    epochs_completed: int
    total_epochs: int | None
    steps_completed: int
    total_steps: int | None
    loss: float | None
    tokens_per_s: float | None
    eta_s: float | None
    adapter_name: str | None
    adapter_path: str | None
    metrics: JsonObject
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    runtime_s: float | None


@dataclass(frozen=True, slots=True)
class CandidateRunRecord:
    """One candidate inside a job (``fw_candidate_runs``)."""

    id: int
    job_id: str
    candidate: str
    stage: CandidateStage
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    runtime_s: float | None
    deployment: JsonObject | None


@dataclass(frozen=True, slots=True)
class CandidateRunDetail(CandidateRunRecord):
    """A candidate run with its evaluations (in creation order) and its customization."""

    evaluations: tuple[EvaluationRecord, ...] = ()
    customization: CustomizationRecord | None = None


@dataclass(frozen=True, slots=True)
class JudgeRecord:
    """The judge check of a job (``fw_judge_runs``)."""

    id: int
    job_id: str
    model: str | None
    base_url: str | None
    kind: str
    """``remote``, ``local`` or ``disabled``."""
    status: TaskStatus
    error: str | None


@dataclass(frozen=True, slots=True)
class DatasetRecord:
    """A dataset built by a job (``fw_datasets``)."""

    id: int
    job_id: str
    name: str
    num_records: int
    path: str | None
    build_id: str | None


@dataclass(frozen=True, slots=True)
class StageRecord:
    """A workflow stage of a job (``fw_stages``)."""

    id: int
    job_id: str
    key: str
    status: TaskStatus
    attempts: int
    output: dict[str, Any] | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    owner: str | None
    heartbeat_at: datetime | None = None
    """When the running attempt's owner last said it is alive (its lease)."""

    def lease(self) -> StageLease:
        """The lease of this record's attempt (for fenced writes and heartbeats)."""
        return StageLease(self.job_id, self.key, self.attempts, self.owner)


@dataclass(frozen=True, slots=True)
class StageLease:
    """Who runs which attempt of a stage: the fencing token of its writes.

    A write that carries a lease (``fence=``) succeeds only while the stage is still running that attempt;
    once the attempt's owner went silent and the stage was taken over, the write raises
    :class:`~dataflywheel.jobs.errors.StaleAttemptError` and changes nothing.
    """

    job_id: str
    key: str
    attempt: int
    owner: str | None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event of a job's history (``fw_job_events``)."""

    id: int
    job_id: str
    ts: datetime
    kind: str
    stage: str | None
    message: str
    data: JsonObject | None


@dataclass(frozen=True, slots=True)
class JobDetail:
    """Everything about one job: its row, candidates (with evaluations and customization), judge, datasets,
    and its workflow stages (each with the worker that ran its latest attempt)."""

    job: JobRecord
    candidates: tuple[CandidateRunDetail, ...]
    judge: JudgeRecord | None
    datasets: tuple[DatasetRecord, ...]
    stages: tuple[StageRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class WorkloadSummary:
    """The jobs of one (workload_id, client_id) pair."""

    workload_id: str
    client_id: str
    num_jobs: int
    last_job_id: str
    last_status: JobStatus
    last_created_at: datetime


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A workload's schedule (``fw_schedules``): its triggers, the jobs' overrides and when it last fired."""

    id: int
    workload_id: str
    client_id: str
    cron: str | None
    min_new_records: int | None
    on_drift: bool
    job_config: JsonObject
    enabled: bool
    created_at: datetime
    updated_at: datetime
    next_due: datetime | None
    generation: int
    """The fencing token of firings: a firing is claimed only while it is unchanged."""
    records_seen: int
    last_fired_at: datetime | None
    last_trigger: ScheduleTrigger | None
    last_job_id: str | None
    last_error: str | None
    drift_checked_at: datetime | None
    drift: JsonObject | None
