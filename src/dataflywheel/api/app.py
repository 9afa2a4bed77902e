"""The API's FastAPI app: ``/api/jobs``, ``/api/feedback``, ``/api/logs``, ``/api/workloads``, ``/api/schedules``,
``/health``, docs at ``/docs``, and the web pages (``/``, ``/jobs/{id}``: :mod:`dataflywheel.web`).
``/api/curations`` is the deprecated alias of ``/api/feedback`` (:mod:`dataflywheel.api.deprecation`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from dataflywheel import __version__
from dataflywheel.api.deprecation import DeprecatedPaths
from dataflywheel.api.deps import ApiState, api_state, require_api_key
from dataflywheel.api.errors import document_body_errors, error_responses, install_error_handlers
from dataflywheel.api.routes import feedback, jobs, logs, routing, schedules, workloads
from dataflywheel.api.schemas import HealthPublic
from dataflywheel.jobs.routes import RouteEventRecord
from dataflywheel.proxy.app import install_proxy_routes, start_proxy, stop_proxy
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.schedule.scheduler import Scheduler
from dataflywheel.settings import Settings, secret_from_env
from dataflywheel.web.routes import install_web
from dataflywheel.workflow.service import FlywheelService

logger = logging.getLogger(__name__)

__all__ = ["create_api"]

DESCRIPTION = """\
Run the data flywheel over HTTP: load production logs, create jobs that curate them into datasets and
evaluate (and fine-tune) candidate models, follow their progress, download their datasets and per-sample
results, cancel and delete them. Run the feedback loop (`/api/feedback`): a student model answers logged
requests and the answers that pass the quality filter are written back as new records. `/api/curations`
is its former name, deprecated (its responses carry a `Deprecation` header).

When the server's `api.api_key_env` names an environment variable that holds a key, every `/api` call
needs `Authorization: Bearer <key>` (or the session cookie the web page's login form sets); `/health` and
the docs stay open. The web pages are at `/`.
"""


def api_key_of(settings: Settings) -> str | None:
    """The API key the settings name (``api.api_key_env``), None when there is none."""
    env = settings.api.api_key_env
    key = secret_from_env(env, setting="api.api_key_env", required=False)
    if env and key is None:
        logger.warning("api.api_key_env names %s, which holds no key: the API is open to every caller", env)
    return key


def create_api(
    settings: Settings,
    service: FlywheelService | None = None,
    *,
    recover: bool = True,
    start_jobs: bool = True,
    run_schedules: bool = True,
    mount_proxy: bool = False,
) -> FastAPI:
    """The API app over ``service`` (default: a :class:`FlywheelService` of ``settings``, made at start-up).

    The app's lifespan owns the service: it makes it (unless given), resumes unfinished jobs that no live
    process drives (``recover``: at start-up, then every heartbeat while jobs are started here), and closes it
    at shutdown, the given one too. With ``start_jobs`` False,
    created jobs are stored but not driven (they stay pending): a seam for tests, and for an API process
    that leaves the work to another one (which picks them up with ``recover``).

    With ``run_schedules`` (and ``schedule.enabled``), the lifespan also runs the scheduler
    (:mod:`dataflywheel.schedule`): every ``schedule.tick_s`` it starts the jobs whose schedules are due.

    The API key is read from ``settings.api.api_key_env`` once, here.
    The API key is read from ``settings.api.api_key_env`` once, here. With ``mount_proxy``, the logging proxy
    (:mod:`dataflywheel.proxy`) answers under ``/proxy`` (``/proxy/v1/chat/completions``), its routes read from
    this API's job store.
    """
    state = ApiState(settings=settings, api_key=api_key_of(settings), start_jobs=start_jobs)
    proxy = None
    if mount_proxy:
        from dataflywheel.proxy.build import proxy_state

        def lookup(workload_id: str, client_id: str) -> RouteEventRecord | None:
            if state.service is None:
                return None
            return state.service.store.current_route(workload_id, client_id)

        proxy = proxy_state(settings, lookup=lookup)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = service if service is not None else await asyncio.to_thread(FlywheelService, settings)
        state.service = svc
        scheduler: Scheduler | None = None
        try:
            if recover:
                resumed = await asyncio.to_thread(svc.recover)
                if resumed:
                    logger.info("resumed %d unfinished job(s): %s", len(resumed), ", ".join(resumed))
                if start_jobs:  # and every heartbeat from now on: an owner may die at any time
                    svc.start_recovery()
            if run_schedules and settings.schedule.enabled:
                scheduler = Scheduler(
                    svc.store, settings, lambda w, c, config: svc.create_job(w, c, config, start=start_jobs)
                )
                scheduler.start()
            if proxy is not None:
                await start_proxy(proxy)
            yield
        finally:
            if proxy is not None:
                await stop_proxy(proxy)
            if scheduler is not None:
                await asyncio.to_thread(scheduler.stop)
            state.service = None
            await asyncio.to_thread(svc.close)

    app = FastAPI(
        title="data-flywheel",
        version=__version__,
        summary="Turn an LLM application's production logs into cheaper models.",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.api = state
    # Statuses every /api route may answer: a bad or missing key, a bad value, a store that is down.
    api = APIRouter(
        prefix="/api",
        dependencies=[Depends(require_api_key)],
        responses=error_responses({401: None, 403: None, 422: None, 503: None}),
    )
    api.include_router(jobs.router)
    api.include_router(logs.router)
    api.include_router(workloads.router)
    api.include_router(schedules.router)
    api.include_router(routing.router)
    api.include_router(feedback.router, prefix="/feedback", tags=["feedback"])
    # Deprecated alias (the feedback loop's former name): same routes, marked deprecated in the schema, and
    # every response says so (DeprecatedPaths).
    api.include_router(feedback.router, prefix="/curations", tags=["feedback"], deprecated=True)
    app.include_router(api)
    app.add_api_route(
        "/health",
        health,
        methods=["GET"],
        response_model=HealthPublic,
        tags=["health"],
        responses={503: {"model": HealthPublic, "description": "The job store does not answer."}},
    )
    if proxy is not None:
        install_proxy_routes(app, proxy, prefix="/proxy")
    install_web(app)
    install_error_handlers(app)
    document_body_errors(app)
    app.add_middleware(DeprecatedPaths)
    return app


def health(request: Request) -> JSONResponse:
    """Whether the API can serve: its job store answers (503 when it does not), the executor, running jobs."""
    state = api_state(request)
    service = state.service
    store_info: JsonObject = {"reachable": False}
    if service is not None:
        store = service.store
        store_info["dialect"] = store.dialect  # not the URL: /health is open to anyone
        try:
            with store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            store_info["reachable"] = True
        except SQLAlchemyError as exc:
            logger.warning("health: the job store at %s does not answer: %s", store.url, exc)
            store_info["error"] = type(exc).__name__
    ok = bool(store_info["reachable"])
    body = HealthPublic(
        status="ok" if ok else "unavailable",
        job_store=store_info,
        executor=service.executor.kind if service is not None else state.settings.executor.kind,
        running_jobs=len(service.running()) if service is not None else 0,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ok else 503)
