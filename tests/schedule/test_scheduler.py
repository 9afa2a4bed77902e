"""The scheduler over real stores: it fires on cron and on N new records, never beside a running job, records
why a firing started no job, and a drift over the threshold starts a job (a stable workload does not)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dataflywheel.drift import DriftReport, DriftStatus
from dataflywheel.drift.check import check_drift
from dataflywheel.errors import ConfigError
from dataflywheel.jobs import JobRecord, JobStatus, JobStore, ScheduleTrigger
from dataflywheel.logstore import open_log_store
from dataflywheel.schedule.manage import add_schedule, change_schedule
from dataflywheel.schedule.scheduler import Scheduler
from dataflywheel.schedule.spec import ScheduleSpec
from dataflywheel.settings import Settings
from tests.schedule.conftest import CHANGED_TOOLS, CL, TS0, WL, add_logs, job_with_dataset, records

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CONFIG = {"candidates": ["tiny-random-llama"]}


def scheduler(store: JobStore, settings: Settings) -> Scheduler:
    return Scheduler(store, settings, lambda w, c, cfg: store.create_job(w, c, cfg), embed=None)


def finish(store: JobStore, job_id: str) -> None:
    store.request_cancel(job_id)


def test_fires_on_cron_once_per_occurrence(job_store: JobStore, sched_settings: Settings) -> None:
    s = add_schedule(job_store, sched_settings, WL, CL, ScheduleSpec(cron="*/10 * * * *", job_config=CONFIG), now=T0)
    assert s.next_due == T0 + timedelta(minutes=10)
    sch = scheduler(job_store, sched_settings)
    assert sch.tick(T0 + timedelta(minutes=9, seconds=59)) == []
    [firing] = sch.tick(T0 + timedelta(minutes=10, seconds=2))
    assert firing.trigger is ScheduleTrigger.CRON and firing.job_id is not None
    job = job_store.get_job(firing.job_id)
    assert (job.workload_id, job.client_id, job.config) == (WL, CL, CONFIG)
    events = [e.message for e in job_store.list_events(job.id)]
    assert f"started by schedule {s.id} (cron trigger)" in events
    after = job_store.get_schedule(s.id)
    assert (after.last_job_id, after.last_trigger, after.next_due) == (
        job.id,
        ScheduleTrigger.CRON,
        T0 + timedelta(minutes=20),
    )
    assert sch.tick(T0 + timedelta(minutes=10, seconds=30)) == []  # the same occurrence: not again


def test_a_running_job_passes_the_occurrence_with_a_note(job_store: JobStore, sched_settings: Settings) -> None:
    s = add_schedule(job_store, sched_settings, WL, CL, ScheduleSpec(cron="0 * * * *", job_config=CONFIG), now=T0)
    running = job_store.create_job(WL, CL, CONFIG)
    sch = scheduler(job_store, sched_settings)
    assert sch.tick(T0 + timedelta(hours=1)) == []
    after = job_store.get_schedule(s.id)
    assert after.next_due == T0 + timedelta(hours=2) and after.last_fired_at is None
    assert after.last_error is not None and running.id in after.last_error
    finish(job_store, running.id)
    assert [f.trigger for f in sch.tick(T0 + timedelta(hours=2))] == [ScheduleTrigger.CRON]


def test_fires_after_n_new_records(job_store: JobStore, sched_settings: Settings) -> None:
    add_logs(sched_settings, records(30, ("Alpha",), start=TS0))
    s = add_schedule(job_store, sched_settings, WL, CL, ScheduleSpec(min_new_records=20, job_config=CONFIG))
    assert s.records_seen == 30  # counted from the records at creation
    sch = scheduler(job_store, sched_settings)
    add_logs(sched_settings, records(19, ("Alpha",), start=TS0 + 100))
    assert sch.tick(T0) == []
    add_logs(sched_settings, records(1, ("Beta",), start=TS0 + 200))
    [firing] = sch.tick(T0)
    assert firing.trigger is ScheduleTrigger.NEW_RECORDS
    assert job_store.get_schedule(s.id).records_seen == 50
    finish(job_store, firing.job_id or "")
    assert sch.tick(T0 + timedelta(minutes=1)) == []  # the baseline moved: 0 new records


def test_a_firing_that_cannot_create_its_job_says_why(job_store: JobStore, sched_settings: Settings) -> None:
    s = add_schedule(job_store, sched_settings, WL, CL, ScheduleSpec(cron="* * * * *", job_config=CONFIG), now=T0)

    def refuse(w: str, c: str, cfg: dict[str, Any]) -> JobRecord:
        raise ConfigError("candidates: unknown candidate 'gone'")

    [firing] = Scheduler(job_store, sched_settings, refuse, embed=None).tick(T0 + timedelta(minutes=1))
    assert firing.job_id is None and firing.error is not None and "unknown candidate 'gone'" in firing.error
    stored = job_store.get_schedule(s.id)
    assert stored.last_job_id is None and stored.last_error == firing.error
    assert stored.next_due == T0 + timedelta(minutes=2)  # not retried in a loop: the next occurrence


def test_disabled_schedules_do_not_fire_and_enabling_reschedules(job_store: JobStore, sched_settings: Settings) -> None:
    spec = ScheduleSpec(cron="0 * * * *", enabled=False, job_config=CONFIG)
    s = add_schedule(job_store, sched_settings, WL, CL, spec, now=T0)
    sch = scheduler(job_store, sched_settings)
    assert sch.tick(T0 + timedelta(days=1)) == []
    on = change_schedule(job_store, sched_settings, s.id, enabled=True, now=T0 + timedelta(days=1, minutes=5))
    assert on.next_due == T0 + timedelta(days=1, hours=1)


def test_drift_check_without_a_dataset_has_no_reference(job_store: JobStore, sched_settings: Settings) -> None:
    with open_log_store(sched_settings) as logs:
        report = check_drift(job_store, logs, sched_settings, WL, CL, embed=False)
    assert report.status is DriftStatus.NO_REFERENCE and not report.drifted


def _drift_schedule(job_store: JobStore, sched_settings: Settings) -> int:
    add_logs(sched_settings, records(60, ("Alpha", "Beta"), start=TS0))
    job_with_dataset(job_store, sched_settings)
    return add_schedule(job_store, sched_settings, WL, CL, ScheduleSpec(on_drift=True, job_config=CONFIG)).id


def test_drift_over_the_threshold_starts_a_job(job_store: JobStore, sched_settings: Settings) -> None:
    schedule_id = _drift_schedule(job_store, sched_settings)
    # after the dataset: traffic moves to Gamma, whose schema changed
    add_logs(sched_settings, records(40, ("Gamma",), start=TS0 + 1000, offered=CHANGED_TOOLS))
    [firing] = scheduler(job_store, sched_settings).tick(T0)
    assert firing.trigger is ScheduleTrigger.DRIFT and firing.job_id is not None
    stored = job_store.get_schedule(schedule_id)
    report = DriftReport.model_validate(stored.drift)
    assert report.status is DriftStatus.DRIFTED and report.current_records == 40
    assert report.tool_classes is not None and report.tool_classes.total_variation == pytest.approx(1.0)
    gamma = next(s for s in report.tool_classes.shifts if s.tool == "Gamma")
    assert (gamma.reference_count, gamma.current_count) == (0, 40)
    assert [(c.tool, c.kind.value, c.records) for c in report.schema_changes] == [("Gamma", "changed", 40)]
    events = [e.message for e in job_store.list_events(firing.job_id)]
    assert any(m.startswith(f"started by schedule {schedule_id} (drift trigger): tool classes") for m in events)
    # checked at most every schedule.drift_check_s: the next tick does not check (nor fire) again
    finish(job_store, firing.job_id)
    assert scheduler(job_store, sched_settings).tick(T0 + timedelta(minutes=1)) == []


def test_a_stable_workload_is_checked_but_fires_nothing(job_store: JobStore, sched_settings: Settings) -> None:
    schedule_id = _drift_schedule(job_store, sched_settings)
    add_logs(sched_settings, records(40, ("Alpha", "Beta"), start=TS0 + 1000))
    assert scheduler(job_store, sched_settings).tick(T0) == []
    stored = job_store.get_schedule(schedule_id)
    assert stored.drift_checked_at == T0
    assert DriftReport.model_validate(stored.drift).status is DriftStatus.STABLE
    assert job_store.list_jobs(workload_id=WL, status=JobStatus.PENDING)[1] == 0
