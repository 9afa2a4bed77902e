"""The judge prompts' answer format: declared in the prompt file, shown to the judge, parsed strictly."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from dataflywheel.evaluation.answer_format import AnswerFormat, AnswerFormatError
from dataflywheel.evaluation.judge import JudgeError, load_prompt, parse_prompt_file
from dataflywheel.feedback.quality import load_quality_prompt

SIMILARITY = load_prompt("similarity").answer
RATING = load_prompt("tool_calling_correctness").answer
VERDICT = load_quality_prompt().answer
FORMATS = [SIMILARITY, RATING, VERDICT]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("RATING: 7\nEXPLANATION: close", 7),
        ("RATING: 10\nEXPLANATION: the same", 10),
        ("RATING: 1\nEXPLANATION: unrelated", 1),
        ("  rating :  4 \n\nExplanation: wraps\nover two lines  ", 4),  # white space and key case only
    ],
)
def test_a_reply_in_the_format_is_read(reply: str, expected: int) -> None:
    parsed = SIMILARITY.parse(reply)
    assert parsed.ok and parsed.values["RATING"] == expected


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        # The blueprint read the first integer: 10 here, and 1 below.
        ("Similarity (out of 10): 7", "does not start with the RATING line"),
        ("On a scale of 1 to 10, I rate this a 3", "does not start with the RATING line"),
        ("RATING: <an integer from 1 to 10>\nEXPLANATION: <one sentence on what differs>", "echoes the format line"),
        ("RATING: <7>\nEXPLANATION: x", "echoes the format's placeholder"),
        ("RATING: 7/10\nEXPLANATION: x", "must be one integer from 1 to 10, got '7/10'"),
        ("RATING: 11\nEXPLANATION: x", "from 1 to 10, got '11'"),
        ("RATING: 0\nEXPLANATION: x", "from 1 to 10, got '0'"),
        ("RATING: 07\nEXPLANATION: x", "got '07'"),
        ("RATING: 7 or 8\nEXPLANATION: x", "got '7 or 8'"),
        ("**RATING: 7**\nEXPLANATION: x", "does not start with the RATING line"),
        ("RATING: 7\nEXPLANATION: x\nRATING: 3", "RATING is given 2 times (ambiguous)"),
        ("Sure! Here it is:\nRATING: 7\nEXPLANATION: x", "does not start with the RATING line, found 'Sure!"),
        ("RATING: 7", "no EXPLANATION line"),
        ("RATING: 7\nEXPLANATION:", "EXPLANATION is empty"),
        ("EXPLANATION: x\nRATING: 7", "does not start with the RATING line"),
        ("", "empty reply"),
        ("7", "does not start with the RATING line"),
    ],
)
def test_anything_else_is_a_parse_failure_with_the_reason(reply: str, reason: str) -> None:
    parsed = SIMILARITY.parse(reply)
    assert not parsed.ok and not parsed.values
    assert parsed.error is not None and reason in parsed.error


def test_an_echo_of_the_tool_calling_format_is_not_a_pass() -> None:
    # v1 showed "RATING: 1 if the prediction is correct, 0 if not"; an echo of it scored as correct.
    assert not RATING.parse("RATING: 1 if the prediction is correct, 0 if not\nEXPLANATION: one or two sentences").ok
    assert not RATING.parse("RATING: <0 or 1>\nEXPLANATION: <one or two sentences>").ok
    assert RATING.parse("RATING: 1\nEXPLANATION: same call").values["RATING"] == 1
    assert not RATING.parse("RATING: 2\nEXPLANATION: x").ok


def test_the_feedback_verdict_reads_pass_or_fail_only() -> None:
    assert VERDICT.parse("VERDICT: pass\nREASON: fine").values == {"VERDICT": "PASS", "REASON": "fine"}
    assert "got 'PASS or FAIL'" in (VERDICT.parse("VERDICT: PASS or FAIL\nREASON: one sentence").error or "")
    assert not VERDICT.parse("VERDICT: **PASS**\nREASON: x").ok
    assert not VERDICT.parse("The answer is fine. VERDICT: PASS\nREASON: x").ok


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_prompt_shows_the_format_it_parses_and_its_own_lines_never_parse(fmt: AnswerFormat) -> None:
    rendered = fmt.render()
    shown = rendered.splitlines()[-len(fmt.fields) :]
    assert shown == [f.line for f in fmt.fields]
    assert not fmt.parse(rendered).ok and not fmt.parse("\n".join(shown)).ok


def test_every_shipped_prompt_writes_its_format_into_the_system_block() -> None:
    for prompt in (load_prompt("similarity"), load_prompt("tool_calling_correctness"), load_quality_prompt()):
        assert prompt.answer.render() in prompt.system and "{answer_format}" not in prompt.system
        assert prompt.version == "v2"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("RATING: integer 10-1", "integer needs LOW-HIGH"),
        ("RATING: choice PASS", "choice needs A|B"),
        ("EXPLANATION: text why", "must be an integer or a choice"),
        ("RATING: integer 1-10\nrating: integer 1-3", "declared twice"),
        ("RATING = 1-10", "expected 'KEY: integer|choice|text"),
    ],
)
def test_a_bad_answer_block_is_refused_naming_the_problem(spec: str, message: str) -> None:
    with pytest.raises(AnswerFormatError, match=message):
        AnswerFormat.from_spec(spec)


def test_a_prompt_file_without_an_answer_block_is_refused() -> None:
    with pytest.raises(JudgeError, match="'=== answer ==='"):
        parse_prompt_file("x", "v9", "=== system ===\nRate it.\n=== user ===\n{task}")
    with pytest.raises(JudgeError, match="answer_format"):
        parse_prompt_file("x", "v9", "=== system ===\nRate.\n=== answer ===\nR: integer 1-2\n=== user ===\n{task}")


_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=60)


@given(score=st.integers(1, 10), explanation=_TEXT)
def test_property_every_rating_in_range_is_read_back(score: int, explanation: str) -> None:
    assume(explanation.strip() and not explanation.strip().startswith("<") and ":" not in explanation)
    parsed = SIMILARITY.parse(f"RATING: {score}\nEXPLANATION: {explanation}")
    assert parsed.ok and parsed.values["RATING"] == score


@given(prefix=_TEXT, score=st.integers(1, 10))
def test_property_text_before_the_rating_line_is_never_scored(prefix: str, score: int) -> None:
    assume(prefix.strip())
    parsed = SIMILARITY.parse(f"{prefix} RATING: {score}\nEXPLANATION: x")
    assert not parsed.ok


@given(reply=st.text(max_size=200))
def test_property_a_parsed_reply_is_exactly_its_lines(reply: str) -> None:
    """Whatever the reply, a parse either fails or found each field's line exactly once, the rating first."""
    parsed = SIMILARITY.parse(reply)
    if parsed.ok:
        lines = [line.strip() for line in reply.splitlines() if line.strip()]
        assert lines[0].split(":", 1)[0].strip().upper() == "RATING"
        assert lines[0].split(":", 1)[1].strip() == str(parsed.values["RATING"])
        assert sum(1 for line in lines if line.split(":", 1)[0].strip().upper() == "RATING") == 1
