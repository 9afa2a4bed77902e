"""Request and response models of the API: one family per resource (``JobCreate`` in, ``JobPublic`` out).

The job detail keeps the blueprint's shape (``nims`` with ``evaluations`` and ``customizations``, ``datasets``,
``llm_judge``) so its clients keep working, and adds what the blueprint lacked: per-evaluation counts and
ETA, training loss and speed, the job's overall progress, and the result with confidence intervals.

Fixed blueprint quirks: extra keys of ``POST /api/jobs`` are refused (the blueprint dropped
``training_config`` silently); ``JobCreated.status`` is the status actually stored (the blueprint answered
``"queued"`` while it stored ``"pending"``); the job list is paginated (``data``/``count``/``limit``/``offset``,
with the blueprint's ``jobs`` key kept as an alias of ``data``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, computed_field

from dataflywheel.decision.schema import CostReport, LatencyRow, Recommendation, read_stored
from dataflywheel.jobs.records import (
    CandidateRunDetail,
    CustomizationRecord,
    DatasetRecord,
    EvaluationRecord,
    EventRecord,
    JobDetail,
    JobRecord,
    JudgeRecord,
)
from dataflywheel.jobs.status import CandidateStage, JobKind, JobStatus, TaskStatus
from dataflywheel.records.model import ID_MAX_LENGTH
from dataflywheel.settings import DataSplitSettings, ICLSettings, RecommendationSettings
from dataflywheel.workflow.job_files import FileKind, Removal

__all__ = [
    "MAX_OFFSET",
    "NAME_MAX_LENGTH",
    "NO_NUL",
    "CancelResponse",
    "CustomizationPublic",
    "DatasetPublic",
    "DeleteResponse",
    "ErrorPublic",
    "EvaluationPublic",
    "EventPublic",
    "EventsPublic",
    "HealthPublic",
    "IngestErrorPublic",
    "JobCreate",
    "JobCreated",
    "JobDetailPublic",
    "JobListItem",
    "JobsPublic",
    "JudgePublic",
    "LogsIngested",
    "LogsRefused",
    "NimPublic",
    "RemovedFilePublic",
    "WorkloadPublic",
    "WorkloadsPublic",
    "deployment_status",
    "job_progress",
]


NO_NUL: Final = r"^[^\x00]*$"
"""The pattern of every id and name the API takes: no NUL character (PostgreSQL cannot store one)."""
NAME_MAX_LENGTH: Final = 1024
"""The longest model, judge or candidate name (a name may be a path)."""
MAX_OFFSET: Final = 1_000_000_000
"""The largest ``offset`` of a paginated list (pages beyond the data are empty; beyond this, a 422)."""
ModelName = Annotated[str, Field(min_length=1, max_length=NAME_MAX_LENGTH, pattern=NO_NUL)]


def _keys(model: type[BaseModel]) -> str:
    return ", ".join(model.model_fields)


# ---- errors ----------------------------------------------------------------------------------------------
class ErrorPublic(BaseModel):
    """An error: why, as a sentence, or (a request that failed validation) one item per bad value, whose
    ``loc`` names it."""

    detail: str | list[dict[str, Any]]


# ---- requests --------------------------------------------------------------------------------------------
class JobCreate(BaseModel):
    """A flywheel job: which logs to curate (workload and client) and what to override for this job.

    Overrides apply on top of the server's settings; a partial object changes only the keys it names.
    Unknown keys, here or inside an override, are refused with 422 naming them.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "workload_id": "primary_assistant",
                    "client_id": "northwind-1",
                    "data_split_config": {"eval_size": 20, "val_ratio": 0.1, "min_total_records": 50},
                    "training_config": {"epochs": 2, "batch_size": 16, "lora": {"adapter_dim": 32}},
                    "candidates": ["smollm2-135m-instruct"],
                }
            ]
        },
    )

    workload_id: str = Field(
        min_length=1, max_length=ID_MAX_LENGTH, pattern=NO_NUL, description="The workload whose logs are curated."
    )
    client_id: str = Field(
        min_length=1, max_length=ID_MAX_LENGTH, pattern=NO_NUL, description="The client whose logs are curated."
    )
    data_split_config: dict[str, Any] | None = Field(
        None, description=f"Overrides of the data_split settings; keys: {_keys(DataSplitSettings)}."
    )
    training_config: dict[str, Any] | None = Field(
        None,
        description="Overrides of the LoRA hyperparameters: flat keys (epochs, batch_size, learning_rate, "
        'adapter_dim, alpha, dropout, ...) or the blueprint\'s shape ({"epochs": 2, "lora": '
        '{"adapter_dim": 32}}). They really apply (the blueprint ignored them).',
    )
    icl_config: dict[str, Any] | None = Field(
        None, description=f"Overrides of the icl settings; keys: {_keys(ICLSettings)}."
    )
    recommendation_config: dict[str, Any] | None = Field(
        None,
        description="Overrides of the recommendation rule (the recommendation settings); keys: "
        f"{_keys(RecommendationSettings)}, e.g. "
        '{"metric": "function_name_and_args_accuracy", "min_ratio": 0.9}.',
    )
    candidates: list[ModelName] | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="Candidate models (configured names or built-in aliases); default: every configured one.",
    )
    learning_curve: list[float] | None = Field(
        None,
        min_length=1,
        max_length=4,
        description="Also train each customizable candidate on these fractions of the train split (strictly "
        "between 0 and 1, e.g. [0.25, 0.5]) and score each adapter on the eval set: the result's "
        "learning_curve says whether more logged records would still help. Each point costs a LoRA run.",
    )

    def config(self) -> dict[str, Any]:
        """The job's stored configuration: the overrides that were given."""
        return self.model_dump(exclude={"workload_id", "client_id"}, exclude_none=True)


