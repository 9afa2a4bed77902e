"""The log record: one logged call of the big model, in OpenAI chat-completion form.

A record on the wire (JSONL, the API, a store) is a JSON object::

    {"timestamp": 1746138417, "workload_id": "primary_assistant", "client_id": "aiva-1",
     "request": {"model": "...", "messages": [...], "tools": [...]},
     "response": {"choices": [{"message": {"role": "assistant", "content": "", "tool_calls": [...]}}]}}

Unknown top-level fields are kept (``LogRecord.extra``). The conversation form
``{"messages": [...], "tools": [...]}`` is also accepted: its last message is the response.

Record identity (:func:`record_id`) is a hash of workload_id, client_id, timestamp, request and response,
taken after normalization, so re-loading the same file never duplicates a record.

Limits every record is held to, so that each one that passes can be stored by every backend and shown:

* ``timestamp``: epoch seconds from :data:`TIMESTAMP_MIN` (1970-01-01) to :data:`TIMESTAMP_MAX`
  (9999-12-31T23:59:59Z, the last second a ``datetime`` holds);
* ``workload_id``/``client_id``: 1 to :data:`ID_MAX_LENGTH` characters, no NUL (``\\u0000``);
* JSON nested at most :data:`MAX_JSON_DEPTH` levels (the record object is level 1), integers within 64 bits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypedDict, cast

import orjson
from typing_extensions import Unpack

from dataflywheel.errors import RecordError
from dataflywheel.records.chat import (
    MESSAGE_ROLES,
    ChatCompletion,
    ChatCompletionRequest,
    WireRecord,
    WireRequest,
    WireResponse,
)
from dataflywheel.records.jsonvalue import JsonObject, attributes
from dataflywheel.records.toolcalls import normalize_record_tool_calls

__all__ = ["MESSAGE_ROLES", "LogRecord", "RecordOverrides", "parse_record", "record_id"]

_CORE_FIELDS = ("timestamp", "workload_id", "client_id", "request", "response")

TIMESTAMP_MIN: Final = 0
"""The earliest timestamp accepted: 1970-01-01T00:00:00Z."""
TIMESTAMP_MAX: Final = 253_402_300_799
"""The latest timestamp accepted: 9999-12-31T23:59:59Z."""
ID_MAX_LENGTH: Final = 255
"""The longest workload_id or client_id (the API's limit on the ids a job names)."""
MAX_JSON_DEPTH: Final = 254
"""The deepest nesting of objects and arrays a record may have (the record itself is level 1): deeper JSON
cannot be written by orjson, which every log store uses."""
_MILLIS_2000: Final = 946_684_800_000
_MILLIS_2100: Final = 4_102_444_800_000
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1


@dataclass(slots=True)
class LogRecord:
    """A validated, normalized log record."""

    timestamp: int | float
    workload_id: str
    client_id: str
    request: WireRequest
    response: WireResponse
    extra: JsonObject = field(default_factory=dict)
    """The record's unknown top-level fields, kept."""

    @property
    def id(self) -> str:
        return record_id(self.to_dict())

    @property
    def chat_request(self) -> ChatCompletionRequest:
        """The request, typed."""
        return ChatCompletionRequest.from_wire(self.request)

    @property
    def chat_response(self) -> ChatCompletion:
        """The response, typed."""
        return ChatCompletion.from_wire(self.response)

    def to_dict(self) -> WireRecord:
        """The record's JSON form: its unknown fields kept, then the core ones (which win)."""
        return cast(WireRecord, {**self.extra, **attributes(self, *_CORE_FIELDS)})


def record_id(record: Mapping[str, Any]) -> str:
    """Stable identity of a normalized record dict (32 hex characters)."""
    key = orjson.dumps([record.get(k) for k in _CORE_FIELDS], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(key, digest_size=16).hexdigest()


def coerce_timestamp(value: Any, where: str = "timestamp") -> int | float:
    """Epoch seconds from a number, a numeric string or an ISO 8601 string (naive means UTC), within
    :data:`TIMESTAMP_MIN` .. :data:`TIMESTAMP_MAX`."""
    if isinstance(value, bool):
        raise RecordError("expected epoch seconds or an ISO 8601 string, got a boolean", where)
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise RecordError("must be a finite number", where)
        _check_range(value, where)
        return value
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            if number != number or number in (float("inf"), float("-inf")):
                raise RecordError(f"must be a finite number, got {text[:40]!r}", where)
            _check_range(number, where)
            return int(number) if number.is_integer() else number
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise RecordError(f"not epoch seconds nor an ISO 8601 date: {text[:40]!r}", where) from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        ts = dt.timestamp()
        _check_range(ts, where, repr(text[:40]))
        return int(ts) if ts.is_integer() else ts
    if value is None:
        raise RecordError("missing", where)
    raise RecordError(f"expected epoch seconds or an ISO 8601 string, got {type(value).__name__}", where)


def _check_range(seconds: float, where: str, given: str | None = None) -> None:
    if TIMESTAMP_MIN <= seconds <= TIMESTAMP_MAX:
        return
    shown = given or (f"{seconds:.6g}" if isinstance(seconds, float) or abs(seconds) >= 10**15 else str(seconds))
    hint = ""
    if _MILLIS_2000 <= seconds < _MILLIS_2100:
        hint = " (epoch milliseconds? divide by 1000)"
    raise RecordError(
        f"out of range: epoch seconds from {TIMESTAMP_MIN} (1970-01-01) to {TIMESTAMP_MAX} (9999-12-31), "
        f"got {shown}{hint}",
        where,
    )


def _require_id(value: Any, where: str) -> str:
    if value is None:
        raise RecordError("missing", where)
    if not isinstance(value, str) or not value.strip():
        raise RecordError("must be a non-empty string", where)
    if len(value) > ID_MAX_LENGTH:
        raise RecordError(f"longer than {ID_MAX_LENGTH} characters ({len(value)})", where)
    if "\x00" in value:
        raise RecordError(f"contains a NUL character (\\u0000) at position {value.index(chr(0)) + 1}", where)
    return value


def encoding_problem(value: Any) -> tuple[str, str] | None:
    """(path, reason) of the first part of a JSON-like value that orjson cannot write (nested deeper than
    :data:`MAX_JSON_DEPTH`, an integer beyond 64 bits, a lone surrogate, a key that is not a string, a type
    JSON has not), or None. Walks the whole value: called once writing it has failed, to say where."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                return path, f"nested deeper than {MAX_JSON_DEPTH} levels of objects and arrays"
            if isinstance(item, dict):
                for key, child in reversed(item.items()):
                    if not isinstance(key, str):
                        return path, f"object key {key!r} is not a string"
                    stack.append((key, path, depth))
                    stack.append((child, f"{path}.{key}" if path else key, depth + 1))
            else:
                stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in reversed(list(enumerate(item))))
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                return path, f"a lone surrogate ({item[exc.start]!r}) at character {exc.start + 1}: not valid UTF-8"
        elif isinstance(item, bool) or item is None or isinstance(item, float):
            continue
        elif isinstance(item, int):
            if not _INT_MIN <= item <= _INT_MAX:
                return path, f"integer out of the 64-bit range (it needs {item.bit_length()} bits)"
        else:
            return path, f"{type(item).__name__} is not a JSON value"
    return None


def check_encodable(data: Mapping[str, object]) -> None:
    """RecordError naming the part of ``data`` that orjson (so every log store) cannot write."""
    try:
        orjson.dumps(data)
    except orjson.JSONEncodeError as exc:
        problem = encoding_problem(data)
        path, reason = problem if problem is not None else ("", str(exc))
        raise RecordError(f"cannot be stored: {reason}", _short(path) or "record") from None


def _short(path: str, keep: int = 60) -> str:
    """A field path cut in the middle when it is too long to read (deeply nested values)."""
    return path if len(path) <= 2 * keep else f"{path[:keep]}…{path[-keep:]}"


def check_messages(messages: Any, where: str) -> None:
    """Raise RecordError for a message list that is not OpenAI-shaped."""
    if not isinstance(messages, list):
        raise RecordError("must be a list of messages", where)
    if not messages:
        raise RecordError("must not be empty", where)
    for i, msg in enumerate(messages):
        problem = message_problem(msg)
        if problem is not None:
            raise RecordError(problem[1], f"{where}[{i}]{problem[0]}")


def check_message(msg: Any, where: str) -> None:
    problem = message_problem(msg)
    if problem is not None:
        raise RecordError(problem[1], where + problem[0])


def message_problem(msg: Any) -> tuple[str, str] | None:
    """(sub-field, reason) of what is wrong with one message, or None. Paths are built only on error:
    this runs for every message of every record a build reads."""
    if not isinstance(msg, dict):
        return "", "must be an object"
    role = msg.get("role")
    if not isinstance(role, str) or role not in MESSAGE_ROLES:
        return ".role", f"role must be one of {sorted(MESSAGE_ROLES)}, got {role!r}"
    content = msg.get("content")
    if content is not None and not isinstance(content, str | list):
        return ".content", "content must be a string, a list of parts or null"
    calls = msg.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            return ".tool_calls", "must be a list"
        for j, call in enumerate(calls):
            fn = call.get("function") if isinstance(call, dict) else None
            name = fn.get("name") if isinstance(fn, dict) else None
            if not isinstance(name, str) or not name:
                return f".tool_calls[{j}]", "needs function.name"
    return None


def check_request(request: Any, where: str = "request") -> None:
    if request is None:
        raise RecordError("missing", where)
    if not isinstance(request, dict):
        raise RecordError("must be an object", where)
    check_messages(request.get("messages"), f"{where}.messages")
    tools = request.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise RecordError("must be a list", f"{where}.tools")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise RecordError("must be an object", f"{where}.tools[{i}]")


def check_response(response: Any, where: str = "response") -> None:
    if response is None:
        raise RecordError("missing", where)
    if not isinstance(response, dict):
        raise RecordError("must be an object", where)
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices:
        raise RecordError("must be a non-empty list", f"{where}.choices")
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict) or "message" not in choice:
            raise RecordError("must be an object with a message", f"{where}.choices[{i}]")
        problem = message_problem(choice["message"])
        if problem is not None:
            raise RecordError(problem[1], f"{where}.choices[{i}].message{problem[0]}")


def is_conversation_form(obj: Mapping[str, object]) -> bool:
    return "messages" in obj and "request" not in obj and "response" not in obj


def conversation_to_log(obj: JsonObject) -> JsonObject:
    """``{"messages": [...], "tools"?}`` -> log form; the last message is the response."""
    messages = obj.get("messages")
    check_messages(messages, "messages")
    assert isinstance(messages, list)
    if len(messages) < 2:
        raise RecordError("needs at least a prompt and the answer (2 messages)", "messages")
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "assistant":
        raise RecordError("the last message (the response) must have role 'assistant'", "messages[-1].role")
    request: JsonObject = {"messages": messages[:-1]}
    if obj.get("tools") is not None:
        request["tools"] = obj["tools"]
    if obj.get("model") is not None:
        request["model"] = obj["model"]
    out = {k: v for k, v in obj.items() if k not in ("messages", "tools", "model")}
    out["request"] = request
    out["response"] = {"choices": [{"index": 0, "message": last, "finish_reason": "stop"}]}
    return out


def decode_record(raw: bytes | str) -> Any:
    """Decode one raw JSON record; the conversation form becomes log form (a malformed conversation is
    returned as decoded, for validation to report). Raises ``orjson.JSONDecodeError`` on bad JSON."""
    obj = orjson.loads(raw)
    if isinstance(obj, dict) and is_conversation_form(obj):
        try:
            return conversation_to_log(obj)
        except RecordError:
            return obj
    return obj


class RecordOverrides(TypedDict, total=False):
    """What a loader sets on the records it reads (:func:`parse_record`'s keyword options)."""

    workload_id: str | None
    """Overrides the record's own."""
    client_id: str | None
    """Overrides the record's own."""
    default_timestamp: int | float | None
    """Used when the record has none (only allowed for the conversation form, which carries no time)."""


def parse_record(obj: Any, **overrides: Unpack[RecordOverrides]) -> LogRecord:
    """Validate and normalize one decoded JSON value into a :class:`LogRecord`, with the ids and default
    time of ``overrides`` (:class:`RecordOverrides`). Raises :class:`RecordError` naming the first bad
    field.
    """
    default_timestamp = overrides.get("default_timestamp")
    if not isinstance(obj, dict):
        raise RecordError(f"expected a JSON object, got {type(obj).__name__}", "record")
    conversation = is_conversation_form(obj)
    data: JsonObject = conversation_to_log(obj) if conversation else dict(obj)
    wid = _require_id(overrides.get("workload_id") or data.get("workload_id"), "workload_id")
    cid = _require_id(overrides.get("client_id") or data.get("client_id"), "client_id")
    raw_ts = data.get("timestamp")
    if raw_ts is None and (conversation or default_timestamp is not None):
        raw_ts = default_timestamp
    ts = coerce_timestamp(raw_ts)
    check_request(data.get("request"))
    check_response(data.get("response"))
    data["workload_id"], data["client_id"], data["timestamp"] = wid, cid, ts
    normalize_record_tool_calls(data)
    check_encodable(data)
    extra = {k: v for k, v in data.items() if k not in _CORE_FIELDS}
    return LogRecord(
        timestamp=ts,
        workload_id=wid,
        client_id=cid,
        request=cast(WireRequest, data["request"]),  # checked above
        response=cast(WireResponse, data["response"]),
        extra=extra,
    )
