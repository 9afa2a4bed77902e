"""The scheduler: :meth:`Scheduler.tick` looks at every enabled schedule once and fires what is due; a
background thread of ``flywheel serve`` calls it every ``schedule.tick_s``.

Several processes may tick the same job store. A firing happens once: the tick claims it in the store with a
conditional update on the schedule's ``generation`` (:meth:`~dataflywheel.jobs.JobStore.claim_firing`), and
only the process whose claim changed the row starts the job. The claim comes first, so a process that dies
between claim and start loses that firing (at most once, never twice); the schedule says so (no last job).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dataflywheel.drift.check import EmbedFn, check_drift
from dataflywheel.drift.report import DriftReport
from dataflywheel.errors import FlywheelError
from dataflywheel.jobs import JobRecord, JobStore
from dataflywheel.jobs.records import ScheduleRecord
from dataflywheel.jobs.status import JOB_UNFINISHED, ScheduleTrigger
from dataflywheel.jobs.tables import utcnow
from dataflywheel.logstore import open_log_store
from dataflywheel.logstore.base import LogStore
from dataflywheel.schedule.decide import decide
from dataflywheel.settings import Settings
from dataflywheel.workflow.background import Repeating

logger = logging.getLogger(__name__)

__all__ = ["Firing", "Scheduler", "StartJob"]

StartJob = Callable[[str, str, dict[str, Any]], JobRecord]
"""Creates (and starts) a job: ``(workload_id, client_id, overrides) -> job`` (``FlywheelService.create_job``)."""


@dataclass(frozen=True)
class Firing:
    """A firing this process claimed: the job it started, or why it started none."""

    schedule_id: int
    workload_id: str
    client_id: str
    trigger: ScheduleTrigger
    job_id: str | None
    error: str | None = None


class Scheduler:
    """Fires the schedules of a job store. ``embed``: how the drift check embeds queries (True: the
    ``icl.embedder`` of the settings; None: no centroid distance)."""

    def __init__(
        self, store: JobStore, settings: Settings, start_job: StartJob, *, embed: EmbedFn | bool | None = True
    ) -> None:
        self.store = store
        self.settings = settings
        self.start_job = start_job
        self.embed = embed
        self._background = Repeating(
            "flywheel-scheduler",
            self.tick,
            lambda: self.settings.schedule.tick_s,
            failure="scheduler tick failed",  # the job store unreachable for now, or a bug: try again next tick
            survive_bugs=True,
        )

    # ---- one tick --------------------------------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> list[Firing]:
        """Look at every enabled schedule at ``now`` (default: the current time) and fire what is due; the
        firings this process won. A schedule whose check fails (a log store down) is skipped until next tick."""
        now = now or utcnow()
        schedules = self.store.list_schedules(enabled=True)
        if not schedules:
            return []
        fired: list[Firing] = []
        with open_log_store(self.settings) as logs:
            counts = {(c.workload_id, c.client_id): c.records for c in logs.counts()}
            for schedule in schedules:
                try:
                    firing = self._consider(
                        schedule, now, logs, counts.get((schedule.workload_id, schedule.client_id), 0)
                    )
                except FlywheelError as exc:
                    logger.warning(
                        "schedule %d (%s/%s): %s", schedule.id, schedule.workload_id, schedule.client_id, exc
                    )
                    continue
                if firing is not None:
                    fired.append(firing)
        return fired

    def _running_job(self, schedule: ScheduleRecord) -> str | None:
        jobs, _ = self.store.list_jobs(
            status=sorted(JOB_UNFINISHED), workload_id=schedule.workload_id, client_id=schedule.client_id, limit=1
        )
        return jobs[0].id if jobs else None

    def _drift(self, schedule: ScheduleRecord, now: datetime, logs: LogStore) -> DriftReport | None:
        """A fresh drift report when the schedule watches drift and its check is due and won here; else None."""
        if not schedule.on_drift:
            return None
        last = schedule.drift_checked_at
        if last is not None and now - last < timedelta(seconds=self.settings.schedule.drift_check_s):
            return None
        if not self.store.claim_drift_check(schedule.id, last, now):
            return None  # another process checks it
        report = check_drift(
            self.store, logs, self.settings, schedule.workload_id, schedule.client_id, embed=self.embed, now=now
        )
        self.store.record_drift(schedule.id, report.model_dump(mode="json"))
        return report

    def _consider(self, schedule: ScheduleRecord, now: datetime, logs: LogStore, record_count: int) -> Firing | None:
        running = self._running_job(schedule)
        report = self._drift(schedule, now, logs) if running is None else None
        decision = decide(
            schedule,
            now,
            record_count=record_count,
            drifted=report is not None and report.drifted,
            running_job=running,
        )
        if decision is None:
            return None
        claimed = self.store.claim_firing(
            schedule.id,
            schedule.generation,
            now=now,
            trigger=decision.trigger,
            next_due=decision.next_due,
            records_seen=decision.records_seen,
            note=decision.note,
        )
        if not claimed or decision.trigger is None:
            if claimed and decision.note:
                logger.info("schedule %d: %s", schedule.id, decision.note)
            return None
        return self._fire(schedule, decision.trigger, schedule.generation + 1, report)

    def _fire(
        self, schedule: ScheduleRecord, trigger: ScheduleTrigger, generation: int, report: DriftReport | None
    ) -> Firing:
        where = f"schedule {schedule.id} ({schedule.workload_id}/{schedule.client_id})"
        try:
            job = self.start_job(schedule.workload_id, schedule.client_id, dict(schedule.job_config))
        except FlywheelError as exc:
            error = f"the {trigger.value} trigger fired, but the job could not be created: {exc}"
            logger.warning("%s: %s", where, error)
            self.store.record_firing(schedule.id, generation, job_id=None, error=error)
            return Firing(schedule.id, schedule.workload_id, schedule.client_id, trigger, None, error)
        why = f"started by schedule {schedule.id} ({trigger.value} trigger)"
        if trigger is ScheduleTrigger.DRIFT and report is not None:
            why += ": " + "; ".join(report.reasons)
        self.store.add_event(job.id, "log", why)
        self.store.record_firing(schedule.id, generation, job_id=job.id, error=None)
        logger.info("%s: fired (%s), job %s", where, trigger.value, job.id)
        return Firing(schedule.id, schedule.workload_id, schedule.client_id, trigger, job.id)

    # ---- the background loop ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Tick every ``schedule.tick_s`` in a background thread until :meth:`stop`."""
        self._background.start()

    def stop(self, wait: float = 10.0) -> None:
        self._background.stop(wait)
