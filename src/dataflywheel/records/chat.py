"""The OpenAI chat-completion shapes, typed once for every package.

Two views of the same data:

* the **wire** form, as JSON carries it (log stores, JSONL, HTTP bodies): the ``Wire*`` TypedDicts below.
  Every one is ``total=False`` and open: OpenAI payloads evolve, so a key these types do not name is kept
  as it is, never rejected;
* the **typed** form, for code that reads the facts: :class:`Message`, :class:`ToolCall`,
  :class:`ChatCompletionRequest`, :class:`ChatCompletion`. Each has ``from_wire`` and ``to_wire``; the keys
  a class does not model travel in its ``extra`` and come back out of ``to_wire``.

Also here: the one set of message roles (:data:`MESSAGE_ROLES`) and the record facts every package keys on
(:func:`response_message`, :func:`tool_name`, :func:`user_query`, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Required, TypedDict, TypeVar, cast

import orjson

from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.records.toolcalls import arguments_object
from dataflywheel.records.tools import ToolIndex, ToolSpec

__all__ = [
    "MESSAGE_ROLES",
    "NO_TOOL",
    "ChatCompletion",
    "ChatCompletionRequest",
    "Message",
    "Role",
    "ToolCall",
    "TrainingRow",
    "WireChoice",
    "WireFunctionCall",
    "WireFunctionSpec",
    "WireMessage",
    "WireRecord",
    "WireRequest",
    "WireResponse",
    "WireTool",
    "WireToolCall",
    "content_text",
    "detect_workload_type",
    "label_of_calls",
    "last_user_text",
    "message_text",
    "response_message",
    "response_tool_calls",
    "tool_name",
    "user_query",
]


class Role(StrEnum):
    """A chat message's role. ``function`` is OpenAI's deprecated form of ``tool``, still found in old logs."""

    SYSTEM = "system"
    DEVELOPER = "developer"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"
    FUNCTION = "function"


MESSAGE_ROLES: Final = frozenset(r.value for r in Role)
"""The one role set: what a record may hold and what the server accepts."""
SYSTEM_ROLES: Final = frozenset({Role.SYSTEM.value, Role.DEVELOPER.value})
"""The roles of instructions shared by every turn (``developer`` is the newer name of ``system``)."""

NO_TOOL: Final = "no_tool"
"""Class of a record whose reference answer is text, not a tool call."""


# -- wire form ---------------------------------------------------------------------------------------------


class WireFunctionCall(TypedDict, total=False):
    name: str
    arguments: Any
    """A JSON string on OpenAI's wire; the decoded object inside data-flywheel (see :mod:`.toolcalls`)."""


class WireToolCall(TypedDict, total=False):
    id: str
    type: str
    function: WireFunctionCall


class WireMessage(TypedDict, total=False):
    role: str
    content: str | list[Any] | None
    tool_calls: list[WireToolCall]
    tool_call_id: str
    name: str


class WireFunctionSpec(TypedDict, total=False):
    name: str
    description: str
    parameters: JsonObject


class WireTool(TypedDict, total=False):
    type: str
    function: WireFunctionSpec


class WireRequest(TypedDict, total=False):
    model: str
    messages: list[WireMessage]
    tools: list[WireTool]
    tool_choice: Any
    parallel_tool_calls: bool


class WireChoice(TypedDict, total=False):
    index: int
    message: WireMessage
    finish_reason: str | None


class WireResponse(TypedDict, total=False):
    id: str
    model: str
    choices: list[WireChoice]
    usage: Any


class TrainingRow(TypedDict, total=False):
    """A conversation in OpenAI's fine-tuning form: the prompt's messages and the answer, last."""

    messages: Required[list[WireMessage]]
    tools: list[WireTool]


class WireRecord(TypedDict, total=False):
    """A log record on the wire (see :mod:`.model`)."""

    timestamp: int | float
    workload_id: str
    client_id: str
    request: WireRequest
    response: WireResponse


# -- typed form --------------------------------------------------------------------------------------------


def _extra(wire: Mapping[str, Any], known: tuple[str, ...]) -> JsonObject:
    return {k: v for k, v in wire.items() if k not in known}


