"""``/api/schedules`` and ``GET /api/workloads/{id}/drift``: CRUD, and 4xx with reasons for bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dataflywheel.api import create_api
from dataflywheel.api.schemas import JobCreate
from dataflywheel.schedule.spec import JOB_CONFIG_KEYS
from dataflywheel.settings import Settings
from tests.schedule.conftest import TS0, add_logs, job_with_dataset, records, schedule_settings

BODY = {"workload_id": "wl", "client_id": "c", "cron": "0 3 * * *", "job_config": {"candidates": ["tiny-random-llama"]}}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return schedule_settings(tmp_path / "home")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_api(settings, start_jobs=False, recover=False, run_schedules=False)
    with TestClient(app) as c:
        yield c


def test_create_read_change_delete(client: TestClient) -> None:
    made = client.post("/api/schedules", json=BODY)
    assert made.status_code == 201, made.text
    body = made.json()
    assert made.headers["location"] == f"/api/schedules/{body['id']}"
    assert body["cron"] == "0 3 * * *" and body["next_due"].endswith("03:00:00Z")
    assert body["job_config"] == {"candidates": ["tiny-random-llama"]} and body["records_seen"] == 0
    assert client.get(f"/api/schedules/{body['id']}").json() == body
    listed = client.get("/api/schedules", params={"workload_id": "wl"}).json()
    assert listed["count"] == 1 and listed["data"][0]["id"] == body["id"]
    assert client.get("/api/schedules", params={"workload_id": "other"}).json()["count"] == 0
    changed = client.patch(f"/api/schedules/{body['id']}", json={"cron": None, "min_new_records": 100})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["cron"], changed.json()["next_due"], changed.json()["min_new_records"]) == (None, None, 100)
    assert client.delete(f"/api/schedules/{body['id']}").json()["id"] == body["id"]
    assert client.get(f"/api/schedules/{body['id']}").status_code == 404


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ({"cron": "61 * * * *"}, 422, "cron: invalid cron expression '61 * * * *'"),
        ({"cron": "* * *"}, 422, "cron: '* * *' has 3 field(s)"),
        ({"cron": None}, 422, "give at least one trigger"),
        ({"min_new_records": 0}, 422, "greater than or equal to 1"),
        ({"job_config": {"candidates": ["no-such-model"]}}, 422, "job_config.candidates: unknown candidate"),
        ({"job_config": {"eval_size": 3}}, 422, "eval_size: Extra inputs are not permitted"),
        ({"job_config": {"data_split_config": {"eval_size": -1}}}, 422, "job_config.data_split_config.eval_size"),
        ({"workload_id": ""}, 422, "at least 1 character"),
        ({"when": "daily"}, 422, "Extra inputs are not permitted"),
    ],
)
def test_bad_schedules_are_refused_with_the_reason(
    client: TestClient, change: dict[str, object], status: int, reason: str
) -> None:
    reply = client.post("/api/schedules", json={**BODY, **change})
    assert reply.status_code == status, reply.text
    assert reason in reply.text


def test_a_second_schedule_of_a_workload_is_a_conflict(client: TestClient) -> None:
    assert client.post("/api/schedules", json=BODY).status_code == 201
    reply = client.post("/api/schedules", json={**BODY, "cron": "@daily"})
    assert reply.status_code == 409 and "already has a schedule" in reply.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "json", "status"),
    [
        ("GET", "/api/schedules/999", None, 404),
        ("GET", "/api/schedules/0", None, 422),
        ("GET", "/api/schedules/abc", None, 422),
        ("GET", f"/api/schedules/{2**40}", None, 422),
        ("PATCH", "/api/schedules/999", {"enabled": False}, 404),
        ("DELETE", "/api/schedules/999", None, 404),
    ],
)
def test_unknown_or_malformed_ids(
    client: TestClient, method: str, path: str, json: dict[str, object] | None, status: int
) -> None:
    reply = client.request(method, path, json=json)
    assert reply.status_code == status, reply.text
    if status == 404:
        assert reply.json()["detail"] == "schedule 999 not found"


def test_patch_is_checked_like_create(client: TestClient) -> None:
    sid = client.post("/api/schedules", json=BODY).json()["id"]
    reply = client.patch(f"/api/schedules/{sid}", json={"cron": "not cron at all"})
    assert reply.status_code == 422 and "cron:" in reply.json()["detail"]
    reply = client.patch(f"/api/schedules/{sid}", json={"cron": None})
    assert reply.status_code == 422 and "give at least one trigger" in reply.json()["detail"]
    assert client.get(f"/api/schedules/{sid}").json()["cron"] == "0 3 * * *"  # unchanged


def test_job_config_keys_are_those_of_a_job() -> None:
    assert set(JobCreate.model_fields) - {"workload_id", "client_id"} == JOB_CONFIG_KEYS


def test_workload_drift(client: TestClient, settings: Settings) -> None:
    reply = client.get("/api/workloads/wl/drift", params={"client_id": "c"})
    assert reply.status_code == 200 and reply.json()["status"] == "no_reference"
    add_logs(settings, records(60, ("Alpha", "Beta"), start=TS0))
    service = client.app.state.api.service  # type: ignore[attr-defined]
    job = job_with_dataset(service.store, settings)
    add_logs(settings, records(30, ("Gamma",), start=TS0 + 1000))
    report = client.get("/api/workloads/wl/drift", params={"client_id": "c"}).json()
    assert report["status"] == "drifted" and report["reference_job_id"] == job.id
    assert report["current_records"] == 30 and report["tool_classes"]["total_variation"] == 1.0
    assert client.get("/api/workloads/wl/drift").status_code == 422  # client_id is required


def test_the_jobs_page_shows_each_schedule_its_next_run_and_drift(client: TestClient, settings: Settings) -> None:
    assert "No schedule." in client.get("/").text
    sid = client.post("/api/schedules", json={**BODY, "on_drift": True}).json()["id"]
    service = client.app.state.api.service  # type: ignore[attr-defined]
    service.store.record_drift(
        sid,
        {
            "workload_id": "wl",
            "client_id": "c",
            "status": "drifted",
            "drifted": True,
            "reasons": ["tool classes: total_variation 0.500 >= 0.2"],
            "checked_at": "2026-12-01T12:00:00Z",
        },
    )
    page = client.get("/").text
    row = page[page.index(f'data-schedule="{sid}"') :]
    row = row[: row.index("</tr>")]
    assert "wl / c" in row and "cron 0 3 * * * (UTC), on drift" in row
    assert "03:00 UTC" in row  # the next run
    assert "status-drifted" in row and "tool classes: total_variation 0.500 &gt;= 0.2" in row
