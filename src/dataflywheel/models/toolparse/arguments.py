"""A call's arguments as a JSON object, read once for every form (text, or an OpenAI message's ``arguments``).

:func:`read_arguments` takes whatever a model put where the arguments go: an object, a JSON string (also
encoded twice, in code fences, with text around it, broken), nothing, the whole call again, or the tool's JSON
schema with the values filled in. It returns the object, or None when there is none, and a finding for every
repair or loss. Also here: the shape of a call-like JSON object (:func:`call_shape`), the values a model
wrote into a schema (:func:`values_in_schema`), and whether a cut-off text ended at the end of a value
(:func:`ends_cleanly`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Final

from dataflywheel.models.lenient_json import JsonRepair, read_json
from dataflywheel.models.toolparse.findings import JSON_FINDINGS, Finding, FindingCode, excerpt
from dataflywheel.records.jsonvalue import JsonObject, json_type_name
from dataflywheel.records.tools import ToolIndex, strip_functions_prefix

__all__ = [
    "NO_ARGS",
    "ArgumentsRead",
    "FlatArgs",
    "call_shape",
    "ends_cleanly",
    "is_plain",
    "read_arguments",
    "values_in_schema",
]

NO_ARGS: Final = object()
"""The arguments of a call-like object that has none."""
MAX_ENCODINGS: Final = 3
"""How many layers of JSON encoding (or of a call nested in its own arguments) are unwrapped."""
NAME_KEYS: Final = ("name", "function", "tool", "tool_name", "function_name")
ARG_KEYS: Final = ("arguments", "parameters", "args", "tool_input", "input", "params")
SCHEMA_KEYS: Final = frozenset(
    {
        "type", "description", "enum", "items", "properties", "required", "default", "title", "format", "examples",
        "minimum", "maximum", "minLength", "maxLength", "pattern", "additionalProperties", "anyOf", "oneOf", "const",
    }
)  # fmt: skip
"""The keywords of a JSON schema: an object made only of them describes a value rather than being one."""
_PLACEHOLDERS: Final = frozenset({"string", "integer", "number", "boolean", "object", "array", "null"})
_NESTED_KEYS: Final = frozenset({"name", "arguments", "parameters", "type", "id"})
_STRICT = json.JSONDecoder(strict=False)
_FENCE_RE = re.compile(r"\A```[\w+\-]*[ \t]*\n?(?P<body>.*?)\n?[ \t]*```\Z", re.DOTALL)
_CLOSERS_RE = re.compile(r"(?:\s|</tool_?calls?>|</function>|```|<\|eo[mt]_id\|>)+\Z", re.IGNORECASE)


class FlatArgs(JsonObject):
    """Arguments written beside the name (``{"name": "X", "query": ".."}``) instead of under ``arguments``."""


def call_shape(obj: Any) -> tuple[str, Any] | None:
    """(name, raw arguments) of a call-shaped object (``{"name", "arguments" | "parameters" | ..}``, also
    OpenAI's ``{"type": "function", "function": {..}}``), else None. The raw arguments are :data:`NO_ARGS`
    when absent, a :class:`FlatArgs` when written beside the name."""
    if not isinstance(obj, dict):
        return None
    inner = obj
    fn = obj.get("function")
    if isinstance(fn, dict) and isinstance(fn.get("name"), str):
        inner = fn
    name: str | None = None
    name_key = ""
    for key in NAME_KEYS:
        value = inner.get(key)
        if isinstance(value, str) and value.strip():
            name, name_key = value.strip(), key
            break
    if name is None:
        return None
    for key in ARG_KEYS:
        if key in inner:
            return name, inner[key]
    rest = {k: v for k, v in inner.items() if k not in (name_key, "type", "id", "description")}
    return name, FlatArgs(rest) if rest else NO_ARGS


def values_in_schema(props: JsonObject) -> JsonObject:
    """The argument values a model wrote into a schema's ``properties`` (``"query": "tents"`` or
    ``"query": {"type": "string", "value": "tents"}``); schema entries and type placeholders are not values."""
    out: JsonObject = {}
    for key, value in props.items():
        if isinstance(value, dict):
            if "value" in value:
                out[str(key)] = value["value"]
            elif value and not set(value) <= SCHEMA_KEYS:
                out[str(key)] = value
        elif not (isinstance(value, str) and value in _PLACEHOLDERS):
            out[str(key)] = value
    return out


def ends_cleanly(raw: str) -> bool:
    """Whether a text closed at its end by the reader ended at the end of a value (only brackets, quotes or
    a tag end were missing), rather than inside a string, after a key or after a separator."""
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


@dataclass(frozen=True)
class ArgumentsRead:
    """A call's arguments, read."""

    value: JsonObject | None
    """The arguments object; None when there is none (a finding says why)."""
    findings: list[Finding] = field(default_factory=list)