_Wire = TypeVar("_Wire", "WireToolCall", "WireMessage", "WireRequest", "WireResponse")


def _with_extra(extra: JsonObject, known: _Wire) -> _Wire:
    """``known`` with the keys a class does not model in front of it (as they were read): the wire types are
    open, so the result is still one of them."""
    return cast("_Wire", {**extra, **known})


_CALL_KEYS: Final = ("id", "type", "function")


@dataclass(frozen=True)
class ToolCall:
    """One tool call of an assistant message."""

    name: str
    arguments_raw: Any
    """The arguments as written: a JSON string (OpenAI's wire), an object (the canonical form here), None."""
    id: str | None = None
    type: str = "function"
    extra: JsonObject = field(default_factory=dict)

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> ToolCall:
        fn = wire.get("function")
        fn = fn if isinstance(fn, Mapping) else {}
        name = fn.get("name")
        call_id = wire.get("id")
        kind = wire.get("type")
        return cls(
            name=name if isinstance(name, str) else "",
            arguments_raw=fn.get("arguments"),
            id=call_id if isinstance(call_id, str) else None,
            type=kind if isinstance(kind, str) else "function",
            extra=_extra(wire, _CALL_KEYS),
        )

    @property
    def arguments(self) -> JsonObject | None:
        """The arguments decoded (:func:`.toolcalls.arguments_object`): an object, ``{}`` for none, None when
        they are not a JSON object."""
        return arguments_object(self.arguments_raw)

    @property
    def arguments_text(self) -> str:
        """The arguments as OpenAI's wire carries them: a JSON string."""
        raw = self.arguments_raw
        if isinstance(raw, str):
            return raw
        return orjson.dumps(raw if raw is not None else {}).decode()

    def to_wire(self, *, string_arguments: bool = False) -> WireToolCall:
        """The wire form; arguments as written, or as a JSON string with ``string_arguments``."""
        out: WireToolCall = {}
        if self.id is not None:
            out["id"] = self.id
        out["type"] = self.type
        arguments = self.arguments_text if string_arguments else self.arguments_raw
        out["function"] = {"name": self.name, "arguments": arguments}
        return _with_extra(self.extra, out)


_MESSAGE_KEYS: Final = ("role", "content", "tool_calls", "tool_call_id", "name")


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: str
    content: str | list[Any] | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    extra: JsonObject = field(default_factory=dict)

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> Message:
        role = wire.get("role")
        content = wire.get("content")
        calls = wire.get("tool_calls")
        call_id = wire.get("tool_call_id")
        name = wire.get("name")
        return cls(
            role=role if isinstance(role, str) else "",
            content=content if isinstance(content, str | list) else None,
            tool_calls=tuple(ToolCall.from_wire(c) for c in calls if isinstance(c, Mapping))
            if isinstance(calls, list)
            else (),
            tool_call_id=call_id if isinstance(call_id, str) else None,
            name=name if isinstance(name, str) else None,
            extra=_extra(wire, _MESSAGE_KEYS),
        )

    @property
    def text(self) -> str:
        """The text of the content (:func:`message_text`)."""
        return message_text(self.content)

    @property
    def label(self) -> str:
        """Class label of the message: its first tool call's name, or :data:`NO_TOOL`."""
        return self.tool_calls[0].name or NO_TOOL if self.tool_calls else NO_TOOL

    def to_wire(self, *, string_arguments: bool = False) -> WireMessage:
        out: WireMessage = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [c.to_wire(string_arguments=string_arguments) for c in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        return _with_extra(self.extra, out)


_REQUEST_KEYS: Final = ("model", "messages", "tools")


@dataclass(frozen=True)
class ChatCompletionRequest:
    """The request of a logged call: its messages, the tools offered, and the rest kept in ``extra``."""

    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] | None = None
    """None when the request had no ``tools`` list (unlike ``()``, an empty one)."""
    model: str | None = None
    extra: JsonObject = field(default_factory=dict)

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> ChatCompletionRequest:
        messages = wire.get("messages")
        tools = wire.get("tools")
        model = wire.get("model")
        specs = None
        if isinstance(tools, list):
            specs = tuple(s for s in (ToolSpec.from_wire(t) for t in tools if isinstance(t, Mapping)) if s)
        return cls(
            messages=tuple(Message.from_wire(m) for m in messages if isinstance(m, Mapping))
            if isinstance(messages, list)
            else (),
            tools=specs,
            model=model if isinstance(model, str) else None,
            extra=_extra(wire, _REQUEST_KEYS),
        )

    @property
    def tool_index(self) -> ToolIndex:
        return ToolIndex.of([t.to_wire() for t in self.tools] if self.tools is not None else None)

    def to_wire(self) -> WireRequest:
        out: WireRequest = {}
        if self.model is not None:
            out["model"] = self.model
        out["messages"] = [m.to_wire() for m in self.messages]
        if self.tools is not None:
            out["tools"] = [t.to_wire() for t in self.tools]
        return _with_extra(self.extra, out)


