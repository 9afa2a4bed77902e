"""The schedules table: a workload's schedule, its firings claimed atomically, its last drift report; and the
newest dataset of a workload (the drift check's reference).

Two API processes tick the same schedules. A firing is claimed with one conditional ``UPDATE ... WHERE
generation = :seen`` that also moves ``next_due`` and the record baseline: of two processes that saw the same
row exactly one changes it and starts the job; the other's update matches no row. A drift check is claimed the
same way on ``drift_checked_at``, so one process computes it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dataflywheel.jobs.errors import ScheduleExistsError, ScheduleNotFoundError
from dataflywheel.jobs.records import DatasetRecord, ScheduleRecord
from dataflywheel.jobs.status import ScheduleTrigger
from dataflywheel.jobs.store.connection import StoreConnection
from dataflywheel.jobs.store.mapping import to_record
from dataflywheel.jobs.store.transitions import found
from dataflywheel.jobs.store.values import UNSET, Unset, clean_values, given
from dataflywheel.jobs.tables import Dataset, Job, Schedule, utcnow
from dataflywheel.records.jsonvalue import JsonObject

DRIFT_REFERENCE_DATASET = "eval"
"""The dataset row whose build folder the drift check reads (every build has one)."""


def _not_found(schedule_id: int) -> ScheduleNotFoundError:
    return ScheduleNotFoundError(f"schedule {schedule_id} not found")


def _lock_schedule(s: Session, schedule_id: int) -> Schedule:
    return found(
        s.scalar(select(Schedule).where(Schedule.id == schedule_id).with_for_update()), _not_found, schedule_id
    )


class ScheduleRows(StoreConnection):
    """Schedules: create, read, list, change, delete; claim a firing or a drift check."""

    def create_schedule(
        self,
        workload_id: str,
        client_id: str,
        *,
        cron: str | None = None,
        min_new_records: int | None = None,
        on_drift: bool = False,
        job_config: JsonObject | None = None,
        enabled: bool = True,
        next_due: datetime | None = None,
        records_seen: int = 0,
    ) -> ScheduleRecord:
        """Store the schedule of a workload and client; :class:`ScheduleExistsError` when it has one."""
        now = utcnow()
        values = clean_values({"next_due": next_due})
        with self._tx("create schedule", write=True) as s:
            row = Schedule(
                workload_id=workload_id,
                client_id=client_id,
                cron=cron,
                min_new_records=min_new_records,
                on_drift=on_drift,
                job_config=dict(job_config or {}),
                enabled=enabled,
                created_at=now,
                updated_at=now,
                next_due=values["next_due"],
                generation=0,
                records_seen=records_seen,
            )
            s.add(row)
            try:
                s.flush()
            except IntegrityError:  # the unique (workload_id, client_id): it has one already
                raise ScheduleExistsError(
                    f"workload {workload_id!r} of client {client_id!r} already has a schedule: change it "
                    "(PATCH /api/schedules/{id}) or remove it first"
                ) from None
            return to_record(ScheduleRecord, row)

    def get_schedule(self, schedule_id: int) -> ScheduleRecord:
        """The schedule ``schedule_id``; :class:`ScheduleNotFoundError` if there is none."""
        with self._tx("get schedule") as s:
            return to_record(ScheduleRecord, found(s.get(Schedule, schedule_id), _not_found, schedule_id))

    def find_schedule(self, workload_id: str, client_id: str) -> ScheduleRecord | None:
        """The schedule of a workload and client, or None."""
        with self._tx("find schedule") as s:
            row = s.scalar(select(Schedule).where(Schedule.workload_id == workload_id, Schedule.client_id == client_id))
            return None if row is None else to_record(ScheduleRecord, row)

    def list_schedules(self, *, enabled: bool | None = None) -> list[ScheduleRecord]:
        """Every schedule (only the enabled or disabled ones when ``enabled`` is given), by workload and client."""
        stmt = select(Schedule).order_by(Schedule.workload_id, Schedule.client_id)
        if enabled is not None:
            stmt = stmt.where(Schedule.enabled.is_(enabled))
        with self._tx("list schedules") as s:
            return [to_record(ScheduleRecord, r) for r in s.scalars(stmt)]

    def update_schedule(
        self,
        schedule_id: int,
        *,
        cron: str | Unset | None = UNSET,
        min_new_records: int | Unset | None = UNSET,
        on_drift: bool | Unset = UNSET,
        job_config: JsonObject | Unset = UNSET,
        enabled: bool | Unset = UNSET,
        next_due: datetime | Unset | None = UNSET,
        records_seen: int | Unset = UNSET,
    ) -> ScheduleRecord:
        """Set the fields given; the others stay. A change moves ``generation`` on, so a firing claimed on the
        old settings by another process does not succeed."""
        fields = clean_values(
            given(
                cron=cron,
                min_new_records=min_new_records,
                on_drift=on_drift,
                job_config=job_config,
                enabled=enabled,
                next_due=next_due,
                records_seen=records_seen,
            )
        )
        with self._tx("update schedule", write=True) as s:
            row = _lock_schedule(s, schedule_id)
            for name, value in fields.items():
                setattr(row, name, value)
            row.generation += 1
            row.updated_at = utcnow()
            s.flush()
            return to_record(ScheduleRecord, row)

    def delete_schedule(self, schedule_id: int) -> ScheduleRecord:
        """Remove a schedule (its jobs stay); the schedule as it was."""
        with self._tx("delete schedule", write=True) as s:
            row = _lock_schedule(s, schedule_id)
            record = to_record(ScheduleRecord, row)
            s.delete(row)
            return record

    def claim_firing(
        self,
        schedule_id: int,
        generation: int,
        *,
        now: datetime,
        trigger: ScheduleTrigger | None,
        next_due: datetime | None,
        records_seen: int,
        note: str | None = None,
    ) -> bool:
        """Take the firing of a schedule read at ``generation``; True for exactly one of the processes that read
        it. It moves ``next_due`` and the record baseline on and clears the last job; ``trigger`` None passes an
        occurrence without firing (``note`` says why, as ``last_error``)."""
        values: dict[str, object] = {
            "generation": generation + 1,
            "next_due": next_due,
            "records_seen": records_seen,
            "updated_at": now,
            "last_error": note,
        }
        if trigger is not None:
            values |= {"last_fired_at": now, "last_trigger": trigger, "last_job_id": None}
        stmt = (
            update(Schedule)
            .where(Schedule.id == schedule_id, Schedule.generation == generation, Schedule.enabled.is_(True))
            .values(**clean_values(values))
        )
        return self._update_one("claim schedule firing", stmt)

    def record_firing(self, schedule_id: int, generation: int, *, job_id: str | None, error: str | None) -> bool:
        """Note the job a firing started (or why it started none), unless the schedule changed since."""
        stmt = (
            update(Schedule)
            .where(Schedule.id == schedule_id, Schedule.generation == generation)
            .values(last_job_id=job_id, last_error=error)
        )
        return self._update_one("record schedule firing", stmt)

    def claim_drift_check(self, schedule_id: int, checked_at: datetime | None, now: datetime) -> bool:
        """Take the drift check of a schedule whose last check was at ``checked_at``; True for one process."""
        seen = Schedule.drift_checked_at.is_(None) if checked_at is None else Schedule.drift_checked_at == checked_at
        stmt = (
            update(Schedule).where(Schedule.id == schedule_id, seen).values(**clean_values({"drift_checked_at": now}))
        )
        return self._update_one("claim drift check", stmt)

    def record_drift(self, schedule_id: int, report: JsonObject) -> bool:
        """Store a schedule's last drift report (JSON)."""
        stmt = update(Schedule).where(Schedule.id == schedule_id).values(drift=report)
        return self._update_one("record drift report", stmt)

    def latest_dataset(self, workload_id: str, client_id: str) -> DatasetRecord | None:
        """The eval dataset of the workload's newest job that built datasets (its build folder holds the
        manifest and the files the drift check compares with); None when no job built any."""
        stmt = (
            select(Dataset)
            .join(Job, Job.id == Dataset.job_id)
            .where(
                Job.workload_id == workload_id,
                Job.client_id == client_id,
                Dataset.name == DRIFT_REFERENCE_DATASET,
                Dataset.path.is_not(None),
            )
            .order_by(Job.created_at.desc(), Job.id.desc())
            .limit(1)
        )
        with self._tx("find latest dataset") as s:
            row = s.scalar(stmt)
            return None if row is None else to_record(DatasetRecord, row)