# ---- jobs ------------------------------------------------------------------------------------------------
class JobCreated(BaseModel):
    """The answer to ``POST /api/jobs``."""

    id: str
    status: JobStatus = Field(description="The status stored for the job (pending until a worker starts it).")
    message: str


class JobListItem(BaseModel):
    """A job in a list (no candidates: see ``GET /api/jobs/{id}`` for those)."""

    id: str
    kind: JobKind
    workload_id: str
    client_id: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    num_records: int
    error: str | None

    @classmethod
    def of(cls, job: JobRecord) -> JobListItem:
        return cls(
            id=job.id,
            kind=job.kind,
            workload_id=job.workload_id,
            client_id=job.client_id,
            status=job.status,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            num_records=job.num_records,
            error=job.error,
        )


class JobsPublic(BaseModel):
    """A page of jobs, newest first. ``count`` counts every job matching the filters (all pages)."""

    data: list[JobListItem]
    count: int
    limit: int
    offset: int

    @computed_field(description="The same list as data (the blueprint's key).")  # type: ignore[prop-decorator]
    @property
    def jobs(self) -> list[JobListItem]:
        return self.data


class EvaluationPublic(BaseModel):
    """One evaluation of a candidate (``base-eval``, ``icl-eval`` or ``customized-eval``)."""

    eval_type: str
    status: TaskStatus
    scores: dict[str, Any] = Field(description="Each metric's mean over the samples (judge: the judge's score).")
    started_at: datetime | None
    finished_at: datetime | None
    runtime_seconds: float = Field(ge=0, description="So far, while it runs.")
    progress: float = Field(ge=0, le=100)
    done: int = Field(description="Samples scored.")
    total: int | None = Field(description="Samples in the eval dataset.")
    eta_s: float | None
    error: str | None

    @classmethod
    def of(cls, ev: EvaluationRecord, now: datetime) -> EvaluationPublic:
        return cls(
            eval_type=ev.eval_type,
            status=ev.status,
            scores=ev.scores,
            started_at=ev.started_at,
            finished_at=ev.finished_at,
            runtime_seconds=_runtime(ev.runtime_s, ev.started_at, ev.finished_at, now),
            progress=ev.progress,
            done=ev.done,
            total=ev.total,
            eta_s=ev.eta_s,
            error=ev.error,
        )


class CustomizationPublic(BaseModel):
    """The LoRA fine-tuning of a candidate."""

    status: TaskStatus
    started_at: datetime | None
    finished_at: datetime | None
    runtime_seconds: float = Field(ge=0)
    progress: float = Field(ge=0, le=100)
    epochs_completed: int
    total_epochs: int | None
    steps_completed: int
    total_steps: int | None
    loss: float | None = Field(description="The latest training loss.")
    tokens_per_s: float | None
    eta_s: float | None
    customized_model: str | None = Field(description="The adapter's name (ask the candidate's server for it).")
    error: str | None

    @classmethod
    def of(cls, cu: CustomizationRecord, now: datetime) -> CustomizationPublic:
        return cls(
            status=cu.status,
            started_at=cu.started_at,
            finished_at=cu.finished_at,
            runtime_seconds=_runtime(cu.runtime_s, cu.started_at, cu.finished_at, now),
            progress=cu.progress,
            epochs_completed=cu.epochs_completed,
            total_epochs=cu.total_epochs,
            steps_completed=cu.steps_completed,
            total_steps=cu.total_steps,
            loss=cu.loss,
            tokens_per_s=cu.tokens_per_s,
            eta_s=cu.eta_s,
            customized_model=cu.adapter_name,
            error=cu.error,
        )


