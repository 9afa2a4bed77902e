"""How errors leave the API: ``{"detail": "..."}`` with a 4xx or 503 status, like FastAPI's own errors.

Every :class:`~dataflywheel.errors.FlywheelError` subclass has a status here (``tests/api/test_errors.py``
walks the hierarchy of every module): the most specific class of an error's MRO that the table names wins.

* 400 :class:`InvalidJobIdError`: a job id that is not 32 lowercase hex digits.
* 404 no such job (or dataset, result file, candidate), adapter or model.
* 409 the job's state forbids it: cancelling a finished job, deleting a running one, an illegal status
  change; work that was cancelled or skipped.
* 422 bad input: settings or overrides (the message names the key), a log record, a body, a curation that
  has no records to work on, a training set with no usable row, a prompt the engine cannot run.
* 503 something the request needs failed or is unavailable: the job or log store (the details, which name
  the store's URL, are logged, not returned), a model endpoint, a deployment, the judge, an embedder, an
  eval or a training run, an optional package the server lacks; the message says which.
* 500 anything else: a generic message; the exception is logged (a bug: every error we raise is mapped).

Request validation (bad query values, extra body keys) keeps FastAPI's 422 body,
``{"detail": [{"loc", "msg", "type"}, ...]}``, whose ``loc`` names the offending key; a body that is not
JSON is FastAPI's 400.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from dataflywheel.api.schemas import ErrorPublic
from dataflywheel.errors import (
    ConfigError,
    CurationError,
    DependencyMissingError,
    EmbeddingError,
    FlywheelError,
    RecordError,
    RemoteServiceError,
    StoreError,
)
from dataflywheel.evaluation.judge import JudgeError
from dataflywheel.evaluation.runner import EvalCancelled, EvalError
from dataflywheel.export import ExportError
from dataflywheel.feedback.pipeline import FeedbackCancelled
from dataflywheel.jobs.errors import JobNotFoundError, JobStateError
from dataflywheel.models.deployments import DeploymentError
from dataflywheel.models.endpoint import EndpointError
from dataflywheel.models.engine import GenerationInputError, UnknownAdapterError
from dataflywheel.models.registry import ModelLoadError
from dataflywheel.promotion.errors import PromotionInputError
from dataflywheel.serving.service import InvalidRequestError, ModelNotFoundError, ServingError
from dataflywheel.training.adapters import AdapterNotFoundError
from dataflywheel.training.examples import TrainingDataError
from dataflywheel.training.trainer import TrainingCancelled, TrainingError
from dataflywheel.workflow.driver import DriverDisplaced
from dataflywheel.workflow.stages import StageCancelled, StageSkipped

logger = logging.getLogger(__name__)

__all__ = [
    "JOB_ID_PATTERN",
    "STATUS",
    "InvalidBodyError",
    "InvalidJobIdError",
    "NotFoundError",
    "check_job_id",
    "error_responses",
    "install_error_handlers",
    "status_for",
    "status_of",
]

JOB_ID_PATTERN: Final = re.compile(r"^[0-9a-f]{32}$")
"""A job id: a uuid4's 32 lowercase hex digits."""

INTERNAL_ERROR: Final = "internal server error"
STORE_UNAVAILABLE: Final = "the job store or the log store is unavailable; try again later"


class InvalidJobIdError(FlywheelError):
    """A path's job id is not 32 lowercase hex digits (400)."""


class InvalidBodyError(FlywheelError):
    """A request body that cannot be read as what the route takes (422)."""


class NotFoundError(JobNotFoundError):
    """Something of an existing job is absent: a dataset, a result file, a candidate (404)."""


