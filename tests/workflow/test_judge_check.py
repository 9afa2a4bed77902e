"""A job's judge check against a real judge endpoint that is down or answers errors: skipped with the reason
(the job completes without judge metrics), or, with ``judge.required``, the job fails before anything is
trained or deployed. Candidates on our OpenAI-compatible stand-in keep the jobs to seconds."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dataflywheel.api import create_api
from dataflywheel.jobs.status import JobStatus, TaskStatus
from dataflywheel.serving.background import BackgroundServer
from dataflywheel.serving.standin import create_standin_app
from dataflywheel.settings import CandidateSettings
from dataflywheel.training.adapters import list_adapters
from dataflywheel.workflow.service import FlywheelService
from tests.workflow.conftest import CLIENT, QUICK_TRAINING, WORKLOAD, job_settings

JUDGE_ANSWER = "RATING: 1\nEXPLANATION: the same call"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["down", "answers 500", "hangs"])
def broken_judge(request: pytest.FixtureRequest) -> Iterator[str]:
    """The base URL of a judge that does not answer: nothing listening, a server that answers 500, or one that
    takes 5 s to answer (longer than the check waits in these tests)."""
    if request.param == "down":
        yield f"http://127.0.0.1:{_closed_port()}/v1"
        return
    if request.param == "hangs":
        app = create_standin_app(JUDGE_ANSWER, latency_s=5.0, model="judge")
    else:
        app = create_standin_app(JUDGE_ANSWER, fail_first=10**9, model="judge")
    with BackgroundServer(app) as server:
        yield server.base_url


@pytest.fixture
def candidate() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_standin_app("I can help with that.", model="cand")) as server:
        yield server


def _judge(base_url: str, **more: Any) -> dict[str, Any]:
    return {"enabled": True, "base_url": base_url, "model": "judge-70b", "check_timeout_s": 0.5, **more}


def _remote(candidate: BackgroundServer) -> list[CandidateSettings]:
    return [CandidateSettings(name="cand", engine="openai", base_url=candidate.base_url, customizable=False)]


def _run_through_api(settings: Any, body: dict[str, Any]) -> dict[str, Any]:
    with TestClient(create_api(settings, recover=False)) as client:
        created = client.post("/api/jobs", json={"workload_id": WORKLOAD, "client_id": CLIENT, **body})
        assert created.status_code == 202, created.text
        deadline = time.monotonic() + 120
        while (detail := client.get(f"/api/jobs/{created.json()['id']}").json())["status"] not in (
            "completed",
            "failed",
            "cancelled",
        ):
            assert time.monotonic() < deadline, detail
            time.sleep(0.2)
    return detail


@pytest.mark.jobs
def test_an_unreachable_judge_is_skipped_and_the_job_completes_saying_why(
    home: Path, broken_judge: str, candidate: BackgroundServer
) -> None:
    settings = job_settings(home, candidates=_remote(candidate), judge=_judge(broken_judge))
    started = time.monotonic()
    detail = _run_through_api(settings, {"candidates": ["cand"]})
    assert time.monotonic() - started < 60  # the check gives up after 2 tries of 0.5 s on a judge that hangs

    assert detail["status"] == "completed", detail["error"]
    judge = detail["llm_judge"]
    assert judge["deployment_status"] == "skipped" and judge["model_name"] == "judge-70b"
    assert judge["error"].startswith(f"judge judge-70b at {broken_judge}: judge unavailable")
    check = detail["result"]["judge"]
    assert check["status"] == "skipped" and check["model"] == "judge-70b"
    assert broken_judge in check["reason"] and "judge metrics are left out" in check["reason"]
    evals = detail["result"]["candidates"]["cand"]
    assert set(evals) == {"base-eval", "icl-eval"}
    assert all(ev["judge"] is None and ev["metrics"]["function_name_accuracy"]["n"] == 8 for ev in evals.values())


@pytest.mark.jobs
def test_a_judge_that_answers_is_used_by_every_eval(home: Path, candidate: BackgroundServer) -> None:
    with BackgroundServer(create_standin_app(JUDGE_ANSWER, model="judge-70b")) as judge_server:
        settings = job_settings(home, candidates=_remote(candidate), judge=_judge(judge_server.base_url))
        with FlywheelService(settings) as service:
            job = service.wait(service.create_job(WORKLOAD, CLIENT, {"candidates": ["cand"]}).id, timeout=120)
    assert job.status == JobStatus.COMPLETED, job.error
    assert job.result["judge"] == {"status": "completed", "model": "judge-70b", "reason": None}
    for ev in job.result["candidates"]["cand"].values():
        assert ev["judge"]["score"]["n"] == 8 and ev["judge"]["parse_failures"] == 0


def test_a_required_judge_that_does_not_answer_fails_the_job_before_any_training(home: Path) -> None:
    with BackgroundServer(create_standin_app(JUDGE_ANSWER, fail_first=10**9, model="judge-70b")) as judge_server:
        settings = job_settings(home, judge=_judge(judge_server.base_url, required=True))
        config = {"candidates": ["tiny-random-llama"], "training_config": QUICK_TRAINING}
        with FlywheelService(settings) as service:
            job = service.wait(service.create_job(WORKLOAD, CLIENT, config).id, timeout=120)
            stages = {s.key: s for s in service.store.list_stages(job.id)}
            detail = service.store.job_detail(job.id)
        asked = judge_server.app.state.standin.count

    assert job.status == JobStatus.FAILED
    assert job.error and "judge unavailable" in job.error and "judge.required is true" in job.error
    assert stages["judge"].status == TaskStatus.FAILED and asked >= 1
    # Nothing was trained, registered or deployed: those stages never ran.
    for key in ("customize:tiny-random-llama", "deploy:tiny-random-llama"):
        assert stages[key].status == TaskStatus.SKIPPED and stages[key].attempts == 0, key
    assert detail.candidates[0].customization is None or detail.candidates[0].customization.status != "completed"
    assert not (home / "training").exists() or not any((home / "training").iterdir())
    assert list_adapters(settings) == []
    assert detail.judge is not None and detail.judge.status == TaskStatus.FAILED