class NimPublic(BaseModel):
    """One candidate model of the job (the blueprint calls them NIMs)."""

    model_name: str
    status: CandidateStage = Field(description="The candidate's stage.")
    deployment_status: str = Field(
        description="pending, ready (its model server answers), completed, failed or cancelled."
    )
    runtime_seconds: float = Field(ge=0)
    evaluations: list[EvaluationPublic]
    customizations: list[CustomizationPublic] = Field(description="Zero or one.")
    error: str | None

    @classmethod
    def of(cls, run: CandidateRunDetail, now: datetime) -> NimPublic:
        return cls(
            model_name=run.candidate,
            status=run.stage,
            deployment_status=deployment_status(run),
            runtime_seconds=_runtime(run.runtime_s, run.started_at, run.finished_at, now),
            evaluations=[EvaluationPublic.of(e, now) for e in run.evaluations],
            customizations=[] if run.customization is None else [CustomizationPublic.of(run.customization, now)],
            error=run.error,
        )


class JudgePublic(BaseModel):
    """The job's LLM-judge check."""

    model_name: str | None
    type: str = Field(description="remote, local or disabled.")
    deployment_status: TaskStatus = Field(
        description="completed: the evals are judged; skipped: no judge metrics (disabled, or it did not answer "
        "the check and judge.required is false); failed: it did not answer and judge.required is true."
    )
    error: str | None = Field(description="Why the judge was skipped or failed (what the check got back).")

    @classmethod
    def of(cls, judge: JudgeRecord) -> JudgePublic:
        return cls(model_name=judge.model, type=judge.kind, deployment_status=judge.status, error=judge.error)


class DatasetPublic(BaseModel):
    """A dataset the job built."""

    name: str = Field(description="eval, icl, train or val.")
    num_records: int = Field(ge=0)
    path: str | None = Field(description="Where the server keeps it.")
    url: str = Field(description="Where to download it (JSONL).")

    @classmethod
    def of(cls, job_id: str, d: DatasetRecord) -> DatasetPublic:
        return cls(name=d.name, num_records=d.num_records, path=d.path, url=f"/api/jobs/{job_id}/datasets/{d.name}")


class JobDetailPublic(BaseModel):
    """Everything about a job: its status, candidates (evaluations, customization), datasets and result."""

    id: str
    kind: JobKind
    workload_id: str
    client_id: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    num_records: int = Field(description="Records the job's curation read.")
    progress: float = Field(ge=0, le=100, description="Share of the job's work done, in percent.")
    eta_s: float | None = Field(description="The longest ETA of the tasks running now (None: unknown).")
    config: dict[str, Any] = Field(description="The overrides the job was created with.")
    llm_judge: JudgePublic | None
    nims: list[NimPublic]
    datasets: list[DatasetPublic]
    error: str | None
    result: dict[str, Any] | None = Field(
        description="Once completed: per candidate and eval type, every metric's mean with its 95% interval "
        "(ci_low, ci_high) and sample count, the judge's, and the sample and error counts; the cost, latency "
        "and recommendation below are in it too (as result.cost, result.latency, result.recommendation)."
    )
    cost: CostReport | None = Field(
        None,
        description="Once completed: what a request costs per candidate and eval type and for the logged model, "
        "per 1,000 requests and per month at the observed traffic (null fields: unknown, no price set). None for "
        "a job without a result or finished before costs were computed.",
    )
    latency: list[LatencyRow] | None = Field(
        None, description="Once completed: latency (mean, p50, p95) and throughput per candidate and eval type."
    )
    recommendation: Recommendation | None = Field(
        None, description="Once completed: which candidate and eval type can replace the logged model, and why."
    )

    @classmethod
    def of(cls, detail: JobDetail, now: datetime | None = None) -> JobDetailPublic:
        now = now or datetime.now(UTC)
        job = detail.job
        progress, eta = job_progress(detail)
        return cls(
            id=job.id,
            kind=job.kind,
            workload_id=job.workload_id,
            client_id=job.client_id,
            status=job.status,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            num_records=job.num_records,
            progress=progress,
            eta_s=eta,
            config=job.config,
            llm_judge=None if detail.judge is None else JudgePublic.of(detail.judge),
            nims=[NimPublic.of(run, now) for run in detail.candidates],
            datasets=[DatasetPublic.of(job.id, d) for d in detail.datasets],
            error=job.error,
            result=job.result,
            **read_stored(job.result)._asdict(),
        )


class CancelResponse(BaseModel):
    """The answer to a cancel request."""

    id: str
    status: JobStatus = Field(description="cancelled at once (a pending job), else cancelling until it stops.")
    message: str


