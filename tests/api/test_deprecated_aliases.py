"""The feedback loop's former names ("curation": the dataset build's word) still work for one release, and
each says it is deprecated: the ``/api/curations`` routes, ``flywheel curate``, the enum members and the
Python names."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataflywheel.cli.main import app as cli
from dataflywheel.jobs.status import JobKind
from dataflywheel.workflow.plan import StageKind, parse_stage_key, plan_curation, plan_feedback
from tests.api.conftest import Api

BODY = {"workload_id": "wl-1", "client_id": "client-a", "model": "tiny-random-llama", "dry_run": True}


def test_the_old_route_answers_like_the_new_one_with_a_deprecation_header(api: Api) -> None:
    created = api.client.post("/api/curations", json=BODY)
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    assert created.headers["deprecation"] == "true"
    assert created.headers["link"] == '</api/feedback>; rel="successor-version"'
    assert created.headers["location"] == f"/api/curations/{job_id}"

    old = api.client.get(f"/api/curations/{job_id}")
    new = api.client.get(f"/api/feedback/{job_id}")
    assert old.json() == new.json() and new.json()["status"] == "pending"
    assert old.headers["link"] == f'</api/feedback/{job_id}>; rel="successor-version"'
    assert "deprecation" not in new.headers
    assert [j["id"] for j in api.client.get("/api/curations").json()] == [job_id]

    missing = api.client.get("/api/curations/" + "0" * 32)  # errors say it too
    assert missing.status_code == 404 and missing.headers["deprecation"] == "true"


def test_the_successor_link_is_percent_encoded_so_any_path_makes_a_valid_header(api: Api) -> None:
    # found by fuzzing: a CR in the path made an illegal header value, and the server dropped the connection
    r = api.client.post("/api/curations/%0D%C3%A9/cancel")
    assert r.status_code == 400 and r.headers["deprecation"] == "true"
    assert r.headers["link"] == '</api/feedback/%0D%C3%A9/cancel>; rel="successor-version"'


def test_the_old_routes_are_marked_deprecated_in_the_schema(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    assert paths["/api/curations"]["post"]["deprecated"] is True
    assert paths["/api/curations/{job_id}"]["get"]["deprecated"] is True
    assert "deprecated" not in paths["/api/feedback"]["post"]


def test_flywheel_curate_says_it_is_deprecated_and_runs_flywheel_feedback(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    args = ["--workload-id", "w", "--client-id", "c", "--model", str(folder), "--dry-run"]
    old = CliRunner().invoke(cli, ["curate", *args])
    new = CliRunner().invoke(cli, ["feedback", *args])
    assert old.exit_code == new.exit_code != 0
    said = " ".join(old.output.split())
    assert "flywheel curate is deprecated: use flywheel feedback" in said
    assert f"model {str(folder)!r} cannot be used on this server" in said
    assert "deprecated" not in new.output


def test_the_old_enum_names_and_stored_values_mean_the_feedback_loop() -> None:
    assert JobKind.CURATION is JobKind.FEEDBACK
    assert JobKind("curation") is JobKind.FEEDBACK  # a value stored before the rename
    assert [k.value for k in JobKind] == ["flywheel", "feedback"]
    assert StageKind.CURATE is StageKind.FEEDBACK
    assert parse_stage_key("curate") == (StageKind.FEEDBACK, None)  # a stage queued before the rename
    assert plan_curation is plan_feedback


def test_the_old_python_names_still_work(api: Api) -> None:
    from dataflywheel.feedback import pipeline

    assert pipeline.CurationConfig is pipeline.FeedbackConfig
    assert pipeline.CurationCancelled is pipeline.FeedbackCancelled
    assert pipeline.run_curation is pipeline.run_feedback
    service = api.client.app.state.api.service  # type: ignore[attr-defined]
    with pytest.warns(DeprecationWarning, match="create_feedback"):
        job = service.create_curation("wl-1", "client-a", {"model": "tiny-random-llama"}, start=False)
    assert job.kind is JobKind.FEEDBACK
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        service.create_feedback("wl-1", "client-a", {"model": "tiny-random-llama"}, start=False)
