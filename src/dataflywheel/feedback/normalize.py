"""A student model's raw output turned into one canonical OpenAI assistant message, or rejected with a reason.

The feedback loop runs a small model over logged prompts and keeps its good answers as training data. Its
outputs are messy (the blueprint's 1B model wrote all of these), and :func:`normalize_output` reads them:

1. canonical ``<tool_call>{"name": .., "arguments": {..}}</tool_call>`` blocks, with or without text
   around them (what :class:`dataflywheel.models.codec.ToolCallCodec` renders): ``ok``;
2. XML-like tags named after a tool: ``<ToProductAdvisor query=".." user_id=".."/>``,
   ``<ToProductAdvisor><query>..</query></ToProductAdvisor>``: repaired (``xml_tag_call``);
3. ``<function>Name{json}``, ``<function=Name>{json}</function>``, ``functions.Name({json})``: repaired;
4. tool definitions pasted back (``{"type": "function", "function": {"name": .., "parameters": ..}}``) with the
   argument values under ``"arguments"`` or filled into ``"properties"``: repaired (``schema_echo``) when
   exactly one pasted definition carries values, else rejected (``schema_echo``);
5. broken JSON (single quotes, trailing commas, unquoted keys, Python literals, unescaped inner quotes,
   missing closing brackets): repaired; a value cut off by the end of the output is rejected (``truncated``);
6. an OpenAI message whose real ``tool_calls`` carry bad ``arguments`` (an object instead of a string,
   JSON encoded twice, single quotes, text after the JSON): repaired;
7. plain text: ``ok`` unless ``tool_choice`` requires a call (rejected ``no_tool_call``).

The text forms are read by :func:`dataflywheel.models.toolparse.parse_tool_calls`; this module adds the
pasted definitions, the message form, the checks and the verdict. Every call's arguments are checked
against its tool's schema (:mod:`.schema`): errors reject (``schema_error``), safe coercions are repairs,
unknown keys are warnings (kept, never renamed). Tool names must be the request's: a name differing only in
case is a repair (``tool_name_case``); anything else is rejected (``unknown_tool``), never mapped to a
"closest" tool. Identical calls are deduplicated (a repair). Rejections are conservative on purpose: the
accepted outputs become training data, so an output whose meaning is in doubt (text that looks like a call
but cannot be read, a cut-off value) is rejected rather than guessed.

Repairs and warnings are strings ``"<code>: <detail>"`` whose codes are :class:`RepairCode` and
:class:`WarningCode` values (:func:`entry_code` reads one back). Everything here is pure and never raises.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any, Final

from dataflywheel.feedback.schema import check_arguments
from dataflywheel.models.toolparse import (
    _parse_json_at,  # the project's one lenient JSON reader
    parse_tool_calls,
)
from dataflywheel.models.types import ToolChoice

__all__ = [
    "NormalizeItem",
    "NormalizeReport",
    "NormalizeStatus",
    "Normalized",
    "RawOutput",
    "RejectReason",
    "RepairCode",
    "WarningCode",
    "entry_code",
    "normalize_many",
    "normalize_output",
]


class NormalizeStatus(StrEnum):
    """The verdict on one output."""

    OK = "ok"
    """Canonical already: the message says exactly what the output said, nothing was changed."""
    REPAIRED = "repaired"
    """Usable after the repairs listed in :attr:`Normalized.repairs`."""
    REJECTED = "rejected"
    """Unusable; :attr:`Normalized.reason` says why."""


class RejectReason(StrEnum):
    """Why an output was rejected. When several apply, the first found in this order is given."""

    EMPTY_OUTPUT = "empty_output"
    """Nothing at all: None, blank text, a message with neither content nor tool calls."""
    UNPARSEABLE = "unparseable"
    """Something call-like that cannot be read (an unreadable ``<tool_call>`` block, a malformed
    ``tool_calls`` entry, a call-like tag or name left in the text)."""
    TRUNCATED = "truncated"
    """The output ends inside a value (a string, a key, a number): what the model meant is lost."""
    INVALID_ARGUMENTS = "invalid_arguments"
    """A call's arguments cannot be read as a JSON object."""
    SCHEMA_ECHO = "schema_echo"
    """Tool definitions pasted back without argument values, or with values in several of them."""
    NO_TOOL_CALL = "no_tool_call"
    """A text answer where ``tool_choice`` requires a call (``"required"`` or a named function)."""
    UNEXPECTED_TOOL_CALL = "unexpected_tool_call"
    """A call although ``tool_choice`` is ``"none"``."""
    UNKNOWN_TOOL = "unknown_tool"
    """A call to a tool the request did not offer."""
    WRONG_TOOL = "wrong_tool"
    """``tool_choice`` names one function and another one was called."""
    SCHEMA_ERROR = "schema_error"
    """Arguments that violate the tool's schema (missing required, wrong type, not in the enum, ...)."""
    MULTIPLE_CALLS = "multiple_calls_not_allowed"
    """Several different calls while ``parallel_tool_calls`` is False."""


