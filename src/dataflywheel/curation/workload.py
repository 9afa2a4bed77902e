"""What kind of workload records belong to, and the facts about one record the rest of curation keys on."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

NO_TOOL = "no_tool"
"""Class of a record whose reference answer is text, not a tool call."""


class WorkloadType(StrEnum):
    TOOL_CALLING = "tool_calling"
    GENERIC = "generic"


def response_message(record: dict[str, Any]) -> dict[str, Any] | None:
    """The first choice's message of a record's response, or None when the record has none."""
    try:
        msg = record["response"]["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        return None
    return msg if isinstance(msg, dict) else None


def response_tool_calls(record: dict[str, Any]) -> list[Any]:
    msg = response_message(record)
    calls = msg.get("tool_calls") if msg else None
    return calls if isinstance(calls, list) else []


def tool_name(record: dict[str, Any]) -> str:
    """Class label of a record: its first response tool call's name, or ``no_tool``."""
    return label_of_calls(response_tool_calls(record))


def label_of_calls(calls: list[Any]) -> str:
    """Class label of an answer's tool calls: the first call's name, or ``no_tool``."""
    if calls:
        fn = calls[0].get("function") if isinstance(calls[0], dict) else None
        name = fn.get("name") if isinstance(fn, dict) else None
        if isinstance(name, str) and name:
            return name
    return NO_TOOL


def message_text(content: Any) -> str:
    """Text of a message content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def user_query(record: dict[str, Any]) -> str | None:
    """Text of the last user message of the request, or None."""
    try:
        messages = record["request"]["messages"]
    except (KeyError, TypeError):
        return None
    if not isinstance(messages, list):
        return None
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return message_text(msg.get("content")) or None
    return None


def detect_workload_type(records: Iterable[dict[str, Any]]) -> WorkloadType:
    """``tool_calling`` when any record's response makes a tool call, else ``generic``."""
    for rec in records:
        if response_tool_calls(rec):
            return WorkloadType.TOOL_CALLING
    return WorkloadType.GENERIC
