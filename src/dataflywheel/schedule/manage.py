"""Adding and changing schedules, shared by the API and the CLI: the checks, then the store, with the state a
new schedule starts from (its first due time, the record count its new records are counted from)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from dataflywheel.jobs import JobStore
from dataflywheel.jobs.records import ScheduleRecord
from dataflywheel.jobs.store.values import UNSET, Unset
from dataflywheel.jobs.tables import utcnow
from dataflywheel.logstore import open_log_store
from dataflywheel.schedule.spec import ScheduleSpec, check_spec, first_due
from dataflywheel.settings import Settings

__all__ = ["add_schedule", "change_schedule", "record_count"]


def record_count(settings: Settings, workload_id: str, client_id: str) -> int:
    """The workload's records in the log store now."""
    with open_log_store(settings) as logs:
        return logs.count(workload_id, client_id)


def add_schedule(
    store: JobStore,
    settings: Settings,
    workload_id: str,
    client_id: str,
    spec: ScheduleSpec,
    *,
    now: datetime | None = None,
) -> ScheduleRecord:
    """Check ``spec`` and store it; new records are counted from the workload's records now. ConfigError names
    a bad field; ScheduleExistsError when the workload and client have a schedule already."""
    spec = check_spec(settings, spec)
    now = now or utcnow()
    return store.create_schedule(
        workload_id,
        client_id,
        **spec.as_kwargs(),
        next_due=first_due(spec.cron, now),
        records_seen=record_count(settings, workload_id, client_id),
    )


def change_schedule(
    store: JobStore,
    settings: Settings,
    schedule_id: int,
    *,
    cron: str | Unset | None = UNSET,
    min_new_records: int | Unset | None = UNSET,
    on_drift: bool | Unset = UNSET,
    enabled: bool | Unset = UNSET,
    job_config: dict[str, Any] | Unset = UNSET,
    now: datetime | None = None,
) -> ScheduleRecord:
    """Change the fields given (None clears ``cron`` or ``min_new_records``), checked like a new schedule. A
    changed cron expression, or a schedule enabled again, is next due at its next occurrence from ``now``."""
    current = store.get_schedule(schedule_id)
    merged = ScheduleSpec(
        cron=current.cron if isinstance(cron, Unset) else cron,
        min_new_records=current.min_new_records if isinstance(min_new_records, Unset) else min_new_records,
        on_drift=current.on_drift if isinstance(on_drift, Unset) else on_drift,
        enabled=current.enabled if isinstance(enabled, Unset) else enabled,
        job_config=current.job_config if isinstance(job_config, Unset) else job_config,
    )
    spec = check_spec(settings, merged)
    now = now or utcnow()
    reschedule = spec.cron != current.cron or (spec.enabled and not current.enabled)
    return store.update_schedule(
        schedule_id,
        **spec.as_kwargs(),
        next_due=first_due(spec.cron, now) if reschedule else UNSET,
    )


def spec_of(schedule: ScheduleRecord) -> ScheduleSpec:
    """The spec a stored schedule was made from."""
    return replace(
        ScheduleSpec(),
        cron=schedule.cron,
        min_new_records=schedule.min_new_records,
        on_drift=schedule.on_drift,
        enabled=schedule.enabled,
        job_config=dict(schedule.job_config),
    )