class RepairCode(StrEnum):
    """What was changed to make an output canonical (the code before ``:`` in a repair)."""

    BARE_JSON_CALL = "bare_json_call"
    """A JSON call outside ``<tool_call>`` tags (also after ``<|python_tag|>``, or a JSON list of calls)."""
    FUNCTION_TAG_CALL = "function_tag_call"
    """``<function>Name{..}``, ``<function=Name>{..}</function>``, ``<function name="..">``."""
    XML_TAG_CALL = "xml_tag_call"
    """A tag named after the tool: ``<Tool arg=".."/>``, ``<Tool><arg>..</arg></Tool>``, ``<Tool>{..}</Tool>``."""
    CALL_SYNTAX = "call_syntax"
    """``functions.Name({..})``, ``Name(arg="..")``, ``Name={..}``."""
    SCHEMA_ECHO = "schema_echo"
    """Arguments taken from a pasted tool definition or JSON schema (or pasted definitions removed)."""
    CODE_FENCE = "code_fence"
    """Markdown code fences around a call."""
    UNCLOSED_TAG = "unclosed_tag"
    """A ``<tool_call>`` block without its closing tag."""
    IGNORED_TEXT = "ignored_text"
    """Stray text inside a call block or tag was dropped (named in the detail)."""
    XML_TEXT_BODY = "xml_text_body"
    """The text inside ``<Tool>..</Tool>`` taken as the tool's only parameter."""
    SINGLE_QUOTES = "single_quotes"
    PYTHON_LITERALS = "python_literals"
    """``True`` / ``False`` / ``None`` read as JSON literals."""
    TRAILING_COMMA = "trailing_comma"
    """Trailing or doubled commas removed."""
    MISSING_COMMA = "missing_comma"
    UNQUOTED_KEYS = "unquoted_keys"
    UNESCAPED_QUOTES = "unescaped_quotes"
    """Quotes inside a string that were not escaped."""
    CLOSED_BRACKETS = "closed_brackets"
    """Missing closing brackets, quotes, parentheses or tag ends added at the end of a complete value."""
    ARGUMENTS_AS_STRING = "arguments_as_string"
    """In text: ``"arguments"`` written as a JSON string holding the object."""
    ARGUMENTS_AS_OBJECT = "arguments_as_object"
    """In a message: ``function.arguments`` given as an object instead of a JSON string."""
    DOUBLE_ENCODED = "double_encoded_arguments"
    """Arguments JSON-encoded twice (a JSON string holding a JSON string)."""
    EXTRA_TEXT = "extra_text"
    """Text before or after the arguments' JSON in an ``arguments`` string was dropped."""
    EMPTY_ARGUMENTS = "empty_arguments"
    """Arguments absent, null or empty: ``{}`` used (the schema check then sees what is missing)."""
    FLAT_ARGUMENTS = "flat_arguments"
    """Arguments written beside the name (``{"name": "X", "query": ".."}``)."""
    NESTED_CALL = "nested_call"
    """``arguments`` holding the whole call again (``{"name": "X", "arguments": {..}}``)."""
    TOOL_NAME_CASE = "tool_name_case"
    """A tool name differing from the request's only in letter case."""
    TOOL_NAME_PREFIX = "tool_name_prefix"
    """A ``functions.`` prefix (or blanks) removed from a ``tool_calls`` name."""
    TOOL_CALLS_NOT_LIST = "tool_calls_not_list"
    """``tool_calls`` given as one object instead of a list."""
    LEGACY_FUNCTION_CALL = "legacy_function_call"
    """OpenAI's old ``function_call`` field read as a tool call."""
    DUPLICATE_CALL = "duplicate_call"
    """An identical call (same name and arguments) written again was removed."""
    SCHEMA_COERCION = "schema_coercion"
    """A value coerced losslessly to the schema's type (``"3"`` -> ``3``, ``"true"`` -> ``true``, ...)."""
    PARSER_REPAIR = "parser_repair"
    """Any other repair the tool-call parser reported (its message is the detail)."""


class WarningCode(StrEnum):
    """What was noticed and left as it is (the code before ``:`` in a warning)."""

    UNKNOWN_ARGUMENT = "unknown_argument"
    """An argument the tool's schema does not list (kept, not renamed)."""


RawOutput = str | dict[str, Any] | None
"""A model's output: its text, or an OpenAI assistant message (a whole chat completion is accepted too; a
dict with none of a message's keys is read as the JSON text it encodes)."""
NormalizeItem = tuple[Any, list[dict[str, Any]] | None] | tuple[Any, list[dict[str, Any]] | None, ToolChoice]
"""One input of :func:`normalize_many`: ``(raw, tools)`` or ``(raw, tools, tool_choice)``."""


@dataclass(frozen=True)
class Normalized:
    """The verdict on one output, and the canonical assistant message when it is usable."""

    status: NormalizeStatus
    message: dict[str, Any] | None
    """``{"role": "assistant", "content": str | None, "tool_calls": [{"id", "type": "function", "function":
    {"name", "arguments": <compact JSON string>}}]}`` (``tool_calls`` only when there are calls); None when
    rejected."""
    repairs: list[str] = field(default_factory=list)
    """``"<RepairCode>: <detail>"`` entries, in the order they were made."""
    warnings: list[str] = field(default_factory=list)
    """``"<WarningCode>: <detail>"`` entries."""
    reason: RejectReason | None = None
    detail: str | None = None
    """For a rejection: what exactly was wrong."""

    @property
    def usable(self) -> bool:
        """Whether the output was accepted (``ok`` or ``repaired``)."""
        return self.status is not NormalizeStatus.REJECTED

    @property
    def repair_codes(self) -> list[str]:
        """The distinct repair codes, in order."""
        return list(dict.fromkeys(entry_code(r) for r in self.repairs))

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, arguments) of the message's tool calls, arguments decoded."""
        if self.message is None:
            return []
        out: list[tuple[str, dict[str, Any]]] = []
        for call in self.message.get("tool_calls") or []:
            fn = call["function"]
            out.append((fn["name"], json.loads(fn["arguments"])))
        return out