@dataclass(frozen=True)
class ChatCompletion:
    """The response of a logged call: the message of each choice (the first is the answer)."""

    choices: tuple[Message, ...]
    finish_reasons: tuple[str | None, ...] = ()
    extra: JsonObject = field(default_factory=dict)

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> ChatCompletion:
        choices = wire.get("choices")
        items = [c for c in choices if isinstance(c, Mapping)] if isinstance(choices, list) else []
        messages = tuple(Message.from_wire(m) for m in (c.get("message") for c in items) if isinstance(m, Mapping))
        reasons = tuple(r if isinstance(r := c.get("finish_reason"), str) else None for c in items)
        return cls(messages, reasons, _extra(wire, ("choices",)))

    @property
    def message(self) -> Message | None:
        """The answer: the first choice's message."""
        return self.choices[0] if self.choices else None

    def to_wire(self) -> WireResponse:
        out: WireResponse = {}
        out["choices"] = [
            {
                "index": i,
                "message": m.to_wire(),
                "finish_reason": self.finish_reasons[i] if i < len(self.finish_reasons) else None,
            }
            for i, m in enumerate(self.choices)
        ]
        return _with_extra(self.extra, out)


# -- record facts ------------------------------------------------------------------------------------------


def response_message(record: Mapping[str, Any]) -> WireMessage | None:
    """The first choice's message of a record's response, or None when the record has none."""
    try:
        msg = record["response"]["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        return None
    return cast("WireMessage", msg) if isinstance(msg, dict) else None


def response_tool_calls(record: Mapping[str, Any]) -> list[Any]:
    msg = response_message(record)
    calls = msg.get("tool_calls") if msg else None
    return calls if isinstance(calls, list) else []


def tool_name(record: Mapping[str, Any]) -> str:
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


def content_text(content: object, other: Callable[[object], str] = str) -> str:
    """Message content as plain text: None is empty, content parts (``{"text": ...}`` or strings) are joined
    by newlines, bytes are decoded; ``other`` writes any other value."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, bytes):
        return content.decode("utf-8", "replace")
    if isinstance(content, list):
        parts = [p["text"] if isinstance(p, dict) and isinstance(p.get("text"), str) else p for p in content]
        return "\n".join(p for p in parts if isinstance(p, str))
    return other(content)


def user_query(record: Mapping[str, Any]) -> str | None:
    """Text of the last user message of the request, or None."""
    try:
        messages = record["request"]["messages"]
    except (KeyError, TypeError):
        return None
    return last_user_text(messages)


def last_user_text(messages: object) -> str | None:
    """Text of the last user message of ``messages`` (a list of OpenAI messages), or None."""
    if not isinstance(messages, list):
        return None
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return message_text(msg.get("content")) or None
    return None


def detect_workload_type(records: Iterable[Mapping[str, Any]]) -> WorkloadType:
    """``tool_calling`` when any record's response makes a tool call, else ``generic``."""
    for rec in records:
        if response_tool_calls(rec):
            return WorkloadType.TOOL_CALLING
    return WorkloadType.GENERIC


class WorkloadType(StrEnum):
    """What kind of workload records belong to. ``auto`` is only a setting: detect it from the records
    (:func:`detect_workload_type` never returns it)."""

    AUTO = "auto"
    TOOL_CALLING = "tool_calling"
    GENERIC = "generic"
