"""Where stages run: in this process (``embedded``: threads, and spawned child processes for the stages that
compute) or on Celery workers (``celery``).

Both only *start* a stage attempt; the attempt itself records its end in the job store, which the driver
reads. So the driver does not care where a stage ran. An attempt whose owner died is seen as ``running``
under a lease nobody renews: the driver takes it over within ``executor.stale_after_s`` (at once when the
embedded executor saw its child process exit) and sends the next attempt.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from dataflywheel.errors import DependencyMissingError
from dataflywheel.jobs import JobStore
from dataflywheel.settings import Settings
from dataflywheel.workflow.plan import Resource, StageSpec
from dataflywheel.workflow.stages import execute_stage

logger = logging.getLogger(__name__)

__all__ = [
    "AttemptHandle",
    "CeleryExecutor",
    "EmbeddedExecutor",
    "Executor",
    "NoHandle",
    "ResourcePool",
    "make_executor",
]

CHILD_NICE = 10
"""Niceness of a stage's child process: the API's process (and the driver) get the cores first."""


class AttemptHandle(Protocol):
    """What the executor knows of one stage attempt it started."""

    def ended(self) -> bool:
        """True once the attempt is known to have ended (then the job store says how; if the stage is still
        running, its owner died without writing a result). False when it may still run, or nobody can tell
        (a Celery task: its lease in the job store tells)."""
        ...


class NoHandle:
    """An attempt this process cannot watch (a Celery task, one started by another process)."""

    def ended(self) -> bool:
        return False


class _FutureHandle:
    def __init__(self, future: Future[None]) -> None:
        self._future = future

    def ended(self) -> bool:
        return self._future.done()


class Executor(Protocol):
    kind: str

    def submit(self, job_id: str, spec: StageSpec, attempt: int) -> AttemptHandle:
        """Start attempt ``attempt`` of stage ``spec`` of ``job_id`` (returns at once)."""
        ...

    def close(self) -> None: ...


def isolated(spec: StageSpec) -> bool:
    """Whether a stage computes (an eval's generation client, a LoRA run, a feedback loop): it holds the compute
    slot. Those run in a child process, the quick bookkeeping stages in a thread."""
    return Resource.COMPUTE_SLOT in spec.resources


def _child_main(dsn: str, settings: Settings, job_id: str, key: str, owner: str, attempt: int) -> None:
    """A stage attempt in a spawned child process: niced, its own job store connection."""
    with contextlib.suppress(OSError):  # not allowed here: run at the parent's priority
        os.nice(CHILD_NICE)
    logging.basicConfig(level=logging.WARNING)
    with JobStore(dsn, migrate=False) as store:
        execute_stage(store, settings, job_id, key, owner, attempt=attempt)


class EmbeddedExecutor:
    """Stages in this process: bookkeeping stages in a pool of threads; stages that compute (evals, LoRA runs,
    feedback loops) each in a spawned, niced child process, watched by a thread of that pool.

    Why a process: the API shares this process. A stage computing in a thread (tokenizing, scoring, torch's
    Python side) holds the GIL often enough to make ``GET /api/jobs`` take most of a second; in a process of
    its own, niced, it cannot starve the API (``benchmarks/api.py`` measures it). Spawned, not forked: this
    process has threads (uvicorn, drivers), and a fork copies their locks in whatever state they are.
    """

    kind = "embedded"

    def __init__(self, store: JobStore, settings: Settings, owner: str) -> None:
        self.store = store
        self.settings = settings
        self.owner = owner
        self._pool = ThreadPoolExecutor(max_workers=settings.executor.workers, thread_name_prefix="flywheel-stage")
        self._spawn = multiprocessing.get_context("spawn")
        self._children: set[multiprocessing.process.BaseProcess] = set()
        self._lock = threading.Lock()

    def submit(self, job_id: str, spec: StageSpec, attempt: int) -> AttemptHandle:
        child = self.settings.executor.isolate_compute and isolated(spec) and self.store.dsn is not None
        target = self._run_child if child else self._run
        return _FutureHandle(self._pool.submit(target, job_id, spec.key, attempt))

    def _run(self, job_id: str, key: str, attempt: int) -> None:
        try:
            execute_stage(self.store, self.settings, job_id, key, self.owner, attempt=attempt)
        except Exception:  # execute_stage records stage errors; this is the store itself failing
            logger.exception("stage %s of job %s could not run", key, job_id)

    def _run_child(self, job_id: str, key: str, attempt: int) -> None:
        dsn = self.store.dsn
        assert dsn is not None
        process = self._spawn.Process(
            target=_child_main,
            args=(dsn, self.settings, job_id, key, f"{self.owner}/child", attempt),
            name=f"flywheel-{key}",
            daemon=True,
        )
        with self._lock:
            self._children.add(process)
        try:
            process.start()
            process.join()
        finally:
            with self._lock:
                self._children.discard(process)
        if process.exitcode:
            logger.warning("stage %s of job %s: its process exited with %s", key, job_id, process.exitcode)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            children = list(self._children)
        for child in children:  # closing means stopping: the next owner takes their stages over
            if child.is_alive():
                child.terminate()


class CeleryExecutor:
    """Stages as Celery tasks on the accelerator or CPU queue (workers: ``flywheel worker``)."""

    kind = "celery"

    def __init__(self, settings: Settings) -> None:
        try:
            from dataflywheel.workflow.celery_app import make_celery
        except ImportError as exc:
            raise DependencyMissingError("executor celery needs celery: pip install 'data-flywheel[celery]'") from exc
        self.app = make_celery(settings.executor.broker_url, settings.executor.visibility_timeout_s)

    def submit(self, job_id: str, spec: StageSpec, attempt: int) -> AttemptHandle:
        self.app.send_task("flywheel.run_stage", args=[job_id, spec.key, attempt], queue=spec.queue.value)
        return NoHandle()

    def close(self) -> None:
        return None


def make_executor(store: JobStore, settings: Settings, owner: str) -> Executor:
    if settings.executor.kind == "celery":
        return CeleryExecutor(settings)
    return EmbeddedExecutor(store, settings, owner)


def _default_compute_slots() -> int:
    """One model computation at a time on a CPU-only machine (they each want every core); a few with GPUs."""
    try:
        import torch
    except ImportError:
        return 1
    return 4 * torch.cuda.device_count() if torch.cuda.is_available() else 1


class ResourcePool:
    """Slots of each :class:`Resource`, shared by every job this process drives."""

    def __init__(self, settings: Settings) -> None:
        self.capacity = {
            Resource.MODEL_SLOT: settings.executor.model_slots,
            Resource.TRAINING_SLOT: settings.executor.training_slots,
            Resource.COMPUTE_SLOT: settings.executor.compute_slots or _default_compute_slots(),
        }
        self._held: dict[Resource, set[str]] = {r: set() for r in Resource}
        self._lock = threading.Lock()

    def try_acquire(self, resource: Resource, holder: str, *, force: bool = False) -> bool:
        with self._lock:
            held = self._held[resource]
            if holder in held:
                return True
            if len(held) >= self.capacity[resource] and not force:
                return False
            held.add(holder)
            return True

    def release(self, resource: Resource, holder: str) -> None:
        with self._lock:
            self._held[resource].discard(holder)

    def in_use(self) -> dict[str, int]:
        with self._lock:
            return {r.value: len(h) for r, h in self._held.items()}
