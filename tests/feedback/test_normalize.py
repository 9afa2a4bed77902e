"""Normalizing a student model's messy outputs: a corpus of what small models really write, plus properties
(never raises; canonical calls round-trip as ok; a normalized message normalizes to itself)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataflywheel.feedback import (
    NormalizeReport,
    NormalizeStatus,
    RejectReason,
    RepairCode,
    WarningCode,
    normalize_many,
    normalize_output,
)
from dataflywheel.feedback.normalize import entry_code
from dataflywheel.models.toolparse import format_tool_call
from dataflywheel.models.types import ToolChoice
from dataflywheel.synth.catalog import ORDERS, PRODUCT, RETURNS, SMALL_TALK, TOOLS

OK, REPAIRED, REJECTED = NormalizeStatus.OK, NormalizeStatus.REPAIRED, NormalizeStatus.REJECTED
R = RepairCode
TALK, PROD, ORD, RET = SMALL_TALK, PRODUCT, ORDERS, RETURNS
CALLBACK = "ScheduleCallback"
CALLBACK_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": CALLBACK,
        "description": "Books a phone call with a specialist.",
        "parameters": {
            "type": "object",
            "properties": {
                "phone": {"type": "string"},
                "slot": {"type": "integer", "description": "Hour of the day."},
                "urgent": {"type": "boolean"},
                "topic": {"type": "string", "enum": ["order", "return", "product"]},
            },
            "required": ["phone", "slot"],
            "additionalProperties": False,
        },
    },
}
STORES = "ListStores"
STORES_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {"name": STORES, "description": "Lists the shops.", "parameters": {"type": "object", "properties": {}}},
}
ALL_TOOLS = [*TOOLS, CALLBACK_TOOL, STORES_TOOL]
RET_ARGS = {"query": "Why the hold up with the return of my rain shell?", "user_id": "4165"}
ORD_ARGS = {"query": "Where is order 1182?", "user_id": "4165"}
PROD_ARGS = {"query": "Is the Ridgeline 2 tent waterproof?"}
TALK_ARGS = {"message": "Hi there!"}
_SAME: Any = object()


def _canon(name: str, args: dict[str, Any]) -> str:
    return format_tool_call(name, args)


def _definition(name: str, **extra: Any) -> dict[str, Any]:
    """A tool definition as the request carries it, pasted back (optionally with extra keys)."""
    tool = next(t for t in ALL_TOOLS if t["function"]["name"] == name)
    return {**json.loads(json.dumps(tool)), **extra}


def _message(name: str, arguments: Any, *, content: Any = None, call_id: str | None = "call_1") -> dict[str, Any]:
    call: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if call_id is not None:
        call["id"] = call_id
    return {"role": "assistant", "content": content, "tool_calls": [call]}


def _filled_definition(name: str, values: dict[str, Any]) -> dict[str, Any]:
    tool = _definition(name)
    tool["function"]["parameters"]["properties"] = dict(values)
    return tool


@dataclass
class Case:
    id: str
    raw: Any
    status: NormalizeStatus
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    repairs: set[str] = field(default_factory=set)
    """The exact set of repair codes expected."""
    reason: RejectReason | None = None
    content: Any = _SAME
    """The message's expected content; left unchecked by default."""
    tool_choice: ToolChoice = None
    tools: list[dict[str, Any]] | None = field(default_factory=lambda: ALL_TOOLS)
    warnings: set[str] = field(default_factory=set)


