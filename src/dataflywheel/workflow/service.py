"""The flywheel as a service: create, watch, cancel and delete jobs; drive them; recover after a restart.

One :class:`FlywheelService` per process (the API server, ``flywheel run``). It owns the job store, the
executor (embedded threads or Celery), the resource slots shared by every job it drives, and one driver
thread per job. It takes over jobs whose owner went silent (a crashed process) and resumes them: once at
start (:meth:`FlywheelService.recover`) and, in a serving process, every heartbeat from then on
(:meth:`FlywheelService.start_recovery`). Looking once is not enough: a process restarted at once (systemd's
``Restart=always``) finds its predecessor's heartbeat still fresh, and the job is only orphaned
``stale_after_s`` later.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
import warnings
from dataclasses import dataclass
from typing import Any

from dataflywheel.closing import Closing
from dataflywheel.errors import ConfigError, FlywheelError
from dataflywheel.jobs import JobStore
from dataflywheel.jobs.records import JobDetail, JobRecord
from dataflywheel.jobs.status import JobKind, JobStatus
from dataflywheel.models.registry import BUILTIN_ALIASES, path_exists, resolve_model, unavailable_reason
from dataflywheel.settings import Settings, with_overrides
from dataflywheel.training.config import TrainConfig
from dataflywheel.training.learning_curve import parse_fractions
from dataflywheel.workflow.background import Repeating
from dataflywheel.workflow.driver import JobDriver, job_candidates
from dataflywheel.workflow.executors import Executor, ResourcePool, make_executor
from dataflywheel.workflow.job_files import Removal, job_files, remove_files
from dataflywheel.workflow.stages import stop_deployment

logger = logging.getLogger(__name__)

__all__ = ["FlywheelService", "JobDeletion", "validate_job_config"]


def validate_job_config(settings: Settings, config: dict[str, Any]) -> dict[str, Any]:
    """Check a job's overrides and candidates before the job exists; ConfigError names the bad key."""
    overrides = (
        ("data_split", "data_split_config", config.get("data_split_config") or {}),
        ("icl", "icl_config", config.get("icl_config") or {}),
        ("recommendation", "recommendation_config", config.get("recommendation_config") or {}),
    )
    for section, key, values in overrides:
        if not isinstance(values, dict):
            raise ConfigError(f"{key}: expected an object")
        try:
            with_overrides(settings, **{section: values})
        except ConfigError as exc:  # name the request's key, not the settings section
            lines = [line.strip() for line in str(exc).splitlines()[1:]] or [str(exc)]
            raise ConfigError("; ".join(line.replace(f"{section}.", f"{key}.", 1) for line in lines)) from None
    TrainConfig.from_settings(settings, config.get("training_config") or {})
    fractions = parse_fractions(config.get("learning_curve"))
    if fractions:
        config = {**config, "learning_curve": list(fractions)}
    candidates = job_candidates(settings, config)
    if not candidates:
        raise ConfigError(
            'candidates: none given and none configured (settings.candidates); e.g. ["smollm2-135m-instruct"]'
        )
    for name in candidates:
        check_model(settings, name, "candidates", "candidate")
    if len(set(candidates)) != len(candidates):
        raise ConfigError("candidates: a candidate is listed twice")
    return {**config, "candidates": candidates}


def check_model(settings: Settings, name: str, key: str, noun: str) -> None:
    """ConfigError naming ``key`` and the model unless ``name`` is a configured candidate, a built-in alias
    or a model folder, and can be deployed here (its packages installed, its files present)."""
    known = {c.name for c in settings.candidates} | set(BUILTIN_ALIASES)
    if name not in known and not path_exists(name):
        raise ConfigError(f"{key}: unknown {noun} {name!r} (configured or built-in: {', '.join(sorted(known))})")
    reason = unavailable_reason(resolve_model(name, settings))
    if reason is not None:
        raise ConfigError(f"{key}: {noun} {name!r} cannot be used on this server: {reason}")


@dataclass(frozen=True)
class JobDeletion:
    """A deleted job as it was stored, and what removing its files freed."""

    detail: JobDetail
    removal: Removal


