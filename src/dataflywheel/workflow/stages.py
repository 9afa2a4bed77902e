"""What each stage of a flywheel job does. The same code runs in the embedded executor's threads and in
Celery workers: a stage reads its inputs from the job store (the job, earlier stages' outputs, the
candidate's deployment) and writes its outputs and progress back there.

:func:`execute_stage` is the one entry point: it marks the stage running, runs it, and records how it ended
(completed with its output, failed with the error, cancelled, or skipped with the reason).

Leases and fencing. Each attempt of a stage holds a lease in the job store (its owner, its attempt number as
the fencing token, a heartbeat every ``executor.heartbeat_s``). A stage running under a live lease is not
started again (a duplicate delivery exits at once), and an attempt whose lease was taken over (its owner
went silent for ``executor.stale_after_s`` and the stage was re-queued) stops at its next cancellation check
and writes no result: its result writes carry the lease and are refused in the same transaction.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from dataflywheel.errors import FlywheelError
from dataflywheel.jobs import JobStore
from dataflywheel.jobs.errors import IllegalTransitionError, JobFinishedError, StageLeaseHeldError, StaleAttemptError
from dataflywheel.jobs.records import CandidateRunDetail, JobRecord, StageLease
from dataflywheel.jobs.status import CandidateStage, TaskStatus
from dataflywheel.settings import Settings, with_overrides
from dataflywheel.workflow.plan import StageKind, parse_stage_key, stage_key

logger = logging.getLogger(__name__)

__all__ = [
    "LeaseKeeper",
    "StageCancelled",
    "StageContext",
    "StageSkipped",
    "execute_stage",
    "job_settings",
    "stop_deployment",
]

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


# ---- datasets and judge ----------------------------------------------------------------------------
def run_datasets(ctx: StageContext) -> dict[str, Any]:
    from dataflywheel.datasets.build import build_datasets
    from dataflywheel.datasets.sources import StoreSource
    from dataflywheel.logstore import LogQuery, open_log_store

    job = ctx.job
    with open_log_store(ctx.settings) as logs:
        source = StoreSource(logs, LogQuery(job.workload_id, job.client_id))
        build = build_datasets(source, ctx.settings, workload_id=job.workload_id, client_id=job.client_id)
    counts = build.counts
    ctx.store.set_datasets(
        job.id,
        [
            (name, counts.get(name, 0), str(build.path / f"{name}.jsonl"), build.path.name)
            for name in ("eval", "icl", "train", "val")
        ],
        fence=ctx.lease,
    )
    ctx.store.update_job(job.id, num_records=build.stats.total_records)
    return {
        "path": str(build.path),
        "build_id": build.path.name,
        "counts": counts,
        "workload_type": build.manifest.get("workload_type"),
    }


def run_judge(ctx: StageContext) -> dict[str, Any]:
    judge = ctx.settings.judge
    if not judge.enabled:
        ctx.store.upsert_judge(ctx.job.id, kind="disabled", status=TaskStatus.SKIPPED)
        raise StageSkipped("no judge configured (judge.enabled is false): judge metrics are left out")
    from dataflywheel.evaluation.judge import JudgeUnavailableError, check_judge, client_judge_chat
    from dataflywheel.evaluation.runner import run_async
    from dataflywheel.models.client import OpenAIClient

    assert judge.base_url and judge.model
    ctx.store.upsert_judge(
        ctx.job.id, kind="remote", model=judge.model, base_url=judge.base_url, status=TaskStatus.RUNNING
    )
    # Bounded: a judge that hangs must not hold the LoRA runs and deployments that wait for this check.
    client = OpenAIClient(
        judge.base_url, api_key_env=judge.api_key_env, timeout=judge.check_timeout_s, max_retries=1, backoff=0.5
    )
    problem = run_async(check_judge(client_judge_chat(client, judge.model)))
    if problem:
        reason = f"judge {judge.model} at {judge.base_url}: {problem}"
        if judge.required:  # fails the job; deploy and customize wait for this stage, so nothing has started
            raise JudgeUnavailableError(f"{reason} (judge.required is true: the job stops before any training)")
        ctx.store.upsert_judge(ctx.job.id, status=TaskStatus.SKIPPED, error=reason)
        raise StageSkipped(f"{reason}; judge metrics are left out (judge.required is false)")
    ctx.store.upsert_judge(ctx.job.id, status=TaskStatus.COMPLETED)
    return {"model": judge.model, "base_url": judge.base_url}


# ---- deployments -----------------------------------------------------------------------------------
_manager_lock = threading.Lock()
_manager: Any = None


def _deployments(settings: Settings) -> Any:
    """This process's deployment manager (its servers are stopped when the process exits normally)."""
    global _manager
    from dataflywheel.models.deployments import DeploymentManager

    with _manager_lock:
        if _manager is None:
            _manager = DeploymentManager(settings)
        return _manager


