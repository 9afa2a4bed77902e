"""The job store's PostgreSQL connections terminated again and again during a job, and the disk filling up
while an eval writes its artifact. Both end the job (completed, or failed with the reason), never stuck, and
lose or double nothing."""

from __future__ import annotations

import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from dataflywheel.jobs import JobStatus, TaskStatus
from dataflywheel.workflow.service import FlywheelService
from dataflywheel.workflow.stages import eval_dir, job_dir
from tests.faults.conftest import (
    CANDIDATE,
    CLIENT,
    WORKLOAD,
    Tally,
    count_items,
    make_env,
    wait_ended,
)
from tests.faults.fake_endpoint import FakeEndpoint

pytestmark = pytest.mark.faults


@pytest.fixture
def pg_job_store(postgres_url: str) -> Iterator[tuple[str, str]]:
    """A job store URL in a fresh schema whose connections carry an application name of their own (so the
    test terminates only them), and that name."""
    import psycopg

    schema = f"fwfault_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = (
        make_url(postgres_url)
        .update_query_dict({"options": f"-csearch_path={schema}", "application_name": schema})
        .render_as_string(hide_password=False)
    )
    yield url, schema
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{schema}'")
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.postgres
def test_job_store_connections_terminated_during_a_job(
    tmp_path: Path,
    logs_template: Path,
    endpoint: FakeEndpoint,
    postgres_url: str,
    pg_job_store: tuple[str, str],
    tally: Tally,
) -> None:
    import psycopg

    url, app_name = pg_job_store
    env = make_env(tmp_path, logs_template, endpoint, job_store={"url": url})
    stop = threading.Event()
    terminated: list[int] = []

    def terminate_every_second() -> None:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            while not stop.wait(1.0):
                rows = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (app_name,)
                ).fetchall()
                terminated.append(len(rows))

    with FlywheelService(env.settings()) as service:
        job = service.create_job(WORKLOAD, CLIENT, {"candidates": [CANDIDATE]})
        killer = threading.Thread(target=terminate_every_second, daemon=True)
        killer.start()
        try:
            done = wait_ended(service.store, job.id, timeout=120)
        finally:
            stop.set()
            killer.join()
        items = count_items(env, service.store, job.id, evals_expected=done.status == JobStatus.COMPLETED)
    tally.fault("PostgreSQL connections terminated", sum(terminated))
    tally.job(done, items)
    assert sum(terminated) >= 3, terminated
    assert done.status == JobStatus.COMPLETED or (done.status.terminal and done.error), done
    assert items.lost == 0 and items.duplicated == 0, items


def _small_tmpfs(path: Path) -> bool:
    """Mount a 4 KiB tmpfs at ``path`` (root only); False where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(path)], capture_output=True)
    return result.returncode == 0


def test_disk_full_while_writing_an_eval_artifact(
    tmp_path: Path, logs_template: Path, endpoint: FakeEndpoint, tally: Tally
) -> None:
    env = make_env(tmp_path, logs_template, endpoint)
    settings = env.settings()
    with FlywheelService(settings) as service:
        job = service.create_job(WORKLOAD, CLIENT, {"candidates": [CANDIDATE]}, start=False)
        evals = job_dir(settings, job.id) / "evals"
        mounted = _small_tmpfs(evals)
        if not mounted:  # the kernel's own "disk full": every write to /dev/full fails with ENOSPC
            for kind in ("base-eval", "icl-eval"):
                folder = eval_dir(settings, job.id, CANDIDATE, kind)
                folder.mkdir(parents=True)
                (folder / "samples.jsonl").symlink_to("/dev/full")
        tally.notes.append(
            f"disk full: {'a 4 KiB tmpfs under the job folder' if mounted else 'samples.jsonl -> /dev/full'}"
        )
        try:
            service.start(job.id)
            done = wait_ended(service.store, job.id, timeout=120)
            stages = {s.key: s for s in service.store.list_stages(job.id)}
            items = count_items(env, service.store, job.id, evals_expected=False)
        finally:
            if mounted:
                subprocess.run(["umount", "-l", str(evals)], check=False)
    tally.fault("disk full writing an eval artifact")
    tally.job(done, items)
    failed = [s for s in stages.values() if s.status == TaskStatus.FAILED]
    assert done.status == JobStatus.FAILED and done.error and "No space left on device" in done.error, done.error
    assert failed and all("No space left on device" in (s.error or "") for s in failed), failed
    assert stages["datasets"].status == TaskStatus.COMPLETED and stages["finalize"].status == TaskStatus.COMPLETED
    assert items.lost == 0 and items.duplicated == 0 and items.datasets == 4, items
