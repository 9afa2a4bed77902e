"""``flywheel jobs ...`` against a real API server (uvicorn on a loopback port), and ``flywheel serve``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from dataflywheel.api import create_api
from dataflywheel.cli.api import serve_api
from dataflywheel.cli.jobs import jobs_app, parse_assignments
from dataflywheel.jobs import CandidateStage, JobStatus, JobStore, TaskStatus
from dataflywheel.serving.background import BackgroundServer
from dataflywheel.settings import Settings, load_settings
from tests.api.conftest import CANDIDATE, make_job, rich_job

runner = CliRunner()

cli = typer.Typer()
cli.add_typer(jobs_app, name="jobs")
cli.command("serve")(serve_api)


@cli.callback()
def _root() -> None:
    """The ``flywheel`` root, as cli/main.py registers these commands."""


@dataclass
class Server:
    url: str
    store: JobStore
    settings: Settings


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("FLYWHEEL_TEST_CLI_KEY", "k3y")
    settings = load_settings(home=tmp_path / "home", api={"api_key_env": "FLYWHEEL_TEST_CLI_KEY"})
    app = create_api(settings, start_jobs=False, recover=False)
    with BackgroundServer(app) as bg:
        yield Server(bg.url, app.state.api.service.store, settings)


def flywheel(server: Server, *args: str, code: int = 0) -> Any:
    result = runner.invoke(cli, [*args, "--url", server.url, "--api-key", "k3y"], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def test_create_with_overrides_then_list_show_cancel_delete(server: Server) -> None:
    created = json.loads(
        flywheel(
            server,
            "jobs",
            "create",
            "--workload-id",
            "wl-1",
            "--client-id",
            "client-a",
            "--candidate",
            CANDIDATE,
            "--set-split",
            "eval_size=12",
            "--set-split",
            "val_ratio=0.2",
            "--set-training",
            "epochs=1",
            "--set-training",
            "lora.adapter_dim=4",
            "--set-recommendation",
            "min_ratio=0.9",
            "--json",
        ).stdout
    )
    job = server.store.get_job(created["id"])
    assert created["status"] == "pending" == job.status
    assert job.config["data_split_config"] == {"eval_size": 12, "val_ratio": 0.2}
    assert job.config["recommendation_config"] == {"min_ratio": 0.9}
    assert job.config["training_config"] == {"epochs": 1, "lora": {"adapter_dim": 4}}

    listed = json.loads(flywheel(server, "jobs", "list", "--json").stdout)
    assert [j["id"] for j in listed["data"]] == [job.id] and listed["count"] == 1
    table = flywheel(server, "jobs", "list", "--status", "pending").output
    assert job.id in table and "Jobs 1-1 of 1" in table
    assert "(none)" in flywheel(server, "jobs", "list", "--status", "failed").output

    shown = json.loads(flywheel(server, "jobs", "show", job.id, "--json").stdout)
    assert shown["id"] == job.id and shown["nims"][0]["model_name"] == CANDIDATE
    assert CANDIDATE in flywheel(server, "jobs", "show", job.id).output

    assert "HTTP 409" in flywheel(server, "jobs", "delete", job.id, "--yes", code=1).output  # pending
    cancelled = flywheel(server, "jobs", "cancel", job.id).output
    assert "cancelled" in cancelled
    assert "deleted" in flywheel(server, "jobs", "delete", job.id, "--yes").output
    assert "HTTP 404" in flywheel(server, "jobs", "show", job.id, code=1).output


def test_show_renders_scores_and_training_progress(server: Server) -> None:
    job = rich_job(server.store, server.settings)
    out = flywheel(server, "jobs", "show", job.id).output
    assert "base-eval" in out and "0.800" in out and "name+args" in out  # key scores
    assert "epoch 1/2" in out and "step 4/8" in out and "loss 1.250" in out  # customization progress
    assert "Datasets" in out and f"/api/jobs/{job.id}/datasets/eval" in out


def test_create_refused_shows_the_servers_reason(server: Server) -> None:
    out = flywheel(
        server, "jobs", "create", "--workload-id", "w", "--client-id", "c", "--set-split", "eval_size=-3", code=1
    ).output
    assert "HTTP 422" in out and "eval_size" in out
    assert server.store.list_jobs()[1] == 0


def test_watch_follows_the_job_to_its_end_and_prints_the_result(server: Server) -> None:
    job = make_job(server.store, JobStatus.RUNNING, candidates=(CANDIDATE,))
    run = server.store.add_candidate_run(job.id, CANDIDATE)

    def progress_then_complete() -> None:
        time.sleep(0.3)
        server.store.set_candidate_stage(run.id, CandidateStage.EVALUATING)
        server.store.upsert_evaluation(run.id, "base-eval", status=TaskStatus.RUNNING, total=4, done=2, progress=50.0)
        time.sleep(0.3)
        scores = {"function_name_accuracy": 0.75}
        server.store.upsert_evaluation(
            run.id, "base-eval", status=TaskStatus.COMPLETED, done=4, progress=100.0, scores=scores
        )
        server.store.set_candidate_stage(run.id, CandidateStage.COMPLETED)
        metric = {"mean": 0.75, "ci_low": 0.25, "ci_high": 1.0, "n": 4}
        base = {"metrics": {"function_name_accuracy": metric}, "judge": None, "samples": 4, "errors": 0}
        result = {"candidates": {CANDIDATE: {"base-eval": base}}}
        server.store.update_job(job.id, result=result)
        server.store.set_job_status(job.id, JobStatus.COMPLETED)

    worker = threading.Thread(target=progress_then_complete)
    worker.start()
    try:
        out = flywheel(server, "jobs", "watch", job.id, "--interval", "0.1").output
    finally:
        worker.join()
    assert CANDIDATE in out and "base-eval" in out and "100%" in out and "4/4 samples" in out
    assert "0.750" in out and "0.25-1.00" in out  # the result table: mean, interval below
    assert f"job {job.id} completed" in out


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.CRASHED])
def test_watch_exits_1_when_the_job_fails_or_crashed(server: Server, status: JobStatus) -> None:
    job = make_job(server.store, status)
    started = time.monotonic()
    out = flywheel(server, "jobs", "watch", job.id, code=1).output
    assert f"{status.value}: boom" in out
    assert time.monotonic() - started < 10  # a crashed job is over: watch does not wait on it


def test_create_watch_json(server: Server) -> None:
    # The job is never run (start_jobs=False): cancel it from the side while create --watch polls.
    def cancel_soon() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            jobs, _ = server.store.list_jobs()
            if jobs:
                server.store.request_cancel(jobs[0].id)
                return
            time.sleep(0.05)

    side = threading.Thread(target=cancel_soon)
    side.start()
    args = ("--workload-id", "w", "--client-id", "c", "--candidate", CANDIDATE, "--watch", "--json")
    result = flywheel(server, "jobs", "create", *args, code=1)
    side.join()
    assert json.loads(result.stdout)["status"] == "cancelled"


def test_api_key_and_default_url(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    no_key = runner.invoke(cli, ["jobs", "list", "--url", server.url])
    assert no_key.exit_code == 1 and "HTTP 401" in no_key.output and "--api-key" in no_key.output
    # Without --url and --api-key: http://{api.host}:{api.port} and the variable api.api_key_env names.
    port = server.url.rsplit(":", 1)[1]
    monkeypatch.setenv("FLYWHEEL_API__PORT", port)
    monkeypatch.setenv("FLYWHEEL_API__API_KEY_ENV", "FLYWHEEL_TEST_CLI_KEY")
    ok = runner.invoke(cli, ["jobs", "list", "--json"])
    assert ok.exit_code == 0, ok.output and json.loads(ok.stdout)["count"] == 0
    monkeypatch.setenv("FLYWHEEL_API_KEY", "k3y")  # the client's own variable
    monkeypatch.delenv("FLYWHEEL_API__API_KEY_ENV")
    assert runner.invoke(cli, ["jobs", "list"]).exit_code == 0


def test_unreachable_api_is_one_clear_error() -> None:
    result = runner.invoke(cli, ["jobs", "list", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "cannot reach the flywheel API at http://127.0.0.1:9" in result.output


def test_parse_assignments() -> None:
    assert parse_assignments(["a=1", "b=0.5", "c=true", "d=x y", "e=[q, v]", "lora.r=8", "f="], "--set") == {
        "a": 1,
        "b": 0.5,
        "c": True,
        "d": "x y",
        "e": ["q", "v"],
        "lora": {"r": 8},
        "f": "",
    }
    with pytest.raises(typer.BadParameter):
        parse_assignments(["novalue"], "--set")
    with pytest.raises(typer.BadParameter):
        parse_assignments(["a=1", "a.b=2"], "--set")


def test_serve_listens_where_the_settings_say(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import uvicorn

    calls: list[dict[str, Any]] = []

    def run(app: Any, **kw: Any) -> None:
        calls.append({"app": app, **kw})
        with TestClient(app) as client:  # start-up (recover) and shutdown (closes the service)
            assert client.get("/health").json()["status"] == "ok"

    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FLYWHEEL_API__PORT", "8123")
    result = runner.invoke(cli, ["serve", "--log-level", "warning"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "flywheel API on http://127.0.0.1:8123/api" in result.output and "no API key" in result.output
    [call] = calls
    assert (call["host"], call["port"], call["log_level"]) == ("127.0.0.1", 8123, "warning")
    assert call["app"].title == "data-flywheel"
    result = runner.invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "9001"], catch_exceptions=False)
    assert (calls[-1]["host"], calls[-1]["port"]) == ("0.0.0.0", 9001)
    assert runner.invoke(cli, ["serve", "--log-level", "loud"]).exit_code == 2


def test_serve_with_an_unreachable_job_store_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_JOB_STORE__URL", "postgresql://nobody@127.0.0.1:9/none")
    result = runner.invoke(cli, ["serve"])
    assert result.exit_code == 1 and "cannot open the job store" in result.output