def deployment_alive(info: dict[str, Any] | None) -> bool:
    if not info or not info.get("base_url"):
        return False
    try:
        return httpx.get(f"{info['base_url']}/models", timeout=3).status_code < 500
    except httpx.HTTPError:
        return False


def deploy_candidate(settings: Settings, candidate: str, job_id: str) -> dict[str, Any]:
    """Deploy ``candidate`` for job ``job_id``; a local server logs into the job's folder."""
    from dataflywheel.models.registry import resolve_model

    spec = resolve_model(candidate, settings)
    deployment = _deployments(settings).deploy(spec, log_dir=job_dir(settings, job_id) / "deployments")
    return {
        "base_url": deployment.base_url,
        "model": deployment.model,
        "local": deployment.local,
        "pid": deployment.pid,
        "host": socket.gethostname(),
        "api_key_env": spec.api_key_env,
        "log_path": str(deployment.log_path) if deployment.log_path else None,
    }


def run_deploy(ctx: StageContext) -> dict[str, Any]:
    run_id = ctx.run_id()
    ctx.store.set_candidate_stage(run_id, CandidateStage.DEPLOYING)
    info = deploy_candidate(ctx.settings, ctx.candidate or "", ctx.job.id)
    ctx.store.update_candidate_run(run_id, fence=ctx.lease, deployment=info)
    ctx.store.set_candidate_stage(run_id, CandidateStage.EVALUATING)
    return info


def stop_deployment(info: dict[str, Any] | None) -> None:
    """Stop a local deployment by its process group (from any process on its host)."""
    if not info or not info.get("local") or not info.get("pid"):
        return
    global _manager
    with _manager_lock:
        manager = _manager
    if manager is not None:
        for deployment in manager.deployments:
            if deployment.pid == info["pid"]:
                deployment.stop()
                return
    if info.get("host") not in (None, socket.gethostname()):
        logger.warning("deployment %s runs on host %s: not stopped from here", info.get("base_url"), info["host"])
        return
    pid = int(info["pid"])
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def run_shutdown(ctx: StageContext) -> dict[str, Any]:
    run = ctx.candidate_run()
    if run.stage not in (CandidateStage.FAILED, CandidateStage.CANCELLED, CandidateStage.COMPLETED):
        ctx.store.set_candidate_stage(run.id, CandidateStage.SHUTTING_DOWN)
    stop_deployment(run.deployment)
    return {"stopped": bool(run.deployment and run.deployment.get("local"))}


