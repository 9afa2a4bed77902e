"""The stages of a job: start an attempt under a lease, renew it, reclaim it from a dead owner, finish it."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select, update

from dataflywheel.jobs.errors import IllegalTransitionError, JobFinishedError, StageLeaseHeldError, StaleAttemptError
from dataflywheel.jobs.records import StageLease, StageRecord
from dataflywheel.jobs.status import TASK_TERMINAL, EventKind, TaskStatus, check_transition
from dataflywheel.jobs.store.connection import StoreConnection
from dataflywheel.jobs.store.leases import DEFAULT_STALE_AFTER_S, check_fence, crash_stage, last_beat, lease_live
from dataflywheel.jobs.store.mapping import to_record
from dataflywheel.jobs.store.transitions import add_event, change_message, lock_job
from dataflywheel.jobs.tables import Stage, utcnow


class StageRows(StoreConnection):
    """Stages and their leases (see :mod:`.leases`)."""

    def get_stage(self, job_id: str, key: str) -> StageRecord | None:
        """The stage ``key`` of the job, or None if it was never started or finished."""
        with self._tx("get stage") as s:
            stage = s.scalar(select(Stage).where(Stage.job_id == job_id, Stage.key == key))
            return None if stage is None else to_record(StageRecord, stage)

    def list_stages(self, job_id: str) -> list[StageRecord]:
        """The job's stages in the order they were first recorded."""
        with self._tx("list stages") as s:
            return [
                to_record(StageRecord, st)
                for st in s.scalars(select(Stage).where(Stage.job_id == job_id).order_by(Stage.id))
            ]

    def start_stage(
        self,
        job_id: str,
        key: str,
        owner: str | None = None,
        *,
        attempt: int | None = None,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        max_attempts: int | None = None,
    ) -> StageRecord:
        """Start an attempt of the stage for ``owner``: mark it running, count one more attempt (the new
        lease's fencing token), take the lease (``heartbeat_at`` now) and clear the previous attempt's
        output and error (they stay in the events). Returns the record: running with the new lease, or
        *crashed* when ``max_attempts`` were used up by owners that died (the caller then runs nothing).

        Refused, writing nothing: a stage running under a live lease (its owner heartbeat within
        ``stale_after_s``) raises :class:`StageLeaseHeldError`, so a stage never runs twice at once; a
        delivery of an ``attempt`` that already ran (``attempts >= attempt``: a duplicate message) raises
        :class:`StaleAttemptError`. A completed, skipped or crashed stage raises
        :class:`IllegalTransitionError` (its output is what resuming relies on); a finished job raises
        :class:`JobFinishedError`. A running stage whose lease is stale (its worker died), or a failed or
        cancelled one (a retry), may start again.
        """
        with self._tx("start stage", write=True) as s:
            job = lock_job(s, job_id)
            if job.status.terminal:
                raise JobFinishedError(f"job {job_id} is {job.status.value}: cannot start stage {key!r}")
            stage = s.scalar(select(Stage).where(Stage.job_id == job_id, Stage.key == key))
            if stage is None:
                stage = Stage(job_id=job_id, key=key, status=TaskStatus.PENDING, attempts=0)
                s.add(stage)
            elif stage.status in (TaskStatus.COMPLETED, TaskStatus.SKIPPED, TaskStatus.CRASHED):
                raise IllegalTransitionError(
                    f"stage {key} of job {job_id}",
                    stage.status.value,
                    TaskStatus.RUNNING.value,
                    frozenset(),
                )
            now = utcnow()
            if attempt is not None and stage.attempts >= attempt:
                raise StaleAttemptError(
                    f"stage {key} of job {job_id}: attempt {attempt} already ran (attempts: {stage.attempts})"
                )
            if stage.status is TaskStatus.RUNNING and lease_live(stage, now, stale_after_s):
                raise StageLeaseHeldError(
                    f"stage {key} of job {job_id} runs as attempt {stage.attempts} of {stage.owner}, "
                    f"alive {(now - last_beat(stage)).total_seconds():.1f} s ago: not started twice"
                )
            if (
                max_attempts is not None
                and stage.attempts >= max_attempts
                and stage.status in (TaskStatus.RUNNING, TaskStatus.PENDING)
            ):
                crash_stage(s, stage, now, max_attempts)
                s.flush()
                return to_record(StageRecord, stage)
            stage.status = TaskStatus.RUNNING
            stage.attempts += 1
            stage.owner = owner
            stage.started_at = now
            stage.heartbeat_at = now
            stage.finished_at = None
            stage.output = None
            stage.error = None
            add_event(
                s,
                job_id,
                EventKind.STAGE,
                f"stage {key} started (attempt {stage.attempts})",
                stage=key,
                data={"to": TaskStatus.RUNNING.value, "attempt": stage.attempts, "owner": owner},
                ts=now,
            )
            s.flush()
            return to_record(StageRecord, stage)

    def heartbeat_stage(self, lease: StageLease) -> bool:
        """Renew a running attempt's lease; False when it is no longer that attempt's (taken over or ended):
        the attempt should then stop, and its writes would be refused anyway."""
        stmt = (
            update(Stage)
            .where(
                Stage.job_id == lease.job_id,
                Stage.key == lease.key,
                Stage.attempts == lease.attempt,
                Stage.status == TaskStatus.RUNNING,
            )
            .values(heartbeat_at=utcnow())
        )
        return self._update_one("heartbeat stage", stmt)

    def reclaim_stage(
        self,
        job_id: str,
        key: str,
        *,
        stale_after_s: float,
        max_attempts: int,
        attempt: int | None = None,
        owner_dead: bool = False,
        cancelled: bool = False,
    ) -> StageRecord | None:
        """Take a running stage away from its dead owner; None (nothing written) unless it runs under a lease
        older than ``stale_after_s`` (or ``owner_dead``: the caller saw the owner exit), as ``attempt`` when
        given.

        The stage goes back to pending for another attempt, to *crashed* with the reason when its
        ``max_attempts`` are used up, or to cancelled when the job is being ``cancelled``. Its old owner, if
        it still lives, loses the lease: its heartbeats and fenced writes fail from now on.
        """
        with self._tx("reclaim stage", write=True) as s:
            lock_job(s, job_id)
            stage = s.scalar(select(Stage).where(Stage.job_id == job_id, Stage.key == key))
            now = utcnow()
            if stage is None or stage.status is not TaskStatus.RUNNING:
                return None
            if attempt is not None and stage.attempts != attempt:
                return None
            if not owner_dead and lease_live(stage, now, stale_after_s):
                return None
            silent = (now - last_beat(stage)).total_seconds()
            if cancelled:
                new, error = TaskStatus.CANCELLED, f"job cancelled; its owner {stage.owner} had died"
            elif stage.attempts >= max_attempts:
                crash_stage(s, stage, now, max_attempts)
                s.flush()
                return to_record(StageRecord, stage)
            else:
                new, error = TaskStatus.PENDING, None
            stage.status = new
            if new.terminal:
                stage.finished_at = now
                stage.error = error
            why = "exited" if owner_dead else f"silent for {silent:.1f} s"
            add_event(
                s,
                job_id,
                EventKind.STAGE,
                f"stage {key}: attempt {stage.attempts} of {stage.owner} taken over (owner {why}): -> {new.value}",
                stage=key,
                data={"from": TaskStatus.RUNNING.value, "to": new.value, "attempt": stage.attempts, "error": error},
                ts=now,
            )
            s.flush()
            return to_record(StageRecord, stage)

    def finish_stage(
        self,
        job_id: str,
        key: str,
        status: TaskStatus,
        output: Mapping[str, object] | None = None,
        error: str | None = None,
        *,
        fence: StageLease | None = None,
    ) -> StageRecord:
        """Record the end of a stage: ``status`` is completed, failed, cancelled, skipped or crashed.

        A stage that never started may be finished directly (e.g. skipped). Finishing again with the same
        status is a no-op; any other change of a finished stage raises :class:`IllegalTransitionError`.
        With ``fence`` (the attempt's lease), the stage must still be running that attempt, checked in this
        same transaction: a stale attempt raises :class:`StaleAttemptError` and writes nothing.
        """
        new = TaskStatus(status)
        if new not in TASK_TERMINAL:
            raise ValueError(f"finish_stage needs a terminal status ({sorted(TASK_TERMINAL)}), got {new.value!r}")
        with self._tx("finish stage", write=True) as s:
            lock_job(s, job_id)
            stage = s.scalar(select(Stage).where(Stage.job_id == job_id, Stage.key == key))
            if fence is not None:
                check_fence(s, fence, stage)
            if stage is None:
                stage = Stage(job_id=job_id, key=key, status=TaskStatus.PENDING, attempts=0)
                s.add(stage)
            old = stage.status
            check_transition(f"stage {key} of job {job_id}", old, new)
            if old != new:
                now = utcnow()
                stage.status = new
                stage.finished_at = now
                stage.output = None if output is None else dict(output)
                stage.error = error
                add_event(
                    s,
                    job_id,
                    EventKind.STAGE,
                    change_message(f"stage {key}", old, new, error),
                    stage=key,
                    data={"from": old.value, "to": new.value, "error": error},
                    ts=now,
                )
            s.flush()
            return to_record(StageRecord, stage)
