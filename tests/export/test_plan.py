"""The export plan from a job as stored (pure: no tracker): what a malformed result section, an unsafe name
and an over-long value become."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from dataflywheel.export.inputs import JobFiles, collect_job_files
from dataflywheel.export.plan import PARAM_VALUE_MAX, RESULT_DOCUMENT, RunPlan, plan_job_run
from dataflywheel.jobs import JobDetail, JobStatus, TaskStatus, open_job_store
from dataflywheel.settings import load_settings

METRIC = {"mean": 0.75, "ci_low": 0.5, "ci_high": 1.0, "n": 4}
UNDEFINED = {"mean": None, "ci_low": None, "ci_high": None, "n": 0}


def finished(tmp_path: Path, candidate: str, result: dict[str, Any], config: dict[str, Any] | None = None) -> JobDetail:
    """A completed job with ``result`` in a real job store (no files: no datasets, evals or adapters)."""
    with open_job_store(load_settings(home=tmp_path / "home")) as store:
        job = store.create_job("w", "c", {"candidates": [candidate], **(config or {})})
        store.add_candidate_run(job.id, candidate)
        store.set_job_status(job.id, JobStatus.RUNNING)
        store.update_job(job.id, result=result)
        store.set_job_status(job.id, JobStatus.COMPLETED)
        return store.job_detail(job.id)


def evals(metrics: dict[str, Any]) -> dict[str, Any]:
    return {"base-eval": {"metrics": metrics, "judge": None, "samples": 4, "errors": 0}}


def keys(plan: RunPlan) -> list[str]:
    return [m.key for m in plan.metrics] + list(plan.params)


def test_a_malformed_cost_section_is_left_out_with_a_warning_and_the_rest_is_planned(tmp_path: Path) -> None:
    result = {"candidates": {"m": evals({"function_name_accuracy": METRIC})}, "cost": {"currency": "USD"}}
    detail = finished(tmp_path, "m", result)

    plan = plan_job_run(detail, collect_job_files(detail))

    assert any(w.startswith("result.cost left out: teacher") for w in plan.warnings)
    assert not any("cost" in k for k in keys(plan))
    metrics = {m.key: m.value for m in plan.metrics}
    assert metrics["m/base-eval/function_name_accuracy/mean"] == METRIC["mean"]
    assert metrics["m/base-eval/function_name_accuracy/n"] == METRIC["n"]
    assert plan.documents[0].name == RESULT_DOCUMENT and plan.documents[0].content == result
    assert plan.artifacts == () and "dataset.build_id" not in plan.params  # nothing on disk to log


def test_an_undefined_metric_logs_only_its_count(tmp_path: Path) -> None:
    detail = finished(tmp_path, "m", {"candidates": {"m": evals({"embedding_similarity": UNDEFINED})}})
    plan = plan_job_run(detail, JobFiles())
    (child,) = plan.children
    assert [(m.key, m.value) for m in child.metrics if "embedding" in m.key] == [
        ("base-eval/embedding_similarity/n", 0.0)
    ]


def test_names_are_made_safe_for_mlflow(tmp_path: Path) -> None:
    candidate = "org/model@v1..x"
    detail = finished(tmp_path, candidate, {"candidates": {candidate: evals({"function_name_accuracy": METRIC})}})

    plan = plan_job_run(detail, JobFiles())

    assert "org/model_v1..x/base-eval/function_name_accuracy/mean" in {m.key for m in plan.metrics}
    for key in keys(plan) + [k for child in plan.children for k in keys(child)]:
        # MLflow's rule: these characters only, and a name that is also a safe relative path
        assert re.fullmatch(r"[/\w.\- :]+", key) and posixpath.normpath(key) == key, key


def test_a_value_longer_than_mlflow_keeps_is_cut_with_a_warning(tmp_path: Path) -> None:
    long = "x" * (PARAM_VALUE_MAX + 10)
    detail = finished(tmp_path, "m", {"candidates": {}}, config={"training_config": {"note": long}})
    plan = plan_job_run(detail, JobFiles(), status="completed")
    value = plan.params["config.training_config.note"]
    assert len(value) == PARAM_VALUE_MAX and value.endswith("…")
    assert any("config.training_config.note cut" in w for w in plan.warnings)
    assert plan.tags["flywheel.job_status"] == "completed"


def test_files_the_job_recorded_but_that_are_gone_are_warned_about(tmp_path: Path) -> None:
    with open_job_store(load_settings(home=tmp_path / "home")) as store:
        job = store.create_job("w", "c", {"candidates": ["m"]})
        run = store.add_candidate_run(job.id, "m")
        gone = tmp_path / "deleted"
        store.set_datasets(job.id, [("eval", 8, str(gone / "build-1" / "eval.jsonl"), "build-1")])
        store.upsert_evaluation(run.id, "base-eval", status=TaskStatus.COMPLETED, artifact_path=str(gone / "base"))
        detail = store.job_detail(job.id)

    plan = plan_job_run(detail, collect_job_files(detail, report=gone / "report.html"))

    assert plan.artifacts == () and plan.params["dataset.build_id"] == "build-1"
    assert "dataset.eval.sha256" not in plan.params
    found = " | ".join(plan.warnings)
    for what in ("base-eval summary of m", "report", "dataset build build-1"):
        assert f"{what} (" in found and "not found: left out" in found
