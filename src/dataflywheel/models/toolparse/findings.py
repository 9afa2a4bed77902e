"""What the tool-call reader returns: the calls it read and its findings, each a code, a text and a span.

A consumer decides on :class:`FindingCode` values only (the feedback normalizer maps them to repairs and
rejections); :attr:`Finding.detail` is for people and may be reworded freely.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from dataflywheel.models.lenient_json import JsonFix, JsonRepair
from dataflywheel.records.jsonvalue import JsonObject

__all__ = ["CallForm", "Finding", "FindingCode", "ParsedCall", "ParsedOutput", "excerpt", "quoted_excerpt"]


class CallForm(StrEnum):
    """How a call was written."""

    TOOL_CALL = "tool_call"
    """The canonical ``<tool_call>{json}</tool_call>`` block."""
    JSON = "json"
    """A bare JSON object or list of them (in a code fence, after ``<|python_tag|>``, or in prose)."""
    FUNCTION_TAG = "function_tag"
    """``<function>Name{..}``, ``<function=Name>{..}</function>``, ``<function name="Name">``."""
    XML = "xml"
    """A tag named after the tool: ``<Tool arg=".."/>``, ``<Tool><arg>..</arg></Tool>``, ``<Tool>{..}</Tool>``."""
    CALL = "call"
    """Call syntax: ``functions.Name({..})``, ``Name(arg="..")``, ``Name={..}``."""
    PASTED_DEFINITION = "pasted_definition"
    """A tool definition pasted back with the argument values in it (read only when asked for)."""


class FindingCode(StrEnum):
    """What the reader noticed. The comment of each says what was done."""

    # ---- how the calls were written (not repairs: accepted forms other than the canonical block)
    BARE_JSON = "bare_json"
    """A call written as bare JSON (span: the call)."""
    FUNCTION_TAG = "function_tag"
    """A call written in a ``<function>`` tag (span: the call)."""
    XML_TAG = "xml_tag"
    """A call written as a tag named after the tool (span: the call)."""
    CALL_SYNTAX = "call_syntax"
    """A call written in call syntax (span: the call)."""
    PASTED_DEFINITION = "pasted_definition"
    """Arguments taken from a pasted tool definition (span: the definition)."""
    FENCED_CALL = "fenced_call"
    """A call inside Markdown code fences (span: the call)."""
    NAME_PREFIX = "name_prefix"
    """A ``functions.`` prefix removed from a tool name (span: the call)."""
    # ---- blocks and tags
    UNCLOSED_TAG = "unclosed_tag"
    """A ``<tool_call>`` block without its closing tag: it ends where its JSON does."""
    IGNORED_TEXT = "ignored_text"
    """Stray text inside a call block or tag, dropped (span: the text)."""
    XML_TEXT_BODY = "xml_text_body"
    """The text inside ``<Tool>..</Tool>`` taken as the tool's only parameter."""
    UNREADABLE_BLOCK = "unreadable_block"
    """A ``<tool_call>`` block whose contents are no call: dropped (span: the block)."""
    # ---- JSON repairs (see :class:`~dataflywheel.models.lenient_json.JsonRepair`)
    SINGLE_QUOTES = "single_quotes"
    PYTHON_LITERALS = "python_literals"
    STRAY_COMMA = "stray_comma"
    TRAILING_COMMA = "trailing_comma"
    MISSING_COMMA = "missing_comma"
    UNQUOTED_KEYS = "unquoted_keys"
    UNESCAPED_QUOTES = "unescaped_quotes"
    TRUNCATED = "truncated"
    """The text ended inside a call: what was open (JSON, a tag, a call's parentheses) was closed."""
    CUT_OFF = "cut_off"
    """The text was cut off inside a value (a string, after a key or a separator), not merely before closing
    brackets: what the model meant is lost. The call is kept (span: the call), or for arguments read on their
    own, dropped."""
    # ---- arguments
    ARGUMENTS_AS_STRING = "arguments_as_string"
    """In text, ``"arguments"`` written as a JSON string holding the object."""
    ARGUMENTS_AS_OBJECT = "arguments_as_object"
    """In a message, ``function.arguments`` given as an object instead of a JSON string."""
    DOUBLE_ENCODED = "double_encoded"
    """Arguments JSON-encoded more than once."""
    FENCED_ARGUMENTS = "fenced_arguments"
    """Code fences around an arguments string, removed."""
    EXTRA_TEXT = "extra_text"
    """Text before or after the JSON of an arguments string, dropped."""
    EMPTY_ARGUMENTS = "empty_arguments"
    """Arguments absent, null or empty: ``{}`` used."""
    FLAT_ARGUMENTS = "flat_arguments"
    """Arguments written beside the name (``{"name": "X", "query": ".."}``)."""
    NESTED_CALL = "nested_call"
    """Arguments holding the whole call again, unwrapped."""
    SCHEMA_UNWRAPPED = "schema_unwrapped"
    """Arguments given as the tool's JSON schema with values filled in: the values taken."""
    SCHEMA_WITHOUT_VALUES = "schema_without_values"
    """Arguments (or a call-shaped object) that are a JSON schema without values: no call."""
    INVALID_ARGUMENTS = "invalid_arguments"
    """Arguments that are no JSON object: the call is dropped."""
    # ---- names
    TOOL_NAME_CASE = "tool_name_case"
    """A tool name differing from an offered one only in letter case: corrected."""
    UNKNOWN_TOOL = "unknown_tool"
    """A name that is none of the offered tools (the call is kept; the caller decides)."""
    # ---- pasted tool definitions (only when asked for)
    PASTED_WITHOUT_VALUES = "pasted_without_values"
    """Tool definitions pasted back without argument values, removed from the text (span: first to last)."""
    PASTED_MIXED = "pasted_mixed"
    """Pasted tool definitions in one list with other objects: nothing is read."""
    PASTED_AMBIGUOUS = "pasted_ambiguous"
    """Argument values in several pasted definitions: nothing is read."""
    # ---- limits
    SEARCH_STOPPED = "search_stopped"
    """The search for calls outside tags stopped early (text too long or too deeply nested)."""
    INTERNAL_ERROR = "internal_error"
    """The reader failed (a bug); nothing was read."""


