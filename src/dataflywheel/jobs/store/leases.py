"""Stage leases: a running stage attempt holds its stage while its owner's heartbeats are fresh; a write of an
attempt that lost its lease is refused (fencing, by the attempt number); a stage whose owners died on every
attempt allowed ends *crashed*.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataflywheel.jobs.errors import StaleAttemptError
from dataflywheel.jobs.records import StageLease
from dataflywheel.jobs.status import EventKind, TaskStatus
from dataflywheel.jobs.store.transitions import add_event, change_message
from dataflywheel.jobs.tables import Stage, utcnow

DEFAULT_STALE_AFTER_S: Final = 60.0
"""A job whose owner has not sent a heartbeat for this long may be claimed by another worker."""


def last_beat(stage: Stage) -> datetime:
    """When the stage's owner was last heard of (a row from before leases has only ``started_at``)."""
    return stage.heartbeat_at or stage.started_at or utcnow()


def lease_live(stage: Stage, now: datetime, stale_after_s: float) -> bool:
    return now - last_beat(stage) < timedelta(seconds=stale_after_s)


def crash_stage(s: Session, stage: Stage, now: datetime, max_attempts: int) -> None:
    """End a stage whose owners died on every attempt allowed: *crashed*, with who died, never stuck."""
    error = (
        f"stage {stage.key}: its owner died on all {stage.attempts} attempt(s) (last owner {stage.owner}); "
        f"executor.stage_attempts is {max_attempts}"
    )
    old = stage.status
    stage.status = TaskStatus.CRASHED
    stage.finished_at = now
    stage.error = error
    add_event(
        s,
        stage.job_id,
        EventKind.STAGE,
        change_message(f"stage {stage.key}", old, TaskStatus.CRASHED, error),
        stage=stage.key,
        data={"from": old.value, "to": TaskStatus.CRASHED.value, "error": error},
        ts=now,
    )


def check_fence(s: Session, fence: StageLease | None, stage: Stage | None = None) -> None:
    """Refuse a write of a stage attempt that no longer holds its lease. The stage row is read locked (FOR
    UPDATE on PostgreSQL; SQLite serializes writers), so a takeover cannot slip between check and write."""
    if fence is None:
        return
    if stage is None:
        stage = s.scalar(select(Stage).where(Stage.job_id == fence.job_id, Stage.key == fence.key).with_for_update())
    if stage is None or stage.status is not TaskStatus.RUNNING or stage.attempts != fence.attempt:
        now = "absent" if stage is None else f"{stage.status.value}, attempt {stage.attempts} of {stage.owner}"
        raise StaleAttemptError(
            f"stage {fence.key} of job {fence.job_id}: attempt {fence.attempt} of {fence.owner} lost its lease "
            f"(the stage is {now}); its write was refused"
        )
