from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from dataflywheel.evaluation.judge import Judge, JudgeCache, load_prompt, parse_rating, parse_similarity
from dataflywheel.models.types import Usage


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("10", 10),
        ("Rating: 10", 10),
        ("7", 7),
        (" 1 ", 1),
        ("I'd say 8/10", 8),
        ("100", None),
        ("0", None),
        ("", None),
        ("none", None),
        ("score 11", None),
    ],
)
def test_similarity_parsing_reads_ten_as_ten(reply: str, expected: int | None) -> None:
    assert parse_similarity(reply) == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("RATING: 1\nEXPLANATION: ok", 1),
        ("rating:0", 0),
        ("**RATING: 1**", 1),
        ("1", 1),
        ("RATING: 2", None),
        ("I think it's right", None),
        ("RATING: 10", None),
    ],
)
def test_rating_parsing(reply: str, expected: int | None) -> None:
    assert parse_rating(reply) == expected


def test_prompts_are_versioned_files() -> None:
    prompt = load_prompt("tool_calling_correctness")
    assert prompt.version == "v1" and "RATING" in prompt.system
    messages = prompt.render(task="user: hi", reference="[]", prediction="[]", tools="[]")
    assert messages[0]["role"] == "system" and "*Ground truth*: []" in messages[1]["content"]


class Scripted:
    """A judge endpoint stand-in that replies from a script and counts calls."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[list[dict[str, Any]], float]] = []

    async def __call__(self, messages: list[dict[str, Any]], temperature: float) -> tuple[str, Usage]:
        self.calls.append((messages, temperature))
        return self.replies.pop(0), Usage(prompt_tokens=100, completion_tokens=5)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_parse_failures_are_counted_not_scored(tmp_path: Path) -> None:
    chat = Scripted(["I cannot decide."])
    verdict = run(Judge(chat, model="j", kind="tool_calling_correctness").judge([], [], []))
    assert verdict.score is None and verdict.parse_failures == 1 and verdict.replies == ["I cannot decide."]


def test_similarity_normalized(tmp_path: Path) -> None:
    verdict = run(Judge(Scripted(["10"]), model="j", kind="similarity").judge([], "a", "a"))
    assert verdict.raw_score == 10 and verdict.score == 1.0
    verdict = run(Judge(Scripted(["1"]), model="j", kind="similarity").judge([], "a", "b"))
    assert verdict.score == 0.0


def test_repeat_and_vote(tmp_path: Path) -> None:
    chat = Scripted(["RATING: 1", "garbage", "RATING: 1"])
    verdict = run(Judge(chat, model="j", kind="tool_calling_correctness", repeats=3).judge([], [1], [1]))
    assert verdict.raw_score == 1 and verdict.parse_failures == 1
    assert all(t > 0 for _, t in chat.calls) and verdict.usage.prompt_tokens == 300
    tie = run(
        Judge(Scripted(["RATING: 1", "RATING: 0"]), model="j", kind="tool_calling_correctness", repeats=2).judge(
            [], [1], [2]
        )
    )
    assert tie.raw_score == 0


def test_cache_avoids_second_call_and_keeps_failures_out(tmp_path: Path) -> None:
    cache = JudgeCache(tmp_path / "judge.db")
    chat = Scripted(["RATING: 1", "oops", "RATING: 0"])
    judge = Judge(chat, model="j", kind="tool_calling_correctness", cache=cache)
    first = run(judge.judge([{"role": "user", "content": "x"}], ["ref"], ["pred"]))
    again = run(judge.judge([{"role": "user", "content": "x"}], ["ref"], ["pred"]))
    assert first.score == again.score == 1.0 and again.cached and len(chat.calls) == 1
    failed = run(judge.judge([], ["a"], ["b"]))
    assert failed.score is None
    retried = run(judge.judge([], ["a"], ["b"]))  # a failure is not cached: asked again
    assert retried.score == 0.0 and len(chat.calls) == 3
    other_version = Judge(chat, model="other", kind="tool_calling_correctness", cache=cache)
    assert other_version.cache_key({"a": "b"}) != judge.cache_key({"a": "b"})