def entry_code(entry: str) -> str:
    """The code of a repair or warning entry (the text before the first ``": "``)."""
    return entry.split(": ", 1)[0]


def normalize_output(
    raw: RawOutput,
    tools: list[dict[str, Any]] | None,
    *,
    tool_choice: ToolChoice = None,
    parallel_tool_calls: bool = True,
) -> Normalized:
    """Read one model output against the request's ``tools`` (OpenAI form) and ``tool_choice``.

    ``raw`` is the generated text or an OpenAI assistant message (``content`` and/or ``tool_calls``; a chat
    completion with ``choices`` is unwrapped). With ``parallel_tool_calls=False`` more than one distinct call
    is rejected. See the module docstring for what is accepted, repaired and rejected. Pure; never raises.
    """
    try:
        return _normalize(raw, tools, tool_choice, parallel_tool_calls)
    except Exception as exc:  # last line of defence: one odd output must not stop a batch
        return Normalized(
            NormalizeStatus.REJECTED, None, reason=RejectReason.UNPARSEABLE, detail=f"internal error: {exc!r}"[:200]
        )


def normalize_many(
    items: Iterable[NormalizeItem], *, tool_choice: ToolChoice = None, parallel_tool_calls: bool = True
) -> list[Normalized]:
    """:func:`normalize_output` over ``(raw, tools)`` or ``(raw, tools, tool_choice)`` items, in order;
    ``tool_choice`` is the default for items that have none."""
    out: list[Normalized] = []
    for item in items:
        choice = item[2] if len(item) > 2 else tool_choice
        out.append(normalize_output(item[0], item[1], tool_choice=choice, parallel_tool_calls=parallel_tool_calls))
    return out