def read_arguments(
    raw: Any, name: str, tools: ToolIndex, *, wire: bool = False, span: tuple[int, int] | None = None
) -> ArgumentsRead:
    """``raw`` as the arguments object of a call to ``name`` (as written; a ``functions.`` prefix is ignored
    when comparing it), or None.

    ``wire``: ``raw`` is an OpenAI message's ``function.arguments``, which should be a JSON string (an object
    there is a repair; the details are worded for a message). Else ``raw`` was read from a call in a text,
    where an object is the norm and a string a repair; ``span`` is that call's place in the text, given to
    every finding. For a message, spans are offsets into the arguments string (the whole string when it had
    to be decoded more than once). A cut-off arguments string is judged here for a message (``CUT_OFF``, no
    arguments); in a text the call's own end is judged by the reader.
    """
    reader = _Reader(name, tools, wire, span)
    value = reader.read(raw, 0)
    return ArgumentsRead(value, reader.findings)


def is_plain(args: JsonObject, name: str, tools: ToolIndex) -> bool:
    """Whether :func:`read_arguments` takes the object ``args`` of a call written in text as it is."""
    return not (_nested_call(args, name, tools, 0) or _schema_values(args, name, tools) is not None)


def _props(name: str, tools: ToolIndex) -> tuple[str, ...]:
    match = tools.resolve(strip_functions_prefix(name))
    return tools.properties(match.name) if match.name is not None else ()


def _nested_call(value: JsonObject, name: str, tools: ToolIndex, depth: int) -> bool:
    """Whether ``value`` is the call to ``name`` again (``{"name": name, "arguments": {..}}``)."""
    inner = value.get("name")
    shape = set(value)
    return (
        depth < MAX_ENCODINGS
        and isinstance(inner, str)
        and strip_functions_prefix(inner.strip()).lower() == strip_functions_prefix(name).lower()
        and bool(shape & {"arguments", "parameters"})
        and shape <= _NESTED_KEYS
        and "name" not in _props(name, tools)
    )


def _schema_values(value: JsonObject, name: str, tools: ToolIndex) -> JsonObject | None:
    """When ``value`` is a JSON object schema (and the tool has no argument called ``properties``): the values
    written into it. Else None."""
    props = value.get("properties")
    if value.get("type") != "object" or not isinstance(props, dict) or "properties" in _props(name, tools):
        return None
    return values_in_schema(props)


