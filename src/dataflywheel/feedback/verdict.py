"""The verdict on one output, once it has been read: tool choice, tool names, schemas, duplicates.

:func:`verdict` takes what :mod:`.policy` read (calls, the text left, repairs so far) and checks it against
the request: text left that still looks like a call, ``tool_choice``, the offered tool names (a case-only
difference is a repair, anything else a rejection), each call's arguments against its schema
(:mod:`.schema`), identical calls (deduplicated), ``parallel_tool_calls``. :class:`Normalized` is the result.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from dataflywheel.feedback.codes import NormalizeStatus, RejectReason, RepairCode, WarningCode
from dataflywheel.feedback.policy import Call, State
from dataflywheel.feedback.schema import check_arguments
from dataflywheel.models.toolparse.findings import excerpt
from dataflywheel.models.types import ToolChoice
from dataflywheel.records.tools import ToolIndex

__all__ = ["Normalized", "entry_code", "rejected", "verdict"]

_CALL_MARKER_RE = re.compile(r"<\s*/?\s*(?:tool_?calls?|function)\b|<\|python_tag\|>", re.IGNORECASE)
_TOOL_TAG_RE = re.compile(r"<[A-Z][\w.\-]*(?:\s+[\w.\-]+\s*=|\s*/>)")
"""A capitalized tag with attributes or self-closing: how small models write a call to a tool by its name."""


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


def rejected(state: State) -> Normalized:
    """The verdict on an output rejected while it was read."""
    assert state.reject is not None
    reason, detail = state.reject
    return Normalized(NormalizeStatus.REJECTED, None, list(state.repairs), list(state.warnings), reason, detail)


@lru_cache(maxsize=64)
def _call_like_re(names: tuple[str, ...]) -> re.Pattern[str] | None:
    """Text that looks like a call to one of ``names`` (a tag, ``Name(``, ``Name{``, ``Name=``) or like
    a JSON call (``"name":``)."""
    if not names:
        return None
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"<\s*/?\s*(?:{alternatives})\b|\b(?:{alternatives})\s*[({{=]|[\"']name[\"']\s*:", re.I)


def _call_like(content: str, index: ToolIndex) -> str | None:
    m = _CALL_MARKER_RE.search(content) or _TOOL_TAG_RE.search(content)
    if m is None:
        pattern = _call_like_re(index.names)
        m = pattern.search(content) if pattern is not None else None
    if m is None:
        return None
    return excerpt(content[max(0, m.start() - 20) : m.start() + 60])


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


def verdict(state: State, tool_choice: ToolChoice, parallel: bool) -> Normalized:
    """The verdict on what was read into ``state`` (nothing was rejected while reading)."""
    index = state.index
    calls, content = state.calls, state.content
    if not calls and content is None:
        state.fail(RejectReason.EMPTY_OUTPUT, "the output holds neither text nor a tool call")
        return rejected(state)
    leftover = _call_like(content, index) if content else None
    if leftover is not None:
        state.fail(RejectReason.UNPARSEABLE, f"call-like text that could not be read: {leftover}")
        return rejected(state)
    required, named = _tool_choice(tool_choice)
    if not calls:
        if required:
            state.fail(RejectReason.NO_TOOL_CALL, f"a text answer, but tool_choice is {tool_choice!r}")
            return rejected(state)
        return _accepted(state, [])
    if tool_choice == "none":
        state.fail(RejectReason.UNEXPECTED_TOOL_CALL, f"{calls[0].name} called, but tool_choice is 'none'")
        return rejected(state)
    for call in calls:
        match = index.resolve(call.name)
        resolved = match.name
        if resolved is None:
            offered = ", ".join(index.names) if index.names else "no tools were offered"
            state.fail(RejectReason.UNKNOWN_TOOL, f"{call.name!r} is not one of the request's tools ({offered})")
            return rejected(state)
        if match.case_only:
            state.repair(RepairCode.TOOL_NAME_CASE, f"{call.name!r} read as {resolved!r}")
        call.name = resolved
    if named is not None and any(c.name != named for c in calls):
        wrong = next(c.name for c in calls if c.name != named)
        state.fail(RejectReason.WRONG_TOOL, f"{wrong} called, but tool_choice names {named}")
        return rejected(state)
    errors: list[str] = []
    for call in calls:
        check = check_arguments(call.arguments, index.schema(call.name))
        errors.extend(f"{call.name}: {e}" for e in check.errors)
        for r in check.repairs:
            state.repair(RepairCode.SCHEMA_COERCION, f"{call.name}: {r}")
        for w in check.warnings:
            state.warn(WarningCode.UNKNOWN_ARGUMENT, f"{call.name}: {w}")
        call.arguments = check.arguments
    if errors:
        state.fail(RejectReason.SCHEMA_ERROR, "; ".join(errors))
        return rejected(state)
    wire: list[tuple[Call, str]] = []
    for call in calls:
        try:
            wire.append((call, json.dumps(call.arguments, ensure_ascii=False, separators=(",", ":"), allow_nan=False)))
        except ValueError:
            state.fail(RejectReason.INVALID_ARGUMENTS, f"arguments of {call.name} hold a NaN or infinite number")
            return rejected(state)
    kept = wire
    if len(wire) > 1:
        unique: dict[tuple[str, str], tuple[Call, str]] = {}
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
        return rejected(state)
    return _accepted(state, kept)


def _accepted(state: State, calls: list[tuple[Call, str]]) -> Normalized:
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
