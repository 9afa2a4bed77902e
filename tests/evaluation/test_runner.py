from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from dataflywheel.evaluation.judge import Judge
from dataflywheel.evaluation.runner import (
    EvalCancelled,
    EvalConfig,
    EvalError,
    EvalProgress,
    EvalType,
    read_samples,
    run_eval,
)
from dataflywheel.models.types import ChatRequest, ChatResult, Usage
from dataflywheel.synth.generator import SynthConfig, generate

ROWS = [{"record_id": f"r{i}", **rec} for i, rec in enumerate(generate(SynthConfig(records=30, seed=4)))]


class Model:
    """A scripted model: answers the reference's tool for every other record, text otherwise."""

    def __init__(self, fail: set[int] | None = None) -> None:
        self.seen: list[str] = []
        self.fail = fail or set()

    async def __call__(self, request: ChatRequest) -> ChatResult:
        user = request.messages[-1]["content"]
        index = next(i for i, r in enumerate(ROWS) if r["request"]["messages"][-1]["content"] == user)
        self.seen.append(ROWS[index]["record_id"])
        await asyncio.sleep(0)
        if index in self.fail:
            raise ConnectionError("endpoint went away")
        ref = ROWS[index]["response"]["choices"][0]["message"]
        if index % 2 == 0:
            calls = [
                {
                    "id": "c",
                    "type": "function",
                    "function": {
                        "name": c["function"]["name"],
                        "arguments": orjson.dumps(c["function"]["arguments"]).decode(),
                    },
                }
                for c in ref["tool_calls"]
            ]
            message = {"role": "assistant", "content": None, "tool_calls": calls}
        else:
            message = {"role": "assistant", "content": "Let me help."}
        return ChatResult(message=message, finish_reason="stop", usage=Usage(900, 20), raw_text="x", latency_s=0.01)


def test_scores_stored_per_sample_and_aggregated(tmp_path: Path) -> None:
    progress: list[EvalProgress] = []
    summary = asyncio.run(
        run_eval(ROWS, Model(), tmp_path, EvalConfig(EvalType.BASE, "m", concurrency=4), progress=progress.append)
    )
    fn = summary.metrics["function_name_accuracy"]
    assert summary.samples == 30 and summary.errors == 0 and fn["n"] == 30
    assert fn["mean"] == pytest.approx(0.5) and fn["ci_low"] < 0.5 < fn["ci_high"]
    assert summary.metrics["function_name_and_args_accuracy"]["mean"] == pytest.approx(0.5)
    assert progress[-1].percent == 100.0 and progress[0].eta_s is not None
    samples = read_samples(tmp_path)
    assert [s["record_id"] for s in samples] == [r["record_id"] for r in ROWS]
    wrong = [s for s in samples if s["scores"]["function_name_accuracy"] == 0.0]
    assert all("no_call" in s["flags"] for s in wrong)
    assert (tmp_path / "summary.json").is_file() and summary.usage["prompt_tokens"] == 900 * 30


def test_cancel_then_resume_does_not_redo_scored_records(tmp_path: Path) -> None:
    cancel = threading.Event()

    def stop_after_five(p: EvalProgress) -> None:
        if p.done >= 5:
            cancel.set()

    first = Model()
    with pytest.raises(EvalCancelled):
        asyncio.run(
            run_eval(
                ROWS,
                first,
                tmp_path,
                EvalConfig(EvalType.ICL, "m", concurrency=1),
                progress=stop_after_five,
                cancel=cancel,
            )
        )
    assert len(read_samples(tmp_path)) == 5
    second = Model()
    summary = asyncio.run(run_eval(ROWS, second, tmp_path, EvalConfig(EvalType.ICL, "m", concurrency=3)))
    assert summary.samples == 30 and not set(first.seen) & set(second.seen)


def test_failed_requests_are_recorded_not_fatal(tmp_path: Path) -> None:
    summary = asyncio.run(run_eval(ROWS, Model(fail={3, 7}), tmp_path, EvalConfig(EvalType.BASE, "m")))
    assert summary.errors == 2 and summary.metrics["function_name_accuracy"]["n"] == 28
    bad = [s for s in read_samples(tmp_path) if s["error"]]
    assert {s["record_id"] for s in bad} == {"r3", "r7"} and "endpoint went away" in bad[0]["error"]


def test_too_many_failures_stop_the_eval(tmp_path: Path) -> None:
    with pytest.raises(EvalError, match="failed"):
        asyncio.run(run_eval(ROWS, Model(fail=set(range(30))), tmp_path, EvalConfig(EvalType.BASE, "m")))