class _Reader:
    """One arguments read. Details are worded for where the arguments were: a message (``wire``) or a text."""

    def __init__(self, name: str, tools: ToolIndex, wire: bool, span: tuple[int, int] | None) -> None:
        self.name = name
        self.tools = tools
        self.wire = wire
        self.span = span
        self.findings: list[Finding] = []

    def found(self, code: FindingCode, detail: str, span: tuple[int, int] = (0, 0)) -> None:
        self.findings.append(Finding(code, detail, self.span or span))

    def found_as(self, code: FindingCode, in_message: str, in_text: str, span: tuple[int, int] = (0, 0)) -> None:
        """A finding whose detail is worded for where the arguments were: ``in_message`` or ``in_text``."""
        self.found(code, in_message if self.wire else in_text, span)

    def read(self, raw: Any, depth: int) -> JsonObject | None:
        name, wire = self.name, self.wire
        if raw is NO_ARGS:
            self.found(FindingCode.EMPTY_ARGUMENTS, f"no arguments for {name!r}: used {{}}")
            return {}
        if isinstance(raw, FlatArgs):
            self.found(FindingCode.FLAT_ARGUMENTS, f"arguments of {name!r} given beside its name")
            return dict(raw)
        if isinstance(raw, dict):
            if wire and depth == 0:
                self.found(FindingCode.ARGUMENTS_AS_OBJECT, f"{name}: arguments given as an object, not a string")
            return self.unwrap(dict(raw), depth)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            what = "null arguments" if raw is None else "empty arguments string"
            in_text = f"{what} for {name!r} replaced by {{}}"
            self.found_as(FindingCode.EMPTY_ARGUMENTS, f"{name}: no arguments, {{}} used", in_text, (0, len(raw or "")))
            return {}
        if not isinstance(raw, str):
            kind = type(raw).__name__
            self.found_as(
                FindingCode.INVALID_ARGUMENTS,
                f"arguments of {name} are a {kind}, not an object",
                f"arguments of {name!r} are not an object ({kind}): call skipped",
            )
            return None
        before = len(self.findings)
        value = self.string(raw)
        if value is None:
            return None
        if not wire and depth == 0:  # said first, though known only once the string has been read
            as_string = Finding(
                FindingCode.ARGUMENTS_AS_STRING, "arguments given as a JSON string", self.span or (0, 0)
            )
            self.findings.insert(before, as_string)
        return self.unwrap(value, depth)

    def not_an_object(self, text: str, json_type: str | None, span: tuple[int, int]) -> None:
        if not self.wire:
            detail = f"arguments of {self.name!r} are not a JSON object: call skipped"
        elif json_type is not None:
            detail = f"arguments of {self.name} are a JSON {json_type}"
        else:
            detail = f"arguments of {self.name} are not a JSON object: {excerpt(text)}"
        self.found(FindingCode.INVALID_ARGUMENTS, detail, span)

    def string(self, raw: str) -> JsonObject | None:
        """An arguments string's object: strict JSON (decoded again while it holds a string), else lenient."""
        name = self.name
        text = raw.strip()
        base: int | None = len(raw) - len(raw.lstrip())
        whole = (0, len(raw))
        for _ in range(MAX_ENCODINGS):
            try:
                value = _STRICT.decode(text)
            except ValueError:
                break
            if isinstance(value, dict):
                return value
            if not isinstance(value, str):
                self.not_an_object(text, json_type_name(value), whole)
                return None
            self.found(FindingCode.DOUBLE_ENCODED, f"{name}: arguments JSON-encoded more than once", whole)
            text, base = value.strip(), None
        fence = _FENCE_RE.match(text)
        if fence:
            self.found(FindingCode.FENCED_ARGUMENTS, f"{name}: code fences around the arguments removed", whole)
            body = fence.group("body")
            stripped = body.strip()
            if base is not None:
                base += fence.start("body") + len(body) - len(body.lstrip())
            text = stripped
        start = text.find("{")
        read = read_json(text, start) if start >= 0 else None
        if read is None or not isinstance(read.value, dict):
            self.not_an_object(text, None, whole)
            return None

        def at(span: tuple[int, int]) -> tuple[int, int]:
            return whole if base is None else (base + span[0], base + span[1])

        for fix in read.fixes:
            if fix.repair is not JsonRepair.TRUNCATED:
                message = fix.repair.message
                self.found_as(JSON_FINDINGS[fix.repair], f"{name}: {message}", message, at(fix.span))
            elif not self.wire:
                self.found(FindingCode.TRUNCATED, fix.repair.message, at(fix.span))
            elif ends_cleanly(text[start:]):
                self.found(FindingCode.TRUNCATED, f"{name}: closing brackets added to the arguments", at(fix.span))
            else:
                cut = f"arguments of {name} end inside a value: {excerpt(text[-60:])}"
                self.found(FindingCode.CUT_OFF, cut, at((start, len(text))))
                return None
        for side, a, b in (("before", 0, start), ("after", read.end, len(text))):
            extra = text[a:b]
            if extra.strip():
                detail = f"{name}: text {side} the arguments dropped: {excerpt(extra)}"
                self.found(FindingCode.EXTRA_TEXT, detail, at((a, b)))
        return read.value

    def unwrap(self, value: JsonObject, depth: int) -> JsonObject | None:
        """Arguments holding the call again, or the tool's JSON schema with values filled in, unwrapped."""
        name = self.name
        if _nested_call(value, name, self.tools, depth):
            self.found(FindingCode.NESTED_CALL, f"{name}: arguments held the whole call again")
            return self.read(value.get("arguments", value.get("parameters")), depth + 1)
        filled = _schema_values(value, name, self.tools)
        if filled is None:
            return {str(k): v for k, v in value.items()}
        if not filled:
            self.found_as(
                FindingCode.SCHEMA_WITHOUT_VALUES,
                f"arguments of {name} are its JSON schema, without values",
                f"JSON schema of {name!r} is not a call: ignored",
            )
            return None
        self.found_as(
            FindingCode.SCHEMA_UNWRAPPED,
            f"{name}: arguments unwrapped from a JSON schema",
            f"arguments of {name!r} unwrapped from a JSON schema",
        )
        return filled
