"""OpenAI-format validation of a log record (the blueprint's checks, with reasons)."""

from __future__ import annotations

from typing import Any

from dataflywheel.errors import RecordError
from dataflywheel.records.model import check_request, check_response


def format_problem(record: Any, max_tool_properties: int | None = 8) -> str | None:
    """Why ``record`` is not a well-formed chat-completion log record, or None when it is.

    Checks that ``request.messages`` and ``response.choices[*].message`` are OpenAI-shaped and, when
    ``max_tool_properties`` is set, that no tool declares more parameter properties than that (the
    blueprint's NIM work-around, here a setting: ``data_split.max_tool_properties``).
    """
    if not isinstance(record, dict):
        return "record: not a JSON object"
    try:
        check_request(record.get("request"))
        check_response(record.get("response"))
    except RecordError as exc:
        return str(exc)
    if max_tool_properties is not None:
        for i, tool in enumerate(record["request"].get("tools") or []):
            fn = tool.get("function") if isinstance(tool, dict) else None
            params = fn.get("parameters") if isinstance(fn, dict) else None
            props = params.get("properties") if isinstance(params, dict) else None
            if isinstance(props, dict) and len(props) > max_tool_properties:
                return (
                    f"request.tools[{i}]: {len(props)} parameter properties, more than "
                    f"data_split.max_tool_properties ({max_tool_properties})"
                )
    return None
