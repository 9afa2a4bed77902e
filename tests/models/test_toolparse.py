"""The tool-call parser on what small models really write, plus properties (never raises; canonical round trip)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataflywheel.models.toolparse import ParsedOutput, format_tool_call, parse_tool_calls, tool_names


def _tool(name: str, *params: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} tool",
            "parameters": {
                "type": "object",
                "properties": {p: {"type": "string", "description": p} for p in params},
                "required": list(params),
            },
        },
    }


TOOLS = [
    _tool("HandleOtherTalk", "message"),
    _tool("ToProductQAAssistant", "query"),
    _tool("ToOrderStatusAssistant", "query", "user_id"),
    _tool("ToReturnProcessing", "query", "user_id"),
]
RET = "ToReturnProcessing"
QA = "ToProductQAAssistant"
ORD = "ToOrderStatusAssistant"
TALK = "HandleOtherTalk"
R_ARGS = {"query": "Why the hold up with my return?", "user_id": "4165"}
SCHEMA_TEXT = (
    '{"name": "ToReturnProcessing", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}'
)


@dataclass
class Case:
    id: str
    text: str
    calls: list[tuple[str, dict[str, Any]]]
    content: str | None = None
    problems: list[str] = field(default_factory=list)
    """Substrings each expected in some problem; [] means no problem at all is expected."""


def _canon(name: str, args: dict[str, Any]) -> str:
    return format_tool_call(name, args)


CASES = [
    # --- canonical <tool_call> blocks
    Case("canonical", _canon(RET, R_ARGS), [(RET, R_ARGS)]),
    Case(
        "canonical-two",
        _canon(RET, R_ARGS) + "\n" + _canon(QA, {"query": "specs"}),
        [(RET, R_ARGS), (QA, {"query": "specs"})],
    ),
    Case(
        "no-closing-tag",
        '<tool_call>\n{"name": "ToProductQAAssistant", "arguments": {"query": "x"}}',
        [(QA, {"query": "x"})],
        problems=["missing </tool_call>"],
    ),
    Case(
        "several-unclosed",
        '<tool_call>{"name": "ToProductQAAssistant", "arguments": {"query": "a"}}\n'
        '<tool_call>{"name": "HandleOtherTalk", "arguments": {"message": "b"}}',
        [(QA, {"query": "a"}), (TALK, {"message": "b"})],
        problems=["missing </tool_call>"],
    ),
    Case(
        "compact-no-newlines",
        '<tool_call>{"name":"HandleOtherTalk","arguments":{"message":"hi"}}</tool_call>',
        [(TALK, {"message": "hi"})],
    ),
    Case(
        "text-before-and-after",
        "Let me check that for you.\n" + _canon(ORD, {"query": "status", "user_id": "1"}) + "\nOne moment.",
        [(ORD, {"query": "status", "user_id": "1"})],
        content="Let me check that for you.\n\nOne moment.",
    ),
    Case(
        "fence-inside-tag",
        '<tool_call>\n```json\n{"name": "ToProductQAAssistant", "arguments": {"query": "size"}}\n```\n</tool_call>',
        [(QA, {"query": "size"})],
    ),
    Case(
        "extra-closing-brace",
        '<tool_call>\n{"name": "ToProductQAAssistant", "arguments": {"query": "x"}}}\n</tool_call>',
        [(QA, {"query": "x"})],
        problems=["ignored text in <tool_call> block"],
    ),
    Case(
        "missing-closing-brace-before-tag",
        '<tool_call>\n{"name": "ToProductQAAssistant", "arguments": {"query": "x"}\n</tool_call>',
        [(QA, {"query": "x"})],
        problems=["truncated JSON closed"],
    ),
    Case(
        "closing-tag-inside-string",
        '<tool_call>\n{"name": "HandleOtherTalk", "arguments": {"message": "a </tool_call> <tool_call> b"}}'
        "\n</tool_call>",
        [(TALK, {"message": "a </tool_call> <tool_call> b"})],
    ),
    Case(
        "unreadable-block",
        "<tool_call>I would call the return tool</tool_call>",
        [],
        problems=["unreadable <tool_call> block"],
    ),
    Case(
        "list-in-tag",
        '<tool_call>[{"name": "HandleOtherTalk", "arguments": {"message": "x"}}]</tool_call>',
        [(TALK, {"message": "x"})],
    ),
    Case(
        "openai-shape-in-tag",
        '<tool_call>{"type": "function", "function": {"name": "ToProductQAAssistant", '
        '"arguments": "{\\"query\\": \\"q\\"}"}}</tool_call>',
        [(QA, {"query": "q"})],
        problems=["arguments given as a JSON string"],
    ),
    Case(
        "name-only-in-tag",
        '<tool_call>{"name": "HandleOtherTalk"}</tool_call>',
        [(TALK, {})],
        problems=["no arguments"],
    ),
    # --- bare JSON
    Case(
        "bare-arguments",
        '{"name": "ToProductQAAssistant", "arguments": {"query": "warranty"}}',
        [(QA, {"query": "warranty"})],
    ),
    Case(
        "bare-parameters",
        '{"name": "ToReturnProcessing", "parameters": {"query": "refund", "user_id": "4165"}}',
        [(RET, {"query": "refund", "user_id": "4165"})],
    ),
    Case(
        "bare-list",
        '[{"name": "ToProductQAAssistant", "arguments": {"query": "a"}}, '
        '{"name": "HandleOtherTalk", "parameters": {"message": "b"}}]',
        [(QA, {"query": "a"}), (TALK, {"message": "b"})],
    ),
    Case(
        "bare-openai-shape",
        '{"type": "function", "function": {"name": "HandleOtherTalk", "arguments": {"message": "hey"}}}',
        [(TALK, {"message": "hey"})],
    ),
    Case(
        "code-fence-json",
        '```json\n{"name": "ToProductQAAssistant", "arguments": {"query": "specs"}}\n```',
        [(QA, {"query": "specs"})],
    ),
    Case(
        "code-fence-plain",
        'Here:\n```\n{"name": "ToProductQAAssistant", "arguments": {"query": "specs"}}\n```\nDone.',
        [(QA, {"query": "specs"})],
        content="Here:\n\nDone.",
    ),
    Case(
        "code-fence-unclosed",
        '```json\n{"name": "ToProductQAAssistant", "arguments": {"query": "spe',
        [(QA, {"query": "spe"})],
        problems=["truncated JSON closed"],
    ),
    Case(
        "python-tag",
        '<|python_tag|>{"name": "ToReturnProcessing", "parameters": {"query": "r", "user_id": "9"}}',
        [(RET, {"query": "r", "user_id": "9"})],
    ),
    Case(
        "python-tag-eom",
        '<|python_tag|>{"name": "HandleOtherTalk", "parameters": {"message": "m"}}<|eom_id|>',
        [(TALK, {"message": "m"})],
    ),
    Case(
        "json-in-prose",
        'I will delegate this. {"name": "ToOrderStatusAssistant", "arguments": {"query": "where", "user_id": "4165"}}'
        " Thanks!",
        [(ORD, {"query": "where", "user_id": "4165"})],
        content="I will delegate this.  Thanks!",
    ),
    Case(
        "nested-braces-in-strings",
        '{"name": "HandleOtherTalk", "arguments": {"message": "use {x} and }{ and \\"q\\" ]"}}',
        [(TALK, {"message": 'use {x} and }{ and "q" ]'})],
    ),
    Case(
        "nested-object-arguments",
        '{"name": "Foo", "arguments": {"filter": {"a": [1, {"b": null}]}, "n": 2.5}}',
        [("Foo", {"filter": {"a": [1, {"b": None}]}, "n": 2.5})],
        problems=["unknown tool 'Foo'"],
    ),
    Case(
        "name-with-functions-prefix",
        '{"name": "functions.ToProductQAAssistant", "arguments": {"query": "x"}}',
        [(QA, {"query": "x"})],
    ),
    Case(
        "plain-json-not-a-call",
        'The answer is {"query": "not a call", "user_id": "1"}.',
        [],
        content='The answer is {"query": "not a call", "user_id": "1"}.',
    ),
    # --- broken JSON
    Case(
        "truncated-string",
        '<tool_call>\n{"name": "ToReturnProcessing", "arguments": {"query": "Why the ho',
        [(RET, {"query": "Why the ho"})],
        problems=["truncated JSON closed"],
    ),
    Case(
        "truncated-in-key",
        '{"name": "ToReturnProcessing", "arguments": {"query": "a", "us',
        [(RET, {"query": "a"})],
        problems=["truncated JSON closed"],
    ),
    Case(
        "truncated-after-colon",
        '{"name": "ToReturnProcessing", "arguments": {"query": "a", "user_id": ',
        [(RET, {"query": "a"})],
        problems=["truncated JSON closed"],
    ),
    Case(
        "truncated-literal",
        '{"name": "Foo", "arguments": {"flag": tr',
        [("Foo", {})],
        problems=["truncated JSON closed"],
    ),
    Case(
        "single-quoted",
        "{'name': 'ToProductQAAssistant', 'arguments': {'query': \"it's broken\"}}",
        [(QA, {"query": "it's broken"})],
        problems=["single-quoted JSON repaired"],
    ),
    Case(
        "single-quoted-apostrophe",
        "{'name': 'HandleOtherTalk', 'arguments': {'message': 'it's fine'}}",
        [(TALK, {"message": "it's fine"})],
        problems=["single-quoted"],
    ),
    Case(
        "python-literals",
        "{'name': 'Foo', 'arguments': {'a': True, 'b': None, 'c': False, 'd': [1, 2,],}}",
        [("Foo", {"a": True, "b": None, "c": False, "d": [1, 2]})],
        problems=["Python literals repaired", "trailing comma removed", "unknown tool 'Foo'"],
    ),
    Case(
        "unquoted-keys",
        '{name: "ToProductQAAssistant", arguments: {query: "x"}}',
        [(QA, {"query": "x"})],
        problems=["unquoted keys repaired"],
    ),
    Case(
        "unescaped-inner-quotes",
        '{"name": "HandleOtherTalk", "arguments": {"message": "He said "hi, there" to me"}}',
        [(TALK, {"message": 'He said "hi, there" to me'})],
        problems=["unescaped quote repaired"],
    ),
    Case(
        "arguments-json-string",
        '{"name": "ToReturnProcessing", "arguments": "{\\"query\\": \\"q\\", \\"user_id\\": \\"4165\\"}"}',
        [(RET, {"query": "q", "user_id": "4165"})],
        problems=["arguments given as a JSON string"],
    ),
    Case(
        "arguments-bad-string",
        '<tool_call>{"name": "ToReturnProcessing", "arguments": "refund please"}</tool_call>',
        [],
        problems=["not a JSON object: call skipped"],
    ),
    Case(
        "arguments-list",
        '<tool_call>{"name": "ToReturnProcessing", "arguments": ["a"]}</tool_call>',
        [],
        problems=["not an object (list): call skipped"],
    ),
    Case(
        "arguments-null",
        '<tool_call>{"name": "HandleOtherTalk", "arguments": null}</tool_call>',
        [(TALK, {})],
        problems=["null arguments"],
    ),
    Case(
        "schema-wrapped-values",
        '{"name": "ToReturnProcessing", "parameters": {"type": "object", '
        '"properties": {"query": "socks", "user_id": "4165"}}}',
        [(RET, {"query": "socks", "user_id": "4165"})],
        problems=["unwrapped from a JSON schema"],
    ),
    Case(
        "pasted-schema-is-not-a-call",
        SCHEMA_TEXT,
        [],
        content=SCHEMA_TEXT,
        problems=["is not a call"],
    ),
    # --- <function> tags
    Case(
        "function-inline",
        '<function>ToProductQAAssistant{"query": "warranty"}</function>',
        [(QA, {"query": "warranty"})],
    ),
    Case(
        "function-eq",
        '<function=ToReturnProcessing>{"query": "r", "user_id": "4165"}</function>',
        [(RET, {"query": "r", "user_id": "4165"})],
    ),
    Case("function-eq-unclosed", '<function=HandleOtherTalk>{"message": "hello"}', [(TALK, {"message": "hello"})]),
    Case(
        "function-name-attr", '<function name="HandleOtherTalk">{"message": "x"}</function>', [(TALK, {"message": "x"})]
    ),
    Case(
        "function-json-payload",
        '<function>{"name": "HandleOtherTalk", "arguments": {"message": "x"}}</function>',
        [(TALK, {"message": "x"})],
    ),
    Case(
        "function-two",
        '<function=ToProductQAAssistant>{"query": "a"}</function><function=HandleOtherTalk>{"message": "b"}</function>',
        [(QA, {"query": "a"}), (TALK, {"message": "b"})],
    ),
    # --- XML-like tool tags
    Case(
        "xml-self-closing",
        '<ToReturnProcessing query="Why the hold up?" user_id="4165"/>',
        [(RET, {"query": "Why the hold up?", "user_id": "4165"})],
    ),
    Case(
        "xml-open-only",
        "<ToReturnProcessing query='late refund' user_id='4165'>",
        [(RET, {"query": "late refund", "user_id": "4165"})],
    ),
    Case(
        "xml-paired-json",
        '<ToOrderStatusAssistant>{"query": "where", "user_id": "4165"}</ToOrderStatusAssistant>',
        [(ORD, {"query": "where", "user_id": "4165"})],
    ),
    Case(
        "xml-children",
        "<ToReturnProcessing><query>socks</query><user_id>4165</user_id></ToReturnProcessing>",
        [(RET, {"query": "socks", "user_id": "4165"})],
    ),
    Case(
        "xml-text-body-one-param",
        "<HandleOtherTalk>Hello! How can I help?</HandleOtherTalk>",
        [(TALK, {"message": "Hello! How can I help?"})],
        problems=["used as argument 'message'"],
    ),
    Case(
        "xml-entities",
        '<ToProductQAAssistant query="size &amp; fit &quot;M&quot;"/>',
        [(QA, {"query": 'size & fit "M"'})],
    ),
    Case(
        "xml-truncated",
        '<ToReturnProcessing query="Why the ho',
        [(RET, {"query": "Why the ho"})],
        problems=["truncated tag closed"],
    ),
    Case(
        "xml-with-text",
        'Sure. <ToProductQAAssistant query="specs"/> Anything else?',
        [(QA, {"query": "specs"})],
        content="Sure.  Anything else?",
    ),
    Case("xml-unknown-tag-is-text", '<b>bold</b> <Foo query="x"/>', [], content='<b>bold</b> <Foo query="x"/>'),
    # --- call syntax
    Case("functions-dot-call", 'functions.ToProductQAAssistant({"query": "x"})', [(QA, {"query": "x"})]),
    Case(
        "known-call-json",
        'ToReturnProcessing({"query": "r", "user_id": "4165"})',
        [(RET, {"query": "r", "user_id": "4165"})],
    ),
    Case(
        "known-call-kwargs", 'ToReturnProcessing(query="r", user_id="4165")', [(RET, {"query": "r", "user_id": "4165"})]
    ),
    Case("known-call-positional-one-param", "HandleOtherTalk('hi there')", [(TALK, {"message": "hi there"})]),
    Case(
        "known-call-truncated",
        'ToProductQAAssistant(query="warr',
        [(QA, {"query": "warr"})],
        problems=["truncated call closed"],
    ),
    Case("known-eq-json", 'ToProductQAAssistant={"query": "x"}', [(QA, {"query": "x"})]),
    Case("function-eq-prefix", 'function=ToProductQAAssistant {"query": "x"}', [(QA, {"query": "x"})]),
    Case("unknown-call-is-text", 'print("hello")', [], content='print("hello")'),
    Case(
        "functions-dot-unknown",
        'functions.Lookup({"id": 3})',
        [("Lookup", {"id": 3})],
        problems=["unknown tool 'Lookup'"],
    ),
    Case("python-fence-call", '```python\nToProductQAAssistant(query="x")\n```', [(QA, {"query": "x"})]),
    Case(
        "pythonic-list",
        '[ToReturnProcessing(query="a", user_id="4165"), HandleOtherTalk(message="b")]',
        [(RET, {"query": "a", "user_id": "4165"}), (TALK, {"message": "b"})],
    ),
    # --- shapes
    Case(
        "flat-arguments",
        '{"name": "ToReturnProcessing", "query": "a", "user_id": "4165"}',
        [(RET, {"query": "a", "user_id": "4165"})],
        problems=["given beside its name"],
    ),
    Case("flat-unknown-is-data", '{"name": "Bob", "age": 3}', [], content='{"name": "Bob", "age": 3}'),
    Case(
        "pasted-full-tool",
        json.dumps(TOOLS[0]),
        [],
        content=json.dumps(TOOLS[0]),
        problems=["JSON schema of 'HandleOtherTalk' is not a call"],
    ),
    # --- names
    Case("unknown-tool-kept", _canon("Foo", {"a": 1}), [("Foo", {"a": 1})], problems=["unknown tool 'Foo'"]),
    Case(
        "case-corrected",
        _canon("toreturnprocessing", R_ARGS),
        [(RET, R_ARGS)],
        problems=["corrected to 'ToReturnProcessing'"],
    ),
    # --- content only
    Case("empty", "", []),
    Case("whitespace", "  \n\t ", []),
    Case("plain-text", "Hello! How can I help you today?", [], content="Hello! How can I help you today?"),
    Case("garbage", "}{][<tool_call<<>>\x00\ufffd{{{", [], content="}{][<tool_call<<>>\x00\ufffd{{{"),
    Case(
        "mention-is-not-a-call",
        "You could use ToReturnProcessing for that.",
        [],
        content="You could use ToReturnProcessing for that.",
    ),
    Case("unicode", _canon(TALK, {"message": "Grüße 👋 — ok"}), [(TALK, {"message": "Grüße 👋 — ok"})]),
]


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corpus(case: Case) -> None:
    out = parse_tool_calls(case.text, TOOLS)
    assert [(c.name, c.arguments) for c in out.calls] == case.calls
    assert out.content == case.content
    if case.problems:
        for expected in case.problems:
            assert any(expected in p for p in out.problems), (expected, out.problems)
    else:
        assert out.problems == []
    for call in out.calls:
        assert isinstance(call.arguments, dict)
        assert call.raw and call.raw in case.text


def test_raw_and_format() -> None:
    text = 'Hi <ToProductQAAssistant query="x"/> and ' + _canon(TALK, {"message": "m"})
    out = parse_tool_calls(text, TOOLS)
    assert [c.format for c in out.calls] == ["xml", "tool_call"]
    assert out.calls[0].raw == '<ToProductQAAssistant query="x"/>'
    assert out.calls[1].raw == _canon(TALK, {"message": "m"})
    assert out.content == "Hi  and"


def test_without_tools_nothing_is_unknown_and_tags_are_text() -> None:
    out = parse_tool_calls(_canon("Anything", {}) + ' <ToReturnProcessing query="x"/>')
    assert [(c.name, c.arguments) for c in out.calls] == [("Anything", {})]
    assert out.problems == []
    assert out.content == '<ToReturnProcessing query="x"/>'


def test_calls_keep_text_order() -> None:
    text = '<ToProductQAAssistant query="1"/> {"name": "HandleOtherTalk", "arguments": {"message": "2"}} ' + _canon(
        RET, R_ARGS
    )
    assert [c.name for c in parse_tool_calls(text, TOOLS).calls] == [QA, TALK, RET]


def test_tool_names() -> None:
    assert tool_names(TOOLS) == [TALK, QA, ORD, RET]
    assert tool_names([{"name": "flat"}, {"x": 1}, "junk"]) == ["flat"]  # type: ignore[list-item]
    assert tool_names(None) == []


def test_non_string_input_does_not_raise() -> None:
    out = parse_tool_calls(None)  # type: ignore[arg-type]
    assert out == ParsedOutput(content=None, calls=[], problems=[])


# ----------------------------------------------------------------------------------------------- properties

_json_scalar = st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.text(max_size=20)
_json_scalar = _json_scalar | st.floats(allow_nan=False, allow_infinity=False)
_json_value = st.recursive(
    _json_scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_arguments = st.dictionaries(st.text(max_size=10), _json_value, max_size=5)
_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,30}", fullmatch=True)
_calls = st.lists(st.tuples(_names, _arguments), min_size=1, max_size=3)

_FRAGMENTS = [
    "<tool_call>", "</tool_call>", "{", "}", "[", "]", '"', "'", ":", ",", "\\", '"name"', '"arguments"',
    '"parameters"', "name", "True", "null", "<function=", "<function>", "</function>", ">", "/>", "<",
    "ToReturnProcessing", "HandleOtherTalk", "functions.", "(", ")", "=", "```json\n", "```", "<|python_tag|>",
    ' query="', "\n", " ", "x", "1", "-", ".", "e", "\\u12", "\\ud83d",
]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text: str) -> None:
    out = parse_tool_calls(text, TOOLS)
    assert not any("internal parser error" in p for p in out.problems)
    assert all(isinstance(c.arguments, dict) and isinstance(c.name, str) for c in out.calls)
    assert out.content is None or (out.content and out.content == out.content.strip())


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=3), max_size=40).map("".join))
def test_tool_call_like_soup_never_raises(text: str) -> None:
    for tools in (TOOLS, None):
        out = parse_tool_calls(text, tools)
        assert not any("internal parser error" in p for p in out.problems), (text, out.problems)
        assert all(isinstance(c.arguments, dict) for c in out.calls)
        json.dumps([c.arguments for c in out.calls])  # always serializable


@settings(max_examples=150, deadline=None)
@given(_calls)
def test_canonical_calls_round_trip_exactly(calls: list[tuple[str, dict[str, Any]]]) -> None:
    text = "\n".join(format_tool_call(name, args) for name, args in calls)
    out = parse_tool_calls(text)
    assert [(c.name, c.arguments) for c in out.calls] == calls
    assert out.content is None
    assert out.problems == []


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(categories=["L", "N", "Zs"]), min_size=1, max_size=60), _calls)
def test_canonical_calls_with_content_round_trip(content: str, calls: list[tuple[str, dict[str, Any]]]) -> None:
    text = content + "\n" + "\n".join(format_tool_call(name, args) for name, args in calls)
    out = parse_tool_calls(text)
    assert [(c.name, c.arguments) for c in out.calls] == calls
    assert out.content == (content.strip() or None)


@settings(max_examples=100, deadline=None)
@given(_calls)
def test_canonical_calls_round_trip_through_all_formats(calls: list[tuple[str, dict[str, Any]]]) -> None:
    """The same calls written as bare JSON (a list) and in <function=...> tags read back the same."""
    bare = json.dumps([{"name": n, "arguments": a} for n, a in calls], ensure_ascii=False)
    tags = "".join(f"<function={n}>{json.dumps(a)}</function>" for n, a in calls)
    for text in (bare, tags):
        out = parse_tool_calls(text)
        assert [(c.name, c.arguments) for c in out.calls] == calls, text
