"""Where stages run: in this process's threads (``embedded``) or on Celery workers (``celery``).

Both only *start* a stage; the stage itself records its end in the job store, which the driver reads. So
the driver does not care where a stage ran, and a stage whose worker died is seen as still ``running`` with
no one to finish it (the embedded driver re-queues it; Celery redelivers it, ``acks_late``).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from dataflywheel.errors import DependencyMissingError
from dataflywheel.jobs import JobStore
from dataflywheel.settings import Settings
from dataflywheel.workflow.plan import Queue, Resource
from dataflywheel.workflow.stages import execute_stage

logger = logging.getLogger(__name__)

__all__ = ["CeleryExecutor", "EmbeddedExecutor", "Executor", "ResourcePool", "make_executor"]


class Executor(Protocol):
    kind: str

    def submit(self, job_id: str, key: str, queue: Queue) -> None:
        """Start stage ``key`` of ``job_id`` (returns at once)."""
        ...

    def close(self) -> None: ...


class EmbeddedExecutor:
    """Stages in a pool of this process's threads."""

    kind = "embedded"

    def __init__(self, store: JobStore, settings: Settings, owner: str) -> None:
        self.store = store
        self.settings = settings
        self.owner = owner
        self._pool = ThreadPoolExecutor(max_workers=settings.executor.workers, thread_name_prefix="flywheel-stage")

    def submit(self, job_id: str, key: str, queue: Queue) -> None:
        self._pool.submit(self._run, job_id, key)

    def _run(self, job_id: str, key: str) -> None:
        try:
            execute_stage(self.store, self.settings, job_id, key, self.owner)
        except Exception:  # execute_stage records stage errors; this is the store itself failing
            logger.exception("stage %s of job %s could not run", key, job_id)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class CeleryExecutor:
    """Stages as Celery tasks on the accelerator or CPU queue (workers: ``flywheel worker``)."""

    kind = "celery"

    def __init__(self, settings: Settings) -> None:
        try:
            from dataflywheel.workflow.celery_app import make_celery
        except ImportError as exc:
            raise DependencyMissingError("executor celery needs celery: pip install 'data-flywheel[celery]'") from exc
        self.app = make_celery(settings.executor.broker_url)

    def submit(self, job_id: str, key: str, queue: Queue) -> None:
        self.app.send_task("flywheel.run_stage", args=[job_id, key], queue=queue.value)

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