# ---- evaluations -----------------------------------------------------------------------------------
def run_evaluation(ctx: StageContext) -> dict[str, Any]:
    from dataflywheel.evaluation.runner import (
        EvalCancelled,
        EvalConfig,
        EvalProgress,
        EvalType,
        has_text_references,
        load_dataset,
        run_async,
        run_eval,
    )
    from dataflywheel.models.client import OpenAIClient

    assert ctx.candidate is not None
    run_id = ctx.run_id()
    datasets = ctx.output_of(StageKind.DATASETS)
    deployment = ctx.candidate_run().deployment
    if not deployment_alive(deployment):
        raise FlywheelError(f"the deployment of {ctx.candidate} at {(deployment or {}).get('base_url')} is gone")
    assert deployment is not None
    model = str(deployment["model"])
    if ctx.kind == StageKind.CUSTOMIZED_EVAL:
        adapter = ctx.output_of(StageKind.CUSTOMIZE, ctx.candidate)
        model = adapter["adapter_name"]
        _load_adapter(deployment["base_url"], model, adapter["adapter_path"])
    dataset = Path(datasets["path"]) / ("icl.jsonl" if ctx.kind == StageKind.ICL_EVAL else "eval.jsonl")
    rows = load_dataset(dataset)
    eval_type = EvalType(ctx.kind.value)
    ctx.store.upsert_evaluation(run_id, eval_type.value, status=TaskStatus.RUNNING, total=len(rows), progress=0.0)
    out_dir = eval_dir(ctx.settings, ctx.job.id, ctx.candidate, eval_type.value)
    executor = ctx.settings.executor
    config = EvalConfig(
        eval_type, ctx.candidate, concurrency=executor.eval_concurrency, max_tokens=executor.eval_max_tokens
    )
    judge = _judge(ctx, datasets)
    # Only text answers are embedded: a tool-only eval set never loads (or pays for) an embedder.
    config.embedder = _eval_embedder(ctx) if has_text_references(rows) else None
    client = OpenAIClient(
        deployment["base_url"],
        api_key_env=deployment.get("api_key_env"),
        max_concurrency=executor.eval_concurrency,
        timeout=600.0 if deployment.get("local") else 120.0,
    )
    cancel = threading.Event()

    async def chat(request: Any) -> Any:
        return await client.chat(request, model)

    def progress(p: EvalProgress) -> None:
        if ctx.throttled("eval", final=p.done == p.total):
            ctx.store.upsert_evaluation(
                run_id, eval_type.value, progress=round(p.percent, 2), done=p.done, total=p.total, eta_s=p.eta_s
            )

    watcher = _CancelWatcher(ctx, cancel)
    try:
        summary = run_async(run_eval(rows, chat, out_dir, config, judge=judge, progress=progress, cancel=cancel))
    except EvalCancelled as exc:
        raise StageCancelled(str(exc)) from exc
    finally:
        watcher.stop()
        close = getattr(config.embedder, "close", None)  # an endpoint embedder holds connections
        if close is not None:
            close()
    curve = _eval_curve(ctx, deployment["base_url"], rows, config, chat_client=client) if adapter_curve(ctx) else []
    scores = {name: agg["mean"] for name, agg in summary.metrics.items() if agg.get("n")}
    if summary.judge:
        scores["judge"] = summary.judge["score"]["mean"]
    ctx.store.upsert_evaluation(
        run_id,
        eval_type.value,
        fence=ctx.lease,
        status=TaskStatus.COMPLETED,
        progress=100.0,
        done=summary.samples,
        total=len(rows),
        eta_s=0.0,
        scores=scores,
        artifact_path=str(out_dir),
    )
    output: dict[str, Any] = {"summary": summary.to_dict(), "artifact_path": str(out_dir), "model": model}
    if curve:
        output["learning_curve"] = curve
    return output


def adapter_curve(ctx: StageContext) -> list[dict[str, Any]]:
    """The learning curve's adapters a customized eval scores too (none for the other evals)."""
    if ctx.kind != StageKind.CUSTOMIZED_EVAL:
        return []
    return list(ctx.output_of(StageKind.CUSTOMIZE, ctx.candidate).get("learning_curve") or [])


def _eval_curve(
    ctx: StageContext, base_url: str, rows: list[dict[str, Any]], config: Any, *, chat_client: Any
) -> list[dict[str, Any]]:
    """The learning curve, eval side: each fraction's adapter scored on the same eval rows as the full run,
    samples and summary in an eval folder of its own (``customized-eval@25``...)."""
    from dataflywheel.evaluation.runner import run_async, run_eval
    from dataflywheel.training.learning_curve import percent

    assert ctx.candidate is not None
    points = []
    for point in adapter_curve(ctx):
        name = str(point["adapter_name"])
        _load_adapter(base_url, name, str(point["adapter_path"]))
        out_dir = eval_dir(ctx.settings, ctx.job.id, ctx.candidate, f"{ctx.kind.value}@{percent(point['fraction'])}")

        async def chat(request: Any, model: str = name) -> Any:
            return await chat_client.chat(request, model)

        summary = run_async(run_eval(rows, chat, out_dir, config))
        points.append(
            {
                "fraction": point["fraction"],
                "train_examples": point["train_examples"],
                "metrics": summary.metrics,
                "artifact_path": str(out_dir),
            }
        )
    return points


def _eval_embedder(ctx: StageContext) -> Any:
    """The ``icl.embedder`` for ``embedding_similarity`` of text answers, or None (warned) when it cannot be
    built: the metric is optional, the eval runs without it."""
    try:
        from dataflywheel.icl.embedders import make_embedder

        return make_embedder(ctx.settings.icl.embedder)
    except Exception as exc:  # a missing package, a model that cannot load, a bad endpoint setting
        logger.warning("%s of %s: embedding_similarity left out, no embedder: %s", ctx.kind.value, ctx.candidate, exc)
        return None