@dataclass
class NormalizeReport:
    """Counts over many verdicts, for the pipeline's report: per status, per reject reason, per repair and
    warning code (each counted once per output), with up to ``max_samples`` samples per reject reason."""

    max_samples: int = 3
    total: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    repairs: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[dict[str, str | None]]] = field(default_factory=dict)
    """Reject reason -> ``[{"detail": .., "raw": <excerpt of the output, when given>}]``."""

    @classmethod
    def of(
        cls, results: Iterable[Normalized], raws: Iterable[Any] | None = None, *, max_samples: int = 3
    ) -> NormalizeReport:
        """The report of ``results`` (``raws``, when given, are the outputs in the same order, for samples)."""
        report = cls(max_samples=max_samples)
        raw_iter = iter(raws) if raws is not None else None
        for result in results:
            report.add(result, next(raw_iter, None) if raw_iter is not None else None)
        return report

    def add(self, result: Normalized, raw: Any = None) -> None:
        """Count one verdict (``raw``: its output, kept as an excerpt in the samples of rejections)."""
        self.total += 1
        self.statuses[result.status.value] += 1
        self.repairs.update(result.repair_codes)
        self.warnings.update({entry_code(w) for w in result.warnings})
        if result.reason is None:
            return
        self.reasons[result.reason.value] += 1
        kept = self.samples.setdefault(result.reason.value, [])
        if len(kept) < self.max_samples:
            excerpt = None
            if raw is not None:
                text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)
                excerpt = _excerpt(text, 200)
            kept.append({"detail": result.detail, "raw": excerpt})

    def share(self, status: NormalizeStatus | str) -> float:
        """The share of outputs with ``status`` (0.0 when empty)."""
        return self.statuses[str(status)] / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (every status listed, counters sorted by count)."""
        return {
            "total": self.total,
            "statuses": {s.value: self.statuses[s.value] for s in NormalizeStatus},
            "reasons": dict(self.reasons.most_common()),
            "repairs": dict(self.repairs.most_common()),
            "warnings": dict(self.warnings.most_common()),
            "samples": {k: list(v) for k, v in self.samples.items()},
        }


# ------------------------------------------------------------------------------------------------ internals

_EXCERPT = 80
_MAX_ENCODINGS = 3
_MAX_ECHO_READS = 64
_TRUNCATED_NOTE = "truncated JSON closed"
_STRICT = json.JSONDecoder(strict=False)
_WS_RE = re.compile(r"\s+")
_OPEN_RE = re.compile(r"[{\[]")
_FENCE_RE = re.compile(r"\A```[\w+\-]*[ \t]*\n?(?P<body>.*?)\n?[ \t]*```\Z", re.DOTALL)
_CLOSERS_RE = re.compile(r"(?:\s|</tool_?calls?>|</function>|```|<\|eo[mt]_id\|>)+\Z", re.IGNORECASE)
_CALL_MARKER_RE = re.compile(r"<\s*/?\s*(?:tool_?calls?|function)\b|<\|python_tag\|>", re.IGNORECASE)
_CANONICAL_RE = re.compile(r"\s*<tool_call>\s*(\{.*?\})\s*</tool_call>\s*", re.DOTALL)
_FENCED_RE = re.compile(r"<[^<>]*>\s*```")
_FENCE_BEFORE_RE = re.compile(r"```[\w+\-]*\s*\Z")
_TOOL_TAG_RE = re.compile(r"<[A-Z][\w.\-]*(?:\s+[\w.\-]+\s*=|\s*/>)")
"""A capitalized tag with attributes or self-closing: how small models write a call to a tool by its name."""
_MESSAGE_KEYS: Final = frozenset({"role", "content", "tool_calls", "function_call", "choices"})
_PLACEHOLDERS: Final = frozenset({"string", "integer", "number", "boolean", "object", "array", "null"})
_SCHEMA_KEYS: Final = frozenset(
    {
        "type", "description", "enum", "items", "properties", "required", "default", "title", "format", "examples",
        "minimum", "maximum", "minLength", "maxLength", "pattern", "additionalProperties", "anyOf", "oneOf", "const",
    }
)  # fmt: skip
_FORMAT_REPAIRS: Final = {
    "json": RepairCode.BARE_JSON_CALL,
    "function_tag": RepairCode.FUNCTION_TAG_CALL,
    "xml": RepairCode.XML_TAG_CALL,
    "call": RepairCode.CALL_SYNTAX,
}


class _Truncation:
    """A parser note saying that something open was closed at the end of the text."""


_TRUNCATION: Final = _Truncation()
_Kind = RepairCode | RejectReason | _Truncation | None

# What each message of the tool-call parser means here (see ParsedOutput.problems); unknown tool names are
# checked against the request's tools later, whatever the parser said.
_PROBLEMS: Final[tuple[tuple[re.Pattern[str], _Kind], ...]] = tuple(
    (re.compile(pattern, re.DOTALL), kind)
    for pattern, kind in (
        (r"internal parser error.*", RejectReason.UNPARSEABLE),
        (r"search for calls stopped early.*", RejectReason.UNPARSEABLE),
        (r"unreadable <.*", RejectReason.UNPARSEABLE),
        (r"arguments of .* call skipped", RejectReason.INVALID_ARGUMENTS),
        (r"JSON schema of .* is not a call: ignored", RejectReason.SCHEMA_ECHO),
        (r"unknown tool .*", None),
        (r"tool name .* corrected to .*", RepairCode.TOOL_NAME_CASE),
        (r"missing </tool_call> closing tag", RepairCode.UNCLOSED_TAG),
        (r"ignored text (?:in|inside) <.*", RepairCode.IGNORED_TEXT),
        (r"text inside <.*> used as argument .*", RepairCode.XML_TEXT_BODY),
        (r"single-quoted JSON repaired", RepairCode.SINGLE_QUOTES),
        (r"Python literals repaired", RepairCode.PYTHON_LITERALS),
        (r"(?:trailing|stray) comma removed", RepairCode.TRAILING_COMMA),
        (r"missing comma repaired", RepairCode.MISSING_COMMA),
        (r"unquoted keys repaired", RepairCode.UNQUOTED_KEYS),
        (r"unescaped quote repaired", RepairCode.UNESCAPED_QUOTES),
        (r"truncated (?:JSON|tag|call) closed", _TRUNCATION),
        (r"arguments given as a JSON string", RepairCode.ARGUMENTS_AS_STRING),
        (r"(?:no|null) arguments for .*|empty arguments string for .*", RepairCode.EMPTY_ARGUMENTS),
        (r"<.*> tag without arguments", RepairCode.EMPTY_ARGUMENTS),
        (r"arguments of .* given beside its name", RepairCode.FLAT_ARGUMENTS),
        (r"arguments of .* unwrapped from a JSON schema", RepairCode.SCHEMA_ECHO),
    )
)


def _classify(problem: str) -> _Kind:
    """What a parser message means here (None: nothing, the check is made elsewhere)."""
    for pattern, kind in _PROBLEMS:
        if pattern.fullmatch(problem):
            return kind
    return RepairCode.PARSER_REPAIR


def _excerpt(text: str, limit: int = _EXCERPT) -> str:
    text = _WS_RE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ends_cleanly(raw: str) -> bool:
    """Whether a call closed by the parser at the end of the text ended at the end of a value (only
    brackets, quotes or a tag end were missing), rather than inside a string, after a key or after a
    separator."""
    body = _CLOSERS_RE.sub("", raw)
    if not body or body[-1] not in "}])\"'>":
        return False
    quote = '"' if '"' in body else "'"
    stack: list[str] = []
    in_string = escaped = expect_key = after_key = False
    for c in body:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == quote:
                in_string, after_key, expect_key = False, expect_key, False
        elif c == quote:
            in_string = True
        elif c in "{[":
            stack.append(c)
            expect_key, after_key = c == "{", False
        elif c == ",":
            expect_key, after_key = bool(stack) and stack[-1] == "{", False
        elif c in "}]:":
            if c != ":" and stack:
                stack.pop()
            expect_key = after_key = False
    return not in_string and not after_key


@dataclass
class _Call:
    name: str
    arguments: dict[str, Any]
    position: int
    call_id: str | None = None


@dataclass(frozen=True)
class _ToolIndex:
    names: tuple[str, ...]
    schemas: dict[str, Any]

    @classmethod
    def of(cls, tools: list[dict[str, Any]] | None) -> _ToolIndex:
        schemas: dict[str, Any] = {}
        for tool in tools or []:
            if not isinstance(tool, dict):
                continue
            fn = tool.get("function")
            fn = fn if isinstance(fn, dict) else tool
            name = fn.get("name")
            if isinstance(name, str) and name and name not in schemas:
                schemas[name] = fn.get("parameters")
        return cls(tuple(schemas), schemas)

    def resolve(self, name: str) -> tuple[str | None, bool]:
        """(the request's tool called ``name``, whether only the case differed); (None, False) if none."""
        if name in self.schemas:
            return name, False
        matches = [n for n in self.names if n.lower() == name.lower()]
        return (matches[0], True) if len(matches) == 1 else (None, False)

    def properties(self, name: str) -> set[str]:
        resolved, _ = self.resolve(name)
        schema = self.schemas.get(resolved) if resolved else None
        props = schema.get("properties") if isinstance(schema, dict) else None
        return {str(k) for k in props} if isinstance(props, dict) else set()


class _State:
    """What reading one output found so far."""

    def __init__(self, index: _ToolIndex) -> None:
        self.index = index
        self.repairs: list[str] = []
        self.warnings: list[str] = []
        self.calls: list[_Call] = []
        self.content: str | None = None
        self.reject: tuple[RejectReason, str] | None = None

    def repair(self, code: RepairCode, detail: str) -> None:
        entry = f"{code.value}: {detail}"
        if entry not in self.repairs:
            self.repairs.append(entry)

    def warn(self, code: WarningCode, detail: str) -> None:
        entry = f"{code.value}: {detail}"
        if entry not in self.warnings:
            self.warnings.append(entry)

    def fail(self, reason: RejectReason, detail: str) -> None:
        if self.reject is None:
            self.reject = (reason, detail)

    def rejected(self) -> Normalized:
        assert self.reject is not None
        reason, detail = self.reject
        return Normalized(NormalizeStatus.REJECTED, None, list(self.repairs), list(self.warnings), reason, detail)


def _normalize(raw: Any, tools: list[dict[str, Any]] | None, tool_choice: ToolChoice, parallel: bool) -> Normalized:
    state = _State(_ToolIndex.of(tools))
    if isinstance(raw, dict) and not _MESSAGE_KEYS.isdisjoint(raw):
        _read_message(raw, tools, state)
    elif isinstance(raw, dict):  # not a message: a call (or anything else) already decoded from JSON
        state.content = _read_text(json.dumps(raw, ensure_ascii=False, default=str), tools, state, 0)
    else:
        state.content = _read_text(_as_text(raw), tools, state, 0)
    if state.reject is not None:
        return state.rejected()
    return _verdict(state, tool_choice, parallel)


def _as_text(value: Any) -> str:
    """Content as plain text: None is empty, content parts are joined, bytes are decoded."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        parts = [p["text"] if isinstance(p, dict) and isinstance(p.get("text"), str) else p for p in value]
        return "\n".join(p for p in parts if isinstance(p, str))
    return str(value)


# ---- text


def _read_text(text: str, tools: list[dict[str, Any]] | None, state: _State, base: int) -> str | None:
    """Read the calls in ``text`` into ``state`` (positions offset by ``base``); returns the text left."""
    if not text.strip():
        return None
    fast = _canonical_only(text, state.index)
    if fast is not None:
        state.calls.extend(_Call(name, args, base + i) for i, (name, args) in enumerate(fast))
        return None
    masked, echo_calls, echoed = _echoes(text, state)
    if state.reject is not None:
        return None
    parsed = parse_tool_calls(masked, tools)
    truncated = False
    for problem in parsed.problems:
        kind = _classify(problem)
        if kind is _TRUNCATION:
            truncated = True
        elif isinstance(kind, RejectReason):
            if kind is not RejectReason.SCHEMA_ECHO or not (parsed.calls or echo_calls):
                state.fail(kind, problem)
        elif isinstance(kind, RepairCode):
            state.repair(kind, problem)
    calls: list[_Call] = []
    cursor = 0
    fenced = False
    for call in parsed.calls:
        at = masked.find(call.raw, cursor)
        cursor = at if at >= 0 else cursor
        code = _FORMAT_REPAIRS.get(call.format)
        if code is not None:
            state.repair(code, _excerpt(call.raw))
        if call.format != "call" and f"functions.{call.name}" in call.raw:
            state.repair(RepairCode.TOOL_NAME_PREFIX, f"'functions.{call.name}' read as {call.name!r}")
        if truncated and not _ends_cleanly(call.raw):
            state.fail(RejectReason.TRUNCATED, f"the output ends inside a value: {_excerpt(call.raw[-60:])}")
        if _FENCED_RE.match(call.raw) or _FENCE_BEFORE_RE.search(masked, max(0, cursor - 24), max(cursor, 0)):
            fenced = True
        calls.append(_Call(call.name, dict(call.arguments), base + cursor))
    if truncated and calls and state.reject is None:
        state.repair(RepairCode.CLOSED_BRACKETS, "closing brackets, quotes or tag ends added at the end")
    if fenced:
        state.repair(RepairCode.CODE_FENCE, "code fences around the call removed")
    if echoed and not calls and not echo_calls:
        state.fail(RejectReason.SCHEMA_ECHO, f"tool definitions pasted without argument values: {', '.join(echoed)}")
    elif echoed:
        state.repair(RepairCode.SCHEMA_ECHO, f"pasted tool definitions removed from the text: {', '.join(echoed)}")
    for echo_call in echo_calls:
        echo_call.position += base
    state.calls.extend(sorted([*echo_calls, *calls], key=lambda c: c.position))
    content = parsed.content
    if content is not None and (echo_calls or echoed):
        content = re.sub(r"[ \t]{2,}", " ", content).strip() or None
    return content


def _canonical_only(text: str, index: _ToolIndex) -> list[tuple[str, dict[str, Any]]] | None:
    """The calls of a text made only of canonical blocks, each strict JSON ``{"name", "arguments": {..}}``
    naming one of the request's tools; None for anything else. A shortcut that reads exactly what the
    parser would, without its general machinery."""
    calls: list[tuple[str, dict[str, Any]]] = []
    pos = 0
    for m in _CANONICAL_RE.finditer(text):
        if m.start() != pos:
            return None
        try:
            value = _STRICT.decode(m.group(1))
        except ValueError:
            return None
        if not isinstance(value, dict) or len(value) != 2:
            return None
        name, args = value.get("name"), value.get("arguments")
        if not isinstance(name, str) or name not in index.schemas or not isinstance(args, dict):
            return None
        if args.get("type") == "object" and isinstance(args.get("properties"), dict):
            return None  # a JSON schema with values filled in: the parser unwraps it
        calls.append((name, args))
        pos = m.end()
    return calls if calls and pos == len(text) else None


def _echoes(text: str, state: _State) -> tuple[str, list[_Call], list[str]]:
    """Tool definitions pasted into ``text``: the text with them blanked out, the call read from the one
    that carries argument values, and the names of the others. Several carrying values is ambiguous."""
    if "properties" not in text and "description" not in text:
        return text, [], []
    found: list[tuple[int, int, list[tuple[str, dict[str, Any] | None, str]]]] = []
    frontier = reads = 0
    for m in _OPEN_RE.finditer(text):
        if m.start() < frontier:
            continue
        reads += 1
        if reads > _MAX_ECHO_READS:
            break
        parsed = _parse_json_at(text, m.start())
        if parsed is None:
            continue
        value, end, notes = parsed
        defs = _definitions(value)
        if defs is None:
            if _TRUNCATED_NOTE not in notes:
                frontier = end
            continue
        if any(d is None for d in defs):
            state.fail(RejectReason.SCHEMA_ECHO, "pasted tool definitions mixed with other objects in one list")
            return text, [], []
        found.append((m.start(), end, [d for d in defs if d is not None]))
        frontier = end
    if not found:
        return text, [], []
    with_values = [(start, d) for start, _, defs in found for d in defs if d[1] is not None]
    if len(with_values) > 1:
        names = ", ".join(d[0] for _, d in with_values)
        state.fail(RejectReason.SCHEMA_ECHO, f"argument values in several pasted tool definitions: {names}")
        return text, [], []
    calls: list[_Call] = []
    for start, (name, values, how) in with_values:
        assert values is not None
        state.repair(RepairCode.SCHEMA_ECHO, f"arguments of {name} taken from a pasted tool definition ({how})")
        calls.append(_Call(name, values, start))
    chars = list(text)
    for start, end, _ in found:
        chars[start:end] = " " * (end - start)
    without = [d[0] for _, _, defs in found for d in defs if d[1] is None]
    return "".join(chars), calls, list(dict.fromkeys(without))


def _definitions(value: Any) -> list[tuple[str, dict[str, Any] | None, str] | None] | None:
    """The tool definitions ``value`` holds (an object, a list, ``{"tools": [...]}``), None (in the list) for
    an object that is not one; None when it holds none."""
    if isinstance(value, dict) and isinstance(value.get("tools"), list):
        value = value["tools"]
    items = value if isinstance(value, list) else [value]
    defs = [_definition(item) for item in items]
    if not any(d is not None for d in defs):
        return None
    return [d for d, item in zip(defs, items, strict=True) if d is not None or isinstance(item, dict)]


def _definition(item: Any) -> tuple[str, dict[str, Any] | None, str] | None:
    """(name, argument values or None, where they were) of a pasted tool definition; None if not one."""
    if not isinstance(item, dict):
        return None
    fn = item.get("function")
    inner = fn if isinstance(fn, dict) and isinstance(fn.get("name"), str) else item
    name = inner.get("name")
    if not isinstance(name, str) or not name.strip():
        return None
    params = inner.get("parameters")
    props = params.get("properties") if isinstance(params, dict) else None
    if isinstance(params, dict) and not (
        params.get("type") == "object" or "description" in inner or item.get("type") == "function"
    ):
        props = None  # arguments that happen to have a "properties" key, not a schema
    outer_args = inner is not item and "arguments" in item
    if not isinstance(props, dict) and not outer_args:
        return None
    for holder in (item, inner):
        if "arguments" in holder:
            explicit = holder["arguments"]
            if isinstance(explicit, str):
                parsed = _parse_json_at(explicit.strip(), 0) if explicit.strip() else None
                explicit = parsed[0] if parsed is not None else None
            return name.strip(), explicit if isinstance(explicit, dict) else None, '"arguments"'
    filled = _filled(props) if isinstance(props, dict) else {}
    return name.strip(), filled or None, 'values in "properties"'


def _filled(props: dict[str, Any]) -> dict[str, Any]:
    """The argument values a model wrote into a schema's ``properties`` (``"query": "tents"`` or
    ``"query": {"type": "string", "value": "tents"}``); schema entries and type placeholders are not values."""
    out: dict[str, Any] = {}
    for key, value in props.items():
        if isinstance(value, dict):
            if "value" in value:
                out[str(key)] = value["value"]
            elif value and not set(value) <= _SCHEMA_KEYS:
                out[str(key)] = value
        elif not (isinstance(value, str) and value in _PLACEHOLDERS):
            out[str(key)] = value
    return out


# ---- message


def _read_message(message: dict[str, Any], tools: list[dict[str, Any]] | None, state: _State) -> None:
    choices = message.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        inner = choices[0].get("message")
        message = inner if isinstance(inner, dict) else {}
    raw_calls = message.get("tool_calls")
    if isinstance(raw_calls, dict):
        state.repair(RepairCode.TOOL_CALLS_NOT_LIST, "one tool call given as an object")
        raw_calls = [raw_calls]
    legacy = message.get("function_call")
    if not raw_calls and isinstance(legacy, dict):
        state.repair(RepairCode.LEGACY_FUNCTION_CALL, "function_call read as a tool call")
        raw_calls = [{"function": legacy}]
    if raw_calls is not None and not isinstance(raw_calls, list):
        state.fail(RejectReason.UNPARSEABLE, f"tool_calls is a {type(raw_calls).__name__}, not a list")
        return
    raw_calls = raw_calls or []
    for i, item in enumerate(raw_calls):
        call = _message_call(i, item, state)
        if call is None:
            return
        call.position = i - len(raw_calls)  # before the calls found in the content
        state.calls.append(call)
    state.content = _read_text(_as_text(message.get("content")), tools, state, 0)


def _message_call(i: int, item: Any, state: _State) -> _Call | None:
    where = f"tool_calls[{i}]"
    if not isinstance(item, dict):
        state.fail(RejectReason.UNPARSEABLE, f"{where} is not an object")
        return None
    inner = item.get("function")
    fn: dict[str, Any] = inner if isinstance(inner, dict) else item
    name = fn.get("name")
    if not isinstance(name, str) or not name.strip():
        state.fail(RejectReason.UNPARSEABLE, f"{where} has no function name")
        return None
    clean = name.strip().removeprefix("functions.")
    if clean != name:
        state.repair(RepairCode.TOOL_NAME_PREFIX, f"{name!r} read as {clean!r}")
    raw_args = fn.get("arguments") if "arguments" in fn else fn.get("parameters")
    args = _arguments(raw_args, clean, state, 0)
    if args is None:
        return None
    call_id = item.get("id")
    return _Call(clean, args, 0, call_id if isinstance(call_id, str) and call_id else None)


def _arguments(raw: Any, name: str, state: _State, depth: int) -> dict[str, Any] | None:
    """A ``tool_calls`` entry's arguments as an object (repairs and failures recorded in ``state``)."""
    if isinstance(raw, dict):
        if depth == 0:
            state.repair(RepairCode.ARGUMENTS_AS_OBJECT, f"{name}: arguments given as an object, not a string")
        return _unwrap(dict(raw), name, state, depth)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        state.repair(RepairCode.EMPTY_ARGUMENTS, f"{name}: no arguments, {{}} used")
        return {}
    if not isinstance(raw, str):
        state.fail(RejectReason.INVALID_ARGUMENTS, f"arguments of {name} are a {type(raw).__name__}, not an object")
        return None
    text = raw.strip()
    for _ in range(_MAX_ENCODINGS):
        try:
            value = _STRICT.decode(text)
        except ValueError:
            break
        if isinstance(value, dict):
            return _unwrap(value, name, state, depth)
        if not isinstance(value, str):
            state.fail(RejectReason.INVALID_ARGUMENTS, f"arguments of {name} are a JSON {_json_type(value)}")
            return None
        state.repair(RepairCode.DOUBLE_ENCODED, f"{name}: arguments JSON-encoded more than once")
        text = value.strip()
    value = _lenient_object(text, name, state)
    return None if value is None else _unwrap(value, name, state, depth)


