"""Tool-call arguments, normalized in one place.

OpenAI sends ``function.arguments`` as a JSON *string*; the blueprint's sample data stores a JSON *object*.
Inside data-flywheel the canonical form is the object: records are normalized when they are read
(:func:`normalize_tool_calls`), and turned back into OpenAI's wire form only when a request is sent to an
endpoint (:func:`to_wire_messages`). Arguments that are not valid JSON stay strings, so nothing is lost;
curation decides what to do with them (:func:`arguments_problem`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any, TypeVar

import orjson

from dataflywheel.records.jsonvalue import JsonObject

_Record = TypeVar("_Record", bound=MutableMapping[str, Any])


def parse_arguments(raw: Any) -> Any:
    """The object form of ``raw`` when it is a JSON string holding an object, else ``raw`` unchanged."""
    if isinstance(raw, str):
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
        if isinstance(value, dict):
            return value
    return raw


def arguments_object(raw: Any) -> JsonObject | None:
    """Strictly, the object ``raw`` arguments stand for: an object, or a JSON string holding one; ``{}`` for
    none (None, or the empty string OpenAI sends for a call without arguments); None for anything else. (A
    model's messy arguments are read leniently by :mod:`dataflywheel.models.toolparse.arguments`.)"""
    if isinstance(raw, Mapping):
        return dict(raw)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    value = parse_arguments(raw)
    return value if isinstance(value, dict) else None


def normalize_tool_calls(calls: Any) -> Any:
    """Normalize a ``tool_calls`` list in place: a missing ``type`` becomes ``"function"`` and string
    arguments holding a JSON object become that object. Anything that is not a list is returned as is."""
    if not isinstance(calls, list):
        return calls
    for call in calls:
        if not isinstance(call, dict):
            continue
        if "type" not in call and isinstance(call.get("function"), dict):
            call["type"] = "function"
        fn = call.get("function")
        if isinstance(fn, dict) and "arguments" in fn:
            fn["arguments"] = parse_arguments(fn["arguments"])
    return calls


def normalize_messages(messages: Any) -> None:
    """Normalize the tool calls of every message of a list, in place."""
    if not isinstance(messages, list):
        return
    for msg in messages:
        if isinstance(msg, dict) and msg.get("tool_calls") is not None:
            normalize_tool_calls(msg["tool_calls"])


def normalize_record_tool_calls(record: _Record) -> _Record:
    """Normalize the tool calls of a log record's request messages and response choices, in place."""
    request = record.get("request")
    if isinstance(request, dict):
        normalize_messages(request.get("messages"))
    response = record.get("response")
    if isinstance(response, dict) and isinstance(response.get("choices"), list):
        for choice in response["choices"]:
            if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
                msg = choice["message"]
                if msg.get("tool_calls") is not None:
                    normalize_tool_calls(msg["tool_calls"])
    return record


def arguments_problem(calls: list[Any]) -> str | None:
    """Why these tool calls' arguments are unusable (not a JSON object), or None when they all are."""
    for i, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            return f"tool_calls[{i}].function is missing"
        args = fn.get("arguments")
        if args is None:
            return f"tool_calls[{i}].function.arguments is missing"
        if not isinstance(args, dict):
            return f"tool_calls[{i}].function.arguments is not a JSON object: {str(args)[:60]!r}"
    return None


def to_wire_messages(messages: Sequence[Mapping[str, Any]]) -> list[JsonObject]:
    """A copy of ``messages`` in OpenAI's wire form: tool-call arguments as JSON strings."""
    out: list[JsonObject] = [copy.deepcopy(dict(m)) for m in messages]
    for msg in out:
        calls = msg.get("tool_calls")
        for call in calls if isinstance(calls, list) else []:
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and not isinstance(fn.get("arguments"), str):
                fn["arguments"] = orjson.dumps(fn.get("arguments", {})).decode()
    return out
