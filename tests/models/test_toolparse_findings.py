"""The tool-call reader's findings: each recognizer reports the expected codes, with spans on the right text."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataflywheel.models.toolparse import RECOGNIZERS, FindingCode, ParsedOutput, format_tool_call, read_tool_calls
from dataflywheel.models.toolparse.bare_json import BareJson
from dataflywheel.models.toolparse.callsyntax import CallSyntax
from dataflywheel.models.toolparse.findings import NOT_PROBLEMS
from dataflywheel.models.toolparse.scan import Recognizer
from dataflywheel.models.toolparse.tags import FunctionTags, Markers, ToolCallBlocks
from dataflywheel.models.toolparse.xml import ToolTags
from tests.models.test_toolparse import _FRAGMENTS, RET, TALK, TOOLS

F = FindingCode
RET_ARGS = {"query": "refund", "user_id": "4165"}


def _spans(out: ParsedOutput, text: str) -> list[tuple[FindingCode, str]]:
    return [(f.code, text[f.span[0] : f.span[1]]) for f in out.findings]


CASES: list[tuple[str, Recognizer, str, list[tuple[FindingCode, str]]]] = [
    (
        "unclosed block",
        ToolCallBlocks(),
        '<tool_call>{"name": "HandleOtherTalk", "arguments": {"message": "m"}}',
        [(F.UNCLOSED_TAG, '<tool_call>{"name": "HandleOtherTalk", "arguments": {"message": "m"}}')],
    ),
    (
        "stray text in a block",
        ToolCallBlocks(),
        '<tool_call>{"name": "HandleOtherTalk", "arguments": {"message": "m"}}}</tool_call>',
        [(F.IGNORED_TEXT, "}")],
    ),
    (
        "unreadable block",
        ToolCallBlocks(),
        "x <tool_call>call the desk</tool_call>",
        [(F.UNREADABLE_BLOCK, "<tool_call>call the desk</tool_call>")],
    ),
    (
        "fenced block, functions prefix",
        ToolCallBlocks(),
        '<tool_call>```json\n{"name": "functions.HandleOtherTalk", "arguments": {"message": "m"}}\n```</tool_call>',
        [
            (
                F.NAME_PREFIX,
                '<tool_call>```json\n{"name": "functions.HandleOtherTalk", "arguments": {"message": '
                '"m"}}\n```</tool_call>',
            ),
            (
                F.FENCED_CALL,
                '<tool_call>```json\n{"name": "functions.HandleOtherTalk", "arguments": {"message": '
                '"m"}}\n```</tool_call>',
            ),
        ],
    ),
    (
        "function tag",
        FunctionTags(),
        'Sure <function=HandleOtherTalk>{"message": "m"}</function>',
        [(F.FUNCTION_TAG, '<function=HandleOtherTalk>{"message": "m"}</function>')],
    ),
    (
        "function tag without arguments",
        FunctionTags(),
        "<function=HandleOtherTalk></function>",
        [
            (F.EMPTY_ARGUMENTS, "<function=HandleOtherTalk></function>"),
            (F.FUNCTION_TAG, "<function=HandleOtherTalk></function>"),
        ],
    ),
    (
        "xml text body",
        ToolTags(),
        "<HandleOtherTalk>Hello!</HandleOtherTalk>",
        [(F.XML_TEXT_BODY, "Hello!"), (F.XML_TAG, "<HandleOtherTalk>Hello!</HandleOtherTalk>")],
    ),
    (
        "xml cut off in a value",
        ToolTags(),
        '<ToProductQAAssistant query="warr',
        [
            (F.TRUNCATED, ""),
            (F.XML_TAG, '<ToProductQAAssistant query="warr'),
            (F.CUT_OFF, '<ToProductQAAssistant query="warr'),
        ],
    ),
    (
        "call syntax with keywords",
        CallSyntax(),
        'ToProductQAAssistant(query="warr")',
        [(F.CALL_SYNTAX, 'ToProductQAAssistant(query="warr")')],
    ),
    (
        "call syntax unclosed",
        CallSyntax(),
        'ToProductQAAssistant({"query": "x"}',
        [(F.TRUNCATED, ""), (F.CALL_SYNTAX, 'ToProductQAAssistant({"query": "x"}')],
    ),
    (
        "bare JSON, single quotes and a trailing comma",
        BareJson(),
        "ok {'name': 'HandleOtherTalk', 'arguments': {'message': 'm',}}",
        [
            (F.SINGLE_QUOTES, "'name'"),
            (F.SINGLE_QUOTES, "'HandleOtherTalk'"),
            (F.SINGLE_QUOTES, "'arguments'"),
            (F.SINGLE_QUOTES, "'message'"),
            (F.SINGLE_QUOTES, "'m'"),
            (F.TRAILING_COMMA, ","),
            (F.BARE_JSON, "{'name': 'HandleOtherTalk', 'arguments': {'message': 'm',}}"),
        ],
    ),
    (
        "bare JSON cut off in a string",
        BareJson(),
        '{"name": "ToReturnProcessing", "arguments": {"query": "Why the ho',
        [
            (F.TRUNCATED, ""),
            (F.BARE_JSON, '{"name": "ToReturnProcessing", "arguments": {"query": "Why the ho'),
            (F.CUT_OFF, '{"name": "ToReturnProcessing", "arguments": {"query": "Why the ho'),
        ],
    ),
    (
        "bare JSON, arguments as a string, flat arguments",
        BareJson(),
        '{"name": "HandleOtherTalk", "arguments": "{\\"message\\": \\"m\\"}"} {"name": "ToReturnProcessing", '
        '"query": "q", "user_id": "1"}',
        [
            (F.ARGUMENTS_AS_STRING, '{"name": "HandleOtherTalk", "arguments": "{\\"message\\": \\"m\\"}"}'),
            (F.FLAT_ARGUMENTS, '{"name": "ToReturnProcessing", "query": "q", "user_id": "1"}'),
            (F.BARE_JSON, '{"name": "HandleOtherTalk", "arguments": "{\\"message\\": \\"m\\"}"}'),
            (F.BARE_JSON, '{"name": "ToReturnProcessing", "query": "q", "user_id": "1"}'),
        ],
    ),
    (
        "names: case corrected, unknown kept",
        BareJson(),
        '{"name": "handleothertalk", "arguments": {}} {"name": "Nope", "arguments": {}}',
        [
            (F.TOOL_NAME_CASE, '{"name": "handleothertalk", "arguments": {}}'),
            (F.UNKNOWN_TOOL, '{"name": "Nope", "arguments": {}}'),
            (F.BARE_JSON, '{"name": "handleothertalk", "arguments": {}}'),
            (F.BARE_JSON, '{"name": "Nope", "arguments": {}}'),
        ],
    ),
    ("a marker alone", Markers(), "<|python_tag|>", []),
]


@pytest.mark.parametrize(("recognizer", "text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_recognizer_reports_its_codes_on_the_right_text(
    recognizer: Recognizer, text: str, expected: list[tuple[FindingCode, str]]
) -> None:
    alone = read_tool_calls(text, TOOLS, recognizers=[recognizer])
    assert _spans(alone, text) == expected
    assert _spans(read_tool_calls(text, TOOLS), text) == expected  # the others find nothing more


def test_pasted_definitions_are_findings_when_asked_for() -> None:
    definition = {**TOOLS[3], "arguments": RET_ARGS}
    text = json.dumps(TOOLS[0]) + " " + json.dumps(definition)
    out = read_tool_calls(text, TOOLS, pasted_definitions=True)
    assert [(c.name, c.arguments, c.format) for c in out.calls] == [(RET, RET_ARGS, "pasted_definition")]
    assert _spans(out, text) == [
        (F.PASTED_DEFINITION, json.dumps(definition)),
        (F.PASTED_WITHOUT_VALUES, json.dumps(TOOLS[0])),
    ]
    assert out.content is None
    plain = read_tool_calls(text, TOOLS)
    assert F.PASTED_DEFINITION not in plain.codes()
    both = json.dumps([{**TOOLS[2], "arguments": RET_ARGS}, definition])
    assert read_tool_calls(both, TOOLS, pasted_definitions=True).codes() == [F.PASTED_AMBIGUOUS]


def test_problems_are_the_details_of_the_findings_that_repair_or_drop() -> None:
    out = read_tool_calls("<tool_call>{'name': 'Nope', 'arguments': {'a': 1,}}", TOOLS)
    assert out.problems == ["missing </tool_call> closing tag", "unknown tool 'Nope'", "single-quoted JSON repaired",
                            "trailing comma removed"]  # fmt: skip
    assert out.problems == list(dict.fromkeys(f.detail for f in out.findings if f.code not in NOT_PROBLEMS))


def test_a_reader_failure_is_a_finding_not_an_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr("dataflywheel.models.toolparse.scan.Scan.run", broken)
    out = read_tool_calls("some text", TOOLS)
    assert out.codes() == [F.INTERNAL_ERROR] and out.calls == [] and out.content == "some text"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=3), max_size=40).map("".join), st.booleans())
def test_spans_lie_within_the_output_and_calls_span_their_text(text: str, pasted: bool) -> None:
    for tools in (TOOLS, None):
        out = read_tool_calls(text, tools, pasted_definitions=pasted)
        for finding in out.findings:
            assert 0 <= finding.span[0] <= finding.span[1] <= len(text), finding
        for call in out.calls:
            assert 0 <= call.span[0] <= call.span[1] <= len(text)
            if not pasted:
                assert call.raw == text[call.span[0] : call.span[1]]


_names = st.sampled_from([RET, TALK, "ToProductQAAssistant"])
_args = st.dictionaries(
    st.sampled_from(["query", "user_id", "message", "name", "type"]), st.text(max_size=8), max_size=3
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_names, _args), min_size=1, max_size=3), st.sampled_from(["", "\n", "  "]))
def test_the_canonical_shortcut_reads_what_the_recognizers_read(
    calls: list[tuple[str, dict[str, Any]]], sep: str
) -> None:
    text = sep.join(format_tool_call(name, args) for name, args in calls)
    fast = read_tool_calls(text, TOOLS)
    general = read_tool_calls(text, TOOLS, recognizers=list(RECOGNIZERS))
    assert fast == general