def _lenient_object(text: str, name: str, state: _State) -> dict[str, Any] | None:
    fence = _FENCE_RE.match(text)
    if fence:
        state.repair(RepairCode.CODE_FENCE, f"{name}: code fences around the arguments removed")
        text = fence.group("body").strip()
    start = text.find("{")
    parsed = _parse_json_at(text, start) if start >= 0 else None
    if parsed is None or not isinstance(parsed[0], dict):
        state.fail(RejectReason.INVALID_ARGUMENTS, f"arguments of {name} are not a JSON object: {_excerpt(text)}")
        return None
    value: dict[str, Any] = parsed[0]
    end, notes = parsed[1], parsed[2]
    for note in notes:
        kind = _classify(note)
        if kind is _TRUNCATION:
            if not _ends_cleanly(text[start:]):
                state.fail(RejectReason.TRUNCATED, f"arguments of {name} end inside a value: {_excerpt(text[-60:])}")
                return None
            state.repair(RepairCode.CLOSED_BRACKETS, f"{name}: closing brackets added to the arguments")
        elif isinstance(kind, RepairCode):
            state.repair(kind, f"{name}: {note}")
    for side, extra in (("before", text[:start]), ("after", text[end:])):
        if extra.strip():
            state.repair(RepairCode.EXTRA_TEXT, f"{name}: text {side} the arguments dropped: {_excerpt(extra)}")
    return value


