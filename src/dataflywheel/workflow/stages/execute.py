"""Running one attempt of a stage: :func:`execute_stage` marks the stage running under a lease, runs the
stage's function (:data:`STAGES`) and records how it ended.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from dataflywheel.errors import FlywheelError
from dataflywheel.jobs import JobStore
from dataflywheel.jobs.errors import IllegalTransitionError, JobFinishedError, StageLeaseHeldError, StaleAttemptError
from dataflywheel.jobs.status import TaskStatus
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.settings import Settings
from dataflywheel.workflow.plan import StageKind, parse_stage_key
from dataflywheel.workflow.stages.context import LeaseKeeper, StageCancelled, StageContext, StageSkipped, job_settings
from dataflywheel.workflow.stages.customize import run_customize
from dataflywheel.workflow.stages.deploy import run_deploy, run_shutdown
from dataflywheel.workflow.stages.evaluation import run_evaluation
from dataflywheel.workflow.stages.feedback import run_feedback
from dataflywheel.workflow.stages.finalize import run_finalize
from dataflywheel.workflow.stages.setup import run_datasets, run_judge

logger = logging.getLogger(__name__)


def execute_stage(
    store: JobStore, settings: Settings, job_id: str, key: str, owner: str, *, attempt: int | None = None
) -> TaskStatus | None:
    """Run stage ``key`` of ``job_id`` as ``attempt`` (None: whichever is next) and record its end; returns
    the status it ended with, or None when this delivery ran nothing and wrote nothing: another attempt holds
    a live lease, this attempt already ran, the stage or the job has ended, or the lease was lost midway."""
    job = store.get_job(job_id)
    kind, candidate = parse_stage_key(key)
    ex = settings.executor
    try:
        stage = store.start_stage(
            job_id, key, owner, attempt=attempt, stale_after_s=ex.stale_after_s, max_attempts=ex.stage_attempts
        )
    except (StageLeaseHeldError, StaleAttemptError, IllegalTransitionError, JobFinishedError) as exc:
        logger.info("stage %s of job %s not started: %s", key, job_id, exc)
        return None
    if stage.status is not TaskStatus.RUNNING:  # crashed: every attempt's owner died
        return stage.status
    lease = stage.lease()
    keeper = LeaseKeeper(store, lease, ex.heartbeat_s)
    ctx = StageContext(store, job_settings(settings, job), job, key, kind, candidate, lease=lease, keeper=keeper)
    try:
        return _run_attempt(ctx)
    except StaleAttemptError as exc:
        logger.warning("stage %s of job %s: %s", key, job_id, exc)
        return None
    finally:
        keeper.stop()


def _run_attempt(ctx: StageContext) -> TaskStatus | None:
    store, job_id, key, kind, fence = ctx.store, ctx.job.id, ctx.key, ctx.kind, ctx.lease
    try:
        if ctx.should_cancel() and kind not in (StageKind.SHUTDOWN, StageKind.FINALIZE):
            raise StageCancelled("job cancelled")
        output = STAGES[kind](ctx)
    except StaleAttemptError:
        raise
    except StageSkipped as exc:
        store.finish_stage(job_id, key, TaskStatus.SKIPPED, error=str(exc), fence=fence)
        return TaskStatus.SKIPPED
    except StageCancelled as exc:
        if ctx.keeper is not None and ctx.keeper.lost.is_set():
            logger.warning("stage %s of job %s stopped: its lease was taken over; nothing written", key, job_id)
            return None
        _mark_cancelled(ctx)
        store.finish_stage(job_id, key, TaskStatus.CANCELLED, error=str(exc), fence=fence)
        return TaskStatus.CANCELLED
    except Exception as exc:
        logger.exception("stage %s of job %s failed", key, job_id)
        message = f"{key}: {exc}" if isinstance(exc, FlywheelError) else f"{key}: {type(exc).__name__}: {exc}"
        _mark_failed(ctx, message)
        store.finish_stage(job_id, key, TaskStatus.FAILED, error=message, fence=fence)
        return TaskStatus.FAILED
    store.finish_stage(job_id, key, TaskStatus.COMPLETED, output=output, fence=fence)
    return TaskStatus.COMPLETED


def _mark_failed(ctx: StageContext, message: str) -> None:
    with _quiet():
        if ctx.kind in (StageKind.BASE_EVAL, StageKind.ICL_EVAL, StageKind.CUSTOMIZED_EVAL):
            ctx.store.upsert_evaluation(
                ctx.run_id(), ctx.kind.value, fence=ctx.lease, status=TaskStatus.FAILED, error=message
            )
        elif ctx.kind == StageKind.CUSTOMIZE:
            ctx.store.upsert_customization(ctx.run_id(), fence=ctx.lease, status=TaskStatus.FAILED, error=message)
        elif ctx.kind == StageKind.JUDGE:
            ctx.store.upsert_judge(ctx.job.id, status=TaskStatus.FAILED, error=message)


def _mark_cancelled(ctx: StageContext) -> None:
    with _quiet():
        if ctx.kind in (StageKind.BASE_EVAL, StageKind.ICL_EVAL, StageKind.CUSTOMIZED_EVAL):
            ctx.store.upsert_evaluation(ctx.run_id(), ctx.kind.value, fence=ctx.lease, status=TaskStatus.CANCELLED)
        elif ctx.kind == StageKind.CUSTOMIZE:
            ctx.store.upsert_customization(ctx.run_id(), fence=ctx.lease, status=TaskStatus.CANCELLED)


class _quiet:
    """Bookkeeping after a failure must not hide the failure."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        if exc[0] is not None:
            logger.warning("could not record a stage's end: %s", exc[1])
        return True


STAGES: dict[StageKind, Callable[[StageContext], JsonObject]] = {
    StageKind.FEEDBACK: run_feedback,
    StageKind.DATASETS: run_datasets,
    StageKind.JUDGE: run_judge,
    StageKind.DEPLOY: run_deploy,
    StageKind.BASE_EVAL: run_evaluation,
    StageKind.ICL_EVAL: run_evaluation,
    StageKind.CUSTOMIZE: run_customize,
    StageKind.CUSTOMIZED_EVAL: run_evaluation,
    StageKind.SHUTDOWN: run_shutdown,
    StageKind.FINALIZE: run_finalize,
}
