"""``flywheel serve`` killed with SIGKILL mid-job (with its stage processes, as an OOM kill or a crash takes
the whole service down), then started again: at once (as systemd's ``Restart=always`` does) and after more
than ``stale_after_s``. Also a job cancelled while its owner is dead.

Before periodic recovery, a restart within ``stale_after_s`` found the dead owner's heartbeat still fresh at
start-up, never looked again, and the job stayed ``running`` for good (a cancel stayed ``cancelling``).
"""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest

from dataflywheel.jobs import JobStatus, TaskStatus
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
    stage_running,
    start,
    stop,
    wait_ended,
    wait_for,
)

pytestmark = pytest.mark.faults

BASE_EVAL = f"base-eval:{CANDIDATE}"


def serve(env: FaultEnv, port: int) -> subprocess.Popen[bytes]:
    proc = start(env, ["serve", "--port", str(port), "--log-level", "warning"], "serve")

    def up() -> bool:
        assert proc.poll() is None, env.log_tail()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, 60, "flywheel serve to answer")
    return proc


def job_in_eval(env: FaultEnv, port: int) -> str:
    """A job created through the API, once its base eval runs."""
    reply = httpx.post(
        f"http://127.0.0.1:{port}/api/jobs",
        json={"workload_id": WORKLOAD, "client_id": CLIENT, "candidates": [CANDIDATE]},
        timeout=30,
    )
    assert reply.status_code == 202, reply.text
    job_id = str(reply.json()["id"])
    with env.store() as store:
        wait_for(lambda: stage_running(store, job_id, BASE_EVAL), 90, "the base eval to run")
    return job_id


@pytest.mark.parametrize("restart_after_s", [0.0, STALE_AFTER_S + 2], ids=["at-once", "after-stale"])
def test_a_job_survives_serve_killed_and_restarted(fault_env: FaultEnv, tally: Tally, restart_after_s: float) -> None:
    port = free_port()
    first = serve(fault_env, port)
    second = None
    try:
        job_id = job_in_eval(fault_env, port)
        kill9(first)
        tally.fault("kill -9 serve")
        time.sleep(restart_after_s)
        restarted = time.monotonic()
        second = serve(fault_env, port)
        with fault_env.store() as store:
            # Taken over within stale_after_s of the death, plus the evals' own time: never stuck.
            done = wait_ended(store, job_id, timeout=60 + STALE_AFTER_S)
            took = time.monotonic() - restarted
            items = count_items(fault_env, store, job_id)
            stages = {s.key: s for s in store.list_stages(job_id)}
            events = [e.message for e in store.list_events(job_id, limit=2000)]
        tally.job(done, items)
    finally:
        kill9(first)
        if second is not None:
            stop(second)
    assert done.status == JobStatus.COMPLETED, (done.error, fault_env.log_tail())
    assert stages[BASE_EVAL].attempts == 2 and stages["datasets"].attempts == 1
    assert any("taken over" in m for m in events) and any("resumed by" in m for m in events)
    assert items.lost == 0 and items.duplicated == 0, items
    assert items.datasets == 4 and items.samples == 16, items  # base and ICL evals, each sample once
    assert took < 60, took


def test_a_cancel_completes_when_the_owner_is_dead(fault_env: FaultEnv, tally: Tally) -> None:
    port = free_port()
    first = serve(fault_env, port)
    second = None
    try:
        job_id = job_in_eval(fault_env, port)
        kill9(first)
        tally.fault("kill -9 serve")
        with fault_env.store() as store:
            assert store.request_cancel(job_id).status == JobStatus.CANCELLING
            second = serve(fault_env, port)
            done = wait_ended(store, job_id, timeout=30 + STALE_AFTER_S)
            stages = {s.key: s for s in store.list_stages(job_id)}
        tally.job(done)
    finally:
        kill9(first)
        if second is not None:
            stop(second)
    assert done.status == JobStatus.CANCELLED, (done.error, fault_env.log_tail())
    assert stages[BASE_EVAL].status == TaskStatus.CANCELLED
