"""``/api/feedback`` over real HTTP semantics (TestClient): create, progress, counts, errors, cancel,
delete; the student and the judge are scripted stand-ins."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from dataflywheel.api import create_api
from dataflywheel.serving.background import BackgroundServer
from tests.feedback.test_pipeline import TARGET, _settings
from tests.workflow.conftest import CLIENT, WORKLOAD


def test_feedback_resource(home: Path, servers: tuple[BackgroundServer, BackgroundServer, Any]) -> None:
    student, judge, _ = servers
    app = create_api(_settings(home, student, judge), recover=False)
    body = {
        "workload_id": WORKLOAD,
        "client_id": CLIENT,
        "model": "student-1b",
        "judge": "judge-70b",
        "target_client_id": TARGET,
    }
    with TestClient(app) as client:
        assert client.post("/api/feedback", json={**body, "colour": "red"}).status_code == 422
        bad = client.post("/api/feedback", json={**body, "model": "nope"})
        assert bad.status_code == 422 and "unknown model 'nope'" in bad.json()["detail"]
        same = client.post("/api/feedback", json={**body, "target_client_id": CLIENT})
        assert same.status_code == 422 and "must differ" in same.json()["detail"]

        created = client.post("/api/feedback", json=body)
        assert created.status_code == 202
        cid = created.json()["id"]
        assert created.headers["location"] == f"/api/feedback/{cid}"
        deadline = time.monotonic() + 120
        while (state := client.get(f"/api/feedback/{cid}").json())["status"] not in ("completed", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.3)
        assert state["status"] == "completed", state["error"]
        assert state["progress"] == 100.0
        counts = state["counts"]
        assert counts["inferred"] == 80 and counts["written"] == counts["passed"] > 0
        assert sum(counts[k] for k in ("ok", "repaired", "rejected")) == 80
        assert state["rejected_by_reason"] and state["rejection_samples"]
        assert [c["id"] for c in client.get("/api/feedback").json()] == [cid]

        assert client.post(f"/api/feedback/{cid}/cancel").status_code == 409  # it has completed
        assert client.get("/api/feedback/" + "0" * 32).status_code == 404
        assert client.get("/api/feedback/xyz").status_code == 400
        assert client.delete(f"/api/feedback/{cid}").status_code == 200
        assert client.get(f"/api/feedback/{cid}").status_code == 404
        assert not (home / "jobs" / cid).exists()
