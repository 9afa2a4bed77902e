"""Schemathesis against the live API (uvicorn on a loopback port, real job and log stores): a few thousand
generated requests, valid and invalid, through every operation of the OpenAPI document.

Each answer must be no server error (5xx other than a documented 503), have a documented status, content
type and headers, match its documented schema, and reject what the schema forbids. The run prints its
counts. About 2,000 requests in 60-90 s on 2 cores: ``make test-fuzz`` (CI runs it), or ``pytest -m fuzz -s``;
``FLYWHEEL_FUZZ_EXAMPLES`` and ``FLYWHEEL_FUZZ_SEED`` change the run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dataflywheel.api import create_api
from dataflywheel.jobs import JobStatus, JobStore
from dataflywheel.jobs.status import JobKind
from dataflywheel.serving.background import BackgroundServer
from dataflywheel.settings import Settings
from tests.api.conftest import make_job
from tests.helpers.dashboard_job import CANDIDATES, CLIENT, WORKLOAD, build_finished_job

pytestmark = pytest.mark.fuzz

KEY = "fuzz-key"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)
MAX_EXAMPLES = int(os.environ.get("FLYWHEEL_FUZZ_EXAMPLES", "90"))
"""Test cases per operation and phase (the coverage phase adds its own boundary cases)."""
SEED = int(os.environ.get("FLYWHEEL_FUZZ_SEED", "1"))
CANDIDATE = CANDIDATES[0]


def schemathesis_cli() -> str:
    beside_python = Path(sys.executable).parent / "st"
    found = str(beside_python) if beside_python.exists() else shutil.which("st")
    if found is None:
        pytest.fail("schemathesis is not installed: pip install -e '.[dev]'")
    return found


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, str]:
    """Settings with an API key over stores holding real data: synthetic traffic in the log store and a
    finished job made by the project's own stages (datasets, evals with their samples, result)."""
    finished = build_finished_job(tmp_path / "home", candidates=(CANDIDATE,), eval_size=10)
    monkeypatch.setenv("FLYWHEEL_TEST_FUZZ_KEY", KEY)
    api = finished.settings.api.model_copy(update={"api_key_env": "FLYWHEEL_TEST_FUZZ_KEY"})
    return finished.settings.model_copy(update={"api": api}), finished.job_id


def more_jobs(store: JobStore) -> list[str]:
    """Jobs in the other states, and a curation, so that cancel and delete meet each case."""
    jobs = [make_job(store, status, candidates=(CANDIDATE,)).id for status in JobStatus]
    curation = store.create_job(WORKLOAD, CLIENT, {"model": CANDIDATE}, kind=JobKind.FEEDBACK)
    return [*jobs, curation.id]


def config_file(folder: Path, ids: dict[str, list[str]]) -> Path:
    """Schemathesis settings: real ids most of the time (random ones the rest), the key on every request."""
    path = folder / "schemathesis.toml"
    path.write_text(
        f"""
[dictionaries.jobs]
values = {json.dumps(ids["jobs"])}

[dictionaries.candidates]
values = {json.dumps(ids["candidates"])}

[parameters]
"path.job_id" = {{ dictionary = "jobs", probability = 0.8 }}
"path.candidate" = {{ dictionary = "candidates", probability = 0.8 }}
"query.candidate" = {{ dictionary = "candidates", probability = 0.8 }}
"body.model" = {{ dictionary = "candidates", probability = 0.5 }}
"body.candidates[*]" = {{ dictionary = "candidates", probability = 0.5 }}

[headers]
Authorization = "Bearer {KEY}"
"""
    )
    return path


class StatusCounter:
    """ASGI middleware counting the statuses the app answers (what the server really sent)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.statuses: Counter[int] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.statuses[message["status"]] += 1
            await send(message)

        await self.app(scope, receive, counting)


@dataclass
class LiveApi:
    url: str
    ids: dict[str, list[str]]
    served: StatusCounter


@pytest.fixture
def live_api(seeded: tuple[Settings, str]) -> Iterator[LiveApi]:
    settings, finished = seeded
    app = create_api(settings, start_jobs=False, recover=False)
    served = StatusCounter(app)
    with BackgroundServer(served) as server:
        jobs = [finished, *more_jobs(app.state.api.service.store)]
        yield LiveApi(server.url, {"jobs": jobs, "candidates": [CANDIDATE]}, served)


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(live_api: LiveApi, tmp_path: Path) -> None:
    url, ids = live_api.url, live_api.ids
    report = tmp_path / "report.json"
    command = [
        schemathesis_cli(),
        "--config-file",
        str(config_file(tmp_path, ids)),
        "--no-color",
        "run",
        f"{url}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        # One worker: its threads' ast.parse calls (hypothesis describing lambdas) trip CPython 3.11's
        # "AST constructor recursion depth mismatch"; the API is a separate process either way.
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)
    took = time.monotonic() - started
    served = live_api.served.statuses
    cases = json.loads(report.read_text())["test_cases"] if report.is_file() else {}
    print(
        f"\nschemathesis (seed {SEED}, {MAX_EXAMPLES} examples per operation and phase) in {took:.0f} s: "
        f"{cases.get('generated')} test cases, {sum(served.values())} requests served "
        f"({', '.join(f'{n} x {status}' for status, n in sorted(served.items()))}); "
        f"{cases.get('with_failures')} cases failed a check, {cases.get('unique_failures')} unique failures"
    )
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-3000:]
    assert cases["generated"] >= 10 * MAX_EXAMPLES and cases["with_failures"] == 0 and cases["errored"] == 0
    assert not [status for status in served if status >= 500], served