CASES = [
    # ---- 1. canonical <tool_call> blocks
    Case("canonical", _canon(RET, RET_ARGS), OK, [(RET, RET_ARGS)], content=None),
    Case(
        "canonical-compact",
        '<tool_call>{"name":"HandleSmallTalk","arguments":{"message":"Hi there!"}}</tool_call>',
        OK,
        [(TALK, TALK_ARGS)],
    ),
    Case("canonical-leading-chatter", "Sure! " + _canon(ORD, ORD_ARGS), OK, [(ORD, ORD_ARGS)], content="Sure!"),
    Case(
        "canonical-text-around",
        "Let me check.\n" + _canon(PROD, PROD_ARGS) + "\nOne moment.",
        OK,
        [(PROD, PROD_ARGS)],
        content="Let me check.\n\nOne moment.",
    ),
    Case(
        "canonical-two-calls-kept-in-order",
        _canon(PROD, PROD_ARGS) + "\n" + _canon(RET, RET_ARGS),
        OK,
        [(PROD, PROD_ARGS), (RET, RET_ARGS)],
    ),
    Case(
        "canonical-duplicate-deduped",
        _canon(RET, RET_ARGS) + "\n" + _canon(RET, RET_ARGS),
        REPAIRED,
        [(RET, RET_ARGS)],
        {R.DUPLICATE_CALL},
    ),
    Case(
        "canonical-nested-braces-in-strings",
        _canon(TALK, {"message": 'use {x} and }{ and "q" ] [ {"name": "ToReturnsDesk"}'}),
        OK,
        [(TALK, {"message": 'use {x} and }{ and "q" ] [ {"name": "ToReturnsDesk"}'})],
    ),
    Case(
        "canonical-tags-inside-strings",
        _canon(TALK, {"message": "a </tool_call> <tool_call> <ToReturnsDesk query='x'/> b"}),
        OK,
        [(TALK, {"message": "a </tool_call> <tool_call> <ToReturnsDesk query='x'/> b"})],
    ),
    Case("canonical-unicode", _canon(TALK, {"message": "Grüße 👋 — ok"}), OK, [(TALK, {"message": "Grüße 👋 — ok"})]),
    Case(
        "canonical-unclosed-tag",
        '<tool_call>\n{"name": "ToProductAdvisor", "arguments": {"query": "Is the Ridgeline 2 tent waterproof?"}}',
        REPAIRED,
        [(PROD, PROD_ARGS)],
        {R.UNCLOSED_TAG},
    ),
    Case(
        "canonical-case-insensitive-name",
        _canon("toreturnsdesk", RET_ARGS),
        REPAIRED,
        [(RET, RET_ARGS)],
        {R.TOOL_NAME_CASE},
    ),
    Case(
        "canonical-functions-prefix",
        _canon("functions.ToReturnsDesk", RET_ARGS),
        REPAIRED,
        [(RET, RET_ARGS)],
        {R.TOOL_NAME_PREFIX},
    ),
    Case(
        "canonical-schema-wrapped-arguments",
        _canon(PROD, {"type": "object", "properties": PROD_ARGS}),
        REPAIRED,
        [(PROD, PROD_ARGS)],
        {R.SCHEMA_ECHO},
    ),
    Case(
        "canonical-unknown-tool",
        _canon("ToRefundsDesk", RET_ARGS),
        REJECTED,
        reason=RejectReason.UNKNOWN_TOOL,
    ),
    Case("canonical-missing-required", _canon(RET, {"query": "refund"}), REJECTED, reason=RejectReason.SCHEMA_ERROR),
    Case(
        "canonical-unknown-argument-is-a-warning",
        _canon(PROD, {**PROD_ARGS, "user_id": "4165"}),
        OK,
        [(PROD, {**PROD_ARGS, "user_id": "4165"})],
        warnings={WarningCode.UNKNOWN_ARGUMENT},
    ),
    Case(
        "canonical-additional-properties-false",
        _canon(CALLBACK, {"phone": "555", "slot": 9, "name": "Ann"}),
        REJECTED,
        reason=RejectReason.SCHEMA_ERROR,
    ),
    Case(
        "canonical-enum-violation",
        _canon(CALLBACK, {"phone": "555", "slot": 9, "topic": "billing"}),
        REJECTED,
        reason=RejectReason.SCHEMA_ERROR,
    ),
    Case(
        "canonical-schema-coercions",
        _canon(CALLBACK, {"phone": 5550100, "slot": "9", "urgent": "true"}),
        REPAIRED,
        [(CALLBACK, {"phone": "5550100", "slot": 9, "urgent": True})],
        {R.SCHEMA_COERCION},
    ),
    # ---- 2. XML-like tags named after the tool
    Case(
        "xml-self-closing",
        '<ToReturnsDesk query="Why the hold up with the return of my rain shell?" user_id="4165"/>',
        REPAIRED,
        [(RET, RET_ARGS)],
        {R.XML_TAG_CALL},
        content=None,
    ),
    Case(
        "xml-children",
        "<ToProductAdvisor><query>Is the Ridgeline 2 tent waterproof?</query></ToProductAdvisor>",
        REPAIRED,
        [(PROD, PROD_ARGS)],
        {R.XML_TAG_CALL},
    ),
    Case(
        "xml-open-only",
        "<ToOrderTracking query='Where is order 1182?' user_id='4165'>",
        REPAIRED,
        [(ORD, ORD_ARGS)],
        {R.XML_TAG_CALL},
    ),
    Case(
        "xml-json-body",
        '<ToOrderTracking>{"query": "Where is order 1182?", "user_id": "4165"}</ToOrderTracking>',
        REPAIRED,
        [(ORD, ORD_ARGS)],
        {R.XML_TAG_CALL},
    ),
    Case(
        "xml-text-body-one-parameter",
        "<HandleSmallTalk>Hi there!</HandleSmallTalk>",
        REPAIRED,
        [(TALK, TALK_ARGS)],
        {R.XML_TAG_CALL, R.XML_TEXT_BODY},
    ),
    Case(
        "xml-entities",
        '<ToProductAdvisor query="size &amp; fit &quot;M&quot;"/>',
        REPAIRED,
        [(PROD, {"query": 'size & fit "M"'})],
        {R.XML_TAG_CALL},
    ),
    Case(
        "xml-extra-attribute-kept-with-warning",
        '<ToProductAdvisor query="Is the Ridgeline 2 tent waterproof?" user_id="4165"/>',
        REPAIRED,
        [(PROD, {**PROD_ARGS, "user_id": "4165"})],
        {R.XML_TAG_CALL},
        warnings={WarningCode.UNKNOWN_ARGUMENT},
    ),
    Case(
        "xml-with-chatter",
        'Sure. <ToProductAdvisor query="Is the Ridgeline 2 tent waterproof?"/> Anything else?',
        REPAIRED,
        [(PROD, PROD_ARGS)],
        {R.XML_TAG_CALL},
        content="Sure.  Anything else?",
    ),
    Case(
        "xml-missing-required-attribute",
        '<ToReturnsDesk query="refund for my boots"/>',
        REJECTED,
        reason=RejectReason.SCHEMA_ERROR,
    ),
    Case(
        "xml-truncated-attribute",
        '<ToReturnsDesk query="Why the hold up with the ret',
        REJECTED,
        reason=RejectReason.TRUNCATED,
    ),
    Case(
        "xml-wrong-case-tag-is-not-guessed",
        '<toreturnsdesk query="refund" user_id="4165"/>',
        REJECTED,
        reason=RejectReason.UNPARSEABLE,
    ),
    Case("xml-unknown-tag", '<ToRefunds query="x" user_id="4165"/>', REJECTED, reason=RejectReason.UNPARSEABLE),
    # ---- 3. <function> tags and call syntax
    Case(
        "function-inline",
        '<function>ToProductAdvisor{"query": "Is the Ridgeline 2 tent waterproof?"}</function>',
        REPAIRED,
        [(PROD, PROD_ARGS)],
        {R.FUNCTION_TAG_CALL},
    ),
    Case(
        "function-inline-unclosed",
        '<function>ToOrderTracking{"query": "Where is order 1182?", "user_id": "4165"}',
        REPAIRED,
        [(ORD, ORD_ARGS)],
        {R.FUNCTION_TAG_CALL},
    ),
    Case(
        "function-eq",
        '<function=ToReturnsDesk>{"query": "Why the hold up with the return of my rain shell?", "user_id": "4165"}'
        "</function>",
        REPAIRED,
        [(RET, RET_ARGS)],
        {R.FUNCTION_TAG_CALL},
    ),
    Case(
        "function-name-attribute",
        '<function name="HandleSmallTalk">{"message": "Hi there!"}</function>',
        REPAIRED,
        [(TALK, TALK_ARGS)],
        {R.FUNCTION_TAG_CALL},
    ),
    Case(
        "function-two-tags",
        '<function=ToProductAdvisor>{"query": "Is the Ridgeline 2 tent waterproof?"}</function>'
        '<function=HandleSmallTalk>{"message": "Hi there!"}</function>',
        REPAIRED,
        [(PROD, PROD_ARGS), (TALK, TALK_ARGS)],
        {R.FUNCTION_TAG_CALL},
    ),
    Case(
        "function-unknown-name",
        '<function=LookupOrder>{"order": 1182}</function>',
        REJECTED,
        reason=RejectReason.UNKNOWN_TOOL,
    ),
    Case(
        "functions-dot-call",
        'functions.ToOrderTracking({"query": "Where is order 1182?", "user_id": "4165"})',
        REPAIRED,
        [(ORD, ORD_ARGS)],
        {R.CALL_SYNTAX},
    ),
    Case(
        "python-call-kwargs",
        'ToReturnsDesk(query="Why the hold up with the return of my rain shell?", user_id="4165")',
        REPAIRED,
        [(RET, RET_ARGS)],
        {R.CALL_SYNTAX},
    ),
    Case(
        "python-call-integer-slot",
        'ScheduleCallback(phone="555-0100", slot=9, urgent=True)',
        REPAIRED,
        [(CALLBACK, {"phone": "555-0100", "slot": 9, "urgent": True})],
        {R.CALL_SYNTAX},
    ),
    # ---- 4. tool definitions pasted back
    Case(
        "echo-outer-arguments",
        json.dumps(_definition(PROD, arguments=PROD_ARGS)),
        REPAIRED,
        [(PROD, PROD_ARGS)],
        {R.SCHEMA_ECHO},
        content=None,
    ),
    Case(
        "echo-arguments-beside-parameters",
        json.dumps(
            {
                "name": RET,
                "description": "Returns desk",
                "parameters": {"type": "object", "properties": {}},
                "arguments": RET_ARGS,
            }
        ),
        REPAIRED,
        [(RET, RET_ARGS)],
        {R.SCHEMA_ECHO},
    ),
    Case(
        "echo-values-in-properties",
        json.dumps(_filled_definition(ORD, ORD_ARGS)),
        REPAIRED,
        [(ORD, ORD_ARGS)],
        {R.SCHEMA_ECHO},
    ),
    Case(
        "echo-value-keys-in-properties",
        json.dumps(_filled_definition(PROD, {"query": {"type": "string", "value": PROD_ARGS["query"]}})),
        REPAIRED,
        [(PROD, PROD_ARGS)],
        {R.SCHEMA_ECHO},
    ),
    Case(
        "echo-all-tools-one-with-arguments",
        json.dumps([_definition(TALK), _definition(PROD), _definition(ORD, arguments=ORD_ARGS), _definition(RET)]),
        REPAIRED,
        [(ORD, ORD_ARGS)],
        {R.SCHEMA_ECHO},
        content=None,
    ),
    Case(
        "echo-arguments-as-json-string",
        json.dumps(_definition(RET, arguments=json.dumps(RET_ARGS))),
        REPAIRED,
        [(RET, RET_ARGS)],
        {R.SCHEMA_ECHO},
    ),
    Case(
        "echo-then-canonical-call",
        json.dumps(_definition(RET)) + "\n" + _canon(RET, RET_ARGS),
        REPAIRED,
        [(RET, RET_ARGS)],
        {R.SCHEMA_ECHO},
        content=None,
    ),
    Case("echo-tools-verbatim", json.dumps(TOOLS), REJECTED, reason=RejectReason.SCHEMA_ECHO),
    Case("echo-one-definition-no-values", json.dumps(_definition(RET)), REJECTED, reason=RejectReason.SCHEMA_ECHO),
    Case(
        "echo-type-placeholders-are-not-values",
        json.dumps(_filled_definition(RET, {"query": "string", "user_id": "string"})),
        REJECTED,
        reason=RejectReason.SCHEMA_ECHO,
    ),
    Case(
        "echo-values-in-two-definitions-is-ambiguous",
        json.dumps(_definition(ORD, arguments=ORD_ARGS)) + ", " + json.dumps(_definition(RET, arguments=RET_ARGS)),
        REJECTED,
        reason=RejectReason.SCHEMA_ECHO,
    ),
    Case(
        "echo-unknown-tool-with-values",
        json.dumps(
            _filled_definition(PROD, PROD_ARGS)
            | {"function": {"name": "ToWarranty", "parameters": {"type": "object", "properties": {"query": "x"}}}}
        ),
        REJECTED,
        reason=RejectReason.UNKNOWN_TOOL,
    ),
    Case(
        "echo-schema-wrapped-arguments",
        '{"name": "ToProductAdvisor", "arguments": {"type": "object", '
        '"properties": {"query": "Is the Ridgeline 2 tent waterproof?"}}}',
        REPAIRED,
        [(PROD, PROD_ARGS)],
        {R.SCHEMA_ECHO, R.BARE_JSON_CALL},
    ),
    # ---- 5. broken JSON
    Case(
        "single-quotes-and-trailing-commas",
        "<tool_call>{'name': 'ToReturnsDesk', 'arguments': {'query': 'refund', 'user_id': '4165',},}</tool_call>",
        REPAIRED,
        [(RET, {"query": "refund", "user_id": "4165"})],
        {R.SINGLE_QUOTES, R.TRAILING_COMMA},
    ),
    Case(
        "single-quotes-apostrophe",
        "{'name': 'HandleSmallTalk', 'arguments': {'message': 'it's fine'}}",
        REPAIRED,
        [(TALK, {"message": "it's fine"})],
        {R.SINGLE_QUOTES, R.UNESCAPED_QUOTES, R.BARE_JSON_CALL},
    ),
    Case(
        "unquoted-keys",
        '<tool_call>{name: "ToProductAdvisor", arguments: {query: "Is the Ridgeline 2 tent waterproof?"}}</tool_call>',
        REPAIRED,
        [(PROD, PROD_ARGS)],
        {R.UNQUOTED_KEYS},
    ),
    Case(
        "python-literals",
        "<tool_call>{'name': 'ScheduleCallback', 'arguments': {'phone': '555', 'slot': 9, 'urgent': True}}</tool_call>",
        REPAIRED,
        [(CALLBACK, {"phone": "555", "slot": 9, "urgent": True})],
        {R.SINGLE_QUOTES, R.PYTHON_LITERALS},
    ),
    Case(
        "python-none-violates-schema",
        "<tool_call>{'name': 'HandleSmallTalk', 'arguments': {'message': None}}</tool_call>",
        REJECTED,
        reason=RejectReason.SCHEMA_ERROR,
    ),
    Case(
        "unescaped-inner-quotes",
        '<tool_call>{"name": "ToReturnsDesk", "arguments": {"query": "my "Ridgeline" tent leaks", "user_id": "4165"}}'
        "</tool_call>",
        REPAIRED,
        [(RET, {"query": 'my "Ridgeline" tent leaks', "user_id": "4165"})],
        {R.UNESCAPED_QUOTES},
    ),
    Case(
        "missing-comma-between-calls",
        "["
        + json.dumps({"name": PROD, "arguments": PROD_ARGS})
        + " "
        + json.dumps({"name": TALK, "arguments": TALK_ARGS})
        + "]",
        REPAIRED,
        [(PROD, PROD_ARGS), (TALK, TALK_ARGS)],
        {R.MISSING_COMMA, R.BARE_JSON_CALL},
    ),
    Case(
        "name-only-for-a-tool-without-parameters",
        '<tool_call>{"name": "ListStores"}</tool_call>',
        REPAIRED,
        [(STORES, {})],
        {R.EMPTY_ARGUMENTS},
    ),
    Case("message-null-arguments", _message(STORES, None), REPAIRED, [(STORES, {})], {R.EMPTY_ARGUMENTS}),
    Case(
        "missing-closing-brace-before-tag",
        '<tool_call>\n{"name": "ToProductAdvisor", "arguments": {"query": "Is the Ridgeline 2 tent waterproof?"}\n'
        "</tool_call>",
        REPAIRED,
        [(PROD, PROD_ARGS)],
        {R.CLOSED_BRACKETS},
    ),
    Case(
        "missing-closing-braces-at-end",
        '{"name": "ToProductAdvisor", "arguments": {"query": "Is the Ridgeline 2 tent waterproof?"',
        REPAIRED,
        [(PROD, PROD_ARGS)],
        {R.CLOSED_BRACKETS, R.BARE_JSON_CALL},
    ),
    Case(
        "truncated-inside-a-string",
        '<tool_call>\n{"name": "ToReturnsDesk", "arguments": {"query": "Why the hold up with the ret',
        REJECTED,
        reason=RejectReason.TRUNCATED,
    ),
    Case(
        "truncated-after-a-colon",
        '{"name": "ToReturnsDesk", "arguments": {"query": "refund", "user_id": ',
        REJECTED,
        reason=RejectReason.TRUNCATED,
    ),
    Case(
        "truncated-python-call",
        'ToProductAdvisor(query="Is the Ridgeline 2 ten',
        REJECTED,
        reason=RejectReason.TRUNCATED,
    ),
    Case(
        "extra-closing-brace",
        '<tool_call>\n{"name": "ToProductAdvisor", "arguments": {"query": "Is the Ridgeline 2 tent waterproof?"}}}\n'
        "</tool_call>",
        REPAIRED,
        [(PROD, PROD_ARGS)],
        {R.IGNORED_TEXT},
    ),
    Case(
        "bare-json-llama-parameters",
        '{"name": "ToOrderTracking", "parameters": {"query": "Where is order 1182?", "user_id": "4165"}}',
        REPAIRED,
        [(ORD, ORD_ARGS)],
        {R.BARE_JSON_CALL},
    ),
    Case(
        "python-tag",
        '<|python_tag|>{"name": "HandleSmallTalk", "parameters": {"message": "Hi there!"}}<|eom_id|>',
        REPAIRED,
        [(TALK, TALK_ARGS)],
        {R.BARE_JSON_CALL},
        content=None,
    ),
    Case(
        "markdown-fence",
        '```json\n{"name": "ToProductAdvisor", "arguments": {"query": "Is the Ridgeline 2 tent waterproof?"}}\n```',
        REPAIRED,
        [(PROD, PROD_ARGS)],
        {R.BARE_JSON_CALL, R.CODE_FENCE},
        content=None,
    ),
    Case(
        "fence-inside-tag",
        '<tool_call>\n```json\n{"name": "HandleSmallTalk", "arguments": {"message": "Hi there!"}}\n```\n</tool_call>',
        REPAIRED,
        [(TALK, TALK_ARGS)],
        {R.CODE_FENCE},
    ),
    Case(
        "json-list-of-calls",
        json.dumps([{"name": PROD, "arguments": PROD_ARGS}, {"name": TALK, "arguments": TALK_ARGS}]),
        REPAIRED,
        [(PROD, PROD_ARGS), (TALK, TALK_ARGS)],
        {R.BARE_JSON_CALL},
    ),
    Case(
        "openai-shape-string-arguments-in-text",
        json.dumps({"type": "function", "function": {"name": RET, "arguments": json.dumps(RET_ARGS)}}),
        REPAIRED,
        [(RET, RET_ARGS)],
        {R.BARE_JSON_CALL, R.ARGUMENTS_AS_STRING},
    ),
    Case(
        "flat-arguments",
        '{"name": "ToOrderTracking", "query": "Where is order 1182?", "user_id": "4165"}',
        REPAIRED,
        [(ORD, ORD_ARGS)],
        {R.BARE_JSON_CALL, R.FLAT_ARGUMENTS},
    ),
    Case(
        "null-arguments-then-schema-error",
        '<tool_call>{"name": "HandleSmallTalk", "arguments": null}</tool_call>',
        REJECTED,
        reason=RejectReason.SCHEMA_ERROR,
    ),
    Case(
        "arguments-not-an-object",
        '<tool_call>{"name": "ToReturnsDesk", "arguments": "refund please"}</tool_call>',
        REJECTED,
        reason=RejectReason.INVALID_ARGUMENTS,
    ),
    Case(
        "nan-argument",
        "<tool_call>{'name': 'ToProductAdvisor', 'arguments': {'query': 'x', 'score': NaN}}</tool_call>",
        REJECTED,
        reason=RejectReason.INVALID_ARGUMENTS,
    ),
    # ---- 6. OpenAI messages with real tool_calls
    Case("message-canonical", _message(RET, json.dumps(RET_ARGS)), OK, [(RET, RET_ARGS)], content=None),
    Case(
        "message-arguments-object",
        _message(RET, RET_ARGS, content=""),
        REPAIRED,
        [(RET, RET_ARGS)],
        {R.ARGUMENTS_AS_OBJECT},
        content=None,
    ),
    Case(
        "message-double-encoded",
        _message(ORD, json.dumps(json.dumps(ORD_ARGS))),
        REPAIRED,
        [(ORD, ORD_ARGS)],
        {R.DOUBLE_ENCODED},
    ),
    Case(
        "message-single-quotes",
        _message(PROD, "{'query': 'Is the Ridgeline 2 tent waterproof?'}"),
        REPAIRED,
        [(PROD, PROD_ARGS)],
        {R.SINGLE_QUOTES},
    ),
    Case(
        "message-trailing-text",
        _message(RET, json.dumps(RET_ARGS) + " Hope this helps!"),
        REPAIRED,
        [(RET, RET_ARGS)],
        {R.EXTRA_TEXT},
    ),
    Case(
        "message-fenced-arguments",
        _message(PROD, "```json\n" + json.dumps(PROD_ARGS) + "\n```"),
        REPAIRED,
        [(PROD, PROD_ARGS)],
        {R.CODE_FENCE},
    ),
    Case(
        "message-trailing-comma",
        _message(ORD, '{"query": "Where is order 1182?", "user_id": "4165",}'),
        REPAIRED,
        [(ORD, ORD_ARGS)],
        {R.TRAILING_COMMA},
    ),
    Case(
        "message-integer-user-id",
        _message(ORD, '{"query": "Where is order 1182?", "user_id": 4165}'),
        REPAIRED,
        [(ORD, ORD_ARGS)],
        {R.SCHEMA_COERCION},
    ),
    Case(
        "message-nested-call",
        _message(TALK, json.dumps({"name": TALK, "arguments": TALK_ARGS})),
        REPAIRED,
        [(TALK, TALK_ARGS)],
        {R.NESTED_CALL},
    ),
    Case(
        "message-schema-wrapped-arguments",
        _message(PROD, json.dumps({"type": "object", "properties": PROD_ARGS})),
        REPAIRED,
        [(PROD, PROD_ARGS)],
        {R.SCHEMA_ECHO},
    ),
    Case(
        "message-truncated-arguments",
        _message(RET, '{"query": "Why the hold up with the ret'),
        REJECTED,
        reason=RejectReason.TRUNCATED,
    ),
    Case(
        "message-plain-string-arguments",
        _message(RET, "refund please"),
        REJECTED,
        reason=RejectReason.INVALID_ARGUMENTS,
    ),
    Case("message-list-arguments", _message(RET, "[1, 2]"), REJECTED, reason=RejectReason.INVALID_ARGUMENTS),
    Case("message-empty-arguments", _message(TALK, ""), REJECTED, reason=RejectReason.SCHEMA_ERROR),
    Case(
        "message-functions-prefix",
        _message("functions.ToReturnsDesk", json.dumps(RET_ARGS)),
        REPAIRED,
        [(RET, RET_ARGS)],
        {R.TOOL_NAME_PREFIX},
    ),
    Case(
        "message-name-case",
        _message("TOPRODUCTADVISOR", json.dumps(PROD_ARGS)),
        REPAIRED,
        [(PROD, PROD_ARGS)],
        {R.TOOL_NAME_CASE},
    ),
    Case(
        "message-unknown-tool",
        _message("ToReturnProcessing", json.dumps(RET_ARGS)),
        REJECTED,
        reason=RejectReason.UNKNOWN_TOOL,
    ),
    Case(
        "message-no-name",
        {"role": "assistant", "tool_calls": [{"type": "function", "function": {"arguments": "{}"}}]},
        REJECTED,
        reason=RejectReason.UNPARSEABLE,
    ),
    Case(
        "message-tool-calls-object",
        {"role": "assistant", "tool_calls": {"function": {"name": PROD, "arguments": json.dumps(PROD_ARGS)}}},
        REPAIRED,
        [(PROD, PROD_ARGS)],
        {R.TOOL_CALLS_NOT_LIST},
    ),
    Case(
        "message-legacy-function-call",
        {"role": "assistant", "content": None, "function_call": {"name": TALK, "arguments": json.dumps(TALK_ARGS)}},
        REPAIRED,
        [(TALK, TALK_ARGS)],
        {R.LEGACY_FUNCTION_CALL},
    ),
    Case(
        "message-call-in-content",
        {"role": "assistant", "content": _canon(RET, RET_ARGS)},
        OK,
        [(RET, RET_ARGS)],
        content=None,
    ),
    Case(
        "message-xml-in-content",
        {"role": "assistant", "content": '<HandleSmallTalk message="Hi there!"/>', "tool_calls": []},
        REPAIRED,
        [(TALK, TALK_ARGS)],
        {R.XML_TAG_CALL},
    ),
    Case(
        "message-same-call-in-content-deduped",
        _message(RET, json.dumps(RET_ARGS), content=_canon(RET, RET_ARGS)),
        REPAIRED,
        [(RET, RET_ARGS)],
        {R.DUPLICATE_CALL},
        content=None,
    ),
    Case(
        "message-text-content",
        {"role": "assistant", "content": "Happy to help with anything else."},
        OK,
        content="Happy to help with anything else.",
    ),
    Case(
        "message-content-parts",
        {"role": "assistant", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "again"}]},
        OK,
        content="Hello\nagain",
    ),
    Case(
        "chat-completion-unwrapped",
        {"choices": [{"index": 0, "message": _message(PROD, json.dumps(PROD_ARGS))}]},
        OK,
        [(PROD, PROD_ARGS)],
    ),
    Case("message-empty", {"role": "assistant", "content": None}, REJECTED, reason=RejectReason.EMPTY_OUTPUT),
    Case(
        "decoded-call-dict",
        {"name": ORD, "parameters": ORD_ARGS},
        REPAIRED,
        [(ORD, ORD_ARGS)],
        {R.BARE_JSON_CALL},
    ),
    Case(
        "message-tool-calls-not-a-list",
        {"role": "assistant", "tool_calls": "ToReturnsDesk"},
        REJECTED,
        reason=RejectReason.UNPARSEABLE,
    ),
    # ---- 7. plain text and tool_choice
    Case("text-auto", "Hello! How can I help you today?", OK, content="Hello! How can I help you today?"),
    Case("text-explicit-auto", "Hello!", OK, content="Hello!", tool_choice="auto"),
    Case("text-none", "Hello!", OK, content="Hello!", tool_choice="none"),
    Case("text-required", "Hello!", REJECTED, reason=RejectReason.NO_TOOL_CALL, tool_choice="required"),
    Case(
        "text-named",
        "Hello!",
        REJECTED,
        reason=RejectReason.NO_TOOL_CALL,
        tool_choice={"type": "function", "function": {"name": TALK}},
    ),
    Case(
        "call-when-none",
        _canon(TALK, TALK_ARGS),
        REJECTED,
        reason=RejectReason.UNEXPECTED_TOOL_CALL,
        tool_choice="none",
    ),
    Case("call-when-required", _canon(TALK, TALK_ARGS), OK, [(TALK, TALK_ARGS)], tool_choice="required"),
    Case(
        "call-matches-named",
        _canon(TALK, TALK_ARGS),
        OK,
        [(TALK, TALK_ARGS)],
        tool_choice={"type": "function", "function": {"name": TALK}},
    ),
    Case(
        "call-differs-from-named",
        _canon(PROD, PROD_ARGS),
        REJECTED,
        reason=RejectReason.WRONG_TOOL,
        tool_choice={"type": "function", "function": {"name": TALK}},
    ),
    Case(
        "text-mentioning-a-tool",
        "You could ask ToReturnsDesk about that.",
        OK,
        content="You could ask ToReturnsDesk about that.",
    ),
    Case(
        "text-with-json-that-is-not-a-call",
        'The answer is {"query": "not a call"}.',
        OK,
        content='The answer is {"query": "not a call"}.',
    ),
    Case("text-without-tools", "Hi!", OK, content="Hi!", tools=None),
    Case("call-without-tools", _canon(TALK, TALK_ARGS), REJECTED, reason=RejectReason.UNKNOWN_TOOL, tools=None),
    # ---- adversarial
    Case("empty-string", "", REJECTED, reason=RejectReason.EMPTY_OUTPUT),
    Case("none", None, REJECTED, reason=RejectReason.EMPTY_OUTPUT),
    Case("whitespace", " \n\t ", REJECTED, reason=RejectReason.EMPTY_OUTPUT),
    Case("only-a-marker", "<|python_tag|>", REJECTED, reason=RejectReason.EMPTY_OUTPUT),
    Case("garbage", "}{][<tool_call<<>>\x00\ufffd{{{", REJECTED, reason=RejectReason.UNPARSEABLE),
    Case(
        "unreadable-block",
        "<tool_call>I would call the returns desk</tool_call>",
        REJECTED,
        reason=RejectReason.UNPARSEABLE,
    ),
    Case(
        "good-call-and-unreadable-block",
        _canon(TALK, TALK_ARGS) + "\n<tool_call>ToReturnsDesk please</tool_call>",
        REJECTED,
        reason=RejectReason.UNPARSEABLE,
    ),
    Case(
        "same-call-in-two-formats-deduped",
        '<HandleSmallTalk message="Hi there!"/>\n' + _canon(TALK, TALK_ARGS),
        REPAIRED,
        [(TALK, TALK_ARGS)],
        {R.XML_TAG_CALL, R.DUPLICATE_CALL},
    ),
    Case(
        "two-calls-in-text-kept-in-order",
        '<ToProductAdvisor query="Is the Ridgeline 2 tent waterproof?"/> then '
        '{"name": "ToReturnsDesk", "arguments": {"query": "Why the hold up with the return of my rain shell?", '
        '"user_id": "4165"}}',
        REPAIRED,
        [(PROD, PROD_ARGS), (RET, RET_ARGS)],
        {R.XML_TAG_CALL, R.BARE_JSON_CALL},
        content="then",
    ),
    Case(
        "ambiguous-case-insensitive-name",
        _canon("todesk", {"query": "x"}),
        REJECTED,
        reason=RejectReason.UNKNOWN_TOOL,
        tools=[
            _definition(PROD) | {"function": {"name": "ToDesk"}},
            _definition(PROD) | {"function": {"name": "TODESK"}},
        ],
    ),
    Case(
        "call-name-without-arguments",
        '<tool_call>{"name": "HandleSmallTalk"}</tool_call>',
        REJECTED,
        reason=RejectReason.SCHEMA_ERROR,
    ),
    Case(
        "schema-wrong-type-nested-path",
        _canon(CALLBACK, {"phone": "555", "slot": "nine"}),
        REJECTED,
        reason=RejectReason.SCHEMA_ERROR,
    ),
]