def _judge(ctx: StageContext, datasets: dict[str, Any]) -> Any:
    """The job's judge, or None when there is none: not configured, or skipped because it did not answer the
    job's check (its stage says why)."""
    judge = ctx.settings.judge
    if not judge.enabled:
        return None
    check = ctx.store.get_stage(ctx.job.id, stage_key(StageKind.JUDGE))
    if check is None or check.status != TaskStatus.COMPLETED:
        return None
    from dataflywheel.evaluation.judge import Judge, JudgeCache, client_judge_chat
    from dataflywheel.models.client import OpenAIClient

    assert judge.base_url and judge.model
    client = OpenAIClient(judge.base_url, api_key_env=judge.api_key_env)
    kind = "tool_calling_correctness" if datasets.get("workload_type") == "tool_calling" else "similarity"
    cache = JudgeCache(ctx.settings.home / "judge-cache.db")
    return Judge(client_judge_chat(client, judge.model), model=judge.model, kind=kind, cache=cache)  # type: ignore[arg-type]


class _CancelWatcher:
    """Sets ``event`` when the job is cancelled, also while no request finishes (a slow model)."""

    def __init__(self, ctx: StageContext, event: threading.Event) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ctx, event), daemon=True)
        self._thread.start()

    def _run(self, ctx: StageContext, event: threading.Event) -> None:
        while not self._stop.wait(0.5):
            if ctx.store.is_cancel_requested(ctx.job.id):
                event.set()
                return

    def stop(self) -> None:
        self._stop.set()


def _load_adapter(base_url: str, name: str, path: str) -> None:
    """Have the candidate's server load the adapter (our server and vLLM share this API)."""
    try:
        reply = httpx.post(f"{base_url}/load_lora_adapter", json={"lora_name": name, "lora_path": path}, timeout=300)
    except httpx.HTTPError as exc:
        raise FlywheelError(f"cannot load adapter {name} into {base_url}: {exc}") from exc
    if reply.status_code >= 400 and "already" not in reply.text:
        raise FlywheelError(f"{base_url} refused adapter {name}: {reply.status_code} {reply.text[:300]}")


# ---- customization ---------------------------------------------------------------------------------
def run_customize(ctx: StageContext) -> dict[str, Any]:
    from dataflywheel.models.registry import resolve_model
    from dataflywheel.training import TrainingCancelled, TrainProgress, customize

    assert ctx.candidate is not None
    spec = resolve_model(ctx.candidate, ctx.settings)
    run_id = ctx.run_id()
    if spec.engine != "local" or not spec.customizable:
        ctx.store.upsert_customization(run_id, status=TaskStatus.SKIPPED)
        raise StageSkipped(f"{ctx.candidate} is not customizable (remote endpoint or customizable: false)")
    datasets = ctx.output_of(StageKind.DATASETS)
    started = time.monotonic()
    ctx.store.upsert_customization(run_id, status=TaskStatus.RUNNING, progress=0.0)
    if ctx.candidate_run().stage not in (CandidateStage.EVALUATING, CandidateStage.DEPLOYING):
        ctx.store.set_candidate_stage(run_id, CandidateStage.CUSTOMIZING)

    def progress(p: TrainProgress) -> None:
        if ctx.throttled("train", final=p.phase == "done"):
            ctx.store.upsert_customization(
                run_id,
                progress=round(p.percent, 2),
                epochs_completed=p.epochs_completed,
                total_epochs=p.total_epochs,
                steps_completed=p.steps_completed,
                total_steps=p.total_steps,
                loss=p.loss,
                tokens_per_s=p.tokens_per_s,
                eta_s=p.eta_s,
            )

    # The run id is the job's and the candidate's: a retried stage resumes the same run from its checkpoint.
    training_run = training_run_name(ctx.job.id, run_id)
    try:
        result = customize(
            ctx.settings,
            ctx.candidate,
            Path(datasets["path"]),
            overrides=(ctx.job.config or {}).get("training_config") or {},
            run_id=training_run,
            progress=progress,
            should_cancel=ctx.should_cancel,
        )
        curve = _train_curve(ctx, Path(datasets["path"]), training_run)
    except TrainingCancelled as exc:
        raise StageCancelled(str(exc)) from exc
    ctx.store.upsert_customization(
        run_id,
        fence=ctx.lease,
        status=TaskStatus.COMPLETED,
        progress=100.0,
        adapter_name=result.adapter.name,
        adapter_path=str(result.adapter.path),
        metrics=_small(result.metrics),
        eta_s=0.0,
        runtime_s=time.monotonic() - started,
    )
    output: dict[str, Any] = {
        "adapter_name": result.adapter.name,
        "adapter_path": str(result.adapter.path),
        "training_run": training_run,
        "train_examples": result.metrics.get("train_examples"),
    }
    if curve:
        output["learning_curve"] = curve
    return output


