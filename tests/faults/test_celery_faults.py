"""Celery workers (``flywheel worker``, real processes on Redis) killed with SIGKILL mid-stage, and the broker
itself restarted mid-job.

Before stage leases, a killed worker's stage waited for Redis's visibility timeout (an hour by default; here
the driver would have waited forever: it left running stages to Celery), the dead stage kept its slot and a
cancel never finished; and no attempt cap applied under Celery.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataflywheel.jobs import JobStatus, TaskStatus
from dataflywheel.workflow.service import FlywheelService
from tests.conftest import service_unavailable
from tests.faults.conftest import (
    CANDIDATE,
    CLIENT,
    STALE_AFTER_S,
    WORKLOAD,
    FaultEnv,
    Tally,
    count_items,
    free_port,
    kill9,
    make_env,
    stage_running,
    start,
    stop,
    wait_ended,
    wait_for,
)
from tests.faults.fake_endpoint import FakeEndpoint

pytestmark = [pytest.mark.faults, pytest.mark.redis]

BASE_EVAL = f"base-eval:{CANDIDATE}"


def celery_env(
    tmp_path: Path, logs_template: Path, endpoint: FakeEndpoint, broker: str, **executor: object
) -> FaultEnv:
    pytest.importorskip("celery")
    from dataflywheel.workflow.celery_app import make_celery

    env = make_env(tmp_path, logs_template, endpoint, executor={"kind": "celery", "broker_url": broker, **executor})
    make_celery(broker).control.purge()  # nothing left over from an earlier run
    return env


def worker(env: FaultEnv) -> subprocess.Popen[bytes]:
    return start(env, ["worker", "--concurrency", "1", "--log-level", "warning"], "worker")


def test_a_killed_workers_stage_is_run_again_within_stale_after_s(
    tmp_path: Path, logs_template: Path, endpoint: FakeEndpoint, redis_url: str, tally: Tally
) -> None:
    env = celery_env(tmp_path, logs_template, endpoint, redis_url)
    first = worker(env)
    second = None
    try:
        with FlywheelService(env.settings()) as service:
            job = service.create_job(WORKLOAD, CLIENT, {"candidates": [CANDIDATE]})
            wait_for(lambda: stage_running(service.store, job.id, BASE_EVAL), 90, "the base eval to run")
            kill9(first)
            killed = time.monotonic()
            tally.fault("kill -9 celery worker mid-eval")
            second = worker(env)
            wait_for(lambda: stage_running(service.store, job.id, BASE_EVAL, attempt=2), 60, "attempt 2")
            rerun_after = time.monotonic() - killed
            done = wait_ended(service.store, job.id, timeout=90)
            items = count_items(env, service.store, job.id)
            stages = {s.key: s for s in service.store.list_stages(job.id)}
        tally.job(done, items)
    finally:
        kill9(first)
        if second is not None:
            stop(second)
    assert done.status == JobStatus.COMPLETED, (done.error, env.log_tail())
    # re-run within stale_after_s of the death (plus a poll and the new worker's start-up), not an hour later
    assert rerun_after < STALE_AFTER_S + 20, rerun_after
    assert stages[BASE_EVAL].attempts == 2 and all(
        s.owner and s.owner.startswith("celery:") for s in stages.values() if s.attempts
    )
    assert items.lost == 0 and items.duplicated == 0 and items.samples == 16, items


def test_the_attempt_cap_holds_under_celery_and_the_job_ends_crashed(
    tmp_path: Path, logs_template: Path, endpoint: FakeEndpoint, redis_url: str, tally: Tally
) -> None:
    env = celery_env(tmp_path, logs_template, endpoint, redis_url, stage_attempts=2)
    workers = [worker(env)]
    try:
        with FlywheelService(env.settings()) as service:
            job = service.create_job(WORKLOAD, CLIENT, {"candidates": [CANDIDATE]})
            for attempt in (1, 2):  # the worker dies on every attempt of the base eval
                wait_for(lambda a=attempt: stage_running(service.store, job.id, BASE_EVAL, a), 90, f"attempt {attempt}")  # type: ignore[misc]
                kill9(workers[-1])
                tally.fault("kill -9 celery worker mid-eval")
                workers.append(worker(env))
            done = wait_ended(service.store, job.id, timeout=90)
            stage = service.store.get_stage(job.id, BASE_EVAL)
            items = count_items(env, service.store, job.id)
        tally.job(done)
    finally:
        for w in workers:
            stop(w)
    assert stage is not None and stage.status == TaskStatus.CRASHED and stage.attempts == 2, stage
    assert done.status == JobStatus.CRASHED and done.error and "died on all 2 attempt(s)" in done.error, done.error
    assert items.lost == 0 and items.duplicated == 0, items  # the ICL eval still ran, each sample once


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A Redis server of this test's own (the shared one is left alone), and the argv to start it again."""
    server = shutil.which("redis-server")
    if server is None:
        service_unavailable("redis-server", "not installed: the broker restart needs a Redis it may restart")
    port = free_port()
    argv = [
        server,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp_path),
    ]
    yield f"redis://127.0.0.1:{port}/0", argv


def test_a_broker_restart_mid_job_loses_nothing(
    tmp_path: Path, logs_template: Path, endpoint: FakeEndpoint, own_redis: tuple[str, list[str]], tally: Tally
) -> None:
    url, argv = own_redis
    redis = subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True)
    time.sleep(0.5)
    env = celery_env(tmp_path, logs_template, endpoint, url, resend_after_s=STALE_AFTER_S * 2)
    w = worker(env)
    try:
        with FlywheelService(env.settings()) as service:
            job = service.create_job(WORKLOAD, CLIENT, {"candidates": [CANDIDATE]})
            wait_for(lambda: stage_running(service.store, job.id, BASE_EVAL), 90, "the base eval to run")
            kill9(redis)  # without persistence: every queued task is lost with it
            tally.fault("Redis killed and restarted")
            time.sleep(2)
            redis = subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True)
            done = wait_ended(service.store, job.id, timeout=120)
            items = count_items(env, service.store, job.id)
        tally.job(done, items)
    finally:
        stop(w)
        kill9(redis)
    assert done.status == JobStatus.COMPLETED, (done.error, env.log_tail())
    assert items.lost == 0 and items.duplicated == 0 and items.samples == 16, items