def _run(case: Case) -> Any:
    return normalize_output(case.raw, case.tools, tool_choice=case.tool_choice)


def test_corpus_is_large_and_covers_every_code() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)
    reasons = {c.reason for c in CASES if c.reason is not None}
    assert reasons >= set(RejectReason) - {RejectReason.MULTIPLE_CALLS}  # that one needs parallel_tool_calls
    repaired = set().union(*(c.repairs for c in CASES))
    assert repaired >= set(RepairCode) - {RepairCode.PARSER_REPAIR}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corpus(case: Case) -> None:
    result = _run(case)
    assert result.status == case.status, (result.reason, result.detail, result.repairs)
    assert result.reason == case.reason, result.detail
    assert result.calls == case.calls
    if case.status is REJECTED:
        assert set(result.repair_codes) >= case.repairs, result.repairs
    else:
        assert set(result.repair_codes) == case.repairs, result.repairs
    if case.status is REJECTED:
        assert {entry_code(w) for w in result.warnings} >= case.warnings, result.warnings
    else:
        assert {entry_code(w) for w in result.warnings} == case.warnings, result.warnings
    assert not any(entry_code(r) == RepairCode.PARSER_REPAIR for r in result.repairs), result.repairs
    if case.status is REJECTED:
        assert result.message is None
        assert result.detail
    else:
        assert result.message is not None and result.detail is None
        assert result.message["role"] == "assistant"
        if case.content is not _SAME:
            assert result.message["content"] == case.content
        if case.status is OK:
            assert result.repairs == []
        else:
            assert result.repairs


