"""Promotion into the logging proxy's route and rollback; a workload's route and live agreement.

``POST /api/jobs/{id}/promote``, ``POST /api/workloads/{id}/rollback``, ``GET /api/workloads/{id}/route``,
``GET /api/workloads/{id}/agreement``. Plain ``def`` routes: the stores block.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi import Path as PathParam

from dataflywheel.api.deps import JobIdDep, SettingsDep, StoreDep
from dataflywheel.api.errors import error_responses
from dataflywheel.api.routing_schemas import (
    AgreementPublic,
    DayAgreementPublic,
    GatePublic,
    PromotePublic,
    PromoteRequest,
    RollbackRequest,
    RouteEventPublic,
    RouteEventsPublic,
    RoutePublic,
)
from dataflywheel.api.schemas import NO_NUL
from dataflywheel.logstore import open_log_store
from dataflywheel.promotion.agreement import live_agreement
from dataflywheel.promotion.promote import PromotionRequest, promote, rollback
from dataflywheel.records.model import ID_MAX_LENGTH

router = APIRouter(tags=["routing"])

WorkloadId = Annotated[str, PathParam(min_length=1, max_length=ID_MAX_LENGTH, pattern=NO_NUL)]
ClientQuery = Annotated[
    str | None, Query(min_length=1, max_length=ID_MAX_LENGTH, pattern=NO_NUL, description="One client only.")
]
DAY_S = 86_400


@router.post(
    "/jobs/{job_id}/promote",
    response_model=PromotePublic,
    responses=error_responses(
        {
            400: "Malformed job id.",
            404: "No such job.",
            409: "The job has not completed, or its recommendation does not pass the gate and no override was given.",
            422: "Bad values: an unknown mode, a candidate or eval type the job lacks, no base URL, an override "
            "without a reason.",
        }
    ),
)
def promote_job(job_id: JobIdDep, body: PromoteRequest, store: StoreDep, settings: SettingsDep) -> PromotePublic:
    """Make the job's candidate the route of its workload in the logging proxy: ``shadow``, ``canary`` (with
    ``canary_share``) or ``full``. Allowed when the job's recommendation passes its gate for this candidate, or
    with ``override`` and a ``reason`` (both recorded). The proxy follows within ``proxy.route_ttl_s``."""
    done = promote(store, settings, job_id, PromotionRequest(**body.model_dump()))
    return PromotePublic(event=RouteEventPublic.of(done.event), gate=GatePublic.of(done.gate))


@router.post(
    "/workloads/{workload_id}/rollback",
    response_model=RouteEventsPublic,
    responses=error_responses({409: "No candidate is promoted for this workload: nothing to roll back."}),
)
def rollback_workload(
    workload_id: WorkloadId, store: StoreDep, body: RollbackRequest | None = None
) -> RouteEventsPublic:
    """Send all of the workload's traffic back to the big model, in one call (every client's route, or one's)."""
    body = body or RollbackRequest()
    events = rollback(store, workload_id, body.client_id, body.reason)
    return RouteEventsPublic(data=[RouteEventPublic.of(e) for e in events])


@router.get("/workloads/{workload_id}/route", response_model=RoutePublic)
def workload_route(
    workload_id: WorkloadId,
    store: StoreDep,
    client_id: ClientQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> RoutePublic:
    """The workload's current route per client and its changes, newest first."""
    current = [r for r in store.current_routes(workload_id) if client_id in (None, r.client_id)]
    history = store.route_events(workload_id, client_id, limit)
    return RoutePublic(
        current=[RouteEventPublic.of(r) for r in current], history=[RouteEventPublic.of(r) for r in history]
    )


@router.get("/workloads/{workload_id}/agreement", response_model=AgreementPublic)
def workload_agreement(
    workload_id: WorkloadId,
    client_id: Annotated[str, Query(min_length=1, max_length=ID_MAX_LENGTH, pattern=NO_NUL)],
    settings: SettingsDep,
    days: Annotated[int, Query(ge=1, le=366, description="How many days back.")] = 14,
) -> AgreementPublic:
    """The promoted candidate's function-name agreement with the big model on live traffic (shadow and canary
    calls the proxy logged with both answers), per UTC day and candidate model."""
    with open_log_store(settings) as logs:
        rows = live_agreement(logs, workload_id, client_id, since=time.time() - days * DAY_S)
    return AgreementPublic(workload_id=workload_id, client_id=client_id, data=[DayAgreementPublic.of(r) for r in rows])
