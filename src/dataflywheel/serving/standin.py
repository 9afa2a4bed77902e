"""A small OpenAI-compatible server of our own that stands in for a paid external LLM API.

It answers ``/v1/chat/completions`` from a script: a fixed reply, a list of replies served in turn (a judge
that sometimes answers nonsense), or a function of the request; with an optional fixed latency and
failure injection (``fail_first`` answers 500 the first N times). A request with ``"stream": true`` is
answered with server-sent events (content and tool-call arguments split over several chunks, as real
servers send them). Used by tests and benchmarks wherever a
real remote endpoint (judge, teacher, hosted candidate) would be.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

Reply = str | dict[str, Any]
"""Text content, or a whole assistant message (e.g. with ``tool_calls``)."""
Script = Reply | Iterable[Reply] | Callable[[dict[str, Any]], Reply]


class StandinState:
    def __init__(self, script: Script, latency_s: float, fail_first: int, model: str, keep_requests: int) -> None:
        if callable(script):
            self._next: Callable[[dict[str, Any]], Reply] = script
        elif isinstance(script, str | dict):
            fixed = script
            self._next = lambda _request: fixed
        else:
            cycle = itertools.cycle(list(script))
            self._next = lambda _request: next(cycle)
        self.latency_s = latency_s
        self.fail_left = fail_first
        self.model = model
        self.requests: deque[dict[str, Any]] = deque(maxlen=keep_requests)
        self.count = 0
        self._lock = threading.Lock()

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(body)
            self.count += 1
            if self.fail_left > 0:
                self.fail_left -= 1
                return 500, {
                    "error": {"message": "scripted failure", "type": "server_error", "param": None, "code": None}
                }
            reply = self._next(body)
        message = {"role": "assistant", "content": reply} if isinstance(reply, str) else dict(reply)
        message.setdefault("role", "assistant")
        content = message.get("content") or ""
        return 200, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if message.get("tool_calls") else "stop"}
            ],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": max(1, len(str(content)) // 4),
                "total_tokens": 10 + max(1, len(str(content)) // 4),
            },
        }


def create_standin_app(
    script: Script = "OK",
    *,
    latency_s: float = 0.0,
    fail_first: int = 0,
    model: str = "standin",
    keep_requests: int = 10_000,
) -> FastAPI:
    """The stand-in app; its :class:`StandinState` (the last ``keep_requests`` request bodies, the count) is
    ``app.state.standin``. A benchmark passes ``keep_requests=0`` so memory stays flat."""
    app = FastAPI(title="data-flywheel OpenAI stand-in")
    state = StandinState(script, latency_s, fail_first, model, keep_requests)
    app.state.standin = state

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": state.model, "object": "model", "owned_by": "standin"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = orjson.loads(await request.body())
        if state.latency_s:
            await asyncio.sleep(state.latency_s)
        status, payload = state.answer(body)
        if status == 200 and body.get("stream") is True:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = [b"data: " + orjson.dumps(c) + b"\n\n" for c in stream_chunks(payload, include_usage)]
            return StreamingResponse(iter([*events, b"data: [DONE]\n\n"]), media_type="text/event-stream")
        return Response(orjson.dumps(payload), status_code=status, media_type="application/json")

    return app


def _halves(text: str) -> list[str]:
    middle = len(text) // 2
    return [part for part in (text[:middle], text[middle:]) if part]


def stream_chunks(completion: dict[str, Any], include_usage: bool = False) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects a server streams for ``completion``: the role, the content in two
    pieces, each tool call's id and name then its arguments in two pieces, the finish reason, the usage."""
    head = {k: completion[k] for k in ("id", "created", "model")}
    choice = completion["choices"][0]
    message = choice["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            **head,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": part}) for part in _halves(str(message.get("content") or ""))]
    for i, call in enumerate(message.get("tool_calls") or []):
        fn = call.get("function", {})
        arguments = fn.get("arguments", "")
        arguments = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
        out.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": i,
                            "id": call.get("id", f"call_{i}"),
                            "type": "function",
                            "function": {"name": fn.get("name", ""), "arguments": ""},
                        }
                    ]
                }
            )
        )
        out += [chunk({"tool_calls": [{"index": i, "function": {"arguments": part}}]}) for part in _halves(arguments)]
    out.append(chunk({}, choice.get("finish_reason")))
    if include_usage:
        out.append({**head, "object": "chat.completion.chunk", "choices": [], "usage": completion["usage"]})
    return out