def test_message_shape_is_canonical() -> None:
    result = normalize_output(_message(RET, RET_ARGS, content="", call_id=None), TOOLS)
    assert result.message is not None
    [call] = result.message["tool_calls"]
    assert set(result.message) == {"role", "content", "tool_calls"}
    assert call["type"] == "function"
    assert call["id"].startswith("call_")
    # compact JSON, keys in the order the model wrote them
    assert (
        call["function"]["arguments"]
        == '{"query":"Why the hold up with the return of my rain shell?","user_id":"4165"}'
    )
    assert normalize_output(_message(RET, RET_ARGS), TOOLS).message["tool_calls"][0]["id"] == "call_1"  # type: ignore[index]


def test_text_answer_has_no_tool_calls_key() -> None:
    assert normalize_output("Hello!", TOOLS).message == {"role": "assistant", "content": "Hello!"}


def test_repairs_name_code_and_detail() -> None:
    result = normalize_output('<ToProductAdvisor query="x"/>', TOOLS)
    assert result.repairs == ['xml_tag_call: <ToProductAdvisor query="x"/>']
    coerced = normalize_output(_message(ORD, '{"query": "q", "user_id": 4165}'), TOOLS)
    assert coerced.repairs == [
        "schema_coercion: ToOrderTracking: arguments.user_id: integer 4165 coerced to string '4165'"
    ]


