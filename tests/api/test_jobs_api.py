"""``/api/jobs``, ``/api/workloads``, ``/health`` and the API key, through real HTTP (ASGI), on SQLite and
PostgreSQL; and one real tiny job from ``POST /api/jobs`` to ``DELETE``."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from sqlalchemy import create_engine

from dataflywheel.api import create_api
from dataflywheel.errors import StoreError
from dataflywheel.jobs import JobStatus, JobStore, TaskStatus
from dataflywheel.settings import LoRASettings, TrainingSettings, load_settings
from dataflywheel.training.config import TrainConfig
from tests.api.conftest import CANDIDATE, DATASETS, Api, eval_folder, make_job, rich_job

MISSING = "0" * 32


# ---- create ----------------------------------------------------------------------------------------------
def test_create_returns_202_with_the_stored_status_and_keeps_the_overrides(api: Api) -> None:
    body = {
        "workload_id": "wl-1",
        "client_id": "client-a",
        "candidates": [CANDIDATE],
        "data_split_config": {"eval_size": 10, "min_total_records": 20},
        "training_config": {"epochs": 1, "lora": {"adapter_dim": 4}},
        "icl_config": {"max_examples": 2},
    }
    r = api.client.post("/api/jobs", json=body)

    assert r.status_code == 202, r.text
    created = r.json()
    # The blueprint answered "queued" while it stored "pending": the answer is the stored status now.
    assert created["status"] == "pending" == api.store.get_job(created["id"]).status
    assert created["id"] in created["message"] and r.headers["location"] == f"/api/jobs/{created['id']}"
    job = api.store.get_job(created["id"])
    assert (job.workload_id, job.client_id) == ("wl-1", "client-a")
    # training_config is kept (the blueprint dropped it silently).
    assert job.config["training_config"] == {"epochs": 1, "lora": {"adapter_dim": 4}}
    assert job.config["data_split_config"] == {"eval_size": 10, "min_total_records": 20}
    assert job.config["icl_config"] == {"max_examples": 2} and job.config["candidates"] == [CANDIDATE]
    detail = api.client.get(f"/api/jobs/{created['id']}").json()
    assert detail["status"] == "pending" and [n["model_name"] for n in detail["nims"]] == [CANDIDATE]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"training_confg": {"epochs": 1}}, "training_confg"),  # a typo: refused, not ignored
        ({"nims": ["x"]}, "nims"),
    ],
)
def test_create_refuses_unknown_keys_naming_them(api: Api, body: dict[str, Any], named: str) -> None:
    r = api.client.post("/api/jobs", json={"workload_id": "w", "client_id": "c", **body})
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [["body", named]]
    assert api.store.list_jobs()[1] == 0


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"data_split_config": {"eval_size": -1}}, "eval_size"),
        ({"data_split_config": {"eval_sise": 5}}, "eval_sise"),
        ({"icl_config": {"max_examples": -1}}, "max_examples"),
        ({"recommendation_config": {"min_ratio": 1.5}}, "recommendation_config.min_ratio"),
        ({"recommendation_config": {"metric": "vibes"}}, "metric 'vibes' is unknown"),
        ({"recommendation_config": {"threshold": 0.9}}, "recommendation_config.threshold"),
        ({"candidates": ["no-such-model"]}, "candidates"),
    ],
)
def test_create_refuses_bad_overrides_with_422_naming_the_key(api: Api, body: dict[str, Any], named: str) -> None:
    r = api.client.post("/api/jobs", json={"workload_id": "w", "client_id": "c", "candidates": [CANDIDATE], **body})
    assert r.status_code == 422, r.text
    assert named in r.json()["detail"]
    assert api.store.list_jobs()[1] == 0


@pytest.mark.parametrize(
    ("training_config", "loc"),
    [
        ({"epochs": 0}, ["epochs"]),
        ({"epoch": 1}, ["epoch"]),  # a typo: refused, not ignored
        ({"lora": {"rank_x": 2}}, ["lora", "rank_x"]),
        ({"learning_rate": -1}, ["learning_rate"]),
        ({"finetuning_type": "full"}, ["finetuning_type"]),
    ],
)
def test_training_config_is_typed_and_a_bad_key_is_a_422_naming_it(
    api: Api, training_config: dict[str, Any], loc: list[str]
) -> None:
    body = {"workload_id": "w", "client_id": "c", "candidates": [CANDIDATE], "training_config": training_config}
    r = api.client.post("/api/jobs", json=body)
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "training_config", *loc]]
    assert api.store.list_jobs()[1] == 0


def test_training_config_takes_the_blueprints_names_too(api: Api) -> None:
    blueprint = {
        "training_type": "sft",
        "finetuning_type": "lora",
        "epochs": 1,
        "rank": 8,
        "lora": {"adapter_dropout": 0.0, "lora_alpha": 16},
    }
    r = api.client.post(
        "/api/jobs",
        json={"workload_id": "w", "client_id": "c", "candidates": [CANDIDATE], "training_config": blueprint},
    )
    assert r.status_code == 202, r.text
    assert api.store.get_job(r.json()["id"]).config["training_config"] == blueprint


def test_create_validates_the_body(api: Api) -> None:
    for body in ({"client_id": "c"}, {"workload_id": "", "client_id": "c"}, {"workload_id": "w", "client_id": 3}):
        assert api.client.post("/api/jobs", json=body).status_code == 422
    r = api.client.post("/api/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


# ---- list ------------------------------------------------------------------------------------------------
def test_list_pages_newest_first_with_the_total(api: Api) -> None:
    ids = [make_job(api.store).id for _ in range(5)]
    page = api.client.get("/api/jobs", params={"limit": 2}).json()
    assert page["count"] == 5 and (page["limit"], page["offset"]) == (2, 0)
    assert [j["id"] for j in page["data"]] == ids[::-1][:2]
    assert page["jobs"] == page["data"]  # the blueprint's key
    rest = api.client.get("/api/jobs", params={"limit": 2, "offset": 4}).json()
    assert [j["id"] for j in rest["data"]] == [ids[0]] and rest["count"] == 5
    item = rest["data"][0]
    assert set(item) >= {"id", "workload_id", "client_id", "status", "started_at", "finished_at", "error"}


def test_list_filters_by_status_workload_and_client(api: Api) -> None:
    pending = make_job(api.store, workload_id="wl-1")
    running = make_job(api.store, JobStatus.RUNNING, workload_id="wl-2")
    failed = make_job(api.store, JobStatus.FAILED, workload_id="wl-2", client_id="client-b")

    def ids(**params: Any) -> set[str]:
        r = api.client.get("/api/jobs", params=params)
        assert r.status_code == 200, r.text
        assert r.json()["count"] == len(r.json()["data"])
        return {j["id"] for j in r.json()["data"]}

    assert ids(status="pending") == {pending.id}
    assert ids(status=["running", "failed"]) == {running.id, failed.id}  # repeatable
    assert ids(workload_id="wl-2") == {running.id, failed.id}
    assert ids(workload_id="wl-2", client_id="client-b") == {failed.id}
    assert ids(status="completed") == set()


@pytest.mark.parametrize(
    "params", [{"status": "queued"}, {"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "ten"}]
)
def test_list_refuses_bad_query_values(api: Api, params: dict[str, Any]) -> None:
    r = api.client.get("/api/jobs", params=params)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][0] == "query"


# ---- detail ----------------------------------------------------------------------------------------------
def test_detail_has_the_blueprint_shape_with_progress(api: Api) -> None:
    job = rich_job(api.store, api.settings)
    d = api.client.get(f"/api/jobs/{job.id}").json()

    blueprint = {"id", "workload_id", "client_id", "status", "started_at", "finished_at", "num_records"}
    assert blueprint | {"llm_judge", "nims", "datasets", "error", "result", "progress", "eta_s"} <= set(d)
    assert (d["status"], d["num_records"], d["error"], d["result"]) == ("running", 40, None, None)
    assert d["llm_judge"] == {"model_name": None, "type": "disabled", "deployment_status": "skipped", "error": None}
    assert [(x["name"], x["num_records"]) for x in d["datasets"]] == sorted(DATASETS.items())
    assert d["datasets"][0]["url"] == f"/api/jobs/{job.id}/datasets/eval"

    [nim] = d["nims"]
    assert (nim["model_name"], nim["status"], nim["deployment_status"]) == (CANDIDATE, "evaluating", "ready")
    assert nim["runtime_seconds"] >= 0
    base, icl = nim["evaluations"]
    assert (base["eval_type"], base["status"], base["progress"], base["done"], base["total"]) == (
        "base-eval",
        "completed",
        100.0,
        10,
        10,
    )
    assert base["scores"] == {"function_name_accuracy": 0.8, "function_name_and_args_accuracy": 0.5}
    assert base["finished_at"] is not None and base["runtime_seconds"] >= 0
    assert (icl["status"], icl["progress"], icl["done"], icl["eta_s"]) == ("running", 40.0, 4, 6.0)
    [custom] = nim["customizations"]
    assert (custom["status"], custom["progress"], custom["epochs_completed"], custom["steps_completed"]) == (
        "running",
        50.0,
        1,
        4,
    )
    assert (custom["total_steps"], custom["loss"], custom["tokens_per_s"]) == (8, 1.25, 900.0)
    assert 29 <= custom["runtime_seconds"] < 120  # running: the time since it started
    # datasets 100, base 100, icl 40, customized 0, customization 50 -> 58; eta: the longest running task's
    assert d["progress"] == pytest.approx(58.0) and d["eta_s"] == 30.0


def test_detail_lists_each_stage_with_its_queue_and_the_worker_that_ran_it(api: Api) -> None:
    from dataflywheel.api.schemas import JobDetailPublic
    from dataflywheel.cli.jobs import job_tables

    job = make_job(api.store, JobStatus.RUNNING, candidates=(CANDIDATE,))
    api.store.start_stage(job.id, "datasets", "celery:cpu@host-a:101")
    api.store.finish_stage(job.id, "datasets", TaskStatus.COMPLETED, {})
    api.store.start_stage(job.id, f"deploy:{CANDIDATE}", "celery:accelerator@host-b:202")
    d = api.client.get(f"/api/jobs/{job.id}").json()
    assert [(st["key"], st["status"], st["queue"], st["attempts"], st["worker"]) for st in d["stages"]] == [
        ("datasets", "completed", "flywheel.cpu", 1, "celery:cpu@host-a:101"),
        (f"deploy:{CANDIDATE}", "running", "flywheel.accelerator", 1, "celery:accelerator@host-b:202"),
    ]
    console = Console(width=160, record=True, color_system=None)
    console.print(job_tables(JobDetailPublic.model_validate(d)))
    row = next(line for line in console.export_text().splitlines() if f"│ deploy:{CANDIDATE}" in line)
    assert [c.strip() for c in row.split("│")[2:6]] == [
        "running",
        "1",
        "flywheel.accelerator",
        "celery:accelerator@host-b:202",
    ]


def test_a_finished_job_carries_cost_latency_and_the_recommendation(api: Api) -> None:
    """Typed fields next to the result; a candidate without a price costs null in the API and "unknown" in the
    CLI's table of the same answer, while the logged model (priced) has its cost."""
    from dataflywheel.api.schemas import JobDetailPublic
    from dataflywheel.cli.jobs import job_tables
    from dataflywheel.settings import with_overrides
    from tests.helpers.finished_job import EvalPlan, make_finished_job

    teacher = {"name": "big-70b", "price_per_1m_input_tokens": 0.88, "price_per_1m_output_tokens": 0.88}
    settings = with_overrides(api.settings, teacher=teacher)
    plans = {"base-eval": EvalPlan(right=3, latency_s=0.25), "customized-eval": EvalPlan(right=10, latency_s=0.5)}
    job = make_finished_job(api.store, settings, CANDIDATE, plans)
    r = api.client.get(f"/api/jobs/{job.id}")
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["status"] == "completed"
    assert (d["cost"], d["latency"], d["recommendation"]) == (
        d["result"]["cost"],
        d["result"]["latency"],
        d["result"]["recommendation"],
    )
    teacher_cost = d["cost"]["teacher"]
    assert teacher_cost["cost_per_1k"] == pytest.approx((1045 + 20) * 0.88 / 1000)
    assert teacher_cost["tokens_from"] == "logged_usage" and teacher_cost["estimated"] is False
    for row in d["cost"]["evals"]:
        assert row["cost_per_1k"] is None and row["basis"] == "unknown" and row["saving_vs_teacher"] is None
        assert row["unknown_reason"].startswith(f"no price set: candidates[{CANDIDATE}]")
    assert {(x["eval_type"], x["p50_s"]) for x in d["latency"]} == {("base", 0.25), ("customized", 0.5)}
    rec = d["recommendation"]
    assert (rec["status"], rec["candidate"], rec["eval_type"], rec["cost_per_1k"]) == (
        "recommended",
        CANDIDATE,
        "customized",
        None,
    )
    assert "its cost is unknown (no price set" in rec["sentence"]

    console = Console(width=100, record=True, color_system=None)
    console.print(job_tables(JobDetailPublic.model_validate(d)))
    lines = console.export_text().splitlines()
    text = " ".join(" ".join(lines).split())
    logged = next(line for line in lines if "│ logged model" in line)
    assert "$0.94" in logged  # (1045 + 20) x 0.88 / 1000
    for kind in ("base-eval", "customized-eval"):
        row = next(line for line in lines if f"│ {kind}" in line and "unknown" in line)
        assert [c.strip() for c in row.split("│")[2:4]] == ["unknown", "unknown"]
    assert "Recommendation: Use tiny-random-llama customized" in text


