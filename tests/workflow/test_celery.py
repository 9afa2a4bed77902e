"""A whole job on real Celery workers (Redis broker): the same stages, run by `flywheel worker`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataflywheel.jobs.status import JobStatus, TaskStatus
from dataflywheel.workflow.service import FlywheelService
from tests.serving import wait_gone
from tests.workflow.conftest import CLIENT, ENV, QUICK_TRAINING, WORKLOAD, job_settings


@pytest.fixture
def worker(home: Path, redis_url: str) -> Iterator[subprocess.Popen[bytes]]:
    pytest.importorskip("celery")
    from dataflywheel.workflow.celery_app import make_celery

    make_celery(redis_url).control.purge()  # nothing left over from an earlier run
    env = {**os.environ, **ENV, "FLYWHEEL_HOME": str(home), "FLYWHEEL_EXECUTOR__BROKER_URL": redis_url}
    log = (home / "worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataflywheel.cli.main", "worker", "--concurrency", "3", "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    yield proc
    os.killpg(proc.pid, 15)
    if not wait_gone(proc.pid, timeout=20):
        os.killpg(proc.pid, 9)
    proc.wait()
    log.close()


def test_a_full_job_runs_on_celery_workers(home: Path, redis_url: str, worker: subprocess.Popen[bytes]) -> None:
    settings = job_settings(home, executor={"kind": "celery", "broker_url": redis_url})
    with FlywheelService(settings) as service:
        assert service.executor.kind == "celery"
        job = service.create_job(
            WORKLOAD, CLIENT, {"candidates": ["tiny-random-llama"], "training_config": QUICK_TRAINING}
        )
        done = service.wait(job.id, timeout=300)
        stages = service.store.list_stages(job.id)
        (run,) = service.store.job_detail(job.id).candidates
    log = (home / "worker.log").read_text(errors="replace")
    assert done.status == JobStatus.COMPLETED, (done.error, log[-3000:])
    # every stage ran in the worker's processes, not in this one
    assert all(s.owner and s.owner.startswith("celery:") for s in stages if s.attempts), [
        (s.key, s.owner) for s in stages
    ]
    assert {e.eval_type for e in run.evaluations if e.status == TaskStatus.COMPLETED} == {
        "base-eval",
        "icl-eval",
        "customized-eval",
    }
    assert worker.poll() is None