def _train_curve(ctx: StageContext, dataset: Path, training_run: str) -> list[dict[str, Any]]:
    """The job's learning curve, training side: one LoRA run per fraction of the train split (same overrides,
    a run id of its own so a retried stage resumes each), its adapter registered for the customized eval."""
    from dataflywheel.training import customize
    from dataflywheel.training.learning_curve import parse_fractions, percent, write_subset

    assert ctx.candidate is not None
    points = []
    for fraction in parse_fractions((ctx.job.config or {}).get("learning_curve")):
        subset = (
            ctx.settings.home / "jobs" / ctx.job.id / "learning-curve" / folder_name(ctx.candidate) / percent(fraction)
        )
        examples = write_subset(dataset, fraction, subset)
        run = customize(
            ctx.settings,
            ctx.candidate,
            subset,
            overrides=(ctx.job.config or {}).get("training_config") or {},
            run_id=f"{training_run}-lc{percent(fraction)}",
            should_cancel=ctx.should_cancel,
            name_suffix=f"-lc{percent(fraction)}",
        )
        points.append(
            {
                "fraction": fraction,
                "train_examples": examples,
                "adapter_name": run.adapter.name,
                "adapter_path": str(run.adapter.path),
            }
        )
    return points


def _small(metrics: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "recipe",
        "config",
        "class_counts",
        "best_epoch",
        "best_val_function_name_accuracy",
        "stopped_early",
        "final_train_loss",
        "final_val_loss",
        "epochs",
        "tokens_per_s",
        "train_examples",
        "val_examples",
        "skipped_count",
        "total_steps",
        "device",
        "dtype",
        "runtime_seconds",
    )
    return {k: metrics.get(k) for k in keep}


# ---- finalize --------------------------------------------------------------------------------------
def run_finalize(ctx: StageContext) -> dict[str, Any]:
    """The job's result: per candidate and eval type, every metric with its interval, the same per reference
    class, and the confusion counts of reference class against predicted outcome; per customized candidate,
    how its LoRA run went (:func:`training_summary`); then what it all means (:mod:`dataflywheel.decision`):
    ``cost`` (per 1,000 requests and per month, against the logged model's), ``latency`` and the
    ``recommendation``. A cost that cannot be computed is stored as unknown with the reason; it never fails
    the job."""
    from dataflywheel.decision.decide import FinishedEval, decide, without_cost
    from dataflywheel.decision.schema import eval_type_name
    from dataflywheel.training.learning_curve import CurvePoint

    detail = ctx.store.job_detail(ctx.job.id)
    results: dict[str, Any] = {}
    training: dict[str, Any] = {}
    curves: dict[str, list[CurvePoint]] = {}
    finished: list[FinishedEval] = []
    for run in detail.candidates:
        evals: dict[str, Any] = {}
        for kind in (StageKind.BASE_EVAL, StageKind.ICL_EVAL, StageKind.CUSTOMIZED_EVAL):
            stage = ctx.store.get_stage(ctx.job.id, stage_key(kind, run.candidate))
            if stage is not None and stage.status == TaskStatus.COMPLETED and stage.output:
                summary = stage.output["summary"]
                artifacts = stage.output.get("artifact_path")
                finished.append(
                    FinishedEval(
                        run.candidate, eval_type_name(kind.value), summary, Path(artifacts) if artifacts else None
                    )
                )
                if stage.output.get("learning_curve"):
                    full = CurvePoint(1.0, _train_examples(ctx, run.candidate), summary["metrics"])
                    curves[run.candidate] = [CurvePoint.of(p) for p in stage.output["learning_curve"]] + [full]
                evals[kind.value] = {
                    "metrics": summary["metrics"],
                    "per_class": summary.get("per_class") or {},
                    "confusion": summary.get("confusion") or {},
                    "judge": summary.get("judge") or None,
                    "samples": summary["samples"],
                    "errors": summary["errors"],
                }
        results[run.candidate] = evals
        if run.customization is not None and run.customization.metrics:
            from dataflywheel.training.report import training_summary

            training[run.candidate] = training_summary(run.customization.metrics)
    try:
        dataset_dir = Path(ctx.output_of(StageKind.DATASETS)["path"])
        decision = decide(ctx.settings, finished, results, training, dataset_dir, learning_curves=curves)
    except Exception as exc:  # the accuracy results stand without the cost: store it as unknown, say why
        logger.exception("the cost of job %s could not be computed", ctx.job.id)
        reason = f"the cost could not be computed: {type(exc).__name__}: {exc}"
        decision = without_cost(ctx.settings, results, training, reason, curves)
    result: dict[str, Any] = {
        "candidates": results,
        "training": training,
        "judge": _judge_check(ctx),
        **decision.to_result(),
    }
    if curves:
        result["learning_curve"] = {name: [p.to_dict() for p in points] for name, points in curves.items()}
    return result