def test_judge_scores_join_the_summary(tmp_path: Path) -> None:
    replies = iter(["RATING: 1\nEXPLANATION: same call", "not sure"] * 15)

    async def judge_chat(messages: list[dict[str, Any]], temperature: float) -> tuple[str, Usage]:
        return next(replies), Usage(50, 3)

    judge = Judge(judge_chat, model="judge-x", kind="tool_calling_correctness")
    summary = asyncio.run(run_eval(ROWS, Model(), tmp_path, EvalConfig(EvalType.BASE, "m", concurrency=1), judge=judge))
    assert summary.judge["parse_failures"] == 15 and summary.judge["unscored"] == 15
    examples = summary.judge["parse_failure_examples"]
    assert len(examples) == 5 and examples[0]["reply"] == "not sure"
    assert "does not start with the RATING line" in examples[0]["reason"] and examples[0]["record_id"]
    assert summary.judge["score"]["n"] == 15 and summary.judge["model"] == "judge-x"
    assert summary.judge["prompt_tokens"] == 50 * 30


def test_generic_answers_get_embedding_similarity(tmp_path: Path) -> None:
    from dataflywheel.icl.embedders import LocalEmbedder

    rows = [
        {
            "record_id": "a",
            "request": {"messages": [{"role": "user", "content": "What are your hours?"}]},
            "response": {"choices": [{"message": {"role": "assistant", "content": "We are open 9am to 5pm."}}]},
        },
        {
            "record_id": "b",
            "request": {"messages": [{"role": "user", "content": "Ship to Canada?"}]},
            "response": {"choices": [{"message": {"role": "assistant", "content": "Yes, we ship to Canada."}}]},
        },
    ]
    answers = {"What are your hours?": "Our opening hours are 9 to 5.", "Ship to Canada?": "Bananas are yellow."}

    async def chat(request: ChatRequest) -> ChatResult:
        text = answers[request.messages[-1]["content"]]
        return ChatResult({"role": "assistant", "content": text}, "stop", Usage(10, 5))

    config = EvalConfig(EvalType.BASE, "m", embedder=LocalEmbedder())
    summary = asyncio.run(run_eval(rows, chat, tmp_path, config))
    by_id = {s["record_id"]: s["scores"]["embedding_similarity"] for s in read_samples(tmp_path)}
    assert by_id["a"] > 0.6 > 0.3 > by_id["b"]
    assert summary.workload_type == "generic" and summary.metrics["embedding_similarity"]["n"] == 2