class FlywheelService(Closing):
    def __init__(self, settings: Settings, *, store: JobStore | None = None, executor: Executor | None = None) -> None:
        self.settings = settings
        self.store = store or JobStore.from_settings(settings)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.executor = executor or make_executor(self.store, settings, self.owner)
        self.resources = ResourcePool(settings)
        self._drivers: dict[str, tuple[JobDriver, threading.Thread]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._recovery = Repeating(
            "flywheel-recovery",
            self._recover_orphans,
            lambda: self.settings.executor.heartbeat_s,
            failure="looking for orphaned jobs failed",  # the store is unreachable for now: look again next time
        )

    # ---- jobs ------------------------------------------------------------------------------------------
    def create_job(
        self, workload_id: str, client_id: str, config: dict[str, Any] | None = None, *, start: bool = True
    ) -> JobRecord:
        """Validate and store a job, then drive it (in a background thread)."""
        config = validate_job_config(self.settings, dict(config or {}))
        job = self.store.create_job(workload_id, client_id, config, kind=JobKind.FLYWHEEL)
        for candidate in config["candidates"]:  # visible (pending) from the start
            self.store.add_candidate_run(job.id, candidate)
        return self._started(job, start)

    def create_feedback(
        self, workload_id: str, client_id: str, config: dict[str, Any], *, start: bool = True
    ) -> JobRecord:
        """Validate and store a feedback-loop job (student inference, normalization, quality filter,
        write-back), then drive it."""
        from dataflywheel.feedback.pipeline import FeedbackConfig

        parsed = FeedbackConfig.from_job(workload_id, client_id, config)
        for role, name in (("model", parsed.model), ("judge", parsed.judge)):
            if name is not None:
                check_model(self.settings, name, role, "model")
        return self._started(self.store.create_job(workload_id, client_id, dict(config), kind=JobKind.FEEDBACK), start)

    def create_curation(
        self, workload_id: str, client_id: str, config: dict[str, Any], *, start: bool = True
    ) -> JobRecord:
        """Deprecated name of :meth:`create_feedback` (to be removed in the next release)."""
        warnings.warn(
            "FlywheelService.create_curation is deprecated: use create_feedback", DeprecationWarning, stacklevel=2
        )
        return self.create_feedback(workload_id, client_id, config, start=start)

    def _started(self, job: JobRecord, start: bool) -> JobRecord:
        """``job``, just stored, driven from here when ``start``."""
        if start:
            self.start(job.id)
        return job

    def start(self, job_id: str) -> bool:
        """Drive ``job_id`` here unless another live process does; False when it is taken or finished."""
        with self._lock:
            if self._closed or job_id in self._drivers:
                return False
            if not self.store.claim_job(job_id, self.owner, stale_after_s=self.settings.executor.stale_after_s):
                return False
            driver = JobDriver(self.store, self.settings, self.executor, self.resources, self.owner, job_id)
            thread = threading.Thread(
                target=self._drive, args=(driver,), name=f"flywheel-job-{job_id[:8]}", daemon=True
            )
            self._drivers[job_id] = (driver, thread)
        thread.start()
        return True

    def _drive(self, driver: JobDriver) -> None:
        try:
            driver.run()
        except Exception as exc:  # the store or the plan failed: the job cannot go on
            logger.exception("driving job %s failed", driver.job_id)
            try:
                job = self.store.get_job(driver.job_id)
                if not job.status.terminal:
                    self.store.set_job_status(driver.job_id, JobStatus.FAILED, error=f"orchestration: {exc}")
            except FlywheelError:
                logger.exception("could not mark job %s failed", driver.job_id)
        finally:
            self.store.release_job(driver.job_id, self.owner)
            with self._lock:
                self._drivers.pop(driver.job_id, None)

    def wait(self, job_id: str, timeout: float | None = None) -> JobRecord:
        """Block until this process's driver of ``job_id`` ends; the job as it is then."""
        with self._lock:
            entry = self._drivers.get(job_id)
        if entry is not None:
            entry[1].join(timeout)
        return self.store.get_job(job_id)

    def cancel(self, job_id: str) -> JobRecord:
        """Ask a job to stop (JobFinishedError when it has ended); stages stop within seconds."""
        return self.store.request_cancel(job_id)

    def delete(self, job_id: str) -> JobDeletion:
        """Delete a finished job and everything it made (:mod:`~dataflywheel.workflow.job_files`: its folder
        with evals and deployment logs, its datasets, LoRA runs with their checkpoints and the adapters
        registered from them); says what was removed and the bytes freed. JobRunningError while it runs."""
        detail = self.store.delete_job(job_id)
        for run in detail.candidates:
            stop_deployment(run.deployment)
        # A feedback job's written records stay: they are data now, deleted with `flywheel logs delete`.
        removal = remove_files(job_files(self.settings, detail))
        logger.info("deleted job %s: %s", job_id, removal.summary())
        for problem in removal.problems:
            logger.warning("deleting job %s: %s", job_id, problem)
        return JobDeletion(detail, removal)

    def recover(self) -> list[str]:
        """Take over unfinished jobs nobody drives (their process died); returns the ids resumed."""
        resumed = []
        for job in self.store.unfinished_jobs():
            if self.start(job.id):
                self.store.add_event(job.id, "log", f"resumed by {self.owner}")
                resumed.append(job.id)
        return resumed

    def start_recovery(self) -> None:
        """Look for orphaned jobs every ``executor.heartbeat_s`` from a background thread, for as long as the
        service is open, so a job whose owner dies is taken over within about ``stale_after_s`` plus one
        heartbeat, whenever that happens (a job's stages are taken over by its driver the same way)."""
        with self._lock:
            if not self._closed:
                self._recovery.start()

    def _recover_orphans(self) -> None:
        resumed = self.recover()
        if resumed:
            logger.warning("took over %d orphaned job(s): %s", len(resumed), ", ".join(resumed))

    def running(self) -> list[str]:
        with self._lock:
            return list(self._drivers)

    def close(self, wait: float = 10.0) -> None:
        with self._lock:
            self._closed = True
            drivers = list(self._drivers.values())
        self._recovery.stop(wait)
        for driver, _ in drivers:
            driver.stop_event.set()
        for _, thread in drivers:
            thread.join(wait)
        self.executor.close()
        self.store.close()
