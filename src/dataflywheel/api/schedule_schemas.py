"""Request and response models of ``/api/schedules`` and of a workload's drift report."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dataflywheel.api.schemas import EXAMPLE_WORKLOAD, NO_NUL, JobCreate, RecordId, request_config
from dataflywheel.drift.report import DriftReport
from dataflywheel.jobs.records import ScheduleRecord
from dataflywheel.jobs.status import ScheduleTrigger
from dataflywheel.projection import project
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.schedule.cron import MAX_LENGTH as CRON_MAX_LENGTH
from dataflywheel.schedule.spec import MAX_MIN_NEW_RECORDS

logger = logging.getLogger(__name__)

__all__ = ["ScheduleCreate", "SchedulePublic", "ScheduleUpdate", "SchedulesPublic", "job_overrides"]

MAX_SCHEDULE_ID: Final = 2**31 - 1

_CRON = Field(
    None,
    min_length=1,
    max_length=CRON_MAX_LENGTH,
    pattern=NO_NUL,
    description="Five-field cron expression in UTC (minute hour day-of-month month day-of-week), e.g. '0 3 * * *', "
    "or @hourly/@daily/@weekly/@monthly; null: no time trigger.",
)
_MIN_NEW = Field(
    None,
    ge=1,
    le=MAX_MIN_NEW_RECORDS,
    description="Start a job once this many records were logged since the last firing; null: no count trigger.",
)
_ON_DRIFT = "Start a job when the drift check finds the logs drifted from the last job's dataset."
_JOB_CONFIG = (
    "The jobs' overrides, as POST /api/jobs takes them without workload_id and client_id (candidates, "
    "data_split_config, training_config, ...)."
)


def job_overrides(value: JsonObject) -> JsonObject:
    """The overrides of a job as ``POST /api/jobs`` checks them (unknown keys refused); ValueError naming the
    key otherwise."""
    try:
        return JobCreate.model_validate({"workload_id": "-", "client_id": "-", **value}).config()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValueError(problems) from None


class ScheduleCreate(BaseModel):
    """A workload's schedule: at least one trigger (cron, min_new_records, on_drift), and the jobs' overrides."""

    model_config = request_config(
        {
            **EXAMPLE_WORKLOAD,
            "cron": "0 3 * * mon",
            "min_new_records": 5000,
            "on_drift": True,
            "job_config": {"candidates": ["smollm2-135m-instruct"]},
        }
    )

    workload_id: RecordId
    client_id: RecordId
    cron: str | None = _CRON
    min_new_records: int | None = _MIN_NEW
    on_drift: bool = Field(False, description=_ON_DRIFT)
    enabled: bool = Field(True, description="False: stored, but it fires nothing.")
    job_config: JsonObject = Field(default_factory=dict, description=_JOB_CONFIG)

    @field_validator("job_config")
    @classmethod
    def _overrides(cls, value: JsonObject) -> JsonObject:
        return job_overrides(value)


class ScheduleUpdate(BaseModel):
    """The fields to change; those left out stay. ``cron`` or ``min_new_records`` null removes that trigger."""

    model_config = ConfigDict(extra="forbid")

    cron: str | None = _CRON
    min_new_records: int | None = _MIN_NEW
    on_drift: bool | None = Field(None, description=_ON_DRIFT)
    enabled: bool | None = None
    job_config: JsonObject | None = Field(None, description=_JOB_CONFIG)

    @field_validator("job_config")
    @classmethod
    def _overrides(cls, value: JsonObject | None) -> JsonObject | None:
        return None if value is None else job_overrides(value)


class SchedulePublic(BaseModel):
    """A schedule, when it next runs, what it last did, and its last drift report (on_drift)."""

    id: int
    workload_id: str
    client_id: str
    cron: str | None
    min_new_records: int | None
    on_drift: bool
    enabled: bool
    job_config: JsonObject
    created_at: datetime
    updated_at: datetime
    next_due: datetime | None = Field(description="When the cron expression next comes due (UTC); null without one.")
    records_seen: int = Field(description="The workload's record count new records are counted from.")
    last_fired_at: datetime | None
    last_trigger: ScheduleTrigger | None
    last_job_id: str | None
    last_error: str | None = Field(description="Why the last firing (or occurrence) started no job.")
    drift_checked_at: datetime | None
    drift: DriftReport | None = Field(description="The last drift check's report (schedules with on_drift).")

    @classmethod
    def of(cls, s: ScheduleRecord) -> SchedulePublic:
        drift = None
        if s.drift is not None:
            try:
                drift = DriftReport.model_validate(s.drift)
            except ValidationError as exc:  # written by another version: show the schedule without it
                logger.warning("schedule %d: its stored drift report cannot be read: %s", s.id, exc)
        return project(cls, s, drift=drift)


class SchedulesPublic(BaseModel):
    data: list[SchedulePublic]
    count: int
