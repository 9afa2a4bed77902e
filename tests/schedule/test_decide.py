"""Which trigger of a schedule is due: pure decisions on hand-made schedule records."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from dataflywheel.jobs import ScheduleRecord, ScheduleTrigger
from dataflywheel.schedule.decide import Decision, decide, new_records

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def schedule(**fields: object) -> ScheduleRecord:
    base = ScheduleRecord(
        id=1,
        workload_id="wl",
        client_id="c",
        cron=None,
        min_new_records=None,
        on_drift=False,
        job_config={},
        enabled=True,
        created_at=T0,
        updated_at=T0,
        next_due=None,
        generation=3,
        records_seen=100,
        last_fired_at=None,
        last_trigger=None,
        last_job_id=None,
        last_error=None,
        drift_checked_at=None,
        drift=None,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def test_cron_fires_when_due_and_moves_to_the_next_occurrence() -> None:
    s = schedule(cron="0 * * * *", next_due=T0)
    assert decide(s, T0 - timedelta(seconds=1), record_count=100) is None
    assert decide(s, T0, record_count=130) == Decision(ScheduleTrigger.CRON, T0 + timedelta(hours=1), 130)


def test_missed_occurrences_fire_once() -> None:
    s = schedule(cron="0 * * * *", next_due=T0)
    late = T0 + timedelta(hours=5, minutes=10)
    decision = decide(s, late, record_count=100)
    assert decision is not None and decision.trigger is ScheduleTrigger.CRON
    assert decision.next_due == T0 + timedelta(hours=6)


def test_new_records_fire_at_the_threshold_and_reset_the_baseline() -> None:
    s = schedule(min_new_records=50)
    assert new_records(s, 149) == 49
    assert decide(s, T0, record_count=149) is None
    assert decide(s, T0, record_count=150) == Decision(ScheduleTrigger.NEW_RECORDS, None, 150)
    assert new_records(s, 20) == 0  # logs deleted: never negative


def test_drift_fires_only_on_a_schedule_watching_it() -> None:
    assert decide(schedule(on_drift=True), T0, record_count=0, drifted=True) == Decision(ScheduleTrigger.DRIFT, None, 0)
    assert decide(schedule(on_drift=False, min_new_records=10**6), T0, record_count=0, drifted=True) is None
    assert decide(schedule(on_drift=True), T0, record_count=0, drifted=False) is None


def test_a_running_job_passes_a_cron_occurrence_and_holds_the_others() -> None:
    s = schedule(cron="0 * * * *", next_due=T0, min_new_records=1)
    decision = decide(s, T0, record_count=500, running_job="j" * 32)
    assert decision is not None and decision.trigger is None
    assert decision.next_due == T0 + timedelta(hours=1)
    assert decision.records_seen == 100  # the baseline stays: those records are still new
    assert decision.note is not None and "still runs" in decision.note
    held = decide(schedule(min_new_records=1), T0, record_count=500, running_job="j" * 32)
    assert held is None


def test_a_cron_schedule_without_a_due_time_gets_one() -> None:
    decision = decide(schedule(cron="*/10 * * * *"), T0 + timedelta(minutes=1), record_count=0)
    assert decision == Decision(None, T0 + timedelta(minutes=10), 100)


def test_disabled_schedules_never_fire() -> None:
    assert decide(schedule(enabled=False, cron="* * * * *", next_due=T0), T0, record_count=10**6) is None
