"""Fixtures of the API tests: the app over a job store on SQLite or PostgreSQL, and jobs in every state.

Jobs are made directly in the store (statuses set with ``set_job_status``), and the app is created with
``start_jobs=False``, so ``POST /api/jobs`` stores jobs without running them; one test runs a real job.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from dataflywheel.api import create_api
from dataflywheel.jobs import CandidateStage, JobRecord, JobStatus, JobStore, TaskStatus
from dataflywheel.settings import Settings, load_settings
from dataflywheel.workflow.stages import eval_dir
from tests.jobs.conftest import _drop_later, pg_schema_url, store_url  # noqa: F401  (fixtures: a store per backend)

CANDIDATE = "tiny-random-llama"


@dataclass
class Api:
    """The app under test: an HTTP client, its job store and its settings."""

    client: TestClient
    store: JobStore
    settings: Settings


@pytest.fixture
def api_settings(store_url: str, tmp_path: Path) -> Settings:  # noqa: F811
    return load_settings(home=tmp_path / "home", job_store={"url": store_url})


@pytest.fixture
def api(api_settings: Settings) -> Iterator[Api]:
    """The API over a fresh job store (each test runs on SQLite and on PostgreSQL); jobs are not run."""
    app = create_api(api_settings, start_jobs=False, recover=False)
    with TestClient(app) as client:
        service = app.state.api.service
        yield Api(client, service.store, api_settings)


def make_job(
    store: JobStore,
    status: JobStatus = JobStatus.PENDING,
    workload_id: str = "wl-1",
    client_id: str = "client-a",
    candidates: tuple[str, ...] = (),
) -> JobRecord:
    """A job taken to ``status`` through legal transitions."""
    job = store.create_job(workload_id, client_id, {"candidates": list(candidates)} if candidates else {})
    for candidate in candidates:
        store.add_candidate_run(job.id, candidate)
    if status is JobStatus.PENDING:
        return job
    if status is JobStatus.CANCELLED:
        return store.request_cancel(job.id)
    store.set_job_status(job.id, JobStatus.RUNNING)
    if status is JobStatus.CANCELLING:
        return store.request_cancel(job.id)
    if status is JobStatus.RUNNING:
        return store.get_job(job.id)
    return store.set_job_status(
        job.id, status, error="boom" if status in (JobStatus.FAILED, JobStatus.CRASHED) else None
    )


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def eval_folder(settings: Settings, job_id: str, candidate: str, eval_type: str) -> Path:
    return eval_dir(settings, job_id, candidate, eval_type)  # where the eval stage writes


def rich_job(store: JobStore, settings: Settings, status: JobStatus = JobStatus.RUNNING) -> JobRecord:
    """A job in mid-flight: datasets on disk, a candidate whose base eval is done (samples on disk), whose
    ICL eval and customization are running, a skipped judge; then taken to ``status``."""
    job = make_job(store, JobStatus.RUNNING, candidates=(CANDIDATE,))
    build = settings.datasets_dir / job.workload_id / job.client_id / f"build-{job.id[:8]}"  # where builds live
    rows = {name: [{"record_id": f"{name}-{i}", "n": i} for i in range(n)] for name, n in DATASETS.items()}
    store.set_datasets(
        job.id,
        [(name, len(r), str(write_jsonl(build / f"{name}.jsonl", r)), build.name) for name, r in rows.items()],
    )
    store.update_job(job.id, num_records=40)
    store.upsert_judge(job.id, kind="disabled", status=TaskStatus.SKIPPED)
    run = store.add_candidate_run(job.id, CANDIDATE)
    store.set_candidate_stage(run.id, CandidateStage.DEPLOYING)
    store.update_candidate_run(run.id, deployment={"base_url": "http://127.0.0.1:1/v1", "local": True})
    store.set_candidate_stage(run.id, CandidateStage.EVALUATING)
    base = eval_folder(settings, job.id, CANDIDATE, "base-eval")
    write_jsonl(base / "samples.jsonl", [{"record_id": "eval-0", "scores": {"function_name_accuracy": 1.0}}])
    store.upsert_evaluation(run.id, "base-eval", status=TaskStatus.RUNNING, total=10)
    store.upsert_evaluation(
        run.id,
        "base-eval",
        status=TaskStatus.COMPLETED,
        progress=100.0,
        done=10,
        eta_s=0.0,
        scores={"function_name_accuracy": 0.8, "function_name_and_args_accuracy": 0.5},
        artifact_path=str(base),
    )
    store.upsert_evaluation(run.id, "icl-eval", status=TaskStatus.RUNNING, progress=40.0, done=4, total=10, eta_s=6.0)
    started = datetime.now(UTC) - timedelta(seconds=30)
    store.upsert_customization(
        run.id,
        status=TaskStatus.RUNNING,
        started_at=started,
        progress=50.0,
        epochs_completed=1,
        total_epochs=2,
        steps_completed=4,
        total_steps=8,
        loss=1.25,
        tokens_per_s=900.0,
        eta_s=30.0,
    )
    if status is JobStatus.RUNNING:
        return store.get_job(job.id)
    if status is JobStatus.CANCELLED:
        store.request_cancel(job.id)
    return store.set_job_status(job.id, status)


DATASETS = {"eval": 10, "icl": 10, "train": 27, "val": 3}