def test_schema_error_detail_lists_every_message() -> None:
    result = normalize_output(_canon(CALLBACK, {"slot": "nine", "extra": 1}), ALL_TOOLS)
    assert result.reason is RejectReason.SCHEMA_ERROR
    assert result.detail == (
        "ScheduleCallback: arguments.phone: required argument missing; "
        "ScheduleCallback: arguments.slot: expected integer, got string 'nine'; "
        "ScheduleCallback: arguments.extra: unknown argument (the schema allows no others)"
    )


def test_unknown_tool_is_never_mapped_to_a_close_name() -> None:
    for name in ("ToReturnDesk", "ToReturnsDesks", "ReturnsDesk", "To_Returns_Desk"):
        result = normalize_output(_canon(name, RET_ARGS), TOOLS)
        assert result.reason is RejectReason.UNKNOWN_TOOL, name
        assert repr(name) in (result.detail or "")


def test_parallel_tool_calls_off_rejects_two_distinct_calls_but_not_duplicates() -> None:
    two = _canon(PROD, PROD_ARGS) + _canon(TALK, TALK_ARGS)
    result = normalize_output(two, TOOLS, parallel_tool_calls=False)
    assert result.reason is RejectReason.MULTIPLE_CALLS
    same = _canon(PROD, PROD_ARGS) + _canon(PROD, PROD_ARGS)
    assert normalize_output(same, TOOLS, parallel_tool_calls=False).status is REPAIRED


