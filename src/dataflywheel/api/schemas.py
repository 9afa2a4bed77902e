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
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, computed_field, create_model
from pydantic.config import JsonDict

from dataflywheel.api.derived import deployment_status, job_progress, task_runtime
from dataflywheel.api.stage_schema import StagePublic
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
from dataflywheel.projection import project
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.records.model import ID_MAX_LENGTH
from dataflywheel.settings import DataSplitSettings, ICLSettings, RecommendationSettings, TrainingSettings
from dataflywheel.training.config import FIXED_KEYS, LORA_ALIASES, TrainConfig
from dataflywheel.workflow.job_files import FileKind, Removal

__all__ = [
    "EXAMPLE_WORKLOAD",
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
    "LoraOverrides",
    "NimPublic",
    "RecordId",
    "RemovedFilePublic",
    "StagePublic",
    "TrainingConfigOverrides",
    "WorkloadPublic",
    "WorkloadsPublic",
    "deployment_status",
    "job_progress",
    "request_config",
]


NO_NUL: Final = r"^[^\x00]*$"
"""The pattern of every id and name the API takes: no NUL character (PostgreSQL cannot store one)."""
NAME_MAX_LENGTH: Final = 1024
"""The longest model, judge or candidate name (a name may be a path)."""
MAX_OFFSET: Final = 1_000_000_000
"""The largest ``offset`` of a paginated list (pages beyond the data are empty; beyond this, a 422)."""
ModelName = Annotated[str, Field(min_length=1, max_length=NAME_MAX_LENGTH, pattern=NO_NUL)]
RecordId = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=NO_NUL)]
"""A workload or client id as a request body names it."""


EXAMPLE_WORKLOAD: Final[JsonDict] = {"workload_id": "primary_assistant", "client_id": "northwind-1"}
"""The workload and client the request examples name."""


def request_config(*examples: JsonDict) -> ConfigDict:
    """A request body's config: unknown keys refused (422 naming them), ``examples`` shown in the schema."""
    shown: list[JsonValue] = [*examples]
    return ConfigDict(extra="forbid", json_schema_extra={"examples": shown})


def _keys(model: type[BaseModel]) -> str:
    return ", ".join(model.model_fields)


# ---- errors ----------------------------------------------------------------------------------------------
class ErrorPublic(BaseModel):
    """An error: why, as a sentence, or (a request that failed validation) one item per bad value, whose
    ``loc`` names it."""

    detail: str | list[dict[str, Any]]


# ---- requests --------------------------------------------------------------------------------------------
def _override(name: str, description: str | None = None) -> tuple[object, object]:
    """A :class:`TrainConfig` field as an override: its type (or null: not overridden), its constraints and
    its description (the training and lora settings' own, see :mod:`dataflywheel.training.config`)."""
    field = TrainConfig.model_fields[name]
    annotation: Any = field.annotation | None  # type: ignore[operator]
    if field.metadata:
        annotation = Annotated[(annotation, *field.metadata)]
    return annotation, Field(None, description=description or field.description)


def _lora_keys(*, ours: bool) -> dict[str, tuple[object, object]]:
    """The LoRA keys by our names (``ours``) or by the blueprint's (``rank`` for ``adapter_dim``...)."""
    return {
        alias: _override(target, None if alias == target else f"The blueprint's name of {target}.")
        for alias, target in LORA_ALIASES.items()
        if (alias == target) == ours
    }


_OVERRIDES = ConfigDict(extra="forbid")

if TYPE_CHECKING:  # the fields are made from TrainConfig's below; to a type checker these are plain models

    class LoraOverrides(BaseModel):
        pass

    class TrainingConfigOverrides(BaseModel):
        pass

