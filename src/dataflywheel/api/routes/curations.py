"""``/api/curations``: the feedback loop as a resource (student inference over logged prompts, output
normalization, quality filter, write-back). A curation is a job of kind ``curation``: cancel and delete
work as for flywheel jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from dataflywheel.api.deps import JobIdDep, ServiceDep, StoreDep, api_state
from dataflywheel.api.errors import NotFoundError, error_responses
from dataflywheel.api.routes.jobs import cancel_job, delete_job
from dataflywheel.api.schemas import MAX_OFFSET, NO_NUL, CancelResponse, DeleteResponse, ModelName
from dataflywheel.jobs.records import JobRecord
from dataflywheel.jobs.status import JobKind, JobStatus
from dataflywheel.records.model import ID_MAX_LENGTH

router = APIRouter(prefix="/curations", tags=["curations"])

_ERRORS = error_responses({400: "Malformed id (not 32 lowercase hex digits).", 404: "No such curation."})


class PassRulePublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allow_repaired: bool = Field(True, description="Answers the normalizer repaired may pass.")
    require_judge: bool = Field(True, description="With a judge, its PASS is needed.")
    require_teacher_agreement: bool = Field(True, description="Same tools as the logged answer, when there is one.")


class CurationCreate(BaseModel):
    """Run ``model`` over a workload's logged requests and write the answers that pass back as new records."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "workload_id": "primary_assistant",
                    "client_id": "northwind-1",
                    "model": "smollm2-135m-instruct",
                    "judge": "judge-70b",
                    "target_client_id": "northwind-1-curated",
                }
            ]
        },
    )

    workload_id: str = Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=NO_NUL)
    client_id: str = Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=NO_NUL)
    model: ModelName = Field(
        description="The student: a configured candidate or a built-in alias installed on the server (or a model "
        "folder); any other is refused with 422."
    )
    judge: ModelName | None = Field(None, description="A model to judge with; default: the judge settings, if enabled.")
    target_client_id: str | None = Field(
        None,
        min_length=1,
        max_length=ID_MAX_LENGTH,
        pattern=NO_NUL,
        description="Where passing answers go; default <client_id>-curated.",
    )
    target_workload_id: str | None = Field(None, min_length=1, max_length=ID_MAX_LENGTH, pattern=NO_NUL)
    dry_run: bool = Field(False, description="Count only; write nothing.")
    limit: int | None = Field(None, ge=1, le=10_000_000, description="Newest logged records to use.")
    max_tokens: int = Field(256, ge=1, le=8192)
    concurrency: int = Field(8, ge=1, le=256)
    pass_rule: PassRulePublic = Field(default_factory=PassRulePublic)


class CurationPublic(BaseModel):
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
    counts: dict[str, Any] | None = Field(None, description="Records at each step, once the curation ends.")
    rejected_by_reason: dict[str, int] | None = None
    rejection_samples: dict[str, list[str]] | None = None

    @classmethod
    def of(cls, job: JobRecord) -> CurationPublic:
        result = job.result or {}
        return cls(
            id=job.id,
            status=job.status,
            workload_id=job.workload_id,
            client_id=job.client_id,
            config=job.config,
            progress=job.progress,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            error=job.error,
            counts=result.get("counts"),
            rejected_by_reason=result.get("rejected_by_reason"),
            rejection_samples=result.get("rejection_samples"),
        )


def _curation(store: Any, job_id: str) -> JobRecord:
    job: JobRecord = store.get_job(job_id)
    if job.kind != JobKind.CURATION:
        raise NotFoundError(f"{job_id} is a flywheel job, not a curation: see /api/jobs/{job_id}")
    return job


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CurationPublic,
    responses=error_responses(
        {
            400: "The body is not JSON.",
            422: "Unknown keys, or a model (or judge) that is neither configured nor installed here (named).",
        }
    ),
)
def create_curation(body: CurationCreate, service: ServiceDep, request: Request, response: Response) -> CurationPublic:
    """Start a curation in the background; poll ``GET /api/curations/{id}`` for progress and counts.

    The student (and judge) must be usable here: a configured candidate, or a built-in alias (or model
    folder) whose packages are installed; any other is refused before the curation exists."""
    config = body.model_dump(exclude={"workload_id", "client_id"}, exclude_none=True)
    job = service.create_curation(body.workload_id, body.client_id, config, start=api_state(request).start_jobs)
    response.headers["Location"] = f"/api/curations/{job.id}"
    return CurationPublic.of(job)


@router.get("", response_model=list[CurationPublic])
def list_curations(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=500, description="Curations per page.")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Curations to skip.")] = 0,
) -> list[CurationPublic]:
    """Curations, newest first."""
    jobs, _ = store.list_jobs(kind=JobKind.CURATION, limit=limit, offset=offset)
    return [CurationPublic.of(j) for j in jobs]


@router.get("/{job_id}", response_model=CurationPublic, responses=_ERRORS)
def get_curation(job_id: JobIdDep, store: StoreDep) -> CurationPublic:
    """A curation's status, progress and (once ended) its counts per step and rejection reasons."""
    return CurationPublic.of(_curation(store, job_id))


@router.post(
    "/{job_id}/cancel",
    response_model=CancelResponse,
    responses={**_ERRORS, **error_responses({409: "The curation has already completed or failed."})},
)
def cancel_curation(job_id: JobIdDep, service: ServiceDep) -> CancelResponse:
    """Stop a curation; what it stored so far is kept, and nothing more is written."""
    _curation(service.store, job_id)
    return cancel_job(job_id, service)


@router.delete(
    "/{job_id}",
    response_model=DeleteResponse,
    responses={**_ERRORS, **error_responses({409: "The curation has not finished: cancel it first."})},
)
def delete_curation(job_id: JobIdDep, service: ServiceDep) -> DeleteResponse:
    """Delete a finished curation's rows and files (records it wrote back stay in the log store)."""
    _curation(service.store, job_id)
    return delete_job(job_id, service)
