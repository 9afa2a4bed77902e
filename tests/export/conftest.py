"""A job whose every stage but finalize has ended, made without a model: the datasets and judge stages run for
real, the candidate's three evals run through the real eval stage against a scripted chat endpoint, and the
deployment, the LoRA run (an adapter folder) and the shutdown are recorded as their stages record them.
Driving the job then runs the real finalize stage and the driver's completion (where the export hooks in).

MLflow stores are SQLite files (MLflow's file store is deprecated), one per test module: creating one runs
MLflow's migrations, which takes seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from dataflywheel.errors import DependencyMissingError
from dataflywheel.icl import embedders
from dataflywheel.ingest.jsonl import load_file
from dataflywheel.jobs import CandidateStage, JobRecord, JobStatus, JobStore, TaskStatus, open_job_store
from dataflywheel.logstore import open_log_store
from dataflywheel.models.client import OpenAIClient
from dataflywheel.models.types import ChatRequest, ChatResult, Usage
from dataflywheel.settings import Settings, load_settings
from dataflywheel.synth.generator import SynthConfig, write_jsonl
from dataflywheel.workflow import stages
from dataflywheel.workflow.service import FlywheelService

WORKLOAD, CLIENT = "primary_assistant", "northwind-1"
CANDIDATE = "cand-a"
OWNER = "test-owner"
ADAPTER = "cand-a-primary_assistant-0001"
TRAINING_METRICS = {
    "recipe": "tiny",
    "config": {"epochs": 2, "batch_size": 8, "learning_rate": 0.001, "adapter_dim": 16, "class_balance": True},
    "epochs": [
        {"epoch": 1, "train_loss": 1.5, "val_loss": 1.25, "val_function_name_accuracy": 0.5},
        {"epoch": 2, "train_loss": 0.75, "val_loss": 1.0, "val_function_name_accuracy": 0.625},
    ],
    "best_epoch": 2,
    "stopped_early": False,
}


def quick_settings(home: Path, **mlflow: Any) -> Settings:
    return load_settings(
        home=home,
        curation_workers=0,
        data_split={"eval_size": 8, "limit": 40, "min_total_records": 20},
        executor={"heartbeat_s": 0.5, "stale_after_s": 3},
        mlflow=mlflow,
    )


@dataclass
class ReadyJob:
    home: Path
    job_id: str


def _scripted_chat(monkeypatch: pytest.MonkeyPatch) -> None:
    """The candidate's endpoint: the base model calls the first tool or answers in text (by the question's
    length), the adapter always calls the request's first tool."""

    async def chat(self: OpenAIClient, request: ChatRequest, model: str) -> ChatResult:
        tools = request.tools or []
        text = str(request.messages[-1].get("content") or "")
        if tools and (model == ADAPTER or len(text) % 3):
            call = {
                "id": "c1",
                "type": "function",
                "function": {"name": tools[0]["function"]["name"], "arguments": "{}"},
            }
            return ChatResult({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls", Usage(40, 9))
        return ChatResult({"role": "assistant", "content": "Let me check."}, "stop", Usage(40, 4))

    def no_embedder(settings: Any) -> Any:
        raise DependencyMissingError("no embedder in these tests")

    monkeypatch.setattr(OpenAIClient, "chat", chat)
    monkeypatch.setattr(stages.evaluation, "deployment_alive", lambda info: True)
    monkeypatch.setattr(stages.evaluation, "_load_adapter", lambda base_url, name, path: None)
    monkeypatch.setattr(embedders, "make_embedder", no_embedder)


def _adapter_folder(home: Path) -> Path:
    folder = home / "adapters" / ADAPTER
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_bytes(orjson.dumps({"r": 16, "lora_alpha": 32}))
    (folder / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 4)
    return folder


def prepare_job(home: Path, monkeypatch: pytest.MonkeyPatch) -> ReadyJob:
    settings = quick_settings(home)
    home.mkdir(parents=True, exist_ok=True)
    write_jsonl(SynthConfig(records=80, seed=2), home / "traffic.jsonl")
    with open_log_store(settings) as logs:
        assert load_file(logs, home / "traffic.jsonl").store.added == 80
    _scripted_chat(monkeypatch)
    config = {"candidates": [CANDIDATE], "data_split_config": {"eval_size": 8}, "training_config": {"epochs": 2}}
    with open_job_store(settings) as store:
        job = store.create_job(WORKLOAD, CLIENT, config)
        run = store.add_candidate_run(job.id, CANDIDATE)
        store.set_job_status(job.id, JobStatus.RUNNING)
        assert stages.execute_stage(store, settings, job.id, "datasets", OWNER) == TaskStatus.COMPLETED
        assert stages.execute_stage(store, settings, job.id, "judge", OWNER) == TaskStatus.SKIPPED

        deployment = {"base_url": "http://model.invalid/v1", "model": "m", "local": False, "pid": None}
        store.start_stage(job.id, f"deploy:{CANDIDATE}", OWNER)
        store.set_candidate_stage(run.id, CandidateStage.DEPLOYING)
        store.update_candidate_run(run.id, deployment=deployment)
        store.set_candidate_stage(run.id, CandidateStage.EVALUATING)
        store.finish_stage(job.id, f"deploy:{CANDIDATE}", TaskStatus.COMPLETED, output=deployment)

        adapter = _adapter_folder(home)
        store.start_stage(job.id, f"customize:{CANDIDATE}", OWNER)
        store.upsert_customization(run.id, status=TaskStatus.RUNNING, progress=0.0)
        store.upsert_customization(
            run.id,
            status=TaskStatus.COMPLETED,
            progress=100.0,
            adapter_name=ADAPTER,
            adapter_path=str(adapter),
            metrics=TRAINING_METRICS,
        )
        output = {"adapter_name": ADAPTER, "adapter_path": str(adapter), "training_run": "run0001"}
        store.finish_stage(job.id, f"customize:{CANDIDATE}", TaskStatus.COMPLETED, output=output)

        for kind in ("base-eval", "icl-eval", "customized-eval"):
            assert stages.execute_stage(store, settings, job.id, f"{kind}:{CANDIDATE}", OWNER) == TaskStatus.COMPLETED
        store.finish_stage(job.id, f"shutdown:{CANDIDATE}", TaskStatus.COMPLETED, output={"stopped": False})
    return ReadyJob(home, job.id)


@pytest.fixture
def ready_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ReadyJob:
    """A running job whose finalize stage is all that is left."""
    return prepare_job(tmp_path / "home", monkeypatch)


def drive(settings: Settings, job_id: str, timeout: float = 60.0) -> JobRecord:
    """Drive the job to its end in a service (finalize, then the driver's completion) and return it."""
    with FlywheelService(settings) as service:
        assert service.start(job_id)
        return service.wait(job_id, timeout=timeout)


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite MLflow tracking URI shared by a module's tests (each uses its own experiment)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def store_of(tmp_path: Path) -> Iterator[Any]:
    """``store_of(settings)``: a job store opened on ``settings`` (closed after the test)."""
    opened: list[JobStore] = []

    def open_(settings: Settings) -> JobStore:
        opened.append(open_job_store(settings))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()
