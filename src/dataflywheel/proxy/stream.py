"""A streamed chat completion (server-sent events of ``chat.completion.chunk``) re-assembled into the one
ChatCompletion a non-streamed call would have answered: content and tool-call deltas concatenated per choice
and per call index, the last finish reason, the usage chunk. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from dataflywheel.records.chat import WireResponse


@dataclass
class _Call:
    id: str | None = None
    type: str = "function"
    name: str = ""
    arguments: str = ""


@dataclass
class _Choice:
    role: str = "assistant"
    content: str | None = None
    refusal: str | None = None
    calls: dict[int, _Call] = field(default_factory=dict)
    finish_reason: str | None = None

    def message(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.refusal is not None:
            out["refusal"] = self.refusal
        if self.calls:
            out["tool_calls"] = [
                {
                    "id": c.id or f"call_{i}",
                    "type": c.type,
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for i, c in sorted(self.calls.items())
            ]
        return out


def sse_data(raw: bytes) -> Iterable[bytes]:
    """The ``data:`` payloads of a server-sent event stream, in order (``[DONE]`` and comments left out)."""
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        lines = [line[5:].lstrip(b" ") for line in block.split(b"\n") if line.startswith(b"data:")]
        if not lines:
            continue
        data = b"\n".join(lines)
        if data.strip() != b"[DONE]":
            yield data


class StreamError(ValueError):
    """A stream that holds no chunk of a chat completion."""


def assemble(chunks: Iterable[dict[str, Any]]) -> WireResponse:
    """One ChatCompletion from its chunks (in order). Raises :class:`StreamError` when there is none."""
    head: dict[str, Any] = {}
    choices: dict[int, _Choice] = {}
    usage: Any = None
    seen = False
    for chunk in chunks:
        seen = True
        for key in ("id", "created", "model", "system_fingerprint", "service_tier"):
            if key not in head and chunk.get(key) is not None:
                head[key] = chunk[key]
        if chunk.get("usage"):
            usage = chunk["usage"]
        for delta_choice in chunk.get("choices") or []:
            if not isinstance(delta_choice, dict):
                continue
            index = delta_choice.get("index", 0)
            choice = choices.setdefault(index if isinstance(index, int) else 0, _Choice())
            delta = delta_choice.get("delta") or {}
            if isinstance(delta.get("role"), str):
                choice.role = delta["role"]
            if isinstance(delta.get("content"), str):
                choice.content = (choice.content or "") + delta["content"]
            if isinstance(delta.get("refusal"), str):
                choice.refusal = (choice.refusal or "") + delta["refusal"]
            for call_delta in delta.get("tool_calls") or []:
                if not isinstance(call_delta, dict):
                    continue
                call_index = call_delta.get("index", len(choice.calls))
                call = choice.calls.setdefault(call_index if isinstance(call_index, int) else 0, _Call())
                if call_delta.get("id"):
                    call.id = call_delta["id"]
                if call_delta.get("type"):
                    call.type = call_delta["type"]
                function = call_delta.get("function") or {}
                if isinstance(function.get("name"), str):
                    call.name += function["name"]
                if isinstance(function.get("arguments"), str):
                    call.arguments += function["arguments"]
            if delta_choice.get("finish_reason"):
                choice.finish_reason = delta_choice["finish_reason"]
    if not seen:
        raise StreamError("the stream holds no chat.completion.chunk")
    out: dict[str, Any] = {**head, "object": "chat.completion"}
    out["choices"] = [
        {"index": i, "message": c.message(), "finish_reason": c.finish_reason} for i, c in sorted(choices.items())
    ]
    if usage is not None:
        out["usage"] = usage
    return cast(WireResponse, out)


def assemble_sse(raw: bytes) -> WireResponse:
    """One ChatCompletion from a whole server-sent event stream's bytes."""
    chunks = []
    for data in sse_data(raw):
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise StreamError(f"a stream event is not JSON: {exc}") from None
        if isinstance(chunk, dict):
            chunks.append(chunk)
    return assemble(chunks)
