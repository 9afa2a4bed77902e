"""Each workload's schedule as the jobs page shows it: triggers, next run, last firing, last drift check
(pure: schedule records in, rows out)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from dataflywheel.drift.report import DriftReport
from dataflywheel.jobs.records import ScheduleRecord
from dataflywheel.schedule.spec import describe_triggers

__all__ = ["ScheduleRow", "schedule_rows"]


@dataclass(frozen=True)
class ScheduleRow:
    id: int
    workload_id: str
    client_id: str
    triggers: str
    enabled: bool
    next_due: datetime | None
    last_fired_at: datetime | None
    last_trigger: str | None
    last_job_id: str | None
    last_error: str | None
    drift_status: str | None
    """The last drift check's verdict (``drifted``, ``stable``...), None: never checked."""
    drift_reasons: tuple[str, ...]
    drift_checked_at: datetime | None


def _drift(s: ScheduleRecord) -> DriftReport | None:
    if s.drift is None:
        return None
    try:
        return DriftReport.model_validate(s.drift)
    except ValidationError:
        return None


def schedule_rows(schedules: Sequence[ScheduleRecord]) -> list[ScheduleRow]:
    rows = []
    for s in schedules:
        drift = _drift(s)
        rows.append(
            ScheduleRow(
                id=s.id,
                workload_id=s.workload_id,
                client_id=s.client_id,
                triggers=describe_triggers(s.cron, s.min_new_records, s.on_drift),
                enabled=s.enabled,
                next_due=s.next_due if s.enabled else None,
                last_fired_at=s.last_fired_at,
                last_trigger=s.last_trigger.value if s.last_trigger else None,
                last_job_id=s.last_job_id,
                last_error=s.last_error,
                drift_status=drift.status.value if drift else None,
                drift_reasons=drift.reasons if drift else (),
                drift_checked_at=s.drift_checked_at,
            )
        )
    return rows
