"""Drive one job through its stage graph: start each stage when its dependencies have ended and its resource
is free, skip what can no longer run, honour cancellation, and settle the job's final status.

The driver keeps no state of its own beyond what is in flight: everything it decides from is in the job
store (stage statuses, outputs and leases), so a driver started after a crash picks the job up where it
stopped: finished stages are not run again. A stage ``running`` under a live lease is waited for, wherever
it runs; one whose owner went silent for ``executor.stale_after_s`` (a killed process, a killed Celery
worker) is taken over and run again, up to ``executor.stage_attempts`` attempts, after which it ends
*crashed* and so does the job if it cannot do without it: never stuck. The same holds while the job is
being cancelled: a dead owner's stage is then marked cancelled, so the cancellation completes.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

from dataflywheel.errors import FlywheelError, StoreError
from dataflywheel.jobs import JobStore
from dataflywheel.jobs.records import StageRecord
from dataflywheel.jobs.status import CandidateStage, JobKind, JobStatus, TaskStatus
from dataflywheel.jobs.tables import utcnow
from dataflywheel.models.registry import resolve_model
from dataflywheel.settings import Settings
from dataflywheel.workflow.executors import AttemptHandle, Executor, NoHandle, ResourcePool
from dataflywheel.workflow.job_files import remove_files, training_files
from dataflywheel.workflow.plan import Resource, StageKind, StageSpec, plan_feedback, plan_job, stage_key
from dataflywheel.workflow.stages import deploy_candidate, deployment_alive, job_settings

logger = logging.getLogger(__name__)

__all__ = ["JobDriver", "job_candidates"]

POLL_S = 0.2
TERMINAL = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.SKIPPED, TaskStatus.CRASHED}
)
UNSUCCESSFUL = frozenset({TaskStatus.FAILED, TaskStatus.CRASHED})


@dataclass
class Submission:
    """An attempt of a stage this driver sent (or adopted from a dead driver) and waits for."""

    attempt: int
    sent_at: float
    handle: AttemptHandle


class DriverDisplaced(FlywheelError):
    """Another process took the job over (this one's heartbeat went stale): this driver stops."""


def job_candidates(settings: Settings, config: dict[str, object]) -> list[str]:
    """The job's candidate names: its ``candidates`` list, else every configured candidate."""
    names = config.get("candidates")
    if isinstance(names, list) and names:
        return [str(n) for n in names]
    return [c.name for c in settings.candidates]


@dataclass
class JobDriver:
    store: JobStore
    settings: Settings
    executor: Executor
    resources: ResourcePool
    owner: str
    job_id: str
    stop_event: threading.Event = field(default_factory=threading.Event)
    _in_flight: dict[str, Submission] = field(default_factory=dict)
    _last_beat: float = 0.0
    _store_down_since: float | None = None

    # ---- the loop --------------------------------------------------------------------------------------
    def run(self) -> JobStatus:
        job = self.store.get_job(self.job_id)
        if job.status.terminal:
            return job.status
        settings = job_settings(self.settings, job)
        if job.kind == JobKind.FEEDBACK:
            candidates: list[str] = []
            plan = plan_feedback()
        else:
            candidates = job_candidates(settings, job.config or {})
            plan = plan_job(candidates, {c: self._customizable(settings, c) for c in candidates})
        for c in candidates:
            self.store.add_candidate_run(self.job_id, c)
            self._prepare_model(settings, c)
        if job.status == JobStatus.PENDING:
            self.store.set_job_status(self.job_id, JobStatus.RUNNING)
        self._recover_deployments(settings, plan)
        try:
            while not self.stop_event.is_set():
                try:
                    done = self._poll(plan)
                except DriverDisplaced:
                    logger.warning(
                        "job %s was taken over by another process: %s stops driving it", self.job_id, self.owner
                    )
                    break
                except StoreError as exc:
                    done = None
                    self._store_trouble(exc)
                if done is not None:
                    return done
                time.sleep(POLL_S)
        finally:
            self._release_all(plan)
        return self.store.get_job(self.job_id).status

    def _poll(self, plan: list[StageSpec]) -> JobStatus | None:
        """One look at the job: settle, take over or send its stages; its final status once it has ended."""
        self._heartbeat()
        stages = {s.key: s for s in self.store.list_stages(self.job_id)}
        cancelling = self.store.is_cancel_requested(self.job_id)
        self._watch_in_flight(plan, stages, cancelling)
        for spec in plan:
            self._step(spec, stages, cancelling)
        self._store_down_since = None
        finalize = stages.get(plan[-1].key)
        if finalize is not None and finalize.status in TERMINAL and not self._in_flight:
            return self._finish(plan, stages, cancelling)
        return None

    def _store_trouble(self, exc: StoreError) -> None:
        """A job store that fails for a moment (a dropped connection) is waited out; one that stays down for
        ``stale_after_s`` ends the driving (the job fails with the reason, or the next owner resumes it)."""
        now = time.monotonic()
        if self._store_down_since is None:
            self._store_down_since = now
        logger.warning("job %s: the job store failed, retrying: %s", self.job_id, exc)
        if now - self._store_down_since > self.settings.executor.stale_after_s:
            raise exc
        time.sleep(min(1.0, self.settings.executor.heartbeat_s))

    def _step(self, spec: StageSpec, stages: dict[str, StageRecord], cancelling: bool) -> None:
        stage = stages.get(spec.key)
        if stage is not None and stage.status in TERMINAL:
            return
        if spec.key in self._in_flight:
            return
        if stage is not None and stage.status == TaskStatus.RUNNING:
            self._adopt(spec, stage)
            return
        deps = [stages.get(d) for d in spec.deps]
        if any(d is None or d.status not in TERMINAL for d in deps):
            return
        if cancelling and spec.kind not in (StageKind.SHUTDOWN, StageKind.FINALIZE):
            self.store.finish_stage(self.job_id, spec.key, TaskStatus.CANCELLED, error="job cancelled")
            return
        reason = self._blocked(spec, stages)
        if reason is not None:
            self.store.finish_stage(self.job_id, spec.key, TaskStatus.SKIPPED, error=reason)
            return
        if not self._acquire(spec):
            return
        self._submit(spec)

    def _submit(self, spec: StageSpec, attempt: int | None = None) -> None:
        """Send the next attempt of ``spec`` (``attempt``: that one again, a delivery that may be lost)."""
        if attempt is None:
            stage = self.store.get_stage(self.job_id, spec.key)
            attempt = (stage.attempts if stage is not None else 0) + 1
        handle = self.executor.submit(self.job_id, spec, attempt)
        self._in_flight[spec.key] = Submission(attempt, time.monotonic(), handle)

    def _adopt(self, spec: StageSpec, stage: StageRecord) -> None:
        """A stage ``running`` that this driver did not send: an attempt of a process that died with the job's
        previous driver, or one still running on a Celery worker or in an orphaned child process. Waited for
        like one of ours (its slots taken, whatever the limits); taken over if its lease goes stale."""
        self._acquire(spec, force=True)
        self._in_flight[spec.key] = Submission(stage.attempts, time.monotonic(), NoHandle())

    def _watch_in_flight(self, plan: list[StageSpec], stages: dict[str, StageRecord], cancelling: bool) -> None:
        """Settle the attempts that ended; take over those whose owner died; send again what was lost."""
        by_key = {s.key: s for s in plan}
        ex = self.settings.executor
        for key, sub in list(self._in_flight.items()):
            stage = stages.get(key)
            spec = by_key[key]
            if stage is not None and stage.status in TERMINAL:
                self._settle(spec, stage)
                continue
            started = stage is not None and stage.attempts >= sub.attempt
            if stage is not None and started and stage.status == TaskStatus.RUNNING:
                ended = sub.handle.ended()
                if ended or self._stale(stage):
                    self._take_over(spec, stage, owner_dead=ended, cancelling=cancelling)
            elif stage is not None and started:  # taken over (pending again): the next attempt
                self._submit(spec)
            elif sub.handle.ended() and time.monotonic() - sub.sent_at > ex.heartbeat_s:
                # It ran nothing (the store failed before it started, or it was refused): send it again.
                self._submit(spec, sub.attempt)
            elif time.monotonic() - sub.sent_at > ex.stale_after_s and cancelling:
                # Never started (its worker is gone, its message lost): cancel it here, so the cancel completes.
                self.store.finish_stage(self.job_id, key, TaskStatus.CANCELLED, error="job cancelled before it started")
            elif self.executor.kind == "celery" and time.monotonic() - sub.sent_at > ex.resend_after_s:
                logger.warning(
                    "stage %s of job %s has not started: sending attempt %d again", key, self.job_id, sub.attempt
                )
                self._submit(spec, sub.attempt)

    def _stale(self, stage: StageRecord) -> bool:
        beat = stage.heartbeat_at or stage.started_at
        return beat is None or utcnow() - beat > timedelta(seconds=self.settings.executor.stale_after_s)

    def _take_over(self, spec: StageSpec, stage: StageRecord, *, owner_dead: bool, cancelling: bool) -> None:
        """The stage's owner died: run it again (a new attempt, a new lease), or end it crashed when no attempt
        is left, or cancelled when the job is being cancelled."""
        ex = self.settings.executor
        taken = self.store.reclaim_stage(
            self.job_id,
            spec.key,
            stale_after_s=ex.stale_after_s,
            max_attempts=ex.stage_attempts,
            attempt=stage.attempts,
            owner_dead=owner_dead,
            cancelled=cancelling,
        )
        if taken is None:  # it renewed its lease meanwhile, or ended
            return
        logger.warning(
            "stage %s of job %s: owner %s of attempt %d died -> %s",
            spec.key,
            self.job_id,
            stage.owner,
            stage.attempts,
            taken.status.value,
        )
        if taken.status == TaskStatus.PENDING:
            self._submit(spec, taken.attempts + 1)

    def _blocked(self, spec: StageSpec, stages: dict[str, StageRecord]) -> str | None:
        """Why ``spec`` cannot run now that its dependencies have ended (None: it can)."""

        def status(kind: StageKind, candidate: str | None = None) -> TaskStatus | None:
            stage = stages.get(stage_key(kind, candidate))
            return stage.status if stage else None

        datasets_ok = status(StageKind.DATASETS) == TaskStatus.COMPLETED
        judge_ok = status(StageKind.JUDGE) in (TaskStatus.COMPLETED, TaskStatus.SKIPPED)
        c = spec.candidate
        if spec.kind in (StageKind.DATASETS, StageKind.JUDGE, StageKind.FEEDBACK):
            return None
        if spec.kind == StageKind.FINALIZE:
            return None if datasets_ok and judge_ok else "the datasets or the judge check failed"
        if spec.kind == StageKind.CUSTOMIZE:
            return None if datasets_ok and judge_ok else "the datasets or the judge check failed"
        if spec.kind == StageKind.DEPLOY:
            return None if datasets_ok and judge_ok else "the datasets or the judge check failed"
        deployed = status(StageKind.DEPLOY, c) == TaskStatus.COMPLETED
        if spec.kind == StageKind.SHUTDOWN:
            return None if deployed else "nothing was deployed"
        if not deployed:
            return f"{c} was not deployed"
        if spec.kind == StageKind.CUSTOMIZED_EVAL and status(StageKind.CUSTOMIZE, c) != TaskStatus.COMPLETED:
            return f"{c} was not customized"
        return None

    def _settle(self, spec: StageSpec, stage: StageRecord) -> None:
        """An attempt ended: give back its slots (a deployment keeps its model slot until shutdown)."""
        self._in_flight.pop(spec.key, None)
        for resource in spec.resources:
            keep = resource == Resource.MODEL_SLOT and spec.kind == StageKind.DEPLOY
            if not keep or stage.status != TaskStatus.COMPLETED:
                self.resources.release(resource, self._holder(spec, resource))
        if spec.kind == StageKind.SHUTDOWN:
            self.resources.release(Resource.MODEL_SLOT, f"{self.job_id}/{spec.candidate}")

    def _holder(self, spec: StageSpec, resource: Resource) -> str:
        if resource == Resource.MODEL_SLOT:
            return f"{self.job_id}/{spec.candidate}"
        return f"{self.job_id}/{spec.key}"

    def _acquire(self, spec: StageSpec, force: bool = False) -> bool:
        """Take every slot ``spec`` needs, or none (``force``: a stage already running takes them anyway)."""
        taken: list[Resource] = []
        for resource in spec.resources:
            if self.resources.try_acquire(resource, self._holder(spec, resource), force=force):
                taken.append(resource)
            else:
                for r in taken:
                    self.resources.release(r, self._holder(spec, r))
                return False
        return True

    def _release_all(self, plan: list[StageSpec]) -> None:
        for spec in plan:
            for resource in spec.resources:
                self.resources.release(resource, self._holder(spec, resource))

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._last_beat >= self.settings.executor.heartbeat_s:
            if not self.store.heartbeat(self.job_id, self.owner):
                raise DriverDisplaced(f"job {self.job_id} is no longer held by {self.owner}")
            self._last_beat = now

    # ---- recovery --------------------------------------------------------------------------------------
    def _recover_deployments(self, settings: Settings, plan: list[StageSpec]) -> None:
        """Deployments of a crashed process that are gone are started again (evals still need them)."""
        stages = {s.key: s for s in self.store.list_stages(self.job_id)}
        for run in self.store.job_detail(self.job_id).candidates:
            deploy = stages.get(stage_key(StageKind.DEPLOY, run.candidate))
            shutdown = stages.get(stage_key(StageKind.SHUTDOWN, run.candidate))
            if deploy is None or deploy.status != TaskStatus.COMPLETED or (shutdown and shutdown.status in TERMINAL):
                continue
            self.resources.try_acquire(Resource.MODEL_SLOT, f"{self.job_id}/{run.candidate}", force=True)
            if deployment_alive(run.deployment):
                continue
            logger.warning("the deployment of %s (job %s) is gone: deploying it again", run.candidate, self.job_id)
            training_config = (self.store.get_job(self.job_id).config or {}).get("training_config")
            info = deploy_candidate(settings, run.candidate, self.job_id, training_config)
            self.store.update_candidate_run(run.id, deployment=info)
            self.store.add_event(self.job_id, "log", f"{run.candidate} deployed again after a restart", stage="deploy")

    @staticmethod
    def _prepare_model(settings: Settings, candidate: str) -> None:
        """Build or convert a local candidate's weights once, before its deploy and customize stages both
        need them at the same time."""
        from dataflywheel.models.registry import local_model_dir

        try:
            spec = resolve_model(candidate, settings)
            if spec.engine == "local":
                local_model_dir(spec, settings)
        except Exception as exc:  # the deploy stage fails with the reason
            logger.warning("preparing %s failed: %s", candidate, exc)

    @staticmethod
    def _customizable(settings: Settings, candidate: str) -> bool:
        try:
            spec = resolve_model(candidate, settings)
        except Exception:  # an unknown candidate fails in its deploy stage, with the reason
            return True
        return spec.engine == "local" and spec.customizable

    # ---- the end ---------------------------------------------------------------------------------------
    def _finish(self, plan: list[StageSpec], stages: dict[str, StageRecord], cancelling: bool) -> JobStatus:
        finalize = stages[plan[-1].key]
        if finalize.status == TaskStatus.COMPLETED and finalize.output:
            self.store.update_job(self.job_id, result=finalize.output)
        detail = self.store.job_detail(self.job_id)
        failures: list[str] = []
        for run in detail.candidates:
            own = [stages.get(s.key) for s in plan if s.candidate == run.candidate]
            failed = [s for s in own if s is not None and s.status in UNSUCCESSFUL]
            if run.stage.terminal:
                continue
            if cancelling:
                self.store.set_candidate_stage(run.id, CandidateStage.CANCELLED, error="job cancelled")
            elif failed:
                failures.append(failed[0].error or failed[0].key)
                self.store.set_candidate_stage(run.id, CandidateStage.FAILED, error=failed[0].error)
            else:
                self.store.set_candidate_stage(run.id, CandidateStage.COMPLETED)
        if cancelling:
            self._discard_training()
            status = JobStatus.CANCELLED
            self.store.set_job_status(self.job_id, status, error="cancelled by request")
            return status
        critical = [stages.get(s.key) for s in plan if s.critical]
        broken = [s for s in critical if s is not None and s.status in UNSUCCESSFUL]
        # A job that cannot go on because an owner died is crashed, not failed: the work itself did not fail.
        crashed = {s.error for s in stages.values() if s.status == TaskStatus.CRASHED}
        if broken:
            status = JobStatus.CRASHED if broken[0].status == TaskStatus.CRASHED else JobStatus.FAILED
            self.store.set_job_status(self.job_id, status, error=broken[0].error)
            return status
        if detail.candidates and len(failures) == len(detail.candidates):
            status = JobStatus.CRASHED if failures[0] in crashed else JobStatus.FAILED
            self.store.set_job_status(self.job_id, status, error=f"every candidate failed: {failures[0]}")
            return status
        if self._export() and self.store.is_cancel_requested(self.job_id):
            # Cancelled while it was exported: a cancelling job ends cancelled, finished work or not.
            self._discard_training()
            self.store.set_job_status(self.job_id, JobStatus.CANCELLED, error="cancelled by request")
            return JobStatus.CANCELLED
        self.store.set_job_status(self.job_id, JobStatus.COMPLETED)
        return JobStatus.COMPLETED

    def _discard_training(self) -> None:
        """A job that ends cancelled keeps no trained weights: its LoRA runs (checkpoints, optimizer state)
        and the adapters registered from them are removed before it is marked cancelled, also when its
        training had finished. Its datasets and eval results stay until the job is deleted."""
        removal = remove_files(training_files(self.settings, self.store.job_detail(self.job_id)))
        if removal.removed or removal.problems:
            problems = f"; not removed: {'; '.join(removal.problems)}" if removal.problems else ""
            self.store.add_event(
                self.job_id,
                "log",
                f"cancelled, trained weights discarded: {removal.summary()}{problems}",
                data=removal.to_dict(),
            )

    def _export(self) -> bool:
        """Log the job to MLflow when ``mlflow.tracking_uri`` is set, before it is marked completed, so that
        whoever sees it completed also sees ``result["mlflow"]``. A failure is recorded there, never raised;
        heartbeats go on meanwhile (an upload may outlast ``executor.stale_after_s``). True when it ran."""
        if not self.settings.mlflow.tracking_uri:
            return False
        from dataflywheel.export.mlflow import export_and_record

        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.settings.executor.heartbeat_s):
                try:
                    self.store.heartbeat(self.job_id, self.owner)
                except FlywheelError as exc:
                    logger.warning("job %s: heartbeat during the MLflow export failed: %s", self.job_id, exc)

        beating = threading.Thread(target=beat, name=f"flywheel-export-{self.job_id[:8]}", daemon=True)
        beating.start()
        try:
            export_and_record(self.store, self.settings, self.job_id, status=JobStatus.COMPLETED.value)
        finally:
            stop.set()
            beating.join()
        return True