def test_a_result_stored_before_costs_existed_still_reads_and_renders(api: Api) -> None:
    from dataflywheel.api.schemas import JobDetailPublic
    from dataflywheel.cli.jobs import job_tables

    job = make_job(api.store, JobStatus.COMPLETED, candidates=(CANDIDATE,))
    agg = {"mean": 0.5, "ci_low": 0.2, "ci_high": 0.8, "n": 10}
    old = {
        "candidates": {
            CANDIDATE: {"base-eval": {"metrics": {"function_name_accuracy": agg}, "samples": 10, "errors": 0}}
        }
    }
    api.store.update_job(job.id, result=old)
    d = api.client.get(f"/api/jobs/{job.id}").json()
    assert d["result"] == old and (d["cost"], d["latency"], d["recommendation"]) == (None, None, None)
    # A stored key of the wrong shape is left out of the typed field, not a 500.
    api.store.update_job(job.id, result={**old, "cost": {"currency": "USD"}, "latency": "fast"})
    odd = api.client.get(f"/api/jobs/{job.id}")
    assert odd.status_code == 200 and (odd.json()["cost"], odd.json()["latency"]) == (None, None)
    console = Console(width=80, record=True, color_system=None)
    console.print(job_tables(JobDetailPublic.model_validate(odd.json())))
    text = console.export_text()
    assert "0.500" in text and "Recommendation" not in text and "Cost and latency" not in text


