"""``/api/jobs``: create, list, inspect, cancel and delete flywheel jobs; their events, datasets and results.

Routes are plain ``def``: the job store's calls block, so FastAPI runs them in its thread pool.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from fastapi.types import DecoratedCallable
from pydantic import BaseModel

from dataflywheel.api.deps import JobIdDep, ServiceDep, SettingsDep, StoreDep, api_state
from dataflywheel.api.errors import NotFoundError, error_responses
from dataflywheel.api.schemas import (
    MAX_OFFSET,
    NAME_MAX_LENGTH,
    NO_NUL,
    CancelResponse,
    DeleteResponse,
    EventPublic,
    EventsPublic,
    JobCreate,
    JobCreated,
    JobDetailPublic,
    JobListItem,
    JobsPublic,
)
from dataflywheel.evaluation.runner import SAMPLES_FILE, EvalType
from dataflywheel.jobs.errors import JobFinishedError
from dataflywheel.jobs.status import JobStatus
from dataflywheel.records.model import ID_MAX_LENGTH
from dataflywheel.results.samples import SamplesPage, Verdict, eval_folder, load_samples, page_of
from dataflywheel.workflow.stages import folder_name

router = APIRouter(prefix="/jobs", tags=["jobs"])

NDJSON = "application/x-ndjson"
_ERRORS = error_responses({400: "Malformed job id (not 32 lowercase hex digits).", 404: "No such job."})
MAX_EVENT_ID = 2**31 - 1
"""Event ids are the job store's 32-bit integers (PostgreSQL ``integer``): a larger ``after_id`` is a 422."""
CandidateName = Annotated[
    str,
    Query(min_length=1, max_length=NAME_MAX_LENGTH, pattern=NO_NUL, description="The candidate (as the job names it)."),
]


class DatasetName(StrEnum):
    EVAL = "eval"
    ICL = "icl"
    TRAIN = "train"
    VAL = "val"