else:
    LoraOverrides = create_model(
        "LoraOverrides",
        __config__=_OVERRIDES,
        __doc__="The blueprint's lora object of a job's training_config: the adapter's shape, by our names or its.",
        **_lora_keys(ours=True),
        **_lora_keys(ours=False),
    )
    TrainingConfigOverrides = create_model(
        "TrainingConfigOverrides",
        __config__=_OVERRIDES,
        __doc__="A job's LoRA hyperparameters: each key overrides the recipe and the training and lora settings; "
        "null or absent keys are not overridden. Unknown keys are refused (422, naming the key).",
        **{
            name: _override(name, TrainingSettings.model_fields[name].description if name == "recipe" else None)
            for name in TrainConfig.model_fields
        },
        **_lora_keys(ours=False),
        lora=(LoraOverrides | None, Field(None, description=LoraOverrides.__doc__)),
        **{
            key: (Literal[value] | None, Field(None, description=f"The blueprint's {key}: only {value} is supported."))
            for key, value in FIXED_KEYS.items()
        },
    )


class JobCreate(BaseModel):
    """A flywheel job: which logs to curate (workload and client) and what to override for this job.

    Overrides apply on top of the server's settings; a partial object changes only the keys it names.
    Unknown keys, here or inside an override, are refused with 422 naming them.
    """

    model_config = request_config(
        {
            **EXAMPLE_WORKLOAD,
            "data_split_config": {"eval_size": 20, "val_ratio": 0.1, "min_total_records": 50},
            "training_config": {"epochs": 2, "batch_size": 16, "lora": {"adapter_dim": 32}},
            "candidates": ["smollm2-135m-instruct"],
        }
    )

    workload_id: RecordId = Field(description="The workload whose logs are curated.")
    client_id: RecordId = Field(description="The client whose logs are curated.")
    data_split_config: dict[str, Any] | None = Field(
        None, description=f"Overrides of the data_split settings; keys: {_keys(DataSplitSettings)}."
    )
    training_config: TrainingConfigOverrides | None = Field(
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


class _JobHead(BaseModel):
    """The fields a job shows in a list and in its detail alike."""

    id: str
    kind: JobKind
    workload_id: str
    client_id: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobListItem(_JobHead):
    """A job in a list (no candidates: see ``GET /api/jobs/{id}`` for those)."""

    num_records: int
    error: str | None

    @classmethod
    def of(cls, job: JobRecord) -> JobListItem:
        return project(cls, job)


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
        return project(cls, ev, runtime_seconds=task_runtime(ev.runtime_s, ev.started_at, ev.finished_at, now))


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
        return project(
            cls,
            cu,
            runtime_seconds=task_runtime(cu.runtime_s, cu.started_at, cu.finished_at, now),
            customized_model=cu.adapter_name,
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
            runtime_seconds=task_runtime(run.runtime_s, run.started_at, run.finished_at, now),
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


class JobDetailPublic(_JobHead):
    """Everything about a job: its status, candidates (evaluations, customization), datasets and result."""

    num_records: int = Field(description="Records the job's curation read.")
    progress: float = Field(ge=0, le=100, description="Share of the job's work done, in percent.")
    eta_s: float | None = Field(description="The longest ETA of the tasks running now (None: unknown).")
    config: dict[str, Any] = Field(description="The overrides the job was created with.")
    llm_judge: JudgePublic | None
    nims: list[NimPublic]
    datasets: list[DatasetPublic]
    stages: list[StagePublic] = Field(description="The workflow's stages so far, each with the worker that ran it.")
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
        return project(
            cls,
            job,
            progress=progress,
            eta_s=eta,
            llm_judge=None if detail.judge is None else JudgePublic.of(detail.judge),
            nims=[NimPublic.of(run, now) for run in detail.candidates],
            datasets=[DatasetPublic.of(job.id, d) for d in detail.datasets],
            stages=[StagePublic.of(st) for st in detail.stages],
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
        return project(cls, ev)


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
    job_store: JsonObject = Field(description="reachable, dialect (sqlite or postgresql), error.")
    executor: str = Field(description="embedded or celery.")
    running_jobs: int = Field(description="Jobs this process is driving.")
