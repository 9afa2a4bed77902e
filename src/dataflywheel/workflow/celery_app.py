"""The Celery side of the ``celery`` executor: one task, ``flywheel.run_stage``, that runs a stage attempt with
the same code as the embedded executor. Workers: ``flywheel worker [--queues flywheel.cpu,flywheel.accelerator]``.

Delivery rule. Who runs a stage is decided by the stage's lease in the job store, not by the broker:

* A task is acknowledged when it *starts* (not late): the broker's visibility timeout
  (``executor.visibility_timeout_s``) therefore never fires while a stage runs, however long (a LoRA run on
  CPU takes hours), and a running stage is never redelivered. It only re-delivers a task that a dead worker
  had reserved but not started.
* A worker killed mid-stage leaves its stage ``running`` under a lease nobody renews; the job's driver takes
  it over once the lease is older than ``executor.stale_after_s`` and sends the next attempt, up to
  ``executor.stage_attempts`` (then the stage ends *crashed*, with the reason): the attempt cap holds here too.
* Every delivery carries its attempt number: a duplicate (a re-delivery, a task sent again after a broker
  restart) finds the attempt already started, or the stage under a live lease, and exits without writing.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from celery import Celery

from dataflywheel.workflow.plan import Queue

__all__ = ["make_celery", "run_stage_task", "stage_owner"]

DEFAULT_VISIBILITY_TIMEOUT_S = 3600.0

_lock = threading.Lock()
_apps: dict[tuple[str, float], Celery] = {}
_store: Any = None


def make_celery(broker_url: str, visibility_timeout_s: float = DEFAULT_VISIBILITY_TIMEOUT_S) -> Celery:
    """The Celery app of ``broker_url`` (one per URL and timeout in a process)."""
    with _lock:
        app = _apps.get((broker_url, visibility_timeout_s))
        if app is None:
            app = Celery("dataflywheel", broker=broker_url)
            app.conf.update(
                # Acknowledged at start: a running stage is never redelivered (see the delivery rule above).
                task_acks_late=False,
                worker_prefetch_multiplier=1,
                broker_transport_options={"visibility_timeout": visibility_timeout_s},
                task_serializer="json",
                accept_content=["json"],
                task_default_queue=Queue.CPU.value,
                broker_connection_retry_on_startup=True,
                broker_connection_max_retries=None,  # a broker restart: reconnect, however long it takes
                worker_hijack_root_logger=False,
            )
            app.task(name="flywheel.run_stage", bind=True)(run_stage_task)
            _apps[(broker_url, visibility_timeout_s)] = app
        return app


def stage_owner(node: str | None) -> str:
    """Who runs a stage attempt in this worker process: ``celery:<node name>:<pid>``. The node name is the
    worker's ``--name`` (Celery's ``-n``, e.g. ``cpu@host``), so a stage's recorded owner says which worker,
    and through it which queue, ran it; the pid tells the worker's pool processes apart."""
    return f"celery:{node or socket.gethostname()}:{os.getpid()}"


def run_stage_task(task: Any, job_id: str, key: str, attempt: int | None = None) -> str | None:
    """Run one stage attempt in this worker (settings from ``$FLYWHEEL_CONFIG`` / ``FLYWHEEL_*``); the status
    it ended with, or None when this delivery was a duplicate and ran nothing."""
    from dataflywheel.jobs import JobStore
    from dataflywheel.settings import load_settings
    from dataflywheel.workflow.stages import execute_stage

    global _store
    settings = load_settings()
    with _lock:
        if _store is None:
            _store = JobStore.from_settings(settings)
        store = _store
    owner = stage_owner(getattr(task.request, "hostname", None))
    status = execute_stage(store, settings, job_id, key, owner, attempt=attempt)
    return None if status is None else status.value
