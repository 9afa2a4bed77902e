"""One proxied call as the proxy saw it, and the log record made of it (pure; run in the log writer's thread,
off the callers' path).

The record is an ordinary log record (:mod:`dataflywheel.records.model`) plus one top-level field, ``proxy``
(the record model keeps unknown top-level fields), that says which model answered the caller::

    "proxy": {"answered_by": "candidate", "model": "tiny-random-llama-wl-1a2b", "mode": "canary",
              "route_event": 7, "response_from": "teacher", "latency_ms": 41.2,
              "candidate": {"model": "...", "calls": ["ToReturnProcessing"], "text": false, "error": null,
                            "latency_ms": 40.1}}

``response`` is the big model's answer whenever it was asked and answered (shadow, canary with
``proxy.canary_compare``, no route), so the records a job trains on keep the big model's answers;
``response_from`` says whose it is. The candidate's own answer is kept as its tool names only (``calls``;
``text`` when it answered in text): enough for live agreement, and it holds no user text that would escape
the store's PII redaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from dataflywheel.jobs.routes import RouteMode
from dataflywheel.proxy.attribution import Attribution
from dataflywheel.proxy.stream import StreamError, assemble_sse
from dataflywheel.records.chat import WireResponse, response_tool_calls
from dataflywheel.records.provenance import PROXY_FIELD, Answerer


@dataclass(frozen=True, slots=True)
class Reply:
    """What one model answered to one call: the HTTP status and the body's bytes (a JSON ChatCompletion, or
    the server-sent events of a streamed one), or the error that kept it from answering."""

    answerer: Answerer
    model: str | None
    status: int
    body: bytes
    streamed: bool
    latency_ms: float
    error: str | None = None
    content_type: str = "application/json"

    @property
    def ok(self) -> bool:
        return self.error is None and 200 <= self.status < 300

    def completion(self) -> WireResponse | None:
        """The answer as one ChatCompletion, or None when there is none to read."""
        if not self.ok:
            return None
        try:
            if self.streamed:
                return assemble_sse(self.body)
            value = orjson.loads(self.body)
        except (orjson.JSONDecodeError, StreamError):
            return None
        return value if isinstance(value, dict) else None  # type: ignore[return-value]

    def failure(self) -> str | None:
        """Why there is no answer: the transport error or the status; None when it answered."""
        if self.error is not None:
            return self.error
        return None if self.ok else f"HTTP {self.status}"


@dataclass(frozen=True, slots=True)
class ProxiedCall:
    """A finished proxied call: the request, the reply the caller got, and the other model's reply (shadow,
    canary compare) when it was asked."""

    timestamp: float
    attribution: Attribution
    request: bytes
    answered: Reply
    other: Reply | None = None
    mode: RouteMode | None = None
    route_event: int | None = None


class NotLoggable(ValueError):
    """A call that makes no log record: no model answered it."""


def _names(response: WireResponse) -> list[str]:
    names = []
    for call in response_tool_calls({"response": response}):
        fn = call.get("function") if isinstance(call, dict) else None
        name = fn.get("name") if isinstance(fn, dict) else None
        names.append(name if isinstance(name, str) else "")
    return names


def _candidate_summary(reply: Reply) -> dict[str, Any]:
    completion = reply.completion()
    names = _names(completion) if completion is not None else []
    return {
        "model": reply.model,
        "calls": names,
        "text": completion is not None and not names,
        "error": reply.failure() if completion is None else None,
        "latency_ms": round(reply.latency_ms, 3),
    }


def record_of(call: ProxiedCall) -> dict[str, Any]:
    """The log record of a call (a dict for :func:`~dataflywheel.records.model.parse_record`). Raises
    :class:`NotLoggable` when no model answered, ``orjson.JSONDecodeError`` when the request is not JSON."""
    request = orjson.loads(call.request)
    replies = [call.answered] + ([call.other] if call.other is not None else [])
    teacher = next((r for r in replies if r.answerer is Answerer.TEACHER), None)
    candidate = next((r for r in replies if r.answerer is Answerer.CANDIDATE), None)
    teacher_answer = teacher.completion() if teacher is not None else None
    if teacher_answer is not None:
        response, response_from = teacher_answer, Answerer.TEACHER
    else:
        candidate_answer = candidate.completion() if candidate is not None else None
        if candidate_answer is None:
            raise NotLoggable(f"no model answered: {call.answered.failure()}")
        response, response_from = candidate_answer, Answerer.CANDIDATE
    info: dict[str, Any] = {
        "answered_by": call.answered.answerer.value,
        "model": call.answered.model,
        "mode": call.mode.value if call.mode is not None else None,
        "route_event": call.route_event,
        "response_from": response_from.value,
        "latency_ms": round(call.answered.latency_ms, 3),
    }
    if candidate is not None:
        info["candidate"] = _candidate_summary(candidate)
    return {
        "timestamp": call.timestamp,
        "workload_id": call.attribution.workload_id,
        "client_id": call.attribution.client_id,
        "request": request,
        "response": response,
        PROXY_FIELD: info,
    }