def test_detail_of_a_missing_or_malformed_id(api: Api) -> None:
    r = api.client.get(f"/api/jobs/{MISSING}")
    assert r.status_code == 404 and MISSING in r.json()["detail"]
    for bad in ("xyz", "A" * 32, "0" * 31, "0" * 33, "g" * 32):
        r = api.client.get(f"/api/jobs/{bad}")
        assert r.status_code == 400 and r.json()["detail"].startswith("invalid job id")


# ---- cancel ----------------------------------------------------------------------------------------------
def test_cancel_a_pending_job_then_again(api: Api) -> None:
    job = make_job(api.store)
    r = api.client.post(f"/api/jobs/{job.id}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert api.store.get_job(job.id).status is JobStatus.CANCELLED
    again = api.client.post(f"/api/jobs/{job.id}/cancel")
    # The blueprint answered 400 "already finished" here (cancelling sets finished_at).
    assert again.status_code == 200 and again.json()["message"] == "Job is already cancelled."


def test_cancel_a_running_job_asks_it_to_stop(api: Api) -> None:
    job = make_job(api.store, JobStatus.RUNNING)
    for _ in range(2):  # again while it stops: harmless
        r = api.client.post(f"/api/jobs/{job.id}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "cancelling"
    assert api.store.is_cancel_requested(job.id)


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED])
def test_cancel_a_finished_job_is_a_conflict(api: Api, status: JobStatus) -> None:
    job = make_job(api.store, status)
    r = api.client.post(f"/api/jobs/{job.id}/cancel")
    assert r.status_code == 409 and status.value in r.json()["detail"]
    assert api.store.get_job(job.id).status is status


