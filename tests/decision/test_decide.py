"""Where the logged model's tokens come from: its logged usage when every eval record has one, else a
tokenizer over the request and answer (estimated), else unknown with the reason."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from dataflywheel.decision.decide import teacher_tokens
from dataflywheel.decision.schema import TokenSource
from tests.factories import tool_record


class WordCounter:
    """Counts words of the last user message and of the answer's text: a tokenizer the test can reason about."""

    def count(self, request: Mapping[str, Any], answer: Mapping[str, Any]) -> tuple[int, int]:
        return len(request["messages"][-1]["content"].split()), len((answer.get("content") or "").split())


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def never() -> WordCounter:
    raise AssertionError("the tokenizer must not load when every record has its usage")


def test_logged_usage_is_used_when_every_record_has_it(tmp_path: Path) -> None:
    records = [tool_record("a b c"), tool_record("d e")]
    for r, (p, c) in zip(records, [(100, 10), (50, 30)], strict=True):
        r["response"]["usage"] = {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
    tokens = teacher_tokens(write(tmp_path / "eval.jsonl", records), never)
    assert (tokens.source, tokens.mean_prompt_tokens, tokens.mean_completion_tokens) == (
        TokenSource.LOGGED_USAGE,
        75.0,
        20.0,
    )


def test_records_without_usage_are_all_counted_with_the_tokenizer(tmp_path: Path) -> None:
    with_usage = tool_record("one two three four", tool=None, text="fine thanks")
    with_usage["response"]["usage"] = {"prompt_tokens": 999, "completion_tokens": 999}
    records = [with_usage, tool_record("five six", tool=None, text="a b c d")]  # one without: count both
    loads: list[int] = []

    def load() -> WordCounter:
        loads.append(1)
        return WordCounter()

    tokens = teacher_tokens(write(tmp_path / "eval.jsonl", records), load)
    assert tokens.source is TokenSource.TOKENIZER and loads == [1]
    assert (tokens.mean_prompt_tokens, tokens.mean_completion_tokens) == (3.0, 3.0)  # (4 + 2) / 2, (2 + 4) / 2


@pytest.mark.parametrize("problem", ["no tokenizer", "no file", "no records"])
def test_tokens_that_cannot_be_had_are_unknown_with_the_reason(tmp_path: Path, problem: str) -> None:
    def broken() -> WordCounter:
        raise OSError("tokenizer.json not found")

    path = tmp_path / "eval.jsonl"
    if problem == "no tokenizer":
        write(path, [tool_record("x")])
    elif problem == "no records":
        write(path, [])
    tokens = teacher_tokens(path, broken)
    assert tokens.source is TokenSource.UNKNOWN and tokens.mean_prompt_tokens is None
    reason = {
        "no tokenizer": "the records carry no usage and no tokenizer could count them: tokenizer.json not found",
        "no file": "the eval records cannot be read",
        "no records": "no eval records",
    }[problem]
    assert tokens.unknown_reason is not None and tokens.unknown_reason.startswith(reason)
