"""The quality filter's rule, the judge-reply parser and teacher agreement (pure)."""

from __future__ import annotations

import pytest

from dataflywheel.feedback.normalize import normalize_output
from dataflywheel.feedback.quality import PassRule, decide, load_quality_prompt, parse_verdict, teacher_agreement
from tests.factories import TOOLS, tool_record


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("VERDICT: PASS\nREASON: fine", ("PASS", "fine")),
        ("verdict : fail\nreason: wrong tool", ("FAIL", "wrong tool")),
        # Not the format: counted as unparsable with the reason, never read as a verdict.
        ("**VERDICT:** PASS\nREASON: x", (None, "unparsable reply: the reply does not start with the VERDICT line")),
        ("VERDICT: **PASS**\nREASON: x", (None, "unparsable reply: VERDICT must be one of PASS / FAIL")),
        ("VERDICT: PASS or FAIL\nREASON: one sentence", (None, "unparsable reply: VERDICT must be one of")),
        ("VERDICT = PASS\nREASON: x", (None, "unparsable reply: the reply does not start with the VERDICT line")),
        ("VERDICT: PASS", (None, "unparsable reply: no REASON line")),
        ("I think it passes.", (None, "unparsable reply: the reply does not start with the VERDICT line")),
        ("", (None, "unparsable reply: empty reply")),
    ],
)
def test_parse_verdict(reply: str, expected: tuple[str | None, str]) -> None:
    verdict, reason = parse_verdict(load_quality_prompt(), reply)
    assert verdict == expected[0] and reason is not None and reason.startswith(expected[1])


def test_the_rule() -> None:
    record = tool_record("where is my order", "Beta", {"query": "order"})
    same = normalize_output('<tool_call>{"name": "Beta", "arguments": {"query": "order"}}</tool_call>', TOOLS)
    other = normalize_output('<tool_call>{"name": "Gamma", "arguments": {"query": "order"}}</tool_call>', TOOLS)
    text = normalize_output("Your order is on its way.", TOOLS)
    unknown = normalize_output('<tool_call>{"name": "Omega", "arguments": {}}</tool_call>', TOOLS)
    repaired = normalize_output("<Beta query='order'/>", TOOLS)
    assert teacher_agreement(record, same) is True and teacher_agreement(record, other) is False
    assert teacher_agreement(record, text) is False  # the teacher routed it: a text reply is not the same
    rule = PassRule()
    assert decide(same, True, None, rule).passed
    assert decide(other, False, None, rule).reasons == ("teacher: calls other tools than the logged answer",)
    assert decide(other, False, None, PassRule(require_teacher_agreement=False)).passed
    assert not decide(unknown, None, None, rule).passed and not decide(unknown, None, None, rule).schema_valid
    assert repaired.status.value == "repaired"
    assert decide(repaired, True, None, rule).passed
    assert not decide(repaired, True, None, PassRule(allow_repaired=False)).passed
    judged_fail = decide(same, True, ("FAIL", "wrong id", "VERDICT: FAIL"), rule)
    assert not judged_fail.passed and judged_fail.judge == "FAIL" and "wrong id" in judged_fail.reasons[0]
    no_verdict = decide(same, True, (None, None, "hmm"), rule)
    assert not no_verdict.passed and "no verdict" in no_verdict.reasons[0]
    assert decide(same, True, (None, None, "hmm"), PassRule(require_judge=False)).passed


def test_the_prompt_is_versioned_and_renders() -> None:
    prompt = load_quality_prompt()
    assert prompt.version == "v2" and "VERDICT: <PASS or FAIL>" in prompt.system
    messages = prompt.render(system="s", conversation="user: hi", tools="[]", answer="{}")
    assert "user: hi" in messages[1]["content"]
