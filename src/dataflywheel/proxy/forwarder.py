"""The proxy's HTTP clients: one pooled ``httpx.AsyncClient`` for the upstream (the big model) and for the
candidates' servers, and the calls it makes for one request (whole, or streamed through to the caller)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import httpx

from dataflywheel.proxy.calls import Reply
from dataflywheel.records.provenance import Answerer

# Headers of the caller's request that are not passed on: hop-by-hop ones, and those httpx sets itself.
_DROPPED_REQUEST_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "upgrade",
        "proxy-authorization",
        "accept-encoding",
    }
)
# Headers of the answer that are not passed back (the proxy's server sets its own framing).
DROPPED_RESPONSE_HEADERS = frozenset(
    {"content-length", "connection", "keep-alive", "transfer-encoding", "content-encoding", "date", "server"}
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An OpenAI-compatible server: its base URL (ending in ``/v1``) and the bearer key to send (None: pass
    on the caller's ``Authorization``)."""

    base_url: str
    api_key: str | None = None

    @property
    def chat_url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


def forward_headers(headers: Mapping[str, str], endpoint: Endpoint) -> dict[str, str]:
    out = {k: v for k, v in headers.items() if k.lower() not in _DROPPED_REQUEST_HEADERS}
    if endpoint.api_key is not None:
        out = {k: v for k, v in out.items() if k.lower() != "authorization"}
        out["authorization"] = f"Bearer {endpoint.api_key}"
    return out


def new_client(timeout_s: float, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """One client for every upstream and candidate: pooled keep-alive connections, no limit on how many
    calls are in flight (the caller's concurrency is the proxy's)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=1000, keepalive_expiry=60),
        transport=transport,
    )


@dataclass
class OpenStream:
    """A streamed call whose status and headers have arrived; iterate :meth:`chunks` to pass the body on."""

    response: httpx.Response
    started: float
    answerer: Answerer
    model: str | None

    def __post_init__(self) -> None:
        self.received: list[bytes] = []

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.aiter_raw():
                self.received.append(chunk)
                yield chunk
        finally:
            await self.response.aclose()

    def reply(self, error: str | None = None) -> Reply:
        return Reply(
            self.answerer,
            self.model,
            self.response.status_code,
            b"".join(self.received),
            True,
            _ms(self.started),
            error=error,
        )


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """One call to make: ``body`` POSTed to ``endpoint`` over ``client``, the caller's ``headers`` passed on
    (:func:`forward_headers`), its reply told as ``answerer``'s with ``model``."""

    client: httpx.AsyncClient
    endpoint: Endpoint
    body: bytes
    headers: Mapping[str, str]
    answerer: Answerer
    model: str | None

    async def ask(self) -> Reply:
        """A whole (non-streamed) call; a transport error becomes a reply with its ``error`` (status 502)."""
        started = time.perf_counter()
        try:
            response = await self._send(stream=False)
        except httpx.HTTPError as exc:
            return self.failed(exc, started, streamed=False)
        content_type = response.headers.get("content-type", "application/json")
        return Reply(
            self.answerer, self.model, response.status_code, response.content, False, _ms(started), None, content_type
        )

    async def open_stream(self) -> OpenStream:
        """Start a streamed call; raises ``httpx.HTTPError`` when it cannot be sent."""
        started = time.perf_counter()
        response = await self._send(stream=True)
        return OpenStream(response, started, self.answerer, self.model)

    def failed(self, exc: httpx.HTTPError, started: float, *, streamed: bool) -> Reply:
        """The reply of a call begun at ``started`` that could not be sent (status 502, the error told)."""
        return Reply(self.answerer, self.model, 502, b"", streamed, _ms(started), error=f"{type(exc).__name__}: {exc}")

    async def _send(self, *, stream: bool) -> httpx.Response:
        """The one request of :meth:`ask` and :meth:`open_stream`. With ``stream`` the body is left unread."""
        headers = forward_headers(self.headers, self.endpoint)
        request = self.client.build_request("POST", self.endpoint.chat_url, content=self.body, headers=headers)
        return await self.client.send(request, stream=stream)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
