"""A home with a small synthetic workload loaded, settings for quick jobs on the tiny model, and the job store
of a whole-job test: SQLite under the home, or PostgreSQL (a fresh schema, :mod:`tests.jobs.conftest`)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from dataflywheel.ingest.jsonl import load_file
from dataflywheel.logstore import open_log_store
from dataflywheel.settings import Settings, load_settings
from dataflywheel.synth.generator import SynthConfig, write_jsonl
from tests.jobs.conftest import _drop_later, pg_schema_url  # noqa: F401  (fixtures: a PostgreSQL schema)

WORKLOAD, CLIENT = "primary_assistant", "northwind-1"
QUICK_TRAINING = {"epochs": 1, "batch_size": 8, "adapter_dim": 4, "threads": 2}
# The same settings for this process and for subprocesses (workers, a crashing `flywheel run`).
ENV = {
    "FLYWHEEL_DATA_SPLIT__EVAL_SIZE": "8",
    "FLYWHEEL_DATA_SPLIT__LIMIT": "40",
    "FLYWHEEL_DATA_SPLIT__MIN_TOTAL_RECORDS": "20",
    "FLYWHEEL_EXECUTOR__EVAL_MAX_TOKENS": "24",
    "FLYWHEEL_EXECUTOR__HEARTBEAT_S": "0.5",
    "FLYWHEEL_EXECUTOR__STALE_AFTER_S": "5",
    "FLYWHEEL_CURATION_WORKERS": "0",
}


def job_settings(home: Path, **changes: Any) -> Settings:
    return load_settings(
        home=home,
        curation_workers=0,
        data_split=changes.pop("data_split", {"eval_size": 8, "limit": 40, "min_total_records": 20}),
        executor={"eval_max_tokens": 24, "heartbeat_s": 0.5, "stale_after_s": 5, **changes.pop("executor", {})},
        **changes,
    )


@pytest.fixture(scope="session")
def loaded_home_template(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: str) -> Path:
    """80 synthetic records in a SQLite log store, and the tiny model built, once per session."""
    home = tmp_path_factory.mktemp("workflow-home")
    settings = load_settings(home=home)
    write_jsonl(SynthConfig(records=80, seed=2), home / "traffic.jsonl")
    with open_log_store(settings) as store:
        report = load_file(store, home / "traffic.jsonl")
    assert report.store.added == 80
    shutil.copytree(Path(tiny_model_dir), home / "models" / "tiny-random-llama")
    return home


@pytest.fixture
def home(loaded_home_template: Path, tmp_path: Path) -> Path:
    target = tmp_path / "home"
    shutil.copytree(loaded_home_template, target)
    return target


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres])])
def job_store_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The job store of a whole-job test, run once on SQLite and once on PostgreSQL (a fresh schema, skipped
    saying why where no server answers, failed under ``FLYWHEEL_REQUIRE_SERVICES=1``). Whole-job tests are
    marked ``jobs`` (out of the fast suite: ``make test-jobs``). Set as
    ``FLYWHEEL_JOB_STORE__URL``, so :func:`job_settings` and every process the test starts (``flywheel run``,
    workers) use it."""
    sqlite = f"sqlite:///{tmp_path / 'jobs.db'}"
    url: str = sqlite if request.param == "sqlite" else request.getfixturevalue("pg_schema_url")
    monkeypatch.setenv("FLYWHEEL_JOB_STORE__URL", url)
    return url