def test_cancel_missing_or_malformed(api: Api) -> None:
    assert api.client.post(f"/api/jobs/{MISSING}/cancel").status_code == 404
    assert api.client.post("/api/jobs/nope/cancel").status_code == 400


# ---- delete ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.RUNNING, JobStatus.CANCELLING])
def test_delete_an_unfinished_job_is_a_conflict(api: Api, status: JobStatus) -> None:
    job = make_job(api.store, status)
    r = api.client.delete(f"/api/jobs/{job.id}")
    assert r.status_code == 409 and "cancel it" in r.json()["detail"]
    assert api.store.get_job(job.id).status is status


def test_delete_a_finished_job_removes_its_rows_and_files(api: Api) -> None:
    job = rich_job(api.store, api.settings, JobStatus.CANCELLED)
    build = Path(api.store.job_detail(job.id).datasets[0].path or "").parent
    job_dir = api.settings.home / "jobs" / job.id
    assert build.is_dir() and job_dir.is_dir()
    other = make_job(api.store, JobStatus.COMPLETED)

    r = api.client.delete(f"/api/jobs/{job.id}")
    assert r.status_code == 200 and r.json()["id"] == job.id
    assert not build.exists() and not job_dir.exists()
    assert api.client.get(f"/api/jobs/{job.id}").status_code == 404
    assert api.client.delete(f"/api/jobs/{job.id}").status_code == 404
    assert api.client.get(f"/api/jobs/{other.id}").status_code == 200


