"""A whole job on real Celery workers (Redis broker), on the SQLite and the PostgreSQL job store: two
`flywheel worker` processes, one per queue, as a deployment with a GPU host and a CPU host would run them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from dataflywheel.jobs.status import JobStatus, TaskStatus
from dataflywheel.workflow.plan import Queue, parse_stage_key, stage_queue
from dataflywheel.workflow.service import FlywheelService
from tests.serving import wait_gone
from tests.workflow.conftest import CLIENT, ENV, QUICK_TRAINING, WORKLOAD, job_settings

pytestmark = pytest.mark.redis

NODES = {Queue.CPU: "cpu@flywheel-test", Queue.ACCELERATOR: "accelerator@flywheel-test"}
"""Each queue's worker, by its node name (``flywheel worker --name``)."""

StartWorker = Callable[[Queue], subprocess.Popen[bytes]]


@pytest.fixture
def start_worker(home: Path, redis_url: str) -> Iterator[StartWorker]:
    """Starts ``flywheel worker`` processes, each serving one queue under the node name of :data:`NODES`; the
    environment (so the job store, FLYWHEEL_JOB_STORE__URL) is the test's."""
    pytest.importorskip("celery")
    from dataflywheel.workflow.celery_app import make_celery

    make_celery(redis_url).control.purge()  # nothing left over from an earlier run
    env = {**os.environ, **ENV, "FLYWHEEL_HOME": str(home), "FLYWHEEL_EXECUTOR__BROKER_URL": redis_url}
    started: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []

    def start(queue: Queue) -> subprocess.Popen[bytes]:
        log = (home / f"worker-{queue.name.lower()}.log").open("wb")
        argv = ["worker", "--queues", queue.value, "--name", NODES[queue], "--concurrency", "2"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "dataflywheel.cli.main", *argv, "--log-level", "warning"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append((proc, log))
        return proc

    yield start
    for proc, _ in started:
        os.killpg(proc.pid, 15)
    for proc, log in started:
        if not wait_gone(proc.pid, timeout=20):
            os.killpg(proc.pid, 9)
        proc.wait()
        log.close()


@pytest.mark.jobs
def test_a_job_runs_across_two_workers_one_per_queue_each_stage_recording_its_worker(
    home: Path, redis_url: str, job_store_url: str, start_worker: StartWorker
) -> None:
    workers = {queue: start_worker(queue) for queue in NODES}
    settings = job_settings(home, executor={"kind": "celery", "broker_url": redis_url})
    with FlywheelService(settings) as service:
        assert service.executor.kind == "celery" and service.store.dsn == job_store_url
        job = service.create_job(
            WORKLOAD, CLIENT, {"candidates": ["tiny-random-llama"], "training_config": QUICK_TRAINING}
        )
        done = service.wait(job.id, timeout=300)
        stages = service.store.job_detail(job.id).stages
        (run,) = service.store.job_detail(job.id).candidates
    logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(home.glob("worker-*.log")))
    assert done.status == JobStatus.COMPLETED, (done.error, logs)
    ran = [s for s in stages if s.attempts]
    # Each stage ran on the worker serving its queue: its owner names that worker's node.
    for stage in ran:
        node = NODES[stage_queue(parse_stage_key(stage.key)[0])]
        assert stage.owner is not None and stage.owner.startswith(f"celery:{node}:"), (stage.key, stage.owner)
    # Both workers ran stages: deploy, customize and shutdown on one, datasets, evals and finalize on the other.
    assert {s.owner.split(":")[1] for s in ran if s.owner} == set(NODES.values())
    assert {parse_stage_key(s.key)[0].value for s in ran if NODES[Queue.ACCELERATOR] in (s.owner or "")} == {
        "deploy",
        "customize",
        "shutdown",
    }
    assert {e.eval_type for e in run.evaluations if e.status == TaskStatus.COMPLETED} == {
        "base-eval",
        "icl-eval",
        "customized-eval",
    }
    assert all(proc.poll() is None for proc in workers.values())
