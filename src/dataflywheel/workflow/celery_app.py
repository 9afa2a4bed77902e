"""The Celery side of the ``celery`` executor: one task, ``flywheel.run_stage``, that runs a stage with the
same code as the embedded executor. Workers: ``flywheel worker [--queues flywheel.cpu,flywheel.accelerator]``.

Tasks are acknowledged late and re-queued when their worker dies, so a stage whose worker was killed runs
again elsewhere (its training resumes from its last checkpoint; an eval keeps the samples it stored).
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from celery import Celery

from dataflywheel.workflow.plan import Queue

__all__ = ["make_celery", "run_stage_task"]

_lock = threading.Lock()
_apps: dict[str, Celery] = {}
_store: Any = None


def make_celery(broker_url: str) -> Celery:
    with _lock:
        app = _apps.get(broker_url)
        if app is None:
            app = Celery("dataflywheel", broker=broker_url)
            app.conf.update(
                task_acks_late=True,
                task_reject_on_worker_lost=True,
                worker_prefetch_multiplier=1,
                task_serializer="json",
                accept_content=["json"],
                task_default_queue=Queue.CPU.value,
                broker_connection_retry_on_startup=True,
                worker_hijack_root_logger=False,
            )
            app.task(name="flywheel.run_stage", bind=True)(run_stage_task)
            _apps[broker_url] = app
        return app


def run_stage_task(task: Any, job_id: str, key: str) -> str:
    """Run one stage in this worker (settings from ``$FLYWHEEL_CONFIG`` / ``FLYWHEEL_*``)."""
    from dataflywheel.jobs import JobStore
    from dataflywheel.settings import load_settings
    from dataflywheel.workflow.stages import execute_stage

    global _store
    settings = load_settings()
    with _lock:
        if _store is None:
            _store = JobStore.from_settings(settings)
        store = _store
    owner = f"celery:{socket.gethostname()}:{os.getpid()}"
    return execute_stage(store, settings, job_id, key, owner).value
