"""Judge replies over real HTTP: a candidate and a judge on our OpenAI-compatible stand-in, the eval runner
between them. Only replies in the prompt's exact answer format are scored; the rest are counted and quoted
in the eval summary."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dataflywheel.evaluation.judge import Judge, JudgeKind, client_judge_chat, load_prompt
from dataflywheel.evaluation.runner import EvalConfig, EvalSummary, EvalType, read_samples, run_async, run_eval
from dataflywheel.models.client import OpenAIClient
from dataflywheel.serving.background import BackgroundServer
from dataflywheel.serving.standin import create_standin_app


def _text_row(i: int) -> dict[str, Any]:
    return {
        "record_id": f"t{i}",
        "request": {"messages": [{"role": "user", "content": f"When do you open on day {i}?"}]},
        "response": {"choices": [{"message": {"role": "assistant", "content": "We open at 9am."}}]},
    }


def _tool_row(i: int) -> dict[str, Any]:
    call = {"id": "c", "type": "function", "function": {"name": "ToOrderStatus", "arguments": {"order_id": str(i)}}}
    return {
        "record_id": f"c{i}",
        "request": {
            "messages": [{"role": "user", "content": f"Where is order {i}?"}],
            "tools": [{"type": "function", "function": {"name": "ToOrderStatus", "parameters": {"type": "object"}}}],
        },
        "response": {"choices": [{"message": {"role": "assistant", "content": "", "tool_calls": [call]}}]},
    }


@pytest.fixture
def candidate() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_standin_app("We open at nine.", model="cand")) as server:
        yield server


def _evaluate(
    rows: list[dict[str, Any]], candidate: BackgroundServer, replies: list[str], kind: JudgeKind, out: Path
) -> tuple[EvalSummary, list[dict[str, Any]]]:
    judge_app = create_standin_app(replies, model="judge-70b")
    with BackgroundServer(judge_app) as judge_server:
        judge = Judge(client_judge_chat(OpenAIClient(judge_server.base_url), "judge-70b"), model="judge-70b", kind=kind)
        model = OpenAIClient(candidate.base_url)

        async def chat(request: Any) -> Any:
            return await model.chat(request, "cand")

        # concurrency 1: the judge's scripted replies meet the rows in order
        summary = run_async(run_eval(rows, chat, out, EvalConfig(EvalType.BASE, "cand", concurrency=1), judge=judge))
    asked = list(judge_app.state.standin.requests)
    assert len(asked) == len(rows)
    return summary, asked


def test_similarity_replies_count_only_in_the_exact_format(candidate: BackgroundServer, tmp_path: Path) -> None:
    replies = [
        "RATING: 8\nEXPLANATION: the same hours, other words",
        "Similarity (out of 10): 7",  # the first-integer parser scored 10
        "On a scale of 1 to 10, I rate this a 3",  # ... and 1
        "RATING: <an integer from 1 to 10>\nEXPLANATION: <one sentence on what differs>",  # the format echoed
        "RATING: 4\nEXPLANATION: partly right",
        "RATING: 7\nEXPLANATION: close\nRATING: 2",  # two ratings: ambiguous
    ]
    summary, asked = _evaluate([_text_row(i) for i in range(6)], candidate, replies, "similarity", tmp_path)
    judge = summary.judge
    assert judge["score"]["n"] == 2 and judge["score"]["mean"] == pytest.approx(((8 - 1) / 9 + (4 - 1) / 9) / 2)
    assert judge["parse_failures"] == judge["unscored"] == 4 and judge["request_errors"] == 0
    examples = judge["parse_failure_examples"]
    assert [e["record_id"] for e in examples] == ["t1", "t2", "t3", "t5"]
    assert examples[0]["reply"] == "Similarity (out of 10): 7"
    assert "does not start with the RATING line" in examples[0]["reason"]
    assert "echoes the format line" in examples[2]["reason"] and "ambiguous" in examples[3]["reason"]
    stored = {s["record_id"]: s["judge"] for s in read_samples(tmp_path)}
    assert stored["t1"]["score"] is None and stored["t1"]["replies"] == ["Similarity (out of 10): 7"]
    assert stored["t0"]["raw_score"] == 8 and stored["t0"]["parse_errors"] == [None]
    # The judge was shown the format the parser reads.
    assert load_prompt("similarity").answer.render() in asked[0]["messages"][0]["content"]


def test_an_echo_of_the_tool_calling_format_is_not_a_correct_rating(
    candidate: BackgroundServer, tmp_path: Path
) -> None:
    replies = [
        "RATING: 1 if the prediction is correct, 0 if not\nEXPLANATION: one or two sentences",  # v1's format line
        "RATING: 0\nEXPLANATION: no tool was called",
        "**RATING: 1**\nEXPLANATION: fine",
        "RATING: 0\nEXPLANATION: text instead of a call",
    ]
    summary, asked = _evaluate(
        [_tool_row(i) for i in range(4)], candidate, replies, "tool_calling_correctness", tmp_path
    )
    assert "*Ground truth*" in asked[0]["messages"][1]["content"]
    judge = summary.judge
    assert judge["score"]["n"] == 2 and judge["score"]["mean"] == 0.0  # the candidate answered text every time
    assert judge["parse_failures"] == 2
    assert [e["record_id"] for e in judge["parse_failure_examples"]] == ["c0", "c2"]
