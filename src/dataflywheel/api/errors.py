"""How errors leave the API: ``{"detail": "..."}`` with a 4xx status, like FastAPI's own errors.

* 400 :class:`InvalidJobIdError`: a job id that is not 32 lowercase hex digits.
* 404 :class:`~dataflywheel.jobs.JobNotFoundError`: no such job (or dataset, result file, candidate).
* 409 :class:`~dataflywheel.jobs.JobFinishedError`: cancelling a job that has completed or failed;
  :class:`~dataflywheel.jobs.JobRunningError`: deleting a job that has not finished;
  :class:`~dataflywheel.jobs.IllegalTransitionError`: a status change the job's state forbids.
* 422 :class:`~dataflywheel.errors.ConfigError` (a job's overrides or candidates are refused; the message
  names the key), :class:`~dataflywheel.errors.RecordError`, :class:`InvalidBodyError` (a body that is
  neither a JSON array nor NDJSON).
* 503 :class:`~dataflywheel.errors.StoreError`: the job or log store cannot be reached (the details, which
  name the store's URL, are logged, not returned).
* 500 anything else: a generic message; the exception is logged.

Request validation (bad query values, extra body keys) keeps FastAPI's 422 body,
``{"detail": [{"loc", "msg", "type"}, ...]}``, whose ``loc`` names the offending key.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from dataflywheel.errors import ConfigError, DependencyMissingError, FlywheelError, RecordError, StoreError
from dataflywheel.jobs.errors import IllegalTransitionError, JobFinishedError, JobNotFoundError, JobRunningError

logger = logging.getLogger(__name__)

__all__ = [
    "JOB_ID_PATTERN",
    "InvalidBodyError",
    "InvalidJobIdError",
    "NotFoundError",
    "check_job_id",
    "install_error_handlers",
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


_STATUS: Final[tuple[tuple[type[FlywheelError], int], ...]] = (
    (InvalidJobIdError, 400),
    (ConfigError, 422),
    (RecordError, 422),
    (InvalidBodyError, 422),
    (JobNotFoundError, 404),
    (JobFinishedError, 409),
    (JobRunningError, 409),
    (IllegalTransitionError, 409),
    (StoreError, 503),
)


def status_of(exc: FlywheelError) -> int:
    """The HTTP status of a project error (500 for one the API does not expect)."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def check_job_id(job_id: str) -> str:
    """``job_id`` if it is well-formed, else :class:`InvalidJobIdError` (checked before any query)."""
    if not JOB_ID_PATTERN.match(job_id):
        raise InvalidJobIdError(f"invalid job id {job_id[:64]!r}: expected 32 lowercase hexadecimal digits")
    return job_id


async def _flywheel_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FlywheelError)
    status = status_of(exc)
    if status == 503:
        # The message names the store's URL (password masked): log it, do not hand it to clients.
        logger.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": STORE_UNAVAILABLE}, status_code=503)
    if status == 500:
        log = logger.error if isinstance(exc, DependencyMissingError) else logger.exception
        log("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
        return JSONResponse({"detail": INTERNAL_ERROR}, status_code=500)
    return JSONResponse({"detail": str(exc)}, status_code=status)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": INTERNAL_ERROR}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Map the project's errors (and unexpected ones) to responses on ``app``."""
    app.add_exception_handler(FlywheelError, _flywheel_error)
    app.add_exception_handler(Exception, _unexpected_error)