STATUS: Final[dict[type[FlywheelError], int]] = {
    InvalidJobIdError: 400,
    # 404: what the request names does not exist
    JobNotFoundError: 404,
    AdapterNotFoundError: 404,
    UnknownAdapterError: 404,
    ModelNotFoundError: 404,
    # 409: the state of the job forbids it (finished, running, an illegal change, a stage's lease) or the work
    # was cancelled or skipped
    JobStateError: 409,
    StageCancelled: 409,
    DriverDisplaced: 409,
    StageSkipped: 409,
    EvalCancelled: 409,
    TrainingCancelled: 409,
    FeedbackCancelled: 409,
    # 422: bad input, named
    ConfigError: 422,
    RecordError: 422,
    InvalidBodyError: 422,
    CurationError: 422,
    TrainingDataError: 422,
    GenerationInputError: 422,
    InvalidRequestError: 422,
    PromotionInputError: 422,
    # 503: something the request needs is unavailable or failed
    StoreError: 503,
    DependencyMissingError: 503,
    EmbeddingError: 503,
    JudgeError: 503,
    EvalError: 503,
    ExportError: 503,
    EndpointError: 503,
    DeploymentError: 503,
    ModelLoadError: 503,
    TrainingError: 503,
    ServingError: 503,
    RemoteServiceError: 503,
}
"""The HTTP status of each project error (its subclasses included, unless they have their own)."""


def status_for(cls: type[FlywheelError]) -> int | None:
    """The HTTP status of a project error class: that of the most specific class of its MRO in
    :data:`STATUS`; None for one the table misses (which ``tests/api/test_errors.py`` forbids)."""
    for base in cls.__mro__:
        status = STATUS.get(base)
        if status is not None:
            return status
    return None


def status_of(exc: FlywheelError) -> int:
    """The HTTP status of a project error (500 for one :data:`STATUS` misses)."""
    return status_for(type(exc)) or 500


DESCRIPTIONS: Final[dict[int, str]] = {
    400: "A malformed request: a job id that is not 32 lowercase hex digits, or a body that is not JSON.",
    401: "A missing or wrong API key (only when the server has one: api.api_key_env).",
    403: "A change sent with the web page's session cookie but without its X-Flywheel-Page header.",
    404: "No such job.",
    409: "The job's state forbids it.",
    422: "Invalid input: the message (or each item's loc) names the value.",
    503: "The job store or the log store is unavailable, or something the request needs failed; try again later.",
}


def error_responses(statuses: Mapping[int, str | None]) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` for error statuses, each with the error body's schema and a description: the
    route's own, or the standard one (:data:`DESCRIPTIONS`) where it gives None."""
    return {
        status: {"model": ErrorPublic, "description": text or DESCRIPTIONS[status]} for status, text in statuses.items()
    }


BODY_NOT_JSON: Final = "The body is not JSON (FastAPI's 400 before any validation)."


def document_body_errors(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI document the 400 that FastAPI answers, before any route runs, to a request body
    it cannot decode (bytes that are not UTF-8): every operation taking a body lists it, with the error body's
    schema, unless the route already describes its own 400."""
    build = app.openapi

    def openapi() -> dict[str, object]:
        if app.openapi_schema is None:
            schema = build()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    if isinstance(operation, dict) and "requestBody" in operation:
                        operation.setdefault("responses", {}).setdefault(
                            "400",
                            {
                                "description": BODY_NOT_JSON,
                                "content": {
                                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorPublic"}}
                                },
                            },
                        )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def check_job_id(job_id: str) -> str:
    """``job_id`` if it is well-formed, else :class:`InvalidJobIdError` (checked before any query)."""
    if not JOB_ID_PATTERN.match(job_id):
        raise InvalidJobIdError(f"invalid job id {job_id[:64]!r}: expected 32 lowercase hexadecimal digits")
    return job_id


async def _flywheel_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FlywheelError)
    status = status_of(exc)
    if isinstance(exc, StoreError):
        # The message names the store's URL (password masked): log it, do not hand it to clients.
        logger.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": STORE_UNAVAILABLE}, status_code=503)
    if status == 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
        return JSONResponse({"detail": INTERNAL_ERROR}, status_code=500)
    if status == 503:
        logger.warning("%s %s: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": str(exc) or type(exc).__name__}, status_code=status)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": INTERNAL_ERROR}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Map the project's errors (and unexpected ones) to responses on ``app``."""
    app.add_exception_handler(FlywheelError, _flywheel_error)
    app.add_exception_handler(Exception, _unexpected_error)
