"""The normalizer's policy over the tool-call reader's findings: which are repairs, which reject an output.

The reader (:mod:`dataflywheel.models.toolparse`) says what it found as :class:`FindingCode` values; this
module decides, on codes alone, what each means for training data (:data:`RULES`). A finding's ``detail``
becomes the detail of the repair or rejection and is never read. Also here: reading an OpenAI message's
``tool_calls`` (names and arguments through the same reader's pieces) and the state of one output's reading.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from dataflywheel.feedback.codes import RejectReason, RepairCode, WarningCode
from dataflywheel.models.toolparse import CallForm, Finding, FindingCode, read_tool_calls
from dataflywheel.models.toolparse.arguments import read_arguments
from dataflywheel.records.chat import content_text
from dataflywheel.records.tools import ToolIndex, strip_functions_prefix

__all__ = ["DEFERRED", "RULES", "Call", "State", "read", "read_message", "read_text"]

F = FindingCode
RULES: Final[dict[FindingCode, RepairCode | RejectReason | None]] = {
    # how a call was written
    F.BARE_JSON: RepairCode.BARE_JSON_CALL,
    F.FUNCTION_TAG: RepairCode.FUNCTION_TAG_CALL,
    F.XML_TAG: RepairCode.XML_TAG_CALL,
    F.CALL_SYNTAX: RepairCode.CALL_SYNTAX,
    F.PASTED_DEFINITION: RepairCode.SCHEMA_ECHO,
    F.NAME_PREFIX: RepairCode.TOOL_NAME_PREFIX,
    # blocks and tags
    F.UNCLOSED_TAG: RepairCode.UNCLOSED_TAG,
    F.IGNORED_TEXT: RepairCode.IGNORED_TEXT,
    F.XML_TEXT_BODY: RepairCode.XML_TEXT_BODY,
    F.UNREADABLE_BLOCK: RejectReason.UNPARSEABLE,
    # JSON
    F.SINGLE_QUOTES: RepairCode.SINGLE_QUOTES,
    F.PYTHON_LITERALS: RepairCode.PYTHON_LITERALS,
    F.STRAY_COMMA: RepairCode.TRAILING_COMMA,
    F.TRAILING_COMMA: RepairCode.TRAILING_COMMA,
    F.MISSING_COMMA: RepairCode.MISSING_COMMA,
    F.UNQUOTED_KEYS: RepairCode.UNQUOTED_KEYS,
    F.UNESCAPED_QUOTES: RepairCode.UNESCAPED_QUOTES,
    F.CUT_OFF: RejectReason.TRUNCATED,
    # arguments
    F.ARGUMENTS_AS_STRING: RepairCode.ARGUMENTS_AS_STRING,
    F.ARGUMENTS_AS_OBJECT: RepairCode.ARGUMENTS_AS_OBJECT,
    F.DOUBLE_ENCODED: RepairCode.DOUBLE_ENCODED,
    F.FENCED_ARGUMENTS: RepairCode.CODE_FENCE,
    F.EXTRA_TEXT: RepairCode.EXTRA_TEXT,
    F.EMPTY_ARGUMENTS: RepairCode.EMPTY_ARGUMENTS,
    F.FLAT_ARGUMENTS: RepairCode.FLAT_ARGUMENTS,
    F.NESTED_CALL: RepairCode.NESTED_CALL,
    F.SCHEMA_UNWRAPPED: RepairCode.SCHEMA_ECHO,
    F.INVALID_ARGUMENTS: RejectReason.INVALID_ARGUMENTS,
    # names: an unknown one is rejected by the verdict, which checks every name against the request's tools
    F.TOOL_NAME_CASE: RepairCode.TOOL_NAME_CASE,
    F.UNKNOWN_TOOL: None,
    # pasted definitions
    F.PASTED_MIXED: RejectReason.SCHEMA_ECHO,
    F.PASTED_AMBIGUOUS: RejectReason.SCHEMA_ECHO,
    # limits
    F.SEARCH_STOPPED: RejectReason.UNPARSEABLE,
    F.INTERNAL_ERROR: RejectReason.UNPARSEABLE,
}
"""What each finding means: a repair, a rejection, or nothing (None)."""

DEFERRED: Final = frozenset({F.TRUNCATED, F.FENCED_CALL, F.SCHEMA_WITHOUT_VALUES, F.PASTED_WITHOUT_VALUES})
"""Findings whose meaning depends on the whole output (see :func:`read_text`)."""

_CLOSED_BRACKETS = "closing brackets, quotes or tag ends added at the end"
_MESSAGE_KEYS: Final = frozenset({"role", "content", "tool_calls", "function_call", "choices"})


@dataclass
class Call:
    name: str
    arguments: dict[str, Any]
    call_id: str | None = None


class State:
    """What reading one output found so far: the calls, the text left, repairs, warnings, a rejection."""

    def __init__(self, index: ToolIndex) -> None:
        self.index = index
        self.repairs: list[str] = []
        self.warnings: list[str] = []
        self.calls: list[Call] = []
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
        """Reject the output (the first rejection is the one given)."""
        if self.reject is None:
            self.reject = (reason, detail)

    def apply(self, finding: Finding) -> None:
        """A finding that means the same wherever it is (see :data:`RULES`)."""
        meaning = RULES[finding.code]
        if isinstance(meaning, RepairCode):
            self.repair(meaning, finding.detail)
        elif isinstance(meaning, RejectReason):
            self.fail(meaning, finding.detail)


def read(raw: Any, state: State) -> None:
    """Read ``raw`` (an output's text, an OpenAI message, or a decoded JSON value) into ``state``."""
    if isinstance(raw, dict) and not _MESSAGE_KEYS.isdisjoint(raw):
        read_message(raw, state)
    elif isinstance(raw, dict):  # not a message: a call (or anything else) already decoded from JSON
        state.content = read_text(json.dumps(raw, ensure_ascii=False, default=str), state)
    else:
        state.content = read_text(content_text(raw), state)


def read_text(text: str, state: State) -> str | None:
    """Read the calls in ``text`` into ``state``; returns the text left.

    Beyond :data:`RULES`: a text cut off somewhere (``TRUNCATED``) whose calls all ended at the end of a value
    is repaired (closing brackets added) unless rejected otherwise; a JSON schema without values
    (``SCHEMA_WITHOUT_VALUES``) and pasted definitions without values reject only an output with no call;
    code fences around calls are one repair.
    """
    if not text.strip():
        return None
    out = read_tool_calls(text, state.index, pasted_definitions=True)
    truncated = False
    fence: Finding | None = None
    pasted: Finding | None = None
    for finding in out.findings:
        if finding.code not in DEFERRED:
            state.apply(finding)
        elif finding.code is F.TRUNCATED:
            truncated = True
        elif finding.code is F.FENCED_CALL:
            fence = fence or finding
        elif finding.code is F.SCHEMA_WITHOUT_VALUES:
            if not out.calls:
                state.fail(RejectReason.SCHEMA_ECHO, finding.detail)
        else:
            pasted = finding
    read_calls = [c for c in out.calls if c.format is not CallForm.PASTED_DEFINITION]
    if truncated and read_calls and state.reject is None:
        state.repair(RepairCode.CLOSED_BRACKETS, _CLOSED_BRACKETS)
    if fence is not None:
        state.repair(RepairCode.CODE_FENCE, fence.detail)
    if pasted is not None:
        if out.calls:
            state.repair(RepairCode.SCHEMA_ECHO, pasted.detail)
        else:
            state.fail(RejectReason.SCHEMA_ECHO, pasted.detail)
    if any(f.code is F.PASTED_MIXED or f.code is F.PASTED_AMBIGUOUS for f in out.findings):
        return None
    state.calls.extend(Call(c.name, dict(c.arguments)) for c in out.calls)
    return out.content


def read_message(message: dict[str, Any], state: State) -> None:
    """Read an OpenAI assistant message (a chat completion's first choice is unwrapped): its ``tool_calls``
    (or legacy ``function_call``), then the calls in its ``content``."""
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
    for i, item in enumerate(raw_calls or []):
        call = _message_call(i, item, state)
        if call is None:
            return
        state.calls.append(call)
    state.content = read_text(content_text(message.get("content")), state)


def _message_call(i: int, item: Any, state: State) -> Call | None:
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
    clean = strip_functions_prefix(name.strip())
    if clean != name:
        state.repair(RepairCode.TOOL_NAME_PREFIX, f"{name!r} read as {clean!r}")
    raw_args = fn.get("arguments") if "arguments" in fn else fn.get("parameters")
    got = read_arguments(raw_args, clean, state.index, wire=True)
    for finding in got.findings:
        if finding.code is F.TRUNCATED:  # the arguments ended at the end of a value: only brackets were missing
            state.repair(RepairCode.CLOSED_BRACKETS, finding.detail)
        elif finding.code is F.SCHEMA_WITHOUT_VALUES:
            state.fail(RejectReason.SCHEMA_ECHO, finding.detail)
        else:
            state.apply(finding)
    if got.value is None:
        return None
    call_id = item.get("id")
    return Call(clean, got.value, call_id if isinstance(call_id, str) and call_id else None)