def test_rejections_keep_the_repairs_made_before() -> None:
    result = normalize_output("{'name': 'ToReturnsDesk', 'arguments': {'query': 'refund'}}", TOOLS)
    assert result.reason is RejectReason.SCHEMA_ERROR
    assert {"single_quotes", "bare_json_call"} <= set(result.repair_codes)


def test_normalize_many_keeps_order_and_per_item_tool_choice() -> None:
    results = normalize_many(
        [("Hello!", TOOLS), ("Hello!", TOOLS, "required"), (_canon(TALK, TALK_ARGS), TOOLS, "none")],
    )
    assert [r.reason for r in results] == [None, RejectReason.NO_TOOL_CALL, RejectReason.UNEXPECTED_TOOL_CALL]
    assert normalize_many([("Hello!", TOOLS)], tool_choice="required")[0].reason is RejectReason.NO_TOOL_CALL


def test_report_counts_statuses_reasons_codes_and_keeps_samples() -> None:
    raws: list[Any] = [
        _canon(RET, RET_ARGS),
        '<ToProductAdvisor query="x" user_id="1"/>',
        _message(ORD, ORD_ARGS),
        "",
        None,
        {"role": "assistant", "content": None},
        _canon("Nope", {}),
    ]
    results = [normalize_output(r, TOOLS) for r in raws]
    report = NormalizeReport.of(results, raws, max_samples=2)
    assert report.total == 7
    assert report.to_dict()["statuses"] == {"ok": 1, "repaired": 2, "rejected": 4}
    assert report.reasons == {"empty_output": 3, "unknown_tool": 1}
    assert report.repairs == {"xml_tag_call": 1, "arguments_as_object": 1}
    assert report.warnings == {"unknown_argument": 1}
    assert len(report.samples["empty_output"]) == 2
    assert report.samples["unknown_tool"][0]["raw"] == _canon("Nope", {}).replace("\n", " ")
    assert report.share(NormalizeStatus.REJECTED) == pytest.approx(4 / 7)
    json.dumps(report.to_dict())
    assert NormalizeReport().share("ok") == 0.0