def post_job(
    on: APIRouter, response_model: type[BaseModel], unprocessable: str
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """The route on ``on`` that creates a job from a JSON body and starts it (202 Accepted): 400 when the body
    is not JSON, 422 (described by ``unprocessable``) when the job's settings are refused."""
    return on.post(
        "",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=response_model,
        responses=error_responses({400: "The body is not JSON.", 422: unprocessable}),
    )


@post_job(
    router,
    JobCreated,
    "Unknown keys, bad override values, or candidates that are neither configured nor installed here (named).",
)
def create_job(body: JobCreate, service: ServiceDep, request: Request, response: Response) -> JobCreated:
    """Create a flywheel job and start it in the background.

    The job curates the workload's logs into datasets, then evaluates every candidate (base, ICL and
    customized after LoRA fine-tuning). Overrides are checked before the job exists: a bad one is a 422
    that names the key. Poll ``GET /api/jobs/{id}`` (or its events) for progress.
    """
    start = api_state(request).start_jobs
    job = service.create_job(body.workload_id, body.client_id, body.config(), start=start)
    response.headers["Location"] = f"/api/jobs/{job.id}"
    return JobCreated(
        id=job.id,
        status=job.status,
        message=f"flywheel job created; follow it at /api/jobs/{job.id}",
    )


@router.get("", response_model=JobsPublic)
def list_jobs(
    store: StoreDep,
    status_: Annotated[
        list[JobStatus] | None, Query(alias="status", description="Only jobs in these statuses (repeatable).")
    ] = None,
    workload_id: Annotated[
        str | None, Query(max_length=ID_MAX_LENGTH, pattern=NO_NUL, description="Only this workload's jobs.")
    ] = None,
    client_id: Annotated[
        str | None, Query(max_length=ID_MAX_LENGTH, pattern=NO_NUL, description="Only this client's jobs.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Jobs per page.")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Jobs to skip.")] = 0,
) -> JobsPublic:
    """List jobs, newest first, a page at a time; ``count`` is the number matching the filters."""
    jobs, total = store.list_jobs(
        status=status_ or None, workload_id=workload_id, client_id=client_id, limit=limit, offset=offset
    )
    return JobsPublic(data=[JobListItem.of(j) for j in jobs], count=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobDetailPublic, responses=_ERRORS)
def get_job(job_id: JobIdDep, store: StoreDep) -> JobDetailPublic:
    """A job with its candidates (evaluations with scores and progress, customization), datasets,
    overall progress and, once completed, its result."""
    return JobDetailPublic.of(store.job_detail(job_id))


@router.post(
    "/{job_id}/cancel",
    response_model=CancelResponse,
    responses={**_ERRORS, **error_responses({409: "The job has already completed or failed."})},
)
def cancel_job(job_id: JobIdDep, service: ServiceDep) -> CancelResponse:
    """Ask a job to stop. A pending job is cancelled at once; a running one becomes ``cancelling`` and
    its stages stop within seconds. Cancelling a cancelled (or cancelling) job again is harmless."""
    store = service.store
    job = store.get_job(job_id)
    if job.status is JobStatus.CANCELLED:
        return CancelResponse(id=job_id, status=job.status, message="Job is already cancelled.")
    try:
        job = service.cancel(job_id)
    except JobFinishedError:
        # It ended meanwhile: cancelled by another request is a success, completed or failed is not.
        if store.get_job(job_id).status is JobStatus.CANCELLED:
            return CancelResponse(id=job_id, status=JobStatus.CANCELLED, message="Job is already cancelled.")
        raise
    if job.status is JobStatus.CANCELLED:
        message = "Job cancelled."
    else:
        message = "Job cancellation requested; it stops within seconds."
    return CancelResponse(id=job_id, status=job.status, message=message)


@router.delete(
    "/{job_id}",
    response_model=DeleteResponse,
    responses={**_ERRORS, **error_responses({409: "The job has not finished: cancel it first."})},
)
def delete_job(job_id: JobIdDep, service: ServiceDep) -> DeleteResponse:
    """Delete a finished job with everything it made: its rows, its folder (eval results, deployment logs),
    datasets, LoRA runs (checkpoints, optimizer state, adapters) and registered adapters. The answer lists
    what was removed and the bytes freed."""
    return DeleteResponse.of(job_id, service.delete(job_id).removal)


@router.get("/{job_id}/events", response_model=EventsPublic, responses=_ERRORS)
def list_events(
    job_id: JobIdDep,
    store: StoreDep,
    after_id: Annotated[int, Query(ge=0, le=MAX_EVENT_ID, description="Only events with a larger id.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most events returned.")] = 500,
) -> EventsPublic:
    """The job's history (status and stage changes, errors), oldest first."""
    events = store.list_events(job_id, after_id=after_id, limit=limit)
    return EventsPublic(data=[EventPublic.of(e) for e in events], last_id=events[-1].id if events else after_id)


@router.get(
    "/{job_id}/datasets/{name}",
    response_class=FileResponse,
    responses={
        200: {"content": {NDJSON: {}}, "description": "The dataset, one JSON record a line."},
        **_ERRORS,
    },
)
def download_dataset(job_id: JobIdDep, name: DatasetName, store: StoreDep) -> FileResponse:
    """Download a dataset the job built (``eval``, ``icl``, ``train`` or ``val``) as JSONL."""
    detail = store.job_detail(job_id)
    dataset = next((d for d in detail.datasets if d.name == name.value), None)
    if dataset is None or not dataset.path or not Path(dataset.path).is_file():
        raise NotFoundError(f"job {job_id} has no {name.value} dataset")
    return FileResponse(dataset.path, media_type=NDJSON, filename=f"{job_id}-{name.value}.jsonl")


@router.get(
    "/{job_id}/results/{candidate:path}/{eval_type}",
    response_class=FileResponse,
    responses={
        200: {"content": {NDJSON: {}}, "description": "One scored sample a line."},
        **_ERRORS,
    },
)
def download_results(
    job_id: JobIdDep,
    candidate: Annotated[str, PathParam(max_length=NAME_MAX_LENGTH, pattern=NO_NUL)],
    eval_type: EvalType,
    store: StoreDep,
    settings: SettingsDep,
) -> FileResponse:
    """Download an evaluation's per-sample results (request, reference, prediction, scores) as JSONL.

    Available while the evaluation runs (the samples scored so far) and after it ends.
    """
    folder = eval_folder(settings, store.job_detail(job_id), candidate, eval_type.value)
    samples = folder / SAMPLES_FILE
    if not samples.is_file():
        raise NotFoundError(f"job {job_id} has no {eval_type.value} results for {candidate!r}")
    return FileResponse(
        samples, media_type=NDJSON, filename=f"{job_id}-{folder_name(candidate)}-{eval_type.value}.jsonl"
    )


@router.get(
    "/{job_id}/samples",
    response_model=SamplesPage,
    responses={
        **_ERRORS,
        **error_responses(
            {
                404: "No such job, no such candidate, or the eval stored no samples (yet).",
                422: "A bad filter: an unknown eval type or verdict, an offset or limit out of range.",
            }
        ),
    },
)
def list_samples(
    job_id: JobIdDep,
    store: StoreDep,
    settings: SettingsDep,
    candidate: CandidateName,
    eval_type: Annotated[EvalType, Query(description="base-eval, icl-eval or customized-eval.")],
    verdict: Annotated[
        Verdict | None,
        Query(
            description="Only samples with this verdict: correct, wrong_tool (another tool, or none), "
            "wrong_arguments (right tool, a required argument missing or an identifier wrong), unparsable "
            "(nothing usable, or arguments that are not JSON), error (the request failed)."
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Samples per page.")] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Samples to skip.")] = 0,
) -> SamplesPage:
    """An evaluation's scored samples, a page at a time in dataset order: the user's request, the logged
    model's answer, the candidate's (parsed, and as generated), scores, flags and a verdict; ``verdicts`` counts
    every sample of the evaluation per verdict. Available while the evaluation runs (the samples so far)."""
    samples = load_samples(settings, store.job_detail(job_id), candidate, eval_type.value)
    return page_of(samples, candidate, eval_type.value, verdict, offset=offset, limit=limit)
