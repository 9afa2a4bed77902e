"""The eval stage's embedder wiring, without a model server: text answers of a job's evals get
``embedding_similarity`` from ``icl.embedder``, a tool-only eval set never builds one, and an embedder that
cannot be built leaves the metric out instead of failing the stage."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest

from dataflywheel.errors import DependencyMissingError
from dataflywheel.icl import embedders
from dataflywheel.jobs.status import TaskStatus
from dataflywheel.models.client import OpenAIClient
from dataflywheel.models.types import ChatRequest, ChatResult, Usage
from dataflywheel.settings import load_settings
from dataflywheel.workflow import stages
from dataflywheel.workflow.plan import StageKind

TOOLS = [{"type": "function", "function": {"name": "ToOrderTracking", "parameters": {"type": "object"}}}]
TEXT_ROW = {
    "record_id": "text-1",
    "request": {"messages": [{"role": "user", "content": "When do you open?"}], "tools": TOOLS},
    "response": {"choices": [{"message": {"role": "assistant", "content": "We open at nine."}}]},
}
CALL = {"type": "function", "function": {"name": "ToOrderTracking", "arguments": "{}"}}
TOOL_ROW = {
    "record_id": "tool-1",
    "request": {"messages": [{"role": "user", "content": "Where is my order?"}], "tools": TOOLS},
    "response": {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [CALL]}}]},
}


class WordEmbedder:
    """Hashed bag of words: the same text gives the same unit vector."""

    name = "words"
    dim = 64

    def __init__(self) -> None:
        self.closed = False

    def embed(self, texts: Sequence[str]) -> Any:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, zlib.crc32(word.encode()) % self.dim] += 1.0
        return embedders.l2_normalize(out)

    def close(self) -> None:
        self.closed = True


class FakeStore:
    """What the eval stage reads and writes of the job store."""

    def __init__(self, datasets: Path) -> None:
        self.run = SimpleNamespace(
            id=1, candidate="cand", deployment={"base_url": "http://model.invalid/v1", "model": "m"}
        )
        self.datasets = SimpleNamespace(status=TaskStatus.COMPLETED, output={"path": str(datasets)})
        self.evaluations: list[dict[str, Any]] = []

    def job_detail(self, job_id: str) -> Any:
        return SimpleNamespace(candidates=[self.run])

    def get_stage(self, job_id: str, key: str) -> Any:
        return self.datasets if key == "datasets" else None

    def upsert_evaluation(self, run_id: int, eval_type: str, **fields: Any) -> None:
        self.evaluations.append(fields)

    def is_cancel_requested(self, job_id: str) -> bool:
        return False


def run_stage(tmp_path: Path, rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    (datasets / "eval.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))

    async def chat(self: OpenAIClient, request: ChatRequest, model: str) -> ChatResult:
        if request.messages[-1]["content"] == "Where is my order?":
            return ChatResult({"role": "assistant", "content": None, "tool_calls": [CALL]}, "tool_calls", Usage(5, 5))
        return ChatResult({"role": "assistant", "content": "We open at nine."}, "stop", Usage(5, 5))

    monkeypatch.setattr(OpenAIClient, "chat", chat)
    monkeypatch.setattr(stages.evaluation, "deployment_alive", lambda info: True)
    settings = load_settings(home=tmp_path / "home")
    job = SimpleNamespace(id="job-1", config={})
    ctx = stages.StageContext(FakeStore(datasets), settings, job, "base-eval:cand", StageKind.BASE_EVAL, "cand")  # type: ignore[arg-type]
    return stages.run_evaluation(ctx)


def test_text_answers_of_a_job_eval_get_embedding_similarity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[WordEmbedder] = []

    def make_embedder(settings: Any) -> WordEmbedder:
        assert settings.model == "builtin:all-minilm-l6-v2"  # icl.embedder, as `flywheel eval` uses it
        built.append(WordEmbedder())
        return built[-1]

    monkeypatch.setattr(embedders, "make_embedder", make_embedder)
    summary = run_stage(tmp_path, [TEXT_ROW, TOOL_ROW], monkeypatch)["summary"]
    emb = summary["metrics"]["embedding_similarity"]
    assert emb["n"] == 1 and emb["mean"] == pytest.approx(1.0)  # the same text, only the text answer
    assert summary["per_class"]["no_tool"]["metrics"]["embedding_similarity"]["n"] == 1
    assert summary["confusion"] == {"no_tool": {"text": 1}, "ToOrderTracking": {"ToOrderTracking": 1}}
    assert len(built) == 1 and built[0].closed


def test_a_tool_only_eval_never_builds_an_embedder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def make_embedder(settings: Any) -> WordEmbedder:
        raise AssertionError("no text answer to embed")

    monkeypatch.setattr(embedders, "make_embedder", make_embedder)
    summary = run_stage(tmp_path, [TOOL_ROW], monkeypatch)["summary"]
    assert summary["metrics"]["embedding_similarity"]["n"] == 0
    assert summary["metrics"]["function_name_accuracy"]["mean"] == 1.0


def test_an_embedder_that_cannot_load_is_warned_about_and_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def make_embedder(settings: Any) -> WordEmbedder:
        raise DependencyMissingError("the local embedder needs sentence-transformers")

    monkeypatch.setattr(embedders, "make_embedder", make_embedder)
    with caplog.at_level(logging.WARNING, logger="dataflywheel.workflow.stages"):
        summary = run_stage(tmp_path, [TEXT_ROW, TOOL_ROW], monkeypatch)["summary"]
    assert summary["samples"] == 2 and summary["metrics"]["embedding_similarity"]["n"] == 0
    assert any("needs sentence-transformers" in r.getMessage() for r in caplog.records)
