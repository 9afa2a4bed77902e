"""The log record: one logged call of the big model, in OpenAI chat-completion form.

A record on the wire (JSONL, the API, a store) is a JSON object::

    {"timestamp": 1746138417, "workload_id": "primary_assistant", "client_id": "aiva-1",
     "request": {"model": "...", "messages": [...], "tools": [...]},
     "response": {"choices": [{"message": {"role": "assistant", "content": "", "tool_calls": [...]}}]}}

Unknown top-level fields are kept (``LogRecord.extra``). The conversation form
``{"messages": [...], "tools": [...]}`` is also accepted: its last message is the response.

Record identity (:func:`record_id`) is a hash of workload_id, client_id, timestamp, request and response,
taken after normalization, so re-loading the same file never duplicates a record.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from dataflywheel.errors import RecordError
from dataflywheel.records.toolcalls import normalize_record_tool_calls

MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_CORE_FIELDS = ("timestamp", "workload_id", "client_id", "request", "response")


@dataclass(slots=True)
class LogRecord:
    """A validated, normalized log record."""

    timestamp: int | float
    workload_id: str
    client_id: str
    request: dict[str, Any]
    response: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return record_id(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update(
            timestamp=self.timestamp,
            workload_id=self.workload_id,
            client_id=self.client_id,
            request=self.request,
            response=self.response,
        )
        return out


def record_id(record: dict[str, Any]) -> str:
    """Stable identity of a normalized record dict (32 hex characters)."""
    key = orjson.dumps([record.get(k) for k in _CORE_FIELDS], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(key, digest_size=16).hexdigest()


def coerce_timestamp(value: Any, where: str = "timestamp") -> int | float:
    """Epoch seconds from a number, a numeric string or an ISO 8601 string (naive means UTC)."""
    if isinstance(value, bool):
        raise RecordError("expected epoch seconds or an ISO 8601 string, got a boolean", where)
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise RecordError("must be a finite number", where)
        return value
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            return int(number) if number.is_integer() else number
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise RecordError(f"not epoch seconds nor an ISO 8601 date: {text[:40]!r}", where) from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        ts = dt.timestamp()
        return int(ts) if ts.is_integer() else ts
    if value is None:
        raise RecordError("missing", where)
    raise RecordError(f"expected epoch seconds or an ISO 8601 string, got {type(value).__name__}", where)


def _require_id(value: Any, where: str) -> str:
    if value is None:
        raise RecordError("missing", where)
    if not isinstance(value, str) or not value.strip():
        raise RecordError("must be a non-empty string", where)
    return value


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


def is_conversation_form(obj: dict[str, Any]) -> bool:
    return "messages" in obj and "request" not in obj and "response" not in obj


def conversation_to_log(obj: dict[str, Any]) -> dict[str, Any]:
    """``{"messages": [...], "tools"?}`` -> log form; the last message is the response."""
    messages = obj.get("messages")
    check_messages(messages, "messages")
    assert isinstance(messages, list)
    if len(messages) < 2:
        raise RecordError("needs at least a prompt and the answer (2 messages)", "messages")
    last = messages[-1]
    if last.get("role") != "assistant":
        raise RecordError("the last message (the response) must have role 'assistant'", "messages[-1].role")
    request: dict[str, Any] = {"messages": messages[:-1]}
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


def parse_record(
    obj: Any,
    *,
    workload_id: str | None = None,
    client_id: str | None = None,
    default_timestamp: int | float | None = None,
) -> LogRecord:
    """Validate and normalize one decoded JSON value into a :class:`LogRecord`.

    ``workload_id``/``client_id`` override the record's own. ``default_timestamp`` is used when the record
    has none (only allowed for the conversation form, which carries no time). Raises :class:`RecordError`
    naming the first bad field.
    """
    if not isinstance(obj, dict):
        raise RecordError(f"expected a JSON object, got {type(obj).__name__}", "record")
    conversation = is_conversation_form(obj)
    data = conversation_to_log(obj) if conversation else dict(obj)
    wid = _require_id(workload_id or data.get("workload_id"), "workload_id")
    cid = _require_id(client_id or data.get("client_id"), "client_id")
    raw_ts = data.get("timestamp")
    if raw_ts is None and (conversation or default_timestamp is not None):
        raw_ts = default_timestamp
    ts = coerce_timestamp(raw_ts)
    check_request(data.get("request"))
    check_response(data.get("response"))
    data["workload_id"], data["client_id"], data["timestamp"] = wid, cid, ts
    normalize_record_tool_calls(data)
    extra = {k: v for k, v in data.items() if k not in _CORE_FIELDS}
    return LogRecord(
        timestamp=ts,
        workload_id=wid,
        client_id=cid,
        request=data["request"],
        response=data["response"],
        extra=extra,
    )
