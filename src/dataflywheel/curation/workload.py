"""Re-export: the record facts curation keys on live in :mod:`dataflywheel.records.chat`."""

from __future__ import annotations

from dataflywheel.records.chat import (
    NO_TOOL,
    WorkloadType,
    detect_workload_type,
    label_of_calls,
    message_text,
    response_message,
    response_tool_calls,
    tool_name,
    user_query,
)

__all__ = [
    "NO_TOOL",
    "WorkloadType",
    "detect_workload_type",
    "label_of_calls",
    "message_text",
    "response_message",
    "response_tool_calls",
    "tool_name",
    "user_query",
]