FORM_FINDINGS: Final = {
    CallForm.JSON: FindingCode.BARE_JSON,
    CallForm.FUNCTION_TAG: FindingCode.FUNCTION_TAG,
    CallForm.XML: FindingCode.XML_TAG,
    CallForm.CALL: FindingCode.CALL_SYNTAX,
}
"""The finding each non-canonical form of call gets."""

NOT_PROBLEMS: Final = frozenset(
    {
        *FORM_FINDINGS.values(),
        FindingCode.PASTED_DEFINITION,
        FindingCode.FENCED_CALL,
        FindingCode.NAME_PREFIX,
        FindingCode.CUT_OFF,
        FindingCode.PASTED_WITHOUT_VALUES,
        FindingCode.PASTED_MIXED,
        FindingCode.PASTED_AMBIGUOUS,
    }
)
"""Findings left out of :attr:`ParsedOutput.problems` (the parser's text report, which predates them)."""

JSON_FINDINGS: Final[dict[JsonRepair, FindingCode]] = {repair: FindingCode(repair.value) for repair in JsonRepair}
"""The finding of each lenient-JSON repair: the code of the same name (every repair has one)."""


@dataclass(frozen=True)
class Finding:
    """One thing the reader noticed."""

    code: FindingCode
    detail: str
    """What exactly, in words (for people; decide on :attr:`code`)."""
    span: tuple[int, int]
    """``(start, end)``: the characters of the text read it concerns (``start == end``: a place, such as the
    end where the text was cut off). For arguments read on their own, offsets into that arguments text."""

    @classmethod
    def of_fix(cls, fix: JsonFix) -> Finding:
        """The finding of a lenient-JSON repair."""
        return cls(JSON_FINDINGS[fix.repair], fix.repair.message, fix.span)


@dataclass(frozen=True)
class ParsedCall:
    """One tool call found in a model's output."""

    name: str
    arguments: JsonObject
    raw: str
    """The text the call was read from (for a JSON list: the whole list)."""
    format: CallForm = CallForm.TOOL_CALL
    """How it was written."""
    span: tuple[int, int] = (0, 0)
    """Where ``raw`` is in the text read."""


@dataclass(frozen=True)
class ParsedOutput:
    """What a model's output says: the text left over, the calls, and what the reader found."""

    content: str | None
    """The text left after removing the calls (stripped); None when nothing is left."""
    calls: list[ParsedCall] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """The details of the findings that repair, drop or question something, each once, in order (every
    finding but those of :data:`NOT_PROBLEMS`): a short report for people."""
    findings: list[Finding] = field(default_factory=list)
    """Everything noticed, in order, with codes and spans."""

    @classmethod
    def of(cls, content: str | None, calls: list[ParsedCall], findings: list[Finding]) -> ParsedOutput:
        problems = dict.fromkeys(f.detail for f in findings if f.code not in NOT_PROBLEMS)
        return cls(content, calls, list(problems), findings)

    def codes(self) -> list[FindingCode]:
        """The distinct finding codes, in the order first met."""
        return list(dict.fromkeys(f.code for f in self.findings))


_WS_RE = re.compile(r"\s+")


def excerpt(text: str, limit: int = 80) -> str:
    """``text`` on one line (blanks collapsed), cut to ``limit`` characters."""
    text = _WS_RE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def quoted_excerpt(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters, as a Python string literal."""
    return repr(text if len(text) <= limit else text[:limit] + "...")
