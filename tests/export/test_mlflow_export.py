"""A finished job logged to a real (SQLite) MLflow store and read back with the MlflowClient: by the driver when
the job completes, by ``flywheel export-mlflow`` for a job finished before; and a tracking server that cannot
be reached leaves the job completed, quickly, with the error in its result."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dataflywheel.cli.main import app
from dataflywheel.decision.schema import (
    CostBasis,
    CostReport,
    EvalCost,
    LatencyRow,
    Recommendation,
    RecommendationRule,
    RecommendationStatus,
    TeacherCost,
    TokenSource,
    Traffic,
)
from dataflywheel.export.mlflow import default_report_path, export_and_record
from dataflywheel.export.plan import STATS
from dataflywheel.jobs import JobDetail, JobStatus, open_job_store
from tests.export.conftest import ADAPTER, CANDIDATE, TRAINING_METRICS, ReadyJob, drive, quick_settings

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
from mlflow.tracking import MlflowClient  # noqa: E402

EVAL_TYPES = {"base-eval", "icl-eval", "customized-eval"}
runner = CliRunner()


def artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    out: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        out |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return out


def download_json(client: MlflowClient, run_id: str, path: str, tmp_path: Path) -> Any:
    return json.loads(Path(client.download_artifacts(run_id, path, str(tmp_path))).read_text())


def assert_eval_metrics(metrics: dict[str, float], evals: dict[str, Any], prefix: str) -> int:
    """Every metric of every eval type of the stored result, with its interval, is in ``metrics``."""
    checked = 0
    for eval_type, ev in evals.items():
        for name, agg in ev["metrics"].items():
            for stat in STATS:
                key = f"{prefix}{eval_type}/{name}/{stat}"
                if agg[stat] is None:
                    assert key not in metrics
                else:
                    assert metrics[key] == pytest.approx(agg[stat]), key
                    checked += 1
        assert metrics[f"{prefix}{eval_type}/samples"] == ev["samples"]
        assert metrics[f"{prefix}{eval_type}/errors"] == ev["errors"]
    return checked


def test_a_completed_job_is_logged_with_its_metrics_dataset_hashes_and_artifacts(
    ready_job: ReadyJob, mlflow_db: str, tmp_path: Path
) -> None:
    settings = quick_settings(
        ready_job.home, tracking_uri=mlflow_db, experiment="completed-job", artifact_location=str(tmp_path / "art")
    )
    report = default_report_path(settings, ready_job.job_id)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("<html><body>report</body></html>")  # where `flywheel report` would leave it

    job = drive(settings, ready_job.job_id)

    assert job.status == JobStatus.COMPLETED, job.error
    assert job.result is not None
    record = job.result["mlflow"]
    assert record["error"] is None and record["run_id"] and record["tracking_uri"] == mlflow_db
    client = MlflowClient(tracking_uri=mlflow_db)
    run = client.get_run(record["run_id"])
    assert run.info.status == "FINISHED" and run.info.experiment_id == record["experiment_id"]
    assert client.get_experiment(record["experiment_id"]).name == "completed-job"
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    assert tags["flywheel.job_id"] == job.id and tags["flywheel.job_status"] == "completed"

    # params: the job, its overrides, the dataset build and its file hashes (as on disk)
    with open_job_store(settings) as store:
        detail: JobDetail = store.job_detail(job.id)
        datasets_output = store.get_stage(job.id, "datasets").output or {}  # type: ignore[union-attr]
        events = [e.message for e in store.list_events(job.id)]
    assert params["workload_id"] == job.workload_id and params["client_id"] == job.client_id
    assert params["candidates"] == CANDIDATE and params["job.id"] == job.id
    assert params["config.data_split_config.eval_size"] == "8" and params["config.training_config.epochs"] == "2"
    build = Path(datasets_output["path"])
    manifest = json.loads((build / "manifest.json").read_text())
    assert params["dataset.build_id"] == datasets_output["build_id"] == build.name
    assert params["dataset.content_sha256"] == manifest["content_sha256"]
    for name in ("eval", "icl", "train", "val"):
        digest = hashlib.sha256((build / f"{name}.jsonl").read_bytes()).hexdigest()
        assert params[f"dataset.{name}.sha256"] == digest == manifest["files"][f"{name}.jsonl"]["sha256"]
        assert params[f"dataset.{name}.records"] == str(manifest["files"][f"{name}.jsonl"]["records"])
    assert params["dataset.settings.data_split.eval_size"] == "8"

    # metrics: every metric of every eval type with its interval, as the stored result has them
    evals = job.result["candidates"][CANDIDATE]
    assert set(evals) == EVAL_TYPES
    assert assert_eval_metrics(metrics, evals, f"{CANDIDATE}/") >= len(EVAL_TYPES) * 4

    # the candidate's nested run: the same metrics without the prefix, its adapter and LoRA run
    (child,) = client.search_runs([record["experiment_id"]], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert child.info.run_id == record["candidate_runs"][CANDIDATE] and child.info.status == "FINISHED"
    assert assert_eval_metrics(child.data.metrics, evals, "") >= len(EVAL_TYPES) * 4
    assert child.data.params["adapter_name"] == ADAPTER and child.data.params["training.recipe"] == "tiny"
    assert child.data.params["training.learning_rate"] == str(TRAINING_METRICS["config"]["learning_rate"])  # type: ignore[index]
    curve = job.result["training"][CANDIDATE]["curve"]
    history = client.get_metric_history(child.info.run_id, "training/val_loss")
    assert [(m.step, m.value) for m in history] == [(e["epoch"], e["val_loss"]) for e in curve]

    # artifacts: the manifest, the result, every eval summary, the adapter folder, the report
    listed = artifact_paths(client, run.info.run_id)
    assert {"result.json", "dataset/manifest.json", "report/report.html"} <= listed
    assert {f"evals/{CANDIDATE}/{kind}/summary.json" for kind in EVAL_TYPES} <= listed
    adapter = Path(detail.candidates[0].customization.adapter_path)  # type: ignore[union-attr,arg-type]
    assert {f"adapters/{CANDIDATE}/{p.name}" for p in adapter.iterdir()} <= listed
    assert download_json(client, run.info.run_id, "result.json", tmp_path / "dl") == {
        k: v for k, v in job.result.items() if k != "mlflow"
    }
    base = next(e for e in detail.candidates[0].evaluations if e.eval_type == "base-eval")
    summary = json.loads((Path(base.artifact_path or "") / "summary.json").read_text())
    summary_path = f"evals/{CANDIDATE}/base-eval/summary.json"
    assert download_json(client, run.info.run_id, summary_path, tmp_path / "s") == summary
    assert str(tmp_path / "art") in run.info.artifact_uri  # mlflow.artifact_location
    assert any(f"exported to MLflow run {run.info.run_id}" in m for m in events)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("uri", ["closed-port", "nope://nowhere"])
def test_an_unreachable_tracking_uri_leaves_the_job_completed_with_the_error_recorded(
    ready_job: ReadyJob, uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    shown = uri
    if uri == "closed-port":  # with a password, which no error message, log line or event may show
        port = _closed_port()
        uri, shown = (f"http://flywheel:{p}@127.0.0.1:{port}" for p in ("s3cret", "***"))
    settings = quick_settings(ready_job.home, tracking_uri=uri, http_retries=0, http_timeout_s=5)
    retries_before = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="dataflywheel.export.mlflow"):
        job = drive(settings, ready_job.job_id)
    # MLflow's own default (7 retries with backoff) would take minutes here.
    assert time.monotonic() - started < 30

    assert job.status == JobStatus.COMPLETED and job.error is None
    assert job.result is not None and set(job.result["candidates"][CANDIDATE]) == EVAL_TYPES
    record = job.result["mlflow"]
    assert record["run_id"] is None and record["tracking_uri"] == shown and f"MLflow at {shown}" in record["error"]
    warnings = [r.getMessage() for r in caplog.records if "MLflow export failed" in r.getMessage()]
    with open_job_store(settings) as store:
        events = [e for e in store.list_events(job.id) if e.kind == "error" and "MLflow export failed" in e.message]
    assert warnings and events
    assert "s3cret" not in json.dumps(record) + "".join(warnings) + "".join(e.message for e in events)
    assert os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES") == retries_before  # set for the export only


def test_export_mlflow_exports_a_finished_job_with_its_cost_latency_recommendation_and_report(
    ready_job: ReadyJob, mlflow_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = quick_settings(ready_job.home)  # no tracking URI: the job completes without an export
    job = drive(settings, ready_job.job_id)
    assert job.status == JobStatus.COMPLETED and job.result is not None and "mlflow" not in job.result
    decision = _decision_sections()
    with open_job_store(settings) as store:
        store.update_job(job.id, result={**job.result, **decision})
    report = tmp_path / "report.html"
    report.write_text("<html>the report</html>")
    monkeypatch.setenv("FLYWHEEL_HOME", str(ready_job.home))
    args = ["export-mlflow", job.id, "--tracking-uri", mlflow_db, "--experiment", "cli-export"]

    done = runner.invoke(app, [*args, "--report", str(report), "--json"], catch_exceptions=False)

    assert done.exit_code == 0, done.output
    record = json.loads(done.stdout)
    with open_job_store(settings) as store:
        stored = store.get_job(job.id).result or {}
    assert stored["mlflow"] == record and record["error"] is None
    client = MlflowClient(tracking_uri=mlflow_db)
    run = client.get_run(record["run_id"])
    metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
    assert tags["flywheel.job_status"] == "completed"
    for row in stored["cost"]["evals"]:
        prefix = f"{row['candidate']}/{row['eval_type']}/cost"
        assert metrics[f"{prefix}/cost_per_1k"] == pytest.approx(row["cost_per_1k"])
        assert metrics[f"{prefix}/saving_vs_teacher"] == pytest.approx(row["saving_vs_teacher"])
        assert params[f"{row['candidate']}.{row['eval_type']}.cost.basis"] == row["basis"]
    assert metrics["teacher/cost_per_1k"] == pytest.approx(stored["cost"]["teacher"]["cost_per_1k"])
    assert metrics["traffic/records_per_day"] == pytest.approx(stored["cost"]["traffic"]["records_per_day"])
    assert params["cost.currency"] == stored["cost"]["currency"]
    for lat in stored["latency"]:
        assert metrics[f"{lat['candidate']}/{lat['eval_type']}/latency/p95_s"] == pytest.approx(lat["p95_s"])
    rec = stored["recommendation"]
    assert tags["flywheel.recommendation"] == rec["status"] and tags["mlflow.note.content"] == rec["sentence"]
    assert metrics["recommendation/ci_low"] == pytest.approx(rec["ci_low"])
    assert params["recommendation.rule.metric"] == rec["rule"]["metric"]
    (child,) = client.search_runs([record["experiment_id"]], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert child.data.metrics["base-eval/cost/cost_per_1k"] == pytest.approx(stored["cost"]["evals"][0]["cost_per_1k"])
    assert "report/report.html" in artifact_paths(client, run.info.run_id)
    # A local store keeps a new experiment's artifacts under home, not in the working directory.
    assert (ready_job.home / "mlflow-artifacts").as_uri() in run.info.artifact_uri

    again = runner.invoke(app, args, catch_exceptions=False)
    assert again.exit_code == 1 and "already in MLflow run" in again.output

    # A report renderer hook (what `flywheel report` can plug in) writes into a scratch folder.
    def render(detail: JobDetail, scratch: Path) -> Path:
        out = scratch / "report.html"
        out.write_text(f"<html>{detail.job.id}</html>")
        return out

    other = quick_settings(ready_job.home, tracking_uri=mlflow_db, experiment="cli-export", log_adapters=False)
    with open_job_store(other) as store:
        second = export_and_record(store, other, job.id, report=render)
    assert second.error is None and second.run_id != record["run_id"]
    rendered = client.download_artifacts(second.run_id or "", "report/report.html", str(tmp_path / "r"))
    assert Path(rendered).read_text() == f"<html>{job.id}</html>"
    assert not any(p.startswith("adapters/") for p in artifact_paths(client, second.run_id or ""))


def test_export_mlflow_refuses_a_running_job_and_needs_a_tracking_uri(
    tmp_path: Path, mlflow_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = quick_settings(tmp_path / "home")
    with open_job_store(settings) as store:
        job = store.create_job("w", "c", {"candidates": [CANDIDATE]})
        store.set_job_status(job.id, JobStatus.RUNNING)
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))

    running = runner.invoke(app, ["export-mlflow", job.id, "--tracking-uri", mlflow_db])
    assert running.exit_code == 1 and "is running: export it once it has finished" in " ".join(running.output.split())
    unset = runner.invoke(app, ["export-mlflow", job.id])
    assert unset.exit_code == 2 and "mlflow.tracking_uri: not set" in " ".join(unset.output.split())


def _decision_sections() -> dict[str, Any]:
    """``result.cost``, ``result.latency`` and ``result.recommendation`` as the cost engineer stores them."""
    cost = CostReport(
        teacher=TeacherCost(
            model="big-model",
            mean_prompt_tokens=900.0,
            mean_completion_tokens=30.0,
            tokens_from=TokenSource.LOGGED_USAGE,
            estimated=False,
            cost_per_1k=2.5,
            basis=CostBasis.TOKENS,
            monthly_cost=750.0,
        ),
        traffic=Traffic(records=80, first="2026-11-01T00:00:00Z", last="2026-11-09T00:00:00Z", records_per_day=10.0),
        evals=[
            EvalCost(
                candidate=CANDIDATE,
                eval_type=kind,
                requests=8,
                mean_prompt_tokens=40.0,
                mean_completion_tokens=7.5,
                latency_p50_s=0.01,
                latency_p95_s=0.02,
                throughput_rps=50.0,
                cost_per_1k=0.25 + i / 10,
                basis=CostBasis.GPU_HOUR,
                monthly_cost=75.0,
                saving_vs_teacher=0.9 - i / 10,
            )
            for i, kind in enumerate(sorted(EVAL_TYPES))
        ],
        judge=None,
    )
    latency = [
        LatencyRow(
            candidate=CANDIDATE,
            eval_type=kind,
            requests=8,
            mean_s=0.01,
            p50_s=0.01,
            p95_s=0.02 + i / 100,
            throughput_rps=50.0,
        )
        for i, kind in enumerate(sorted(EVAL_TYPES))
    ]
    recommendation = Recommendation(
        status=RecommendationStatus.RECOMMENDED,
        rule=RecommendationRule(metric="function_name_accuracy", min_ratio=0.9, teacher_value=1.0),
        candidate=CANDIDATE,
        eval_type="customized-eval",
        value=0.95,
        ci_low=0.91,
        ci_high=0.99,
        gap=0.0,
        cost_per_1k=0.35,
        saving_vs_teacher=0.86,
        sentence=f"Replace the logged model with {CANDIDATE} (customized): 86% cheaper.",
        advice=None,
    )
    return {
        "cost": cost.model_dump(mode="json"),
        "latency": [row.model_dump(mode="json") for row in latency],
        "recommendation": recommendation.model_dump(mode="json"),
    }