# ------------------------------------------------------------------------------------------ the AIVA sample


def _aiva_records(sample: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in sample.read_text().splitlines() if line.strip()]


def test_aiva_teacher_answers_in_every_form(aiva_sample: Path) -> None:
    """Each teacher call of the sample, written the ways the blueprint's 1B student wrote them, reads back as
    the same call (the stored form, with object arguments, is a repair of OpenAI's wire form)."""
    for record in _aiva_records(aiva_sample):
        tools = record["request"]["tools"]
        message = record["response"]["choices"][0]["message"]
        [call] = message["tool_calls"]
        name, args = call["function"]["name"], call["function"]["arguments"]
        attrs = " ".join(f'{k}="{html.escape(v)}"' for k, v in args.items())
        forms: list[tuple[Any, NormalizeStatus, set[str]]] = [
            (message, REPAIRED, {"arguments_as_object"}),
            (
                {**message, "tool_calls": [{**call, "function": {"name": name, "arguments": json.dumps(args)}}]},
                OK,
                set(),
            ),
            (_canon(name, args), OK, set()),
            (f"<{name} {attrs}/>", REPAIRED, {"xml_tag_call"}),
            (f"<function>{name}{json.dumps(args)}", REPAIRED, {"function_tag_call"}),
            (
                json.dumps(
                    {
                        "type": "function",
                        "function": {"name": name, "parameters": {"type": "object", "properties": args}},
                    }
                ),
                REPAIRED,
                {"schema_echo"},
            ),
        ]
        for raw, status, codes in forms:
            result = normalize_output(raw, tools)
            assert (result.status, set(result.repair_codes)) == (status, codes), (raw, result)
            assert result.calls == [(name, args)]


