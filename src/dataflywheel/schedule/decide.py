"""Which trigger of a schedule is due, as a pure function of the schedule, the time and what was observed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dataflywheel.jobs.records import ScheduleRecord
from dataflywheel.jobs.status import ScheduleTrigger
from dataflywheel.schedule.cron import next_run

__all__ = ["Decision", "decide", "new_records"]


@dataclass(frozen=True)
class Decision:
    """What a tick does with a schedule: fire (``trigger``) or only move on (``trigger`` None: a cron
    occurrence passed while a job still runs, or a cron time to set); the new state either way."""

    trigger: ScheduleTrigger | None
    next_due: datetime | None
    records_seen: int
    note: str | None = None


def new_records(schedule: ScheduleRecord, record_count: int) -> int:
    """Records logged since the schedule last fired (or was created); never negative (logs deleted)."""
    return max(0, record_count - schedule.records_seen)


def decide(
    schedule: ScheduleRecord,
    now: datetime,
    *,
    record_count: int,
    drifted: bool = False,
    running_job: str | None = None,
) -> Decision | None:
    """The decision for ``schedule`` at ``now``, or None when nothing is due.

    ``record_count``: the workload's records now; ``drifted``: a drift check just found drift;
    ``running_job``: an unfinished job of the workload (none is started beside it: a due cron occurrence is
    passed, with a note; the record and drift triggers wait for it). Missed cron occurrences (a server that
    was down) fire once, not once each. Firing resets the record baseline to ``record_count``.
    """
    if not schedule.enabled:
        return None
    cron = schedule.cron
    if cron is not None and schedule.next_due is None:
        return Decision(None, next_run(cron, now), schedule.records_seen)
    cron_due = cron is not None and schedule.next_due is not None and now >= schedule.next_due
    count_due = schedule.min_new_records is not None and new_records(schedule, record_count) >= schedule.min_new_records
    drift_due = schedule.on_drift and drifted
    if cron_due:
        trigger = ScheduleTrigger.CRON
    elif count_due:
        trigger = ScheduleTrigger.NEW_RECORDS
    elif drift_due:
        trigger = ScheduleTrigger.DRIFT
    else:
        return None
    next_due = next_run(cron, now) if cron_due and cron is not None else schedule.next_due
    if running_job is not None:
        if not cron_due:
            return None
        note = f"passed the {trigger.value} run of {schedule.next_due:%Y-%m-%d %H:%M} UTC: job {running_job} still runs"
        return Decision(None, next_due, schedule.records_seen, note)
    return Decision(trigger, next_due, record_count)