def _unwrap(value: dict[str, Any], name: str, state: _State, depth: int) -> dict[str, Any] | None:
    """Arguments that hold the call again, or the tool's JSON schema with values filled in, unwrapped."""
    props = state.index.properties(name)
    shape = set(value)
    if (
        depth < _MAX_ENCODINGS
        and "name" not in props
        and isinstance(value.get("name"), str)
        and value["name"].strip().removeprefix("functions.").lower() == name.lower()
        and shape & {"arguments", "parameters"}
        and shape <= {"name", "arguments", "parameters", "type", "id"}
    ):
        state.repair(RepairCode.NESTED_CALL, f"{name}: arguments held the whole call again")
        return _arguments(value.get("arguments", value.get("parameters")), name, state, depth + 1)
    if "properties" not in props and value.get("type") == "object" and isinstance(value.get("properties"), dict):
        filled = _filled(value["properties"])
        if not filled:
            state.fail(RejectReason.SCHEMA_ECHO, f"arguments of {name} are its JSON schema, without values")
            return None
        state.repair(RepairCode.SCHEMA_ECHO, f"{name}: arguments unwrapped from a JSON schema")
        return filled
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number" if isinstance(value, int | float) else type(value).__name__


# ---- verdict


@lru_cache(maxsize=64)
def _call_like_re(names: tuple[str, ...]) -> re.Pattern[str] | None:
    """Text that looks like a call to one of ``names`` (a tag, ``Name(``, ``Name{``, ``Name=``) or like
    a JSON call (``"name":``)."""
    if not names:
        return None
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"<\s*/?\s*(?:{alternatives})\b|\b(?:{alternatives})\s*[({{=]|[\"']name[\"']\s*:", re.I)


