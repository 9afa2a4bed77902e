"""Bad input to the API is a 4xx that says why, never a 500; every status a route answers is in OpenAPI;
a feedback job's model must be usable here before the job exists."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from dataflywheel.api import create_api
from dataflywheel.cli.main import app as cli
from dataflywheel.jobs import JobStatus
from dataflywheel.jobs.status import JobKind
from dataflywheel.settings import Settings, load_settings
from tests.api.conftest import Api

JOB = "0" * 32


@pytest.mark.parametrize(
    ("path", "params", "loc"),
    [
        ("/api/jobs", {"offset": 2**63}, "offset"),  # was a 500: SQLite's INTEGER overflowed
        ("/api/jobs", {"offset": 10**9 + 1}, "offset"),
        ("/api/jobs", {"workload_id": "wl\x00"}, "workload_id"),  # PostgreSQL cannot compare with a NUL
        ("/api/jobs", {"client_id": "c" * 256}, "client_id"),
        ("/api/feedback", {"offset": 2**63}, "offset"),  # was a 500
        ("/api/feedback", {"offset": -1}, "offset"),  # was clamped to 0
        ("/api/feedback", {"limit": 0}, "limit"),  # was clamped to 1
        ("/api/feedback", {"limit": 10**6}, "limit"),  # was clamped to 500
        (f"/api/jobs/{JOB}/events", {"after_id": 2**63}, "after_id"),  # was a 500
        (f"/api/jobs/{JOB}/events", {"after_id": 2**31}, "after_id"),  # was a 503 on PostgreSQL (found by fuzzing)
        (f"/api/jobs/{JOB}/samples", {"candidate": "c", "eval_type": "base-eval", "offset": 2**63}, "offset"),
        (f"/api/jobs/{JOB}/samples", {"candidate": "c\x00", "eval_type": "base-eval"}, "candidate"),
    ],
)
def test_query_values_out_of_range_are_422_naming_them(api: Api, path: str, params: dict[str, Any], loc: str) -> None:
    r = api.client.get(path, params=params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["query", loc]


@pytest.mark.parametrize(
    "body",
    [
        {"workload_id": "wl\x00", "client_id": "c", "candidates": ["tiny-random-llama"]},  # PostgreSQL: a 503
        {"workload_id": "wl", "client_id": "c\x00", "candidates": ["tiny-random-llama"]},
        {"workload_id": "wl", "client_id": "c" * 256, "candidates": ["tiny-random-llama"]},
        {"workload_id": "wl", "client_id": "c", "candidates": ["tiny-random-llama\x00"]},
        {"workload_id": "wl", "client_id": "c", "candidates": ["0" * 600]},  # found by the fuzz run: was a 500
    ],
)
def test_job_bodies_with_ids_no_store_can_hold_are_422(api: Api, body: dict[str, Any]) -> None:
    r = api.client.post("/api/jobs", json=body)
    assert r.status_code == 422, r.text
    assert api.store.list_jobs()[1] == 0


def test_a_body_that_is_not_text_is_a_documented_400_on_every_route_taking_a_body(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()["paths"]
    with_body = [
        (path, method)
        for path, operations in spec.items()
        for method, op in operations.items()
        if "requestBody" in op and "{" not in path
    ]
    # the routes found by fuzzing (schedules, rollback had no 400) and the first ones
    assert {("/api/jobs", "post"), ("/api/feedback", "post"), ("/api/schedules", "post")} <= set(with_body)
    for path, method in with_body:
        r = api.client.request(
            method.upper(), path, content=b"\x1c\xe6\x92\xb2\xff", headers={"content-type": "application/json"}
        )
        expected = 422 if path == "/api/logs" else 400  # /api/logs reads its body itself: a 422 naming why
        assert r.status_code == expected, (method, path, r.text)
        assert str(expected) in spec[path][method]["responses"], (method, path)
    rollback = spec["/api/workloads/{workload_id}/rollback"]["post"]
    assert "requestBody" in rollback and "400" in rollback["responses"]


def test_every_status_a_route_answers_is_documented_with_the_error_body(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    error = {"$ref": "#/components/schemas/ErrorPublic"}
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            responses = op["responses"]
            if path.startswith("/api/"):
                # every /api route: a key (when the server has one), a bad value, a store that is down
                assert {"401", "403", "422", "503"} <= set(responses), (method, path, sorted(responses))
            for status, response in responses.items():
                if status.startswith(("4", "5")) and (path, status) not in {("/api/logs", "422"), ("/health", "503")}:
                    assert response["content"]["application/json"]["schema"] == error, (method, path, status)
    paths = spec["paths"]
    assert "409" in paths["/api/feedback/{job_id}"]["delete"]["responses"]  # deleting a running feedback job
    assert "409" in paths["/api/feedback/{job_id}/cancel"]["post"]["responses"]
    assert paths["/api/logs"]["post"]["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/LogsRefused"
    }
    assert "503" in paths["/health"]["get"]["responses"]
    offset = next(p for p in paths["/api/jobs"]["get"]["parameters"] if p["name"] == "offset")
    assert offset["schema"]["maximum"] == 10**9


def test_deleting_a_running_feedback_job_is_the_documented_409(api: Api) -> None:
    job = api.store.create_job("wl-1", "client-a", {"model": "tiny-random-llama"}, kind=JobKind.FEEDBACK)
    api.store.set_job_status(job.id, JobStatus.RUNNING)
    r = api.client.delete(f"/api/feedback/{job.id}")
    assert r.status_code == 409 and "cancel it" in r.json()["detail"], r.text


# ---- the feedback job's model -----------------------------------------------------------------------------
@pytest.fixture
def feedback_settings(tmp_path: Path) -> Settings:
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "notes.txt").write_text("not a model")
    return load_settings(
        home=tmp_path / "home",
        candidates=[
            {"name": "gone-folder", "source": str(tmp_path / "deleted-model")},
            {"name": "gone-gguf", "source": str(tmp_path / "model.Q4.gguf")},
        ],
    )


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("{tmp}/not-a-model", "not-a-model is not a model folder (no config.json)"),
        ("{tmp}/notes.txt", "notes.txt is neither a model folder nor a GGUF file"),
        ("gone-folder", "deleted-model does not exist"),
        ("gone-gguf", "model.Q4.gguf does not exist"),
        ("{tmp}/" + "x" * 300, "unknown model"),  # a name no file system can hold: was a 500
    ],
)
def test_a_feedback_job_with_a_model_that_cannot_run_here_is_refused_up_front(
    feedback_settings: Settings, tmp_path: Path, model: str, says: str
) -> None:
    """Such models were accepted (202) and the job failed later, at deploy."""
    model = model.format(tmp=tmp_path)
    app = create_api(feedback_settings, start_jobs=False, recover=False)
    with TestClient(app) as client:
        body = {"workload_id": "wl-1", "client_id": "client-a", "model": model, "dry_run": True}
        r = client.post("/api/feedback", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["detail"].startswith(("model: unknown model", f"model: model {model!r} cannot be used"))
        assert says in r.json()["detail"]
        r = client.post("/api/feedback", json={**body, "model": "tiny-random-llama", "judge": model})
        assert r.status_code == 422 and r.json()["detail"].startswith("judge: "), r.text
        assert client.get("/api/feedback").json() == []


def test_flywheel_feedback_refuses_such_a_model_before_anything_runs(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    result = CliRunner().invoke(
        cli, ["feedback", "--workload-id", "w", "--client-id", "c", "--model", str(folder), "--dry-run"]
    )
    assert result.exit_code != 0
    assert f"model {str(folder)!r} cannot be used on this server" in " ".join(result.output.split())


def test_a_feedback_job_is_not_started_by_an_api_that_starts_no_jobs(api: Api) -> None:
    """``start_jobs=False`` (an API that leaves the work to another process) held for flywheel jobs, not for
    feedback jobs."""
    body = {"workload_id": "wl-1", "client_id": "client-a", "model": "tiny-random-llama", "dry_run": True}
    r = api.client.post("/api/feedback", json=body)
    assert r.status_code == 202, r.text
    time.sleep(0.5)
    assert api.client.get(f"/api/feedback/{r.json()['id']}").json()["status"] == "pending"