def test_delete_missing_or_malformed(api: Api) -> None:
    assert api.client.delete(f"/api/jobs/{MISSING}").status_code == 404
    assert api.client.delete("/api/jobs/..%2F..").status_code in (400, 404)
    assert api.client.delete("/api/jobs/zz").status_code == 400


# ---- events ----------------------------------------------------------------------------------------------
def test_events_in_order_and_after_an_id(api: Api) -> None:
    job = make_job(api.store, JobStatus.COMPLETED)
    events = api.client.get(f"/api/jobs/{job.id}/events").json()
    assert [e["data"]["to"] for e in events["data"]] == ["pending", "running", "completed"]
    assert events["last_id"] == events["data"][-1]["id"]
    first = events["data"][0]
    assert set(first) == {"id", "ts", "kind", "stage", "message", "data"} and first["kind"] == "status"

    later = api.client.get(f"/api/jobs/{job.id}/events", params={"after_id": first["id"], "limit": 1}).json()
    assert [e["id"] for e in later["data"]] == [events["data"][1]["id"]]
    last = events["last_id"]
    none = api.client.get(f"/api/jobs/{job.id}/events", params={"after_id": last}).json()
    assert none == {"data": [], "last_id": last}


def test_events_of_missing_or_malformed_and_bad_queries(api: Api) -> None:
    job = make_job(api.store)
    assert api.client.get(f"/api/jobs/{MISSING}/events").status_code == 404
    assert api.client.get("/api/jobs/bad/events").status_code == 400
    assert api.client.get(f"/api/jobs/{job.id}/events", params={"after_id": -1}).status_code == 422
    assert api.client.get(f"/api/jobs/{job.id}/events", params={"limit": 0}).status_code == 422


# ---- downloads -------------------------------------------------------------------------------------------
def test_dataset_download(api: Api) -> None:
    job = rich_job(api.store, api.settings)
    for name, n in DATASETS.items():
        r = api.client.get(f"/api/jobs/{job.id}/datasets/{name}")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/x-ndjson")
        rows = [orjson.loads(line) for line in r.content.splitlines()]
        assert len(rows) == n and rows[0]["record_id"] == f"{name}-0"


def test_dataset_download_errors(api: Api) -> None:
    pending = make_job(api.store)
    assert api.client.get(f"/api/jobs/{pending.id}/datasets/eval").status_code == 404  # not built yet
    job = rich_job(api.store, api.settings)
    Path(api.store.job_detail(job.id).datasets[0].path or "").unlink()  # built, then removed
    r = api.client.get(f"/api/jobs/{job.id}/datasets/eval")
    assert r.status_code == 404 and "eval" in r.json()["detail"]
    assert api.client.get(f"/api/jobs/{job.id}/datasets/secrets").status_code == 422
    assert api.client.get(f"/api/jobs/{MISSING}/datasets/eval").status_code == 404
    assert api.client.get("/api/jobs/bad/datasets/eval").status_code == 400


def test_results_download(api: Api) -> None:
    job = rich_job(api.store, api.settings)
    r = api.client.get(f"/api/jobs/{job.id}/results/{CANDIDATE}/base-eval")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    assert [orjson.loads(line)["record_id"] for line in r.content.splitlines()] == ["eval-0"]
    # A running eval's samples so far come from its folder (no artifact_path yet).
    icl = eval_folder(api.settings, job.id, CANDIDATE, "icl-eval")
    icl.mkdir(parents=True)
    (icl / "samples.jsonl").write_bytes(b'{"record_id": "icl-0"}\n')
    r = api.client.get(f"/api/jobs/{job.id}/results/{CANDIDATE}/icl-eval")
    assert r.status_code == 200 and r.content == b'{"record_id": "icl-0"}\n'