def _call_like(content: str, index: _ToolIndex) -> str | None:
    m = _CALL_MARKER_RE.search(content) or _TOOL_TAG_RE.search(content)
    if m is None:
        pattern = _call_like_re(index.names)
        m = pattern.search(content) if pattern is not None else None
    if m is None:
        return None
    return _excerpt(content[max(0, m.start() - 20) : m.start() + 60])


def _tool_choice(tool_choice: ToolChoice) -> tuple[bool, str | None]:
    """(whether a call is required, the function it must be)."""
    if tool_choice == "required":
        return True, None
    if isinstance(tool_choice, dict):
        fn = tool_choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else tool_choice.get("name")
        if isinstance(name, str) and name:
            return True, name
    return False, None


def _verdict(state: _State, tool_choice: ToolChoice, parallel: bool) -> Normalized:
    index = state.index
    calls, content = state.calls, state.content
    if not calls and content is None:
        state.fail(RejectReason.EMPTY_OUTPUT, "the output holds neither text nor a tool call")
        return state.rejected()
    leftover = _call_like(content, index) if content else None
    if leftover is not None:
        state.fail(RejectReason.UNPARSEABLE, f"call-like text that could not be read: {leftover}")
        return state.rejected()
    required, named = _tool_choice(tool_choice)
    if not calls:
        if required:
            state.fail(RejectReason.NO_TOOL_CALL, f"a text answer, but tool_choice is {tool_choice!r}")
            return state.rejected()
        return _accepted(state, [])
    if tool_choice == "none":
        state.fail(RejectReason.UNEXPECTED_TOOL_CALL, f"{calls[0].name} called, but tool_choice is 'none'")
        return state.rejected()
    for call in calls:
        resolved, case_only = index.resolve(call.name)
        if resolved is None:
            offered = ", ".join(index.names) if index.names else "no tools were offered"
            state.fail(RejectReason.UNKNOWN_TOOL, f"{call.name!r} is not one of the request's tools ({offered})")
            return state.rejected()
        if case_only:
            state.repair(RepairCode.TOOL_NAME_CASE, f"{call.name!r} read as {resolved!r}")
        call.name = resolved
    if named is not None and any(c.name != named for c in calls):
        wrong = next(c.name for c in calls if c.name != named)
        state.fail(RejectReason.WRONG_TOOL, f"{wrong} called, but tool_choice names {named}")
        return state.rejected()
    errors: list[str] = []
    for call in calls:
        check = check_arguments(call.arguments, index.schemas.get(call.name))
        errors.extend(f"{call.name}: {e}" for e in check.errors)
        for r in check.repairs:
            state.repair(RepairCode.SCHEMA_COERCION, f"{call.name}: {r}")
        for w in check.warnings:
            state.warn(WarningCode.UNKNOWN_ARGUMENT, f"{call.name}: {w}")
        call.arguments = check.arguments
    if errors:
        state.fail(RejectReason.SCHEMA_ERROR, "; ".join(errors))
        return state.rejected()
    wire: list[tuple[_Call, str]] = []
    for call in calls:
        try:
            wire.append((call, json.dumps(call.arguments, ensure_ascii=False, separators=(",", ":"), allow_nan=False)))
        except ValueError:
            state.fail(RejectReason.INVALID_ARGUMENTS, f"arguments of {call.name} hold a NaN or infinite number")
            return state.rejected()
    kept = wire
    if len(wire) > 1:
        unique: dict[tuple[str, str], tuple[_Call, str]] = {}
        for call, arguments in wire:
            key = (call.name, json.dumps(call.arguments, sort_keys=True, ensure_ascii=False))
            if key in unique:
                state.repair(RepairCode.DUPLICATE_CALL, f"{call.name} written more than once")
            else:
                unique[key] = (call, arguments)
        kept = list(unique.values())
    if not parallel and len(kept) > 1:
        names = ", ".join(c.name for c, _ in kept)
        state.fail(RejectReason.MULTIPLE_CALLS, f"{len(kept)} calls ({names}), but parallel_tool_calls is off")
        return state.rejected()
    return _accepted(state, kept)


def _accepted(state: _State, calls: list[tuple[_Call, str]]) -> Normalized:
    """The verdict on an accepted output: ``calls`` are (call, its arguments as compact JSON)."""
    message: dict[str, Any] = {"role": "assistant", "content": state.content}
    if calls:
        message["tool_calls"] = [
            {
                "id": call.call_id or _call_id(i, call.name, arguments),
                "type": "function",
                "function": {"name": call.name, "arguments": arguments},
            }
            for i, (call, arguments) in enumerate(calls)
        ]
    status = NormalizeStatus.REPAIRED if state.repairs else NormalizeStatus.OK
    return Normalized(status, message, list(state.repairs), list(state.warnings))


def _call_id(index: int, name: str, arguments: str) -> str:
    digest = hashlib.sha256(f"{index}\x00{name}\x00{arguments}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"call_{digest[:16]}"
