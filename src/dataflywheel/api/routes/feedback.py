"""``/api/feedback``: the feedback loop as a resource (student inference over logged prompts, output
normalization, quality filter, write-back). A feedback job is a job of kind ``feedback``: cancel and delete
work as for flywheel jobs.

The same routes answer under ``/api/curations``, the resource's name until this release, with a
``Deprecation`` header (:mod:`dataflywheel.api.deprecation`); that alias goes in the next release."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from dataflywheel.api.deps import JobIdDep, ServiceDep, StoreDep, api_state
from dataflywheel.api.errors import NotFoundError, error_responses
from dataflywheel.api.routes.jobs import cancel_job, delete_job, post_job
from dataflywheel.api.schemas import (
    EXAMPLE_WORKLOAD,
    MAX_OFFSET,
    CancelResponse,
    DeleteResponse,
    ModelName,
    RecordId,
    request_config,
)
from dataflywheel.jobs.records import JobRecord
from dataflywheel.jobs.status import JobKind, JobStatus
from dataflywheel.projection import project

router = APIRouter()
"""Mounted at ``/api/feedback`` (and, deprecated, at ``/api/curations``) by the app."""

_ERRORS = error_responses({400: "Malformed id (not 32 lowercase hex digits).", 404: "No such feedback job."})


class PassRulePublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allow_repaired: bool = Field(True, description="Answers the normalizer repaired may pass.")
    require_judge: bool = Field(True, description="With a judge, its PASS is needed.")
    require_teacher_agreement: bool = Field(True, description="Same tools as the logged answer, when there is one.")


class FeedbackCreate(BaseModel):
    """Run ``model`` over a workload's logged requests and write the answers that pass back as new records."""

    model_config = request_config(
        {
            **EXAMPLE_WORKLOAD,
            "model": "smollm2-135m-instruct",
            "judge": "judge-70b",
            "target_client_id": "northwind-1-curated",
        }
    )

    workload_id: RecordId
    client_id: RecordId
    model: ModelName = Field(
        description="The student: a configured candidate or a built-in alias installed on the server (or a model "
        "folder); any other is refused with 422."
    )
    judge: ModelName | None = Field(None, description="A model to judge with; default: the judge settings, if enabled.")
    target_client_id: RecordId | None = Field(
        None, description="Where passing answers go; default <client_id>-curated."
    )
    target_workload_id: RecordId | None = None
    dry_run: bool = Field(False, description="Count only; write nothing.")
    limit: int | None = Field(None, ge=1, le=10_000_000, description="Newest logged records to use.")
    max_tokens: int = Field(256, ge=1, le=8192)
    concurrency: int = Field(8, ge=1, le=256)
    pass_rule: PassRulePublic = Field(default_factory=PassRulePublic)


class FeedbackPublic(BaseModel):
    id: str
    status: JobStatus
    workload_id: str
    client_id: str
    config: dict[str, Any]
    progress: float = Field(description="Percent done (inference 70%, judging 25%, write-back 5%).")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    counts: dict[str, Any] | None = Field(None, description="Records at each step, once the job ends.")
    rejected_by_reason: dict[str, int] | None = None
    rejection_samples: dict[str, list[str]] | None = None

    @classmethod
    def of(cls, job: JobRecord) -> FeedbackPublic:
        result = job.result or {}
        return project(
            cls,
            job,
            counts=result.get("counts"),
            rejected_by_reason=result.get("rejected_by_reason"),
            rejection_samples=result.get("rejection_samples"),
        )


def _feedback_job(store: Any, job_id: str) -> JobRecord:
    job: JobRecord = store.get_job(job_id)
    if job.kind != JobKind.FEEDBACK:
        raise NotFoundError(f"{job_id} is a flywheel job, not a feedback job: see /api/jobs/{job_id}")
    return job


@post_job(
    router, FeedbackPublic, "Unknown keys, or a model (or judge) that is neither configured nor installed here (named)."
)
def create_feedback(body: FeedbackCreate, service: ServiceDep, request: Request, response: Response) -> FeedbackPublic:
    """Start a feedback job in the background; poll ``GET /api/feedback/{id}`` for progress and counts.

    The student (and judge) must be usable here: a configured candidate, or a built-in alias (or model
    folder) whose packages are installed; any other is refused before the job exists."""
    config = body.model_dump(exclude={"workload_id", "client_id"}, exclude_none=True)
    job = service.create_feedback(body.workload_id, body.client_id, config, start=api_state(request).start_jobs)
    response.headers["Location"] = f"{request.url.path.rstrip('/')}/{job.id}"
    return FeedbackPublic.of(job)


@router.get("", response_model=list[FeedbackPublic])
def list_feedback(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=500, description="Feedback jobs per page.")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Feedback jobs to skip.")] = 0,
) -> list[FeedbackPublic]:
    """Feedback jobs, newest first."""
    jobs, _ = store.list_jobs(kind=JobKind.FEEDBACK, limit=limit, offset=offset)
    return [FeedbackPublic.of(j) for j in jobs]


@router.get("/{job_id}", response_model=FeedbackPublic, responses=_ERRORS)
def get_feedback(job_id: JobIdDep, store: StoreDep) -> FeedbackPublic:
    """A feedback job's status, progress and (once ended) its counts per step and rejection reasons."""
    return FeedbackPublic.of(_feedback_job(store, job_id))


def _feedback_job_id(job_id: JobIdDep, store: StoreDep) -> str:
    """The path's job id, refused with 404 unless it names a feedback job."""
    _feedback_job(store, job_id)
    return job_id


FeedbackJobIdDep = Annotated[str, Depends(_feedback_job_id)]


def _conflict(reason: str) -> dict[int | str, dict[str, object]]:
    """The responses of a route that changes a feedback job: those of its id, and 409 for ``reason``."""
    return {**_ERRORS, **error_responses({409: reason})}


@router.post("/{job_id}/cancel", responses=_conflict("The job has already completed or failed."))
def cancel_feedback(job_id: FeedbackJobIdDep, service: ServiceDep) -> CancelResponse:
    """Stop a feedback job; what it stored so far is kept, and nothing more is written."""
    return cancel_job(job_id, service)


@router.delete("/{job_id}", responses=_conflict("The job has not finished: cancel it first."))
def delete_feedback(job_id: FeedbackJobIdDep, service: ServiceDep) -> DeleteResponse:
    """Delete a finished feedback job's rows and files (records it wrote back stay in the log store)."""
    return delete_job(job_id, service)