def test_results_download_errors(api: Api) -> None:
    job = rich_job(api.store, api.settings)
    r = api.client.get(f"/api/jobs/{job.id}/results/{CANDIDATE}/customized-eval")
    assert r.status_code == 404 and "customized-eval" in r.json()["detail"]
    r = api.client.get(f"/api/jobs/{job.id}/results/other/base-eval")
    assert r.status_code == 404 and "other" in r.json()["detail"]
    assert api.client.get(f"/api/jobs/{job.id}/results/{CANDIDATE}/final-eval").status_code == 422
    assert api.client.get(f"/api/jobs/{MISSING}/results/{CANDIDATE}/base-eval").status_code == 404
    assert api.client.get(f"/api/jobs/bad/results/{CANDIDATE}/base-eval").status_code == 400


def test_results_of_a_candidate_named_by_a_path(api: Api) -> None:
    name = "org/model-1"
    job = make_job(api.store, JobStatus.RUNNING, candidates=(name,))
    folder = eval_folder(api.settings, job.id, "org_model-1", "base-eval")
    folder.mkdir(parents=True)
    (folder / "samples.jsonl").write_bytes(b"{}\n")
    r = api.client.get(f"/api/jobs/{job.id}/results/{name}/base-eval")
    assert r.status_code == 200 and r.content == b"{}\n"


# ---- workloads and health --------------------------------------------------------------------------------
def test_workloads_join_log_counts_and_jobs(api: Api) -> None:
    make_job(api.store, JobStatus.COMPLETED, "wl-1", "client-a")
    last = make_job(api.store, JobStatus.RUNNING, "wl-1", "client-a")
    record = {
        "timestamp": 1_700_000_000,
        "workload_id": "wl-1",
        "client_id": "client-a",
        "request": {"messages": [{"role": "user", "content": "hi"}]},
        "response": {"choices": [{"message": {"role": "assistant", "content": "hello"}}]},
    }
    only_logs = {**record, "workload_id": "wl-logs", "timestamp": 1_700_000_100}
    r = api.client.post("/api/logs", json=[record, only_logs])
    assert r.json()["loaded"] == 2

    data = api.client.get("/api/workloads").json()["data"]
    assert [(w["workload_id"], w["client_id"]) for w in data] == [("wl-1", "client-a"), ("wl-logs", "client-a")]
    with_jobs, logs_only = data
    assert (with_jobs["num_jobs"], with_jobs["last_job_id"], with_jobs["last_job_status"]) == (2, last.id, "running")
    assert (with_jobs["records"], with_jobs["first_timestamp"]) == (1, 1_700_000_000)
    assert (logs_only["num_jobs"], logs_only["last_job_id"], logs_only["records"]) == (0, None, 1)


def test_health_reports_the_store_executor_and_running_jobs(api: Api) -> None:
    r = api.client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["executor"] == "embedded" and body["running_jobs"] == 0
    assert body["job_store"] == {"reachable": True, "dialect": api.store.dialect}