def _train_examples(ctx: StageContext, candidate: str) -> int:
    """The train rows of a candidate's (full) LoRA run, from its customize stage's output."""
    stage = ctx.store.get_stage(ctx.job.id, stage_key(StageKind.CUSTOMIZE, candidate))
    return int(((stage.output if stage is not None else None) or {}).get("train_examples") or 0)


def _judge_check(ctx: StageContext) -> dict[str, Any]:
    """How the job's judge check ended, for the result: ``completed`` (judge metrics are in the evals) or
    ``skipped`` with the reason (none configured, or it did not answer)."""
    stage = ctx.store.get_stage(ctx.job.id, stage_key(StageKind.JUDGE))
    judge = ctx.settings.judge
    return {
        "status": stage.status.value if stage is not None else TaskStatus.SKIPPED.value,
        "model": judge.model if judge.enabled else None,
        "reason": stage.error if stage is not None else None,
    }


# ---- feedback loop ---------------------------------------------------------------------------------
def run_curate(ctx: StageContext) -> dict[str, Any]:
    from dataflywheel.feedback.pipeline import CurationCancelled, CurationConfig, run_curation
    from dataflywheel.models.client import OpenAIClient
    from dataflywheel.models.deployments import DeploymentManager
    from dataflywheel.models.registry import resolve_model

    config = CurationConfig.from_job(ctx.job.workload_id, ctx.job.client_id, ctx.job.config or {})
    with DeploymentManager(ctx.settings) as manager:

        def chat_for(name: str) -> tuple[Any, str]:
            deployment = manager.deploy(resolve_model(name, ctx.settings))
            client = OpenAIClient(
                deployment.base_url,
                api_key_env=resolve_model(name, ctx.settings).api_key_env,
                max_concurrency=config.concurrency,
                timeout=600.0 if deployment.local else 120.0,
            )
            return client, deployment.model

        weights = {"inference": (0.0, 70.0), "judging": (70.0, 25.0), "write-back": (95.0, 5.0)}

        def progress(step: str, done: int, total: int) -> None:
            start, span = weights.get(step, (0.0, 100.0))
            if ctx.throttled("curate", final=done == total):
                ctx.store.update_job(ctx.job.id, progress=round(start + span * done / max(1, total), 2))

        try:
            report = run_curation(
                ctx.settings, ctx.job.id, config, chat_for=chat_for, should_cancel=ctx.should_cancel, progress=progress
            )
        except CurationCancelled as exc:
            raise StageCancelled(str(exc)) from exc
    ctx.store.update_job(ctx.job.id, num_records=report["counts"]["inferred"], result=report)
    return report


STAGES: dict[StageKind, Callable[[StageContext], dict[str, Any]]] = {
    StageKind.CURATE: run_curate,
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


def job_dir(settings: Settings, job_id: str) -> Path:
    """The job's own folder: its evals, its deployments' logs, its report (deleted with the job)."""
    return settings.home / "jobs" / job_id


def eval_dir(settings: Settings, job_id: str, candidate: str, eval_type: str) -> Path:
    """Where an evaluation of a job stores its samples and summary."""
    return job_dir(settings, job_id) / "evals" / folder_name(candidate) / eval_type


def training_run_name(job_id: str, candidate_run_id: int) -> str:
    """The LoRA run of a job's candidate (``<home>/training/<name>``): the job's and the candidate run's, so a
    retried customize stage resumes the same run from its checkpoint."""
    return f"{job_id[:12]}{candidate_run_id:04d}"


def folder_name(name: str) -> str:
    """A candidate name as one folder name (``org/model`` -> ``org_model``)."""
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)
