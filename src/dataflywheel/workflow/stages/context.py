"""What a running stage knows and holds: its :class:`StageContext` (the store, the job, its settings, its
lease), the :class:`LeaseKeeper` that renews the lease, and the two ways a stage ends early
(:class:`StageCancelled`, :class:`StageSkipped`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from dataflywheel.errors import FlywheelError
from dataflywheel.jobs import JobStore
from dataflywheel.jobs.records import CandidateRunDetail, JobRecord, StageLease
from dataflywheel.jobs.status import TaskStatus
from dataflywheel.settings import Settings, with_overrides
from dataflywheel.workflow.plan import StageKind, stage_key

logger = logging.getLogger(__name__)


PROGRESS_INTERVAL_S = 1.0
"""Least time between two progress writes of one stage (the store is not a metrics pipe)."""


class StageCancelled(FlywheelError):
    """The job was cancelled while the stage ran."""


class StageSkipped(FlywheelError):
    """The stage has nothing to do (the reason is the message)."""


@dataclass
class StageContext:
    store: JobStore
    settings: Settings
    """The settings with the job's overrides applied."""
    job: JobRecord
    key: str
    kind: StageKind
    candidate: str | None
    _cancel_checked: float = 0.0
    _cancelled: bool = False
    _last_progress: dict[str, float] = field(default_factory=dict)
    _run_id: int | None = None
    lease: StageLease | None = None
    """This attempt's lease: its result writes pass it as ``fence``."""
    keeper: LeaseKeeper | None = None

    def should_cancel(self) -> bool:
        """Whether the job is being cancelled, or this attempt lost its lease (asks the store at most twice a
        second): either way the work should stop."""
        if self.keeper is not None and self.keeper.lost.is_set():
            return True
        now = time.monotonic()
        if not self._cancelled and now - self._cancel_checked > 0.5:
            self._cancel_checked = now
            self._cancelled = self.store.is_cancel_requested(self.job.id)
        return self._cancelled

    def throttled(self, name: str, final: bool = False) -> bool:
        """True when a progress write named ``name`` is due."""
        now = time.monotonic()
        if final or now - self._last_progress.get(name, 0.0) >= PROGRESS_INTERVAL_S:
            self._last_progress[name] = now
            return True
        return False

    def output_of(self, kind: StageKind, candidate: str | None = None) -> dict[str, Any]:
        stage = self.store.get_stage(self.job.id, stage_key(kind, candidate))
        if stage is None or stage.status != TaskStatus.COMPLETED:
            raise FlywheelError(f"stage {stage_key(kind, candidate)} has not completed")
        return dict(stage.output or {})

    def candidate_run(self) -> CandidateRunDetail:
        """This stage's candidate run as stored now (the driver creates it before any of its stages)."""
        for run in self.store.job_detail(self.job.id).candidates:
            if run.candidate == self.candidate:
                return run
        raise FlywheelError(f"job {self.job.id} has no candidate {self.candidate!r}")

    def run_id(self) -> int:
        if self._run_id is None:
            self._run_id = self.candidate_run().id
        return self._run_id


def job_settings(settings: Settings, job: JobRecord) -> Settings:
    """``settings`` with a job's ``data_split_config``, ``icl_config`` and ``recommendation_config`` applied."""
    config = job.config or {}
    return with_overrides(
        settings,
        data_split=config.get("data_split_config") or {},
        icl=config.get("icl_config") or {},
        recommendation=config.get("recommendation_config") or {},
    )


class LeaseKeeper:
    """Renews a stage attempt's lease every ``heartbeat_s`` from a thread of its own (a stage busy in native
    code still heartbeats); ``lost`` is set once the lease was taken over. A failed renewal (the store
    unreachable for a moment) is retried: only ``stale_after_s`` of silence loses the lease."""

    def __init__(self, store: JobStore, lease: StageLease, heartbeat_s: float) -> None:
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(store, lease, heartbeat_s), name=f"lease-{lease.key}", daemon=True
        )
        self._thread.start()

    def _run(self, store: JobStore, lease: StageLease, heartbeat_s: float) -> None:
        while not self._stop.wait(heartbeat_s):
            try:
                if not store.heartbeat_stage(lease):
                    logger.warning(
                        "stage %s of job %s lost its lease (attempt %d)", lease.key, lease.job_id, lease.attempt
                    )
                    self.lost.set()
                    return
            except FlywheelError as exc:
                logger.warning("stage %s of job %s: heartbeat failed: %s", lease.key, lease.job_id, exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