def test_health_is_503_when_the_job_store_does_not_answer(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    gone = create_engine("sqlite:////nonexistent/folder/jobs.db")
    monkeypatch.setattr(JobStore, "engine", property(lambda _self: gone))
    r = api.client.get("/health")
    assert r.status_code == 503
    assert r.json()["status"] == "unavailable" and r.json()["job_store"]["reachable"] is False


# ---- errors and auth -------------------------------------------------------------------------------------
def test_store_errors_are_503_and_unexpected_ones_500_without_details(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unreachable(*_a: Any, **_k: Any) -> Any:
        raise StoreError("job store at postgresql://u:***@db.internal/x: list jobs failed: connection refused")

    monkeypatch.setattr(api.store, "list_jobs", unreachable)
    r = api.client.get("/api/jobs")
    assert r.status_code == 503 and "db.internal" not in r.text

    def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(api.store, "job_detail", broken)
    quiet = TestClient(api.client.app, raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="dataflywheel.api"):
        r = quiet.get(f"/api/jobs/{MISSING}")
    assert r.status_code == 500 and r.json() == {"detail": "internal server error"}
    assert "secret internals" not in r.text
    assert any("secret internals" in str(rec.exc_info[1]) for rec in caplog.records if rec.exc_info)


def test_api_key_guards_every_api_route_but_not_health_or_docs(
    api_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_TEST_API_KEY", "s3cret-key")
    keyed = api_settings.api.model_copy(update={"api_key_env": "FLYWHEEL_TEST_API_KEY"})
    settings = api_settings.model_copy(update={"api": keyed})
    app = create_api(settings, start_jobs=False, recover=False)
    with TestClient(app) as client:
        job = make_job(app.state.api.service.store)
        calls = [
            ("GET", "/api/jobs"),
            ("POST", "/api/jobs"),
            ("GET", f"/api/jobs/{job.id}"),
            ("POST", f"/api/jobs/{job.id}/cancel"),
            ("DELETE", f"/api/jobs/{job.id}"),
            ("GET", f"/api/jobs/{job.id}/events"),
            ("GET", f"/api/jobs/{job.id}/datasets/eval"),
            ("GET", f"/api/jobs/{job.id}/results/c/base-eval"),
            ("POST", "/api/logs"),
            ("GET", "/api/workloads"),
        ]
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic czNjcmV0LWtleQ=="}):
            for method, path in calls:
                r = client.request(method, path, headers=headers)
                assert r.status_code == 401, (method, path, headers, r.text)
                assert r.headers["www-authenticate"] == "Bearer"
        assert job.id  # nothing happened to it
        assert app.state.api.service.store.get_job(job.id).status is JobStatus.PENDING
        good = {"Authorization": "Bearer s3cret-key"}
        assert client.get("/api/jobs", headers=good).status_code == 200
        assert client.get(f"/api/jobs/{job.id}", headers=good).status_code == 200
        for open_path in ("/health", "/docs", "/openapi.json"):
            assert client.get(open_path).status_code == 200


def test_openapi_shows_the_settings_descriptions_of_training_config(api: Api) -> None:
    """The schema of a job's training_config carries the same text as the training and lora settings (and so
    as config/flywheel.yaml's comments); TrainConfig's own keys carry its descriptions."""
    schemas = api.client.get("/openapi.json").json()["components"]["schemas"]
    ref = {"$ref": "#/components/schemas/TrainingConfigOverrides"}
    assert ref in schemas["JobCreate"]["properties"]["training_config"]["anyOf"]
    overrides = schemas["TrainingConfigOverrides"]
    assert overrides["additionalProperties"] is False
    described = {name: p.get("description") for name, p in overrides["properties"].items()}
    for section in (TrainingSettings, LoRASettings):
        for name, field in section.model_fields.items():
            assert described[name] == field.description, name
    for name in ("decision_weight", "layers_fraction", "prefix_gradients", "patience"):
        assert described[name] == TrainConfig.model_fields[name].description
    assert [name for name, text in described.items() if not text] == []
    assert {"minimum": 1, "type": "integer"} in overrides["properties"]["epochs"]["anyOf"]
    lora = schemas["LoraOverrides"]["properties"]
    assert lora["adapter_dim"]["description"] == LoRASettings.model_fields["adapter_dim"].description
    assert lora["rank"]["description"] == "The blueprint's name of adapter_dim."


def test_openapi_documents_the_routes(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    assert spec["info"]["title"] == "data-flywheel"
    paths = spec["paths"]
    assert {
        "/api/jobs",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/cancel",
        "/api/jobs/{job_id}/events",
        "/api/jobs/{job_id}/datasets/{name}",
        "/api/jobs/{job_id}/results/{candidate}/{eval_type}",
        "/api/logs",
        "/api/workloads",
        "/health",
    } <= set(paths)
    assert "The job curates the workload's logs" in paths["/api/jobs"]["post"]["description"]
    schemas = spec["components"]["schemas"]
    detail = schemas["JobDetailPublic"]["properties"]
    for field, model in (("cost", "CostReport"), ("recommendation", "Recommendation")):
        assert {"$ref": f"#/components/schemas/{model}"} in detail[field]["anyOf"], detail[field]
        assert detail[field]["description"]
    assert {"type": "array", "items": {"$ref": "#/components/schemas/LatencyRow"}} in detail["latency"]["anyOf"]
    assert {"teacher", "traffic", "evals", "judge", "currency"} <= set(schemas["CostReport"]["properties"])
    assert "unknown (no price set)" in schemas["EvalCost"]["properties"]["cost_per_1k"]["description"]
    assert set(schemas["RecommendationStatus"]["enum"]) == {"recommended", "none_qualifies", "no_results"}
    assert "recommendation_config" in schemas["JobCreate"]["properties"]
    assert "202" in paths["/api/jobs"]["post"]["responses"]
    assert "application/x-ndjson" in paths["/api/logs"]["post"]["requestBody"]["content"]


# ---- one real job ----------------------------------------------------------------------------------------
@pytest.mark.jobs
def test_a_real_tiny_job_through_the_api(tmp_path: Path) -> None:
    """POST logs and a job, poll until completed, check the detail, events and downloads, then DELETE."""
    from dataflywheel.synth.generator import SynthConfig, write_jsonl

    settings = load_settings(
        home=tmp_path / "home",
        curation_workers=0,
        data_split={"eval_size": 6, "min_total_records": 10},
        executor={"eval_max_tokens": 16},
    )
    # Built before the job: the deploy stage's server process and the in-process customize stage would
    # otherwise both build it at once, and models/registry.py's builders share one temporary folder.
    from dataflywheel.models.registry import local_model_dir, resolve_model

    local_model_dir(resolve_model(CANDIDATE, settings), settings)
    traffic = tmp_path / "t.jsonl"
    write_jsonl(SynthConfig(records=24, seed=2), traffic)
    app = create_api(settings, recover=False)
    with TestClient(app) as client:
        loaded = client.post(
            "/api/logs", content=traffic.read_bytes(), headers={"content-type": "application/x-ndjson"}
        ).json()
        assert loaded["loaded"] == 24 and loaded["skipped"] == 0
        body = {
            "workload_id": "primary_assistant",
            "client_id": "northwind-1",
            "candidates": [CANDIDATE],
            "training_config": {"epochs": 1, "batch_size": 8, "adapter_dim": 4, "threads": 2},
        }
        created = client.post("/api/jobs", json=body)
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        seen_progress = []
        deadline = time.monotonic() + 240
        while True:
            detail = client.get(f"/api/jobs/{job_id}").json()
            seen_progress.append(detail["progress"])
            if detail["status"] in ("completed", "failed", "cancelled"):
                break
            assert time.monotonic() < deadline, detail
            time.sleep(0.5)
        assert detail["status"] == "completed", detail["error"]
        assert seen_progress == sorted(seen_progress) and detail["progress"] == 100.0

        [nim] = detail["nims"]
        assert (nim["status"], nim["deployment_status"]) == ("completed", "completed")
        evals = {e["eval_type"]: e for e in nim["evaluations"]}
        assert set(evals) == {"base-eval", "icl-eval", "customized-eval"}
        for e in evals.values():
            assert e["status"] == "completed" and e["progress"] == 100.0 and e["done"] == e["total"] == 6
            assert "function_name_accuracy" in e["scores"] and e["runtime_seconds"] > 0
        [custom] = nim["customizations"]
        assert custom["status"] == "completed" and custom["progress"] == 100.0
        assert custom["epochs_completed"] == 1 and custom["steps_completed"] == custom["total_steps"] > 0
        assert custom["customized_model"]
        assert detail["num_records"] == 24 and {d["name"] for d in detail["datasets"]} == set(DATASETS)
        result = detail["result"]["candidates"][CANDIDATE]
        assert set(result) == set(evals)
        metric = result["base-eval"]["metrics"]["function_name_accuracy"]
        assert set(metric) == {"mean", "ci_low", "ci_high", "n"} and metric["n"] == 6

        events = client.get(f"/api/jobs/{job_id}/events").json()["data"]
        statuses = [e["data"]["to"] for e in events if e["kind"] == "status"]
        assert statuses == ["pending", "running", "completed"]
        assert any(e["stage"] == "customize:" + CANDIDATE for e in events)

        eval_rows = client.get(f"/api/jobs/{job_id}/datasets/eval").content.splitlines()
        assert len(eval_rows) == 6
        samples = client.get(f"/api/jobs/{job_id}/results/{CANDIDATE}/customized-eval")
        assert samples.status_code == 200 and len(samples.content.splitlines()) == 6
        assert "scores" in orjson.loads(samples.content.splitlines()[0])

        files = [Path(d["path"]) for d in detail["datasets"]] + [settings.home / "jobs" / job_id]
        assert all(f.exists() for f in files)
        assert client.delete(f"/api/jobs/{job_id}").status_code == 200
        assert not any(f.exists() for f in files)
        assert client.get(f"/api/jobs/{job_id}").status_code == 404
        assert not (settings.home / "adapters" / custom["customized_model"]).exists()