def test_aiva_fork_quirk_capital_message_is_reported_not_renamed(aiva_sample: Path) -> None:
    """The blueprint fork rewrote HandleOtherTalk's ``message`` as ``Message``: kept, and warned about."""
    tools = _aiva_records(aiva_sample)[0]["request"]["tools"]
    result = normalize_output(_message("HandleOtherTalk", {"Message": "hi"}), tools)
    assert result.reason is RejectReason.SCHEMA_ERROR
    assert "arguments.Message: unknown argument" in (result.detail or "") or result.warnings
    assert "arguments.message: required argument missing" in (result.detail or "")


# ----------------------------------------------------------------------------------------------- properties

_json_scalar: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.text(max_size=20),
    st.floats(allow_nan=False, allow_infinity=False),
)
_json_value = st.recursive(
    _json_scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_FRAGMENTS = [
    "<tool_call>", "</tool_call>", "{", "}", "[", "]", '"', "'", ":", ",", "\\", '"name"', '"arguments"',
    '"parameters"', '"properties"', '"description"', '"type": "function"', '"function"', "True", "null",
    "<function=", "<function>", "</function>", ">", "/>", "<", "ToReturnsDesk", "HandleSmallTalk", "functions.",
    "(", ")", "=", "```json\n", "```", "<|python_tag|>", ' query="', "\n", " ", "x", "1", "NaN",
]  # fmt: skip
_MESSAGE_KEYS = ["role", "content", "tool_calls", "function", "function_call", "name", "arguments", "id", "choices"]
_messages = st.recursive(
    _json_scalar | st.sampled_from(_FRAGMENTS),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(_MESSAGE_KEYS) | st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=15,
)
_TOOL_CHOICES = st.sampled_from([None, "auto", "none", "required", {"type": "function", "function": {"name": TALK}}])


def _check_invariants(result: Any) -> None:
    assert isinstance(result.status, NormalizeStatus)
    if result.status is REJECTED:
        assert result.message is None and isinstance(result.reason, RejectReason) and result.detail
        assert "internal error" not in result.detail, result.detail
    else:
        assert result.reason is None and result.message is not None
        assert (result.status is REPAIRED) == bool(result.repairs)
        for call in result.message.get("tool_calls", []):
            assert isinstance(json.loads(call["function"]["arguments"]), dict)
    assert all(entry_code(r) in set(RepairCode) for r in result.repairs)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300), _TOOL_CHOICES)
def test_arbitrary_text_never_raises(text: str, tool_choice: ToolChoice) -> None:
    _check_invariants(normalize_output(text, ALL_TOOLS, tool_choice=tool_choice))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=3), max_size=40).map("".join))
def test_tool_call_like_soup_never_raises(text: str) -> None:
    for tools in (ALL_TOOLS, None):
        _check_invariants(normalize_output(text, tools))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_messages)
def test_arbitrary_dicts_never_raise(raw: Any) -> None:
    _check_invariants(normalize_output(raw if isinstance(raw, dict) else {"content": raw}, ALL_TOOLS))
    _check_invariants(normalize_output({"role": "assistant", "tool_calls": raw}, ALL_TOOLS))


_text = st.text(max_size=40)
_synth_calls = st.one_of(
    st.builds(lambda m: (TALK, {"message": m}), _text),
    st.builds(lambda q: (PROD, {"query": q}), _text),
    st.builds(lambda q, u: (ORD, {"query": q, "user_id": u}), _text, _text),
    st.builds(lambda q, u: (RET, {"user_id": u, "query": q}), _text, _text),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_synth_calls, min_size=1, max_size=3, unique_by=lambda c: json.dumps(c)))
def test_canonical_synth_calls_round_trip_as_ok(calls: list[tuple[str, dict[str, Any]]]) -> None:
    text = "\n".join(format_tool_call(name, args) for name, args in calls)
    result = normalize_output(text, TOOLS, tool_choice="required")
    assert (result.status, result.repairs, result.warnings) == (OK, [], [])
    assert result.calls == calls
    assert [list(args) for _, args in result.calls] == [list(args) for _, args in calls]  # key order kept


@settings(max_examples=100, deadline=None)
@given(
    st.text(alphabet=st.characters(categories=["L", "N", "Zs"]), min_size=1, max_size=40),
    st.lists(_synth_calls, min_size=1, max_size=2, unique_by=lambda c: json.dumps(c)),
)
def test_canonical_calls_after_text_round_trip_as_ok(content: str, calls: list[tuple[str, dict[str, Any]]]) -> None:
    """The codec's answer form (text, then the blocks) takes the general parser path: same verdict."""
    text = content + "\n" + "\n".join(format_tool_call(name, args) for name, args in calls)
    result = normalize_output(text, TOOLS)
    assert (result.status, result.repairs, result.warnings) == (OK, [], [])
    assert result.calls == calls
    assert result.message is not None and result.message["content"] == (content.strip() or None)


_OPEN_TOOL: dict[str, Any] = {"type": "function", "function": {"name": "AnyArgs", "parameters": {"type": "object"}}}


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=10), _json_value, max_size=5))
def test_canonical_call_with_any_arguments_round_trips_as_ok(args: dict[str, Any]) -> None:
    result = normalize_output(format_tool_call("AnyArgs", args), [_OPEN_TOOL])
    assert (result.status, result.repairs) == (OK, [])
    assert result.calls == [("AnyArgs", args)]


@settings(max_examples=150, deadline=None)
@given(st.lists(_synth_calls, min_size=1, max_size=3))
def test_a_normalized_message_normalizes_to_itself(calls: list[tuple[str, dict[str, Any]]]) -> None:
    text = " ".join(f"<function={name}>{json.dumps(args)}</function>" for name, args in calls)
    first = normalize_output(text, TOOLS)
    assert first.status is REPAIRED and first.message is not None
    again = normalize_output(first.message, TOOLS)
    assert (again.status, again.message) == (OK, first.message)
