"""``/api/schedules``: a workload's jobs started on a cron expression, after N new records or on drift.

Routes are plain ``def``: the job store's calls block, so FastAPI runs them in its thread pool.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from dataflywheel.api.deps import SettingsDep, StoreDep
from dataflywheel.api.errors import error_responses
from dataflywheel.api.schedule_schemas import (
    MAX_SCHEDULE_ID,
    ScheduleCreate,
    SchedulePublic,
    SchedulesPublic,
    ScheduleUpdate,
)
from dataflywheel.api.schemas import NO_NUL
from dataflywheel.jobs.store.values import UNSET
from dataflywheel.records.model import ID_MAX_LENGTH
from dataflywheel.schedule.manage import add_schedule, change_schedule
from dataflywheel.schedule.spec import ScheduleSpec

router = APIRouter(prefix="/schedules", tags=["schedules"])

ScheduleId = Annotated[int, Path(ge=1, le=MAX_SCHEDULE_ID, description="The schedule's id.")]
_NOT_FOUND = error_responses({404: "No such schedule."})
_BAD = error_responses({422: "A bad cron expression, no trigger, or a bad job override (named)."})


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SchedulePublic,
    responses={**_BAD, **error_responses({409: "The workload and client already have a schedule."})},
)
def create_schedule(body: ScheduleCreate, store: StoreDep, settings: SettingsDep, response: Response) -> SchedulePublic:
    """Schedule a workload's jobs. Its job overrides are checked as ``POST /api/jobs`` checks them; new records
    are counted from the workload's records now."""
    spec = ScheduleSpec(body.cron, body.min_new_records, body.on_drift, body.enabled, body.job_config)
    schedule = add_schedule(store, settings, body.workload_id, body.client_id, spec)
    response.headers["Location"] = f"/api/schedules/{schedule.id}"
    return SchedulePublic.of(schedule)


@router.get("", response_model=SchedulesPublic)
def list_schedules(
    store: StoreDep,
    workload_id: Annotated[str | None, Query(max_length=ID_MAX_LENGTH, pattern=NO_NUL)] = None,
    client_id: Annotated[str | None, Query(max_length=ID_MAX_LENGTH, pattern=NO_NUL)] = None,
) -> SchedulesPublic:
    """Every schedule (of a workload, of a client), by workload and client."""
    rows = [
        s
        for s in store.list_schedules()
        if (workload_id is None or s.workload_id == workload_id) and (client_id is None or s.client_id == client_id)
    ]
    return SchedulesPublic(data=[SchedulePublic.of(s) for s in rows], count=len(rows))


@router.get("/{schedule_id}", response_model=SchedulePublic, responses=_NOT_FOUND)
def get_schedule(schedule_id: ScheduleId, store: StoreDep) -> SchedulePublic:
    """A schedule: its triggers, next run, last firing and last drift report."""
    return SchedulePublic.of(store.get_schedule(schedule_id))


@router.patch("/{schedule_id}", response_model=SchedulePublic, responses={**_NOT_FOUND, **_BAD})
def update_schedule(
    schedule_id: ScheduleId, body: ScheduleUpdate, store: StoreDep, settings: SettingsDep
) -> SchedulePublic:
    """Change a schedule's triggers, overrides or whether it is on; the fields left out stay."""
    given = body.model_fields_set
    changed = change_schedule(
        store,
        settings,
        schedule_id,
        cron=body.cron if "cron" in given else UNSET,
        min_new_records=body.min_new_records if "min_new_records" in given else UNSET,
        on_drift=body.on_drift if body.on_drift is not None else UNSET,
        enabled=body.enabled if body.enabled is not None else UNSET,
        job_config=body.job_config if body.job_config is not None else UNSET,
    )
    return SchedulePublic.of(changed)


@router.delete("/{schedule_id}", response_model=SchedulePublic, responses=_NOT_FOUND)
def delete_schedule(schedule_id: ScheduleId, store: StoreDep) -> SchedulePublic:
    """Remove a schedule (the jobs it started stay); the schedule as it was."""
    return SchedulePublic.of(store.delete_schedule(schedule_id))
