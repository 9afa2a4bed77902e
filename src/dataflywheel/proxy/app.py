"""The logging proxy's FastAPI app: ``POST /v1/chat/completions`` (streamed or not) forwarded to the upstream
or to the workload's promoted candidate, ``GET /v1/models`` (the upstream's), ``GET /proxy/stats`` (counters)
and ``GET /health``.

The caller's path is: read the body, find the workload (headers or metadata), its route (cached), forward,
pass the answer back unchanged (status, body, content type; a stream chunk by chunk as it arrives). Logging
is a ``put`` into the log writer's queue after the answer; the other model of a shadow or canary-compare
call is asked by a background task. A candidate that cannot answer (unreachable, 5xx) before its answer
started is replaced by the upstream (counted).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Coroutine, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from dataflywheel.jobs.routes import RouteEventRecord
from dataflywheel.proxy.attribution import Attribution, attribute
from dataflywheel.proxy.calls import ProxiedCall, Reply
from dataflywheel.proxy.forwarder import (
    DROPPED_RESPONSE_HEADERS,
    Endpoint,
    OpenStream,
    UpstreamCall,
    new_client,
)
from dataflywheel.proxy.logwriter import LogStats, LogWriter
from dataflywheel.proxy.routing import Choice, RouteCache, choose
from dataflywheel.records.jsonvalue import JsonObject, attributes
from dataflywheel.records.provenance import Answerer

logger = logging.getLogger(__name__)


@dataclass
class ProxyCounters:
    requests: int = 0
    streamed: int = 0
    unattributed: int = 0
    """Calls forwarded but not logged: no valid workload and client in the headers or the metadata."""
    answered: Counter[Answerer] = field(default_factory=Counter)
    """Calls answered, by who answered (``answered_by_teacher``, ``answered_by_candidate``)."""
    candidate_fallbacks: int = 0
    """Calls routed to the candidate that the upstream answered because the candidate could not."""
    upstream_unreachable: int = 0
    """Calls answered 502 by the proxy: the upstream could not be reached."""
    background_calls: int = 0
    background_inflight: int = 0

    def to_dict(self) -> JsonObject:
        """The ``calls`` part of ``/proxy/stats``."""
        return {
            **attributes(self, "requests", "streamed", "unattributed"),
            **{f"answered_by_{answerer}": self.answered[answerer] for answerer in Answerer},
            **attributes(
                self, "candidate_fallbacks", "upstream_unreachable", "background_calls", "background_inflight"
            ),
        }


@dataclass
class ProxyState:
    upstream: Endpoint
    routes: RouteCache
    writer: LogWriter | None
    canary_compare: bool
    timeout_s: float
    transport: httpx.AsyncBaseTransport | None = None
    counters: ProxyCounters = field(default_factory=ProxyCounters)
    client: httpx.AsyncClient | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def stats(self) -> dict[str, Any]:
        log = self.writer.stats() if self.writer is not None else LogStats()
        return {
            "calls": self.counters.to_dict(),
            "log": log.to_dict(),
            "routes": {"lookups": self.routes.lookups, "errors": self.routes.errors, "waited": self.routes.waited},
        }


def _error_body(message: str, type_: str = "upstream_error") -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": None, "code": None}})


def _passed_headers(headers: httpx.Headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in DROPPED_RESPONSE_HEADERS}


class _Call:
    """One request on its way through the proxy."""

    def __init__(self, state: ProxyState, headers: Mapping[str, str], raw: bytes) -> None:
        self.state = state
        self.raw = raw
        self.headers = headers
        self.started = time.time()
        body: Any = None
        with suppress(orjson.JSONDecodeError):
            body = orjson.loads(raw)
        self.body: dict[str, Any] | None = body if isinstance(body, dict) else None
        self.who: Attribution | None = attribute(self.headers, self.body) if self.body is not None else None
        self.streaming = self.body is not None and self.body.get("stream") is True

    def _body_for(self, answerer: Answerer, route: RouteEventRecord | None, *, stream: bool) -> bytes:
        if answerer is Answerer.TEACHER and stream == self.streaming:
            return self.raw  # unchanged
        assert self.body is not None
        body = dict(self.body)
        if answerer is Answerer.CANDIDATE and route is not None and route.target is not None:
            body["model"] = route.target.model
        if not stream:
            body.pop("stream", None)
            body.pop("stream_options", None)
        return orjson.dumps(body)

    def _call(self, answerer: Answerer, route: RouteEventRecord | None, *, stream: bool) -> UpstreamCall:
        """The call that asks ``answerer``: the route's candidate, or the upstream with the caller's model."""
        assert self.state.client is not None
        body = self._body_for(answerer, route, stream=stream)
        if answerer is Answerer.CANDIDATE and route is not None and route.target is not None:
            endpoint = Endpoint(route.target.base_url)
            return UpstreamCall(self.state.client, endpoint, body, self.headers, answerer, route.target.model)
        model = self.body.get("model") if self.body is not None else None
        model = model if isinstance(model, str) else None
        return UpstreamCall(self.state.client, self.state.upstream, body, self.headers, answerer, model)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)

    def _other(self, choice: Choice, route: RouteEventRecord | None) -> asyncio.Task[Reply] | None:
        """Ask the other model at once, as a background task (shadow, canary compare)."""
        if not choice.also_ask_other or self.state.client is None:
            return None
        other = Answerer.CANDIDATE if choice.answerer is Answerer.TEACHER else Answerer.TEACHER
        self.state.counters.background_calls += 1
        return asyncio.create_task(self._call(other, route, stream=False).ask())

    def log(self, answered: Reply, other: Awaitable[Reply] | None, route: RouteEventRecord | None) -> None:
        """Hand the call to the log writer (after the other model's answer, when one was asked)."""
        writer, who = self.state.writer, self.who
        if writer is None or who is None:
            return
        mode = route.mode if route is not None and route.active else None
        event = route.id if route is not None else None

        def submit(other_reply: Reply | None) -> None:
            writer.submit(ProxiedCall(self.started, who, self.raw, answered, other_reply, mode, event))

        if other is None:
            submit(None)
            return

        async def after_other() -> None:
            counters = self.state.counters
            counters.background_inflight += 1
            try:
                submit(await other)
            except Exception:
                logger.warning("proxy: the background call failed", exc_info=True)
                submit(None)
            finally:
                counters.background_inflight -= 1

        self._background(after_other())

    def _count(self, reply: Reply) -> None:
        self.state.counters.answered[reply.answerer] += 1

    async def whole(self, choice: Choice, route: RouteEventRecord | None) -> Response:
        other = self._other(choice, route)
        reply = await self._call(choice.answerer, route, stream=False).ask()
        if choice.answerer is Answerer.CANDIDATE and (reply.error is not None or reply.status >= 500):
            self.state.counters.candidate_fallbacks += 1
            failed = reply
            if other is None:
                reply = await self._call(Answerer.TEACHER, route, stream=False).ask()
            else:
                reply = await other  # the upstream was being asked already
            other = _done(failed)
        if reply.error is not None:
            self.state.counters.upstream_unreachable += 1
            return Response(
                _error_body(f"the upstream could not be reached: {reply.error}"),
                status_code=502,
                media_type="application/json",
            )
        self._count(reply)
        self.log(reply, other, route)
        return Response(reply.body, status_code=reply.status, media_type=reply.content_type)

    async def streamed(self, choice: Choice, route: RouteEventRecord | None) -> Response:
        other = self._other(choice, route)
        answerer = choice.answerer
        opened: OpenStream | None = None
        fallback_from: Reply | None = None
        if answerer is Answerer.CANDIDATE:
            candidate = self._call(answerer, route, stream=True)
            started = time.perf_counter()
            try:
                opened = await candidate.open_stream()
            except httpx.HTTPError as exc:
                fallback_from = candidate.failed(exc, started, streamed=True)
            else:
                if opened.response.status_code >= 500:
                    body = await opened.response.aread()
                    await opened.response.aclose()
                    fallback_from = Reply(answerer, candidate.model, opened.response.status_code, body, True, 0.0)
                    opened = None
            if fallback_from is not None:
                self.state.counters.candidate_fallbacks += 1
                if other is not None:
                    other.cancel()
                other = _done(fallback_from)
                answerer = Answerer.TEACHER
        if opened is None:
            try:
                opened = await self._call(Answerer.TEACHER, route, stream=True).open_stream()
            except httpx.HTTPError as exc:
                self.state.counters.upstream_unreachable += 1
                return Response(
                    _error_body(f"the upstream could not be reached: {type(exc).__name__}: {exc}"),
                    status_code=502,
                    media_type="application/json",
                )
        response = opened.response
        if response.status_code >= 400:  # an error is passed back whole, unchanged
            body = await response.aread()
            await response.aclose()
            self._count(opened.reply())
            return Response(
                body,
                status_code=response.status_code,
                media_type=response.headers.get("content-type", "application/json"),
            )
        self.state.counters.streamed += 1
        stream = opened
        self._count(stream.reply())

        async def passed_on() -> AsyncIterator[bytes]:
            error: str | None = None
            try:
                async for chunk in stream.chunks():
                    yield chunk
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            finally:
                self.log(stream.reply(error), other, route)

        return StreamingResponse(
            passed_on(), status_code=response.status_code, headers=_passed_headers(response.headers)
        )


async def _ready(reply: Reply) -> Reply:
    return reply


def _done(reply: Reply) -> asyncio.Task[Reply]:
    return asyncio.ensure_future(_ready(reply))


CHAT_PATH = "/v1/chat/completions"


async def answer_chat(state: ProxyState, headers: Mapping[str, str], raw: bytes) -> Response:
    """The answer to one chat completion request (``raw``, its body): forwarded to the upstream or the
    workload's candidate, logged out of band."""
    state.counters.requests += 1
    call = _Call(state, headers, raw)
    if call.body is None or call.who is None:
        state.counters.unattributed += call.who is None
        route = None
    else:
        route = await state.routes.get(call.who)
    choice = choose(route, call.raw, canary_compare=state.canary_compare)
    if call.streaming:
        return await call.streamed(choice, route)
    return await call.whole(choice, route)


class ProxyApp(FastAPI):
    """The standalone proxy: chat completions, its hot path, are answered here before FastAPI's middleware
    and routing (which add ~0.5 ms a call); every other route, and the OpenAPI document, are FastAPI's."""

    proxy: ProxyState

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == CHAT_PATH:
            parts, more = [], True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return  # the caller left before its request arrived: nothing to forward
                parts.append(message.get("body", b""))
                more = message.get("more_body", False)
            response = await answer_chat(self.proxy, Headers(scope=scope), b"".join(parts))
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_proxy_app(
    upstream: Endpoint,
    *,
    routes: RouteCache | None = None,
    writer: LogWriter | None = None,
    canary_compare: bool = True,
    timeout_s: float = 600.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The proxy over ``upstream``. ``routes`` (default: none, every call to the upstream) and ``writer``
    (default: nothing logged) are started and stopped with the app; ``transport`` replaces the network."""
    return proxy_app(ProxyState(upstream, routes or RouteCache(None), writer, canary_compare, timeout_s, transport))


def proxy_app(state: ProxyState) -> FastAPI:
    """The proxy app of ``state`` (its client and log writer started and stopped with the app)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await start_proxy(state)
        try:
            yield
        finally:
            await stop_proxy(state)

    app = ProxyApp(title="data-flywheel logging proxy", lifespan=lifespan)
    app.proxy = state
    app.state.proxy = state
    install_proxy_routes(app, state)
    return app


async def start_proxy(state: ProxyState) -> None:
    state.client = new_client(state.timeout_s, state.transport)
    state.routes.start()
    if state.writer is not None:
        state.writer.start()


async def stop_proxy(state: ProxyState, drain_timeout_s: float = 10.0) -> None:
    await state.routes.stop()
    if state.tasks:
        await asyncio.wait(list(state.tasks), timeout=drain_timeout_s)
    if state.client is not None:
        await state.client.aclose()
        state.client = None
    if state.writer is not None:
        await asyncio.to_thread(state.writer.close, drain_timeout_s)


def install_proxy_routes(app: FastAPI, state: ProxyState, prefix: str = "") -> None:
    """The proxy's routes on ``app`` (under ``prefix``, e.g. ``/proxy`` when mounted in ``flywheel serve``)."""

    @app.post(prefix + CHAT_PATH, tags=["proxy"], include_in_schema=not prefix)
    async def chat_completions(request: Request) -> Response:
        """An OpenAI chat completion, forwarded (and logged out of band)."""
        return await answer_chat(state, request.headers, await request.body())

    @app.get(prefix + "/v1/models", tags=["proxy"], include_in_schema=not prefix)
    async def models(request: Request) -> Response:
        """The upstream's models."""
        assert state.client is not None
        try:
            response = await state.client.get(
                state.upstream.base_url.rstrip("/") + "/models", headers=_auth(request, state.upstream)
            )
        except httpx.HTTPError as exc:
            return Response(
                _error_body(f"the upstream could not be reached: {exc}"), status_code=502, media_type="application/json"
            )
        return Response(
            response.content,
            status_code=response.status_code,
            media_type=response.headers.get("content-type", "application/json"),
        )

    @app.get((prefix or "/proxy") + "/stats", tags=["proxy"])
    async def stats() -> JSONResponse:
        """The proxy's counters: calls (who answered, fallbacks), logging (queued, written, dropped, failed)."""
        return JSONResponse(state.stats())

    if not prefix:

        @app.get("/health", tags=["proxy"])
        async def health() -> dict[str, Any]:
            return {"status": "ok", "upstream": state.upstream.base_url}


def _auth(request: Request, endpoint: Endpoint) -> dict[str, str]:
    if endpoint.api_key is not None:
        return {"authorization": f"Bearer {endpoint.api_key}"}
    value = request.headers.get("authorization")
    return {"authorization": value} if value else {}
