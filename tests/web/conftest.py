"""Fixtures of the web tests: a finished 3-candidate job made once per session (tests.helpers.dashboard_job)
and the real app over its job store.

Tests may add jobs to that store (create, cancel, a copy of the result without cost): none changes the
finished job, which every test finds by its id.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dataflywheel.api import create_api
from dataflywheel.jobs import JobRecord, JobStatus, JobStore
from dataflywheel.settings import Settings, load_settings
from tests.helpers.dashboard_job import FinishedJob, build_finished_job

API_KEY_ENV = "FLYWHEEL_TEST_WEB_KEY"
API_KEY = "s3cret-key-for-the-page"


@pytest.fixture(scope="session")
def finished(tmp_path_factory: pytest.TempPathFactory) -> FinishedJob:
    return build_finished_job(tmp_path_factory.mktemp("finished") / "home")


@dataclass
class Site:
    """The app (not running jobs) over the finished job's store."""

    client: TestClient
    settings: Settings
    store: JobStore
    job_id: str

    def result(self, job_id: str | None = None) -> dict[str, Any]:
        result = self.store.get_job(job_id or self.job_id).result
        assert result is not None
        return result

    def completed_job(self, result: dict[str, Any]) -> JobRecord:
        """Another completed job of the same workload with ``result`` (and no stages or candidates)."""
        job = self.store.create_job("primary_assistant", "northwind-1", {})
        self.store.set_job_status(job.id, JobStatus.RUNNING)
        self.store.update_job(job.id, result=result)
        return self.store.set_job_status(job.id, JobStatus.COMPLETED)


def settings_of(finished: FinishedJob, **changes: Any) -> Settings:
    return load_settings(home=Path(finished.settings.home), curation_workers=0, **changes)


@pytest.fixture
def site(finished: FinishedJob) -> Iterator[Site]:
    settings = settings_of(finished)
    app = create_api(settings, start_jobs=False, recover=False)
    with TestClient(app) as client:
        yield Site(client, settings, app.state.api.service.store, finished.job_id)


@pytest.fixture
def keyed_site(finished: FinishedJob, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """The same app with API-key auth on."""
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    settings = settings_of(finished, api={"api_key_env": API_KEY_ENV})
    app = create_api(settings, start_jobs=False, recover=False)
    with TestClient(app) as client:
        yield Site(client, settings, app.state.api.service.store, finished.job_id)
