"""The schedules table on SQLite and PostgreSQL: CRUD, one per workload, firings claimed once even when two
schedulers (each with its own store, as two API processes) tick at the same moment."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dataflywheel.jobs import JobStore, ScheduleTrigger
from dataflywheel.jobs.errors import ScheduleExistsError, ScheduleNotFoundError
from dataflywheel.schedule.scheduler import Firing, Scheduler
from dataflywheel.settings import load_settings

T0 = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)


def test_create_read_update_delete(store: JobStore) -> None:
    made = store.create_schedule("wl", "c", cron="*/5 * * * *", job_config={"candidates": ["x"]}, next_due=T0)
    assert made.generation == 0 and made.enabled and made.next_due == T0
    assert store.get_schedule(made.id) == made
    assert store.find_schedule("wl", "c") == made
    assert store.find_schedule("wl", "other") is None
    changed = store.update_schedule(made.id, enabled=False, min_new_records=10)
    assert (changed.enabled, changed.min_new_records, changed.cron) == (False, 10, "*/5 * * * *")
    assert changed.generation == 1  # a change fences claims made on the old row
    assert store.list_schedules(enabled=True) == []
    assert [s.id for s in store.list_schedules()] == [made.id]
    assert store.delete_schedule(made.id).id == made.id
    with pytest.raises(ScheduleNotFoundError, match=f"schedule {made.id} not found"):
        store.get_schedule(made.id)


def test_one_schedule_per_workload_and_client(store: JobStore) -> None:
    store.create_schedule("wl", "c", min_new_records=5)
    with pytest.raises(ScheduleExistsError, match="already has a schedule"):
        store.create_schedule("wl", "c", cron="@daily")
    store.create_schedule("wl", "c2", min_new_records=5)  # another client is another schedule


def test_a_firing_is_claimed_once_per_generation(store: JobStore) -> None:
    s = store.create_schedule("wl", "c", cron="* * * * *", next_due=T0)
    later = T0 + timedelta(minutes=1)
    args = {"now": T0, "trigger": ScheduleTrigger.CRON, "next_due": later, "records_seen": 7}
    assert store.claim_firing(s.id, 0, **args)
    assert not store.claim_firing(s.id, 0, **args)  # the same generation again: taken
    after = store.get_schedule(s.id)
    assert (after.generation, after.next_due, after.records_seen, after.last_trigger) == (
        1,
        later,
        7,
        ScheduleTrigger.CRON,
    )
    assert store.record_firing(s.id, 1, job_id="a" * 32, error=None)
    assert not store.record_firing(s.id, 0, job_id="b" * 32, error=None)  # stale: ignored
    assert store.get_schedule(s.id).last_job_id == "a" * 32


def test_a_drift_check_is_claimed_once(store: JobStore) -> None:
    s = store.create_schedule("wl", "c", on_drift=True)
    assert store.claim_drift_check(s.id, None, T0)
    assert not store.claim_drift_check(s.id, None, T0)
    assert store.claim_drift_check(s.id, T0, T0 + timedelta(hours=1))
    assert store.record_drift(s.id, {"status": "stable"})
    assert store.get_schedule(s.id).drift == {"status": "stable"}


def test_two_schedulers_racing_never_fire_twice(store_url: str, tmp_path: Path) -> None:
    """Two processes' schedulers (two stores on one database) tick at the same instants, 15 times: each
    cron occurrence starts exactly one job."""
    settings = load_settings(home=tmp_path / "home")
    stores = [JobStore(store_url), JobStore(store_url)]
    try:
        schedule = stores[0].create_schedule("wl", "c", cron="* * * * *", next_due=T0)
        schedulers = [
            Scheduler(s, settings, lambda w, c, cfg, s=s: s.create_job(w, c, cfg), embed=None) for s in stores
        ]
        rounds = 15
        fired: list[list[Firing]] = [[], []]
        barrier = threading.Barrier(2, timeout=30)  # a thread that died fails the other at once

        def run(i: int) -> None:
            for n in range(rounds):
                now = T0 + timedelta(minutes=n, seconds=1)
                barrier.wait()
                fired[i] += schedulers[i].tick(now)
                barrier.wait()
                if i == 0:  # let the next occurrence fire: the job of this one is over
                    for job in stores[0].list_jobs(workload_id="wl")[0]:
                        if not job.status.terminal:
                            stores[0].request_cancel(job.id)

        threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        firings = fired[0] + fired[1]
        jobs, total = stores[0].list_jobs(workload_id="wl", limit=100)
        assert total == rounds, f"{total} jobs for {rounds} occurrences"
        assert len(firings) == rounds and all(f.job_id for f in firings)
        assert sorted(f.job_id for f in firings if f.job_id) == sorted(j.id for j in jobs)
        final = stores[0].get_schedule(schedule.id)
        assert final.generation == rounds
        assert final.next_due == T0.replace(second=0) + timedelta(minutes=rounds)
    finally:
        for s in stores:
            s.close()
