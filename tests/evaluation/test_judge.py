from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from dataflywheel.evaluation.judge import Judge, JudgeCache, load_prompt
from dataflywheel.models.types import Usage


def test_prompts_are_versioned_files() -> None:
    prompt = load_prompt("tool_calling_correctness")
    assert prompt.version == "v2" and "RATING: <0 or 1>" in prompt.system
    messages = prompt.render(task="user: hi", reference="[]", prediction="[]", tools="[]")
    assert messages[0]["role"] == "system" and "*Ground truth*: []" in messages[1]["content"]


OK = "RATING: 1\nEXPLANATION: the same call"
WRONG = "RATING: 0\nEXPLANATION: another tool"


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
    assert verdict.parse_errors == ["the reply does not start with the RATING line, found 'I cannot decide.'"]


def test_similarity_normalized(tmp_path: Path) -> None:
    verdict = run(Judge(Scripted(["RATING: 10\nEXPLANATION: same"]), model="j", kind="similarity").judge([], "a", "a"))
    assert verdict.raw_score == 10 and verdict.score == 1.0
    verdict = run(Judge(Scripted(["RATING: 1\nEXPLANATION: no"]), model="j", kind="similarity").judge([], "a", "b"))
    assert verdict.score == 0.0


def test_repeat_and_vote(tmp_path: Path) -> None:
    chat = Scripted([OK, "garbage", OK])
    verdict = run(Judge(chat, model="j", kind="tool_calling_correctness", repeats=3).judge([], [1], [1]))
    assert verdict.raw_score == 1 and verdict.parse_failures == 1
    assert all(t > 0 for _, t in chat.calls) and verdict.usage.prompt_tokens == 300
    tie = run(Judge(Scripted([OK, WRONG]), model="j", kind="tool_calling_correctness", repeats=2).judge([], [1], [2]))
    assert tie.raw_score == 0


def test_cache_avoids_second_call_and_keeps_failures_out(tmp_path: Path) -> None:
    cache = JudgeCache(tmp_path / "judge.db")
    chat = Scripted([OK, "oops", WRONG])
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
