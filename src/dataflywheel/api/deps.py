"""Typed dependencies of the API's routes: the service, the settings, a checked job id, the API key."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dataflywheel.api.errors import check_job_id
from dataflywheel.api.session import COOKIE, PAGE_HEADER, valid_session
from dataflywheel.jobs import JobStore
from dataflywheel.settings import Settings
from dataflywheel.workflow.service import FlywheelService

__all__ = [
    "ApiState",
    "JobIdDep",
    "ServiceDep",
    "SettingsDep",
    "StoreDep",
    "api_state",
    "require_api_key",
]


@dataclass
class ApiState:
    """What the app holds (``app.state.api``): set by :func:`~dataflywheel.api.app.create_api`."""

    settings: Settings
    api_key: str | None
    """The key every ``/api`` call must present; None: the API is open."""
    start_jobs: bool = True
    """False: created jobs stay pending (tests; a process that only serves the API)."""
    service: FlywheelService | None = None
    """Set while the app runs (by its lifespan)."""


# The dependencies are async (they do not block): a plain ``def`` would cost each request a trip through
# the thread pool per dependency.
def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


async def get_service(request: Request) -> FlywheelService:
    service = api_state(request).service
    if service is None:  # only when the app is used without its lifespan
        raise RuntimeError("the flywheel service is not running: start the app with its lifespan")
    return service


async def get_store(service: Annotated[FlywheelService, Depends(get_service)]) -> JobStore:
    return service.store


async def get_settings(request: Request) -> Settings:
    return api_state(request).settings


async def job_id_param(job_id: str) -> str:
    """The path's job id, refused with 400 unless it is 32 lowercase hex digits."""
    return check_job_id(job_id)


_bearer = HTTPBearer(
    auto_error=False,
    description="Required when the server's api.api_key_env names a variable that holds a key.",
)


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def require_api_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """401 unless the request carries ``Authorization: Bearer <key>`` or the web page's session cookie
    (:mod:`.session`; with the page header too when it changes something), when the server has a key."""
    key = api_state(request).api_key
    if key is None:
        return
    if credentials is not None:
        # Constant time: the comparison must not tell how much of a guessed key was right.
        if hmac.compare_digest(credentials.credentials.encode(), key.encode()):
            return
    elif valid_session(request.cookies.get(COOKIE), key):
        if request.method in _SAFE_METHODS or request.headers.get(PAGE_HEADER):
            return
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail=f"a request that changes something with the page's session must send the {PAGE_HEADER} header",
        )
    raise HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="missing or invalid API key: send 'Authorization: Bearer <key>'",
        headers={"WWW-Authenticate": "Bearer"},
    )


ServiceDep = Annotated[FlywheelService, Depends(get_service)]
StoreDep = Annotated[JobStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
JobIdDep = Annotated[str, Depends(job_id_param)]