class RemovedFilePublic(BaseModel):
    """A file or folder a deleted job had made."""

    kind: FileKind = Field(
        description="job_folder (evals, deployment logs, report), datasets, training_run (checkpoints with "
        "optimizer state, the trained adapter), adapter (registered) or deployment_log."
    )
    path: str = Field(description="Where it was on the server.")
    bytes: int = Field(ge=0, description="What removing it freed.")


class DeleteResponse(BaseModel):
    """The answer to a delete request: the job and everything it made are gone."""

    id: str
    message: str
    freed_bytes: int = Field(0, ge=0, description="Disk space freed by removing the job's files.")
    removed: list[RemovedFilePublic] = Field(default_factory=list, description="What was removed.")
    problems: list[str] = Field(
        default_factory=list, description="Files that could not be removed (or only in part), with the reason."
    )

    @classmethod
    def of(cls, job_id: str, removal: Removal) -> DeleteResponse:
        return cls(
            id=job_id,
            message=f"Job deleted: {removal.summary()}.",
            freed_bytes=removal.freed_bytes,
            removed=[RemovedFilePublic(kind=r.kind, path=str(r.path), bytes=r.bytes) for r in removal.removed],
            problems=removal.problems,
        )


class EventPublic(BaseModel):
    """One line of a job's history."""

    id: int
    ts: datetime
    kind: str = Field(description="status, stage, progress, error or log.")
    stage: str | None
    message: str
    data: dict[str, Any] | None

    @classmethod
    def of(cls, ev: EventRecord) -> EventPublic:
        return cls(id=ev.id, ts=ev.ts, kind=ev.kind, stage=ev.stage, message=ev.message, data=ev.data)


class EventsPublic(BaseModel):
    """Events oldest first. Poll with ``after_id=last_id`` to get only newer ones."""

    data: list[EventPublic]
    last_id: int = Field(description="The id of the last event returned (the after_id given when none).")


# ---- logs and workloads ----------------------------------------------------------------------------------
class IngestErrorPublic(BaseModel):
    """A record that was not stored."""

    line: int = Field(description="Its line (NDJSON) or 1-based position (JSON array).")
    error: str


class LogsIngested(BaseModel):
    """What ``POST /api/logs`` stored (the same validation as ``flywheel logs load``)."""

    records: int = Field(description="Records (or non-blank lines) received.")
    loaded: int = Field(description="New records stored.")
    duplicates: int = Field(description="Records already stored (records are identified by content).")
    skipped: int = Field(description="Invalid records, not stored.")
    errors: list[IngestErrorPublic] = Field(description="Why each was skipped (the first 1000).")
    errors_truncated: bool
    workloads: dict[str, int] = Field(description="Valid records per workload_id/client_id.")


class LogsRefused(ErrorPublic):
    """422 of ``POST /api/logs``: some records were refused (``errors`` names each by line or position, with
    why); the others were stored all the same, as the counts say. Sending the same body again stores nothing
    twice. A body that cannot be read at all, or a bad query value, has ``detail`` only."""

    records: int | None = Field(None, description="Records (or non-blank lines) received.")
    loaded: int | None = Field(None, description="New records stored.")
    duplicates: int | None = Field(None, description="Records already stored.")
    skipped: int | None = Field(None, description="Records refused, not stored.")
    errors: list[IngestErrorPublic] | None = Field(None, description="Why each was refused (the first 1000).")
    errors_truncated: bool | None = None
    workloads: dict[str, int] | None = Field(None, description="Stored records per workload_id/client_id.")


class WorkloadPublic(BaseModel):
    """A workload and client: its logged records and its jobs."""

    workload_id: str
    client_id: str
    records: int = Field(description="Records in the log store.")
    first_timestamp: float | None
    last_timestamp: float | None
    num_jobs: int
    last_job_id: str | None
    last_job_status: JobStatus | None
    last_job_created_at: datetime | None


class WorkloadsPublic(BaseModel):
    """Every workload with records or jobs, most recently active first."""

    data: list[WorkloadPublic]


class HealthPublic(BaseModel):
    """Whether the API can serve: its job store answers."""

    status: str = Field(description="ok, or unavailable when the job store does not answer.")
    job_store: dict[str, Any] = Field(description="reachable, dialect (sqlite or postgresql), error.")
    executor: str = Field(description="embedded or celery.")
    running_jobs: int = Field(description="Jobs this process is driving.")


# ---- derived values --------------------------------------------------------------------------------------
def _runtime(runtime_s: float | None, started: datetime | None, finished: datetime | None, now: datetime) -> float:
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