class MixedModel:
    """A scripted model with every kind of outcome, chosen by the record's index: the right tool, another
    offered tool, a tool the request does not offer, text, an empty answer, and a failed request."""

    BEHAVIOURS = ("right", "other", "unknown", "text", "empty")

    def __init__(self, fail: set[int] | None = None) -> None:
        self.fail = fail or set()

    @staticmethod
    def behaviour(index: int) -> str:
        return MixedModel.BEHAVIOURS[index % len(MixedModel.BEHAVIOURS)]

    async def __call__(self, request: ChatRequest) -> ChatResult:
        user = request.messages[-1]["content"]
        index = next(i for i, r in enumerate(ROWS) if r["request"]["messages"][-1]["content"] == user)
        if index in self.fail:
            raise ConnectionError("endpoint went away")
        ref_name = ROWS[index]["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["name"]
        offered = [t["function"]["name"] for t in request.tools or []]
        name = {
            "right": ref_name,
            "other": next(n for n in offered if n != ref_name),
            "unknown": "CallTheManager",
        }.get(self.behaviour(index))
        if name is not None:
            call = {"id": "c", "type": "function", "function": {"name": name, "arguments": "{}"}}
            message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
        else:
            content = "Let me help." if self.behaviour(index) == "text" else ""
            message = {"role": "assistant", "content": content}
        return ChatResult(message=message, finish_reason="stop", usage=Usage(10, 2))


def expected_outcome(index: int, fail: set[int]) -> str:
    offered = [t["function"]["name"] for t in ROWS[index]["request"]["tools"]]
    ref_name = ROWS[index]["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["name"]
    if index in fail:
        return "error"
    return {
        "right": ref_name,
        "other": next(n for n in offered if n != ref_name),
        "unknown": "unknown_tool",
        "text": "text",
        "empty": "no_call",
    }[MixedModel.behaviour(index)]


def test_summary_carries_per_class_metrics_and_confusion_consistent_with_samples(tmp_path: Path) -> None:
    fail = {2, 9}
    summary = asyncio.run(run_eval(ROWS, MixedModel(fail), tmp_path, EvalConfig(EvalType.BASE, "m", concurrency=4)))
    samples = read_samples(tmp_path)
    assert [s["predicted_outcome"] for s in samples] == [expected_outcome(i, fail) for i in range(len(ROWS))]
    stored = orjson.loads((tmp_path / "summary.json").read_bytes())
    assert stored["per_class"] == summary.to_dict()["per_class"] and stored["confusion"] == summary.confusion.to_dict()

    pairs: dict[str, dict[str, int]] = {}
    for s in samples:
        row = pairs.setdefault(s["reference_class"], {})
        row[s["predicted_outcome"]] = row.get(s["predicted_outcome"], 0) + 1
    assert stored["confusion"] == pairs
    assert {o for row in pairs.values() for o in row} >= {"unknown_tool", "text", "no_call", "error"}

    assert set(stored["per_class"]) == {s["reference_class"] for s in samples}
    assert sum(c["n"] for c in stored["per_class"].values()) == summary.samples == len(ROWS)
    assert sum(c["errors"] for c in stored["per_class"].values()) == summary.errors == len(fail)
    for label, entry in stored["per_class"].items():
        ok = [s for s in samples if s["reference_class"] == label and s["error"] is None]
        fn = entry["metrics"]["function_name_accuracy"]
        right = sum(s["predicted_outcome"] == label for s in ok)  # one call per answer: a hit is the diagonal
        assert fn["n"] == len(ok) and fn["mean"] == pytest.approx(right / len(ok))
        assert fn["ci_low"] <= fn["mean"] <= fn["ci_high"]
        assert set(entry["metrics"]) >= {"function_name_accuracy", "function_name_and_args_accuracy"}


def test_a_resumed_eval_summarizes_every_sample_also_those_stored_without_outcomes(tmp_path: Path) -> None:
    cancel = threading.Event()

    def stop_after_seven(p: EvalProgress) -> None:
        if p.done >= 7:
            cancel.set()

    config = EvalConfig(EvalType.BASE, "m", concurrency=1)
    with pytest.raises(EvalCancelled):
        asyncio.run(run_eval(ROWS, MixedModel(), tmp_path, config, progress=stop_after_seven, cancel=cancel))
    # Samples written before outcomes were recorded: their outcome comes from the prediction and the request.
    path = tmp_path / "samples.jsonl"
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert len(lines) == 7
    path.write_bytes(
        b"".join(orjson.dumps({k: v for k, v in s.items() if k != "predicted_outcome"}) + b"\n" for s in lines)
    )

    summary = asyncio.run(run_eval(ROWS, MixedModel(), tmp_path, config))
    expected: dict[str, dict[str, int]] = {}
    for i, row in enumerate(ROWS):
        ref = row["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["name"]
        cell = expected.setdefault(ref, {})
        cell[expected_outcome(i, set())] = cell.get(expected_outcome(i, set()), 0) + 1
    assert summary.confusion.to_dict() == expected and summary.confusion.total == len(ROWS)
    assert sum(c.n for c in summary.per_class.values()) == len(ROWS)


class BrokenEmbedder:
    name = "broken"
    dim = None

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: Any) -> Any:
        self.calls += 1
        raise ConnectionError("embeddings endpoint is down")


def test_an_embedder_that_fails_leaves_the_metric_out_not_the_eval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [
        {
            "record_id": f"t{i}",
            "request": {"messages": [{"role": "user", "content": f"question {i}"}]},
            "response": {"choices": [{"message": {"role": "assistant", "content": f"answer {i}"}}]},
        }
        for i in range(4)
    ]

    async def chat(request: ChatRequest) -> ChatResult:
        return ChatResult({"role": "assistant", "content": "an answer"}, "stop", Usage(10, 5))

    embedder = BrokenEmbedder()
    with caplog.at_level("WARNING", logger="dataflywheel.evaluation.runner"):
        summary = asyncio.run(
            run_eval(rows, chat, tmp_path, EvalConfig(EvalType.BASE, "m", concurrency=1, embedder=embedder))
        )
    assert summary.samples == 4 and summary.errors == 0
    assert summary.metrics["embedding_similarity"]["n"] == 0
    assert summary.per_class["no_tool"].metrics["function_name_accuracy"].mean == 1.0
    assert summary.confusion.to_dict() == {"no_tool": {"text": 4}}
    assert embedder.calls == 1  # turned off after its first failure
    warnings = [r for r in caplog.records if "embedding_similarity left out" in r.getMessage()]
    assert len(warnings) == 1 and "endpoint is down" in warnings[0].getMessage()
