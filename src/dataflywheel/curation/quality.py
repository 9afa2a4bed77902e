"""Tool-call quality filter for tool-calling workloads."""

from __future__ import annotations

from typing import Any

from dataflywheel.records.toolcalls import arguments_problem


def tool_call_problem(calls: list[Any], parse_arguments: bool) -> str | None:
    """Why a response's tool calls are unusable as a reference, or None.

    Every call must be ``type: function`` (normalization fills a missing type); with ``parse_arguments``
    every call's arguments must be a JSON object (string arguments were already parsed when they could
    be, so what is left here is broken JSON, an empty string or a non-object value).
    """
    for i, call in enumerate(calls):
        if not isinstance(call, dict) or call.get("type") != "function":
            kind = call.get("type") if isinstance(call, dict) else type(call).__name__
            return f"tool_calls[{i}].type is {kind!r}, not 'function'"
    if parse_arguments:
        return arguments_problem(calls)
    return None
