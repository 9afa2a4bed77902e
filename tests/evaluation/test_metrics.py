from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataflywheel.evaluation.metrics import METRICS, argument_score, is_identifier, score_sample, token_f1
from dataflywheel.evaluation.stats import aggregate

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "ToReturnsDesk",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}, "user_id": {"type": "string"}},
                "required": ["query", "user_id"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "HandleSmallTalk",
            "parameters": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
        },
    },
]


def msg(*calls: tuple[str, Any], content: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        out["tool_calls"] = [{"type": "function", "function": {"name": n, "arguments": a}} for n, a in calls]
    return out


REF = msg(("ToReturnsDesk", {"query": "return bent tent poles", "user_id": "4165"}))


def scores(pred: dict[str, Any], ref: dict[str, Any] = REF) -> dict[str, float | None]:
    return score_sample(ref, pred, TOOLS).scores


def test_exact_match_scores_one_everywhere() -> None:
    as_string = msg(("ToReturnsDesk", json.dumps({"user_id": "4165", "query": "return bent tent poles"})))
    assert scores(as_string) == dict.fromkeys(METRICS, 1.0)


def test_paraphrased_query_keeps_name_and_required_but_not_exact() -> None:
    s = scores(msg(("ToReturnsDesk", {"query": "how do I return my bent tent poles", "user_id": "4165"})))
    assert s["function_name_accuracy"] == 1.0 and s["required_arguments_accuracy"] == 1.0
    assert s["function_name_and_args_accuracy"] == 0.0
    assert 0.5 < s["argument_similarity"] < 1.0  # user_id exact (1) + query token F1


def test_wrong_identifier_fails_required_arguments() -> None:
    s = scores(msg(("ToReturnsDesk", {"query": "return bent tent poles", "user_id": "9999"})))
    assert s["required_arguments_accuracy"] == 0.0 and s["argument_similarity"] == 0.5


def test_missing_required_argument() -> None:
    s = scores(msg(("ToReturnsDesk", {"query": "return bent tent poles"})))
    assert s["required_arguments_accuracy"] == 0.0 and s["argument_similarity"] == 0.5


def test_no_call_made() -> None:
    result = score_sample(REF, msg(content="Sure, let me help."), TOOLS)
    assert result.scores["function_name_accuracy"] == 0.0 and result.scores["call_recall"] == 0.0
    assert result.scores["call_precision"] is None and "no_call" in result.flags


def test_call_when_reference_answered_in_text() -> None:
    ref = msg(content="We are open 9-5.")
    result = score_sample(ref, msg(("HandleSmallTalk", {"message": "hi"})), TOOLS)
    assert result.scores["function_name_accuracy"] == 0.0 and result.scores["call_precision"] == 0.0
    assert result.scores["call_recall"] is None and "unexpected_call" in result.flags
    assert score_sample(ref, msg(content="Open nine to five."), TOOLS).scores["function_name_accuracy"] == 1.0


def test_wrong_number_of_calls() -> None:
    two = msg(
        ("ToReturnsDesk", {"query": "return bent tent poles", "user_id": "4165"}),
        ("HandleSmallTalk", {"message": "bye"}),
    )
    result = score_sample(REF, two, TOOLS)
    assert result.scores["function_name_accuracy"] == 0.0
    assert result.scores["call_precision"] == 0.5 and result.scores["call_recall"] == 1.0
    assert "call_count_mismatch" in result.flags


def test_unknown_tool_name() -> None:
    result = score_sample(REF, msg(("ToRefunds", {"query": "x", "user_id": "4165"})), TOOLS)
    assert result.scores["function_name_accuracy"] == 0.0 and "unknown_tool" in result.flags


def test_unparsable_arguments() -> None:
    result = score_sample(REF, msg(("ToReturnsDesk", '{"query": "return')), TOOLS)
    assert result.scores["function_name_accuracy"] == 1.0
    assert result.scores["function_name_and_args_accuracy"] == 0.0
    assert result.scores["required_arguments_accuracy"] == 0.0
    assert "unparsable_arguments" in result.flags


def test_schema_unknown_uses_reference_keys() -> None:
    result = score_sample(REF, msg(("ToReturnsDesk", {"query": "q", "user_id": "4165"})), tools=None)
    assert result.scores["required_arguments_accuracy"] == 1.0


def test_identifier_and_token_f1() -> None:
    assert is_identifier("4165") and is_identifier(12) and is_identifier("ORD-99812")
    assert not is_identifier("return bent tent poles")
    assert token_f1("Return the poles", "return THE poles") == 1.0
    assert token_f1("a b", "c d") == 0.0
    assert argument_score(3, 3.0) == 1.0 and argument_score(True, 1) == 0.0 and argument_score("1", 1) == 0.0


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=20), max_size=4))
def test_a_call_always_matches_itself(args: dict[str, str]) -> None:
    ref = msg(("ToReturnsDesk", args))
    assert (
        score_sample(ref, msg(("ToReturnsDesk", json.dumps(args))), None).scores["function_name_and_args_accuracy"]
        == 1.0
    )


def test_aggregate_interval_and_count() -> None:
    agg = aggregate([1.0] * 70 + [0.0] * 30 + [None] * 5)
    assert agg.n == 100 and agg.mean == pytest.approx(0.7)
    assert agg.ci_low is not None and agg.ci_high is not None
    assert 0.6 < agg.ci_low < 0.7 < agg.ci_high < 0.8
    assert aggregate([1.0, 0.0, 1.0]) == aggregate([1.0, 0.0, 1.0])  # seeded
    assert aggregate([]).mean is None and aggregate([0.5]).ci_low == 0.5
