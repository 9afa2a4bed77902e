"""The transport under every call to an OpenAI-compatible endpoint: one place for the API key, retries,
``Retry-After``, error mapping and the call log.

:class:`Endpoint` sends one JSON request to ``base_url + path`` and returns the decoded answer. Timeouts,
connection errors and answers worth another try (:func:`is_retryable`: 408, 409, 425, 429 and 5xx) are
retried as its :class:`RetryPolicy` says: exponential backoff with jitter, at least what the server asks with
``Retry-After`` or ``retry-after-ms`` (at most :data:`MAX_RETRY_AFTER_S`), up to ``max_retries`` retries
and, with ``give_up_after_s``, no longer than that. Other answers fail at once: retrying a bad request or a
bad key cannot help. What still fails raises :class:`EndpointError`, naming the URL, the HTTP status and the
server's own message (:func:`error_message`). Every call is recorded (:attr:`Endpoint.calls`,
:attr:`Endpoint.stats`).

The network is replaceable: ``transport=`` takes any httpx transport (``httpx.MockTransport`` in tests), and
``sleep=`` the wait between attempts. :func:`run_blocking` runs a call from code without an event loop.

The typed calls (chat, embeddings, model listing, LoRA loading) are :class:`~dataflywheel.models.client.
OpenAIClient`'s; their bodies are :mod:`dataflywheel.models.wire`.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict, TypeVar

import httpx
import orjson

from dataflywheel import __version__
from dataflywheel.errors import ConfigError, FlywheelError
from dataflywheel.models.types import Usage
from dataflywheel.settings import secret_from_env

__all__ = [
    "MAX_RETRY_AFTER_S",
    "Answer",
    "CallKind",
    "CallRecord",
    "ClientStats",
    "Endpoint",
    "EndpointError",
    "EndpointOptions",
    "EndpointView",
    "RetryPolicy",
    "Sleep",
    "error_message",
    "is_retryable",
    "retry_after_seconds",
    "run_blocking",
]

T = TypeVar("T")
CallKind = Literal["chat", "embeddings", "models", "adapters"]
Sleep = Callable[[float], Awaitable[None]]

MAX_RETRY_AFTER_S = 60.0
"""The longest wait a server's ``Retry-After`` can impose between two attempts."""
RETRYABLE_4XX = frozenset({408, 409, 425, 429})
"""Client-side statuses worth another try: a request timeout, a conflict (a lock), too early, a rate limit."""


class EndpointError(FlywheelError):
    """An OpenAI-compatible endpoint could not be reached, refused a request, or answered nonsense.

    ``url``: what was called; ``status``: the last HTTP status (None when no answer came back: timeout,
    connection refused); ``server_message``: the endpoint's own error message; ``attempts``: tries made.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None = None,
        server_message: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.server_message = server_message
        self.attempts = attempts


@dataclass(frozen=True)
class RetryPolicy:
    """When a failed attempt is tried again, and after how long.

    ``max_retries``: retries after the first attempt (None: as many as ``give_up_after_s`` allows);
    ``backoff``: the first wait in seconds, doubling each time up to ``max_backoff``, times a jitter of 1 to
    1.2 (so concurrent clients spread out, and no wait is shorter than the backoff); ``give_up_after_s``: no
    attempt starts later than this after the first (a readiness check with a deadline).
    """

    max_retries: int | None = 3
    backoff: float = 0.5
    max_backoff: float = 30.0
    give_up_after_s: float | None = None

    def __post_init__(self) -> None:
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError("max_retries cannot be negative")
        if self.max_retries is None and self.give_up_after_s is None:
            raise ValueError("a retry policy without max_retries needs give_up_after_s")
        if self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("backoff and max_backoff cannot be negative")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait after failed attempt ``attempt`` (1-based); ``retry_after``: what the server asked."""
        delay = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1) * random.uniform(1.0, 1.2))
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
        return delay

    def allows(self, attempt: int, elapsed_s: float, delay_s: float) -> bool:
        """Whether another attempt follows failed attempt ``attempt``, ``elapsed_s`` after the first began."""
        if self.max_retries is not None and attempt > self.max_retries:
            return False
        return self.give_up_after_s is None or elapsed_s + delay_s <= self.give_up_after_s


def is_retryable(status: int) -> bool:
    """Rate limits, request timeouts, conflicts (:data:`RETRYABLE_4XX`) and server-side failures (5xx)."""
    return status in RETRYABLE_4XX or status >= 500


def error_message(resp: httpx.Response) -> str:
    """The server's own message: OpenAI's ``error.message``, FastAPI's ``detail``, else the text."""
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        for key in ("error", "detail", "message"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    text = resp.text.strip()
    return text[:500] if text else resp.reason_phrase or "(empty body)"


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks to wait: ``retry-after-ms``, or ``Retry-After`` as seconds or an HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass(frozen=True)
class CallRecord:
    """One call to the endpoint, retries included."""

    kind: CallKind
    url: str
    model: str | None
    ok: bool
    status: int | None
    attempts: int
    latency_s: float
    """Wall time of the whole call, waits between attempts included."""
    usage: Usage = field(default_factory=Usage)
    error: str | None = None


@dataclass
class ClientStats:
    """Totals over every call a client made."""

    calls: int = 0
    failures: int = 0
    attempts: int = 0
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0

    @property
    def retries(self) -> int:
        """Attempts after the first of each call."""
        return self.attempts - self.calls

    def add(self, call: CallRecord) -> None:
        self.calls += 1
        self.failures += not call.ok
        self.attempts += call.attempts
        self.usage += call.usage
        self.latency_s += call.latency_s


@dataclass
class Answer:
    """A successful answer: the decoded JSON body and how it came."""

    kind: CallKind
    url: str
    model: str | None
    data: Any
    status: int
    attempts: int
    attempt_latency_s: float
    """Wall time of the attempt that succeeded."""
    started: float
    """``time.perf_counter()`` when the call began (its first attempt)."""


class EndpointOptions(TypedDict, total=False):
    """The keyword options of :class:`Endpoint` (its ``retry`` aside) that a client passes on as they are."""

    api_key: str | None
    api_key_env: str | None
    timeout: float
    max_concurrency: int
    transport: httpx.AsyncBaseTransport | None
    headers: Mapping[str, str] | None
    history: int
    trust_env: bool
    sleep: Sleep


class Endpoint:
    """One OpenAI-compatible base URL (``http://host:port/v1``): its connection pool, retries and call log.

    ``api_key`` (or the one in the environment variable ``api_key_env``; unset or empty is a
    :class:`ConfigError` naming it) is sent as a bearer token. ``max_concurrency`` bounds the requests in
    flight; ``transport`` replaces the network; ``trust_env`` false ignores proxy variables (a loopback
    server). It may be used from several event loops in turn (each gets its own pool), one at a time.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        api_key_env: str | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        max_concurrency: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        history: int = 10_000,
        trust_env: bool = True,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not base_url:
            raise ConfigError("base_url: required for an OpenAI-compatible endpoint")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if api_key is None:
            api_key = secret_from_env(api_key_env, setting="api_key_env")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.max_concurrency = max_concurrency
        self._transport = transport
        self._trust_env = trust_env
        self._sleep = sleep
        self._headers = {"Accept": "application/json", "User-Agent": f"data-flywheel/{__version__}"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._headers.update(headers or {})
        self.calls: deque[CallRecord] = deque(maxlen=history)
        """The latest calls (``history`` of them), oldest first."""
        self.stats = ClientStats()
        self._http: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"Endpoint({self.base_url!r})"

    def url(self, path: str) -> str:
        return self.base_url + path

    async def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        kind: CallKind,
        model: str | None,
        text_ok: bool = False,
    ) -> Answer:
        """Send ``body`` (JSON) to ``path``, retrying as :attr:`retry` says; the answer's decoded JSON, or
        :class:`EndpointError`. ``text_ok``: a 2xx body that is not JSON is the answer's text (vLLM answers
        ``/load_lora_adapter`` with a plain-text sentence)."""
        url = self.url(path)
        http, semaphore = self._session()
        started = time.perf_counter()
        content = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        status: int | None = None
        server_message: str | None = None
        problem = ""
        attempt = 0
        async with semaphore:
            while True:
                attempt += 1
                retry_after: float | None = None
                t0 = time.perf_counter()
                try:
                    resp = await http.request(method, url, content=content, headers=headers)
                except httpx.TimeoutException as exc:
                    status, server_message = None, None
                    problem = f"no answer within {self.timeout:g} s ({type(exc).__name__})"
                except httpx.TransportError as exc:
                    status, server_message = None, None
                    problem = f"connection failed ({type(exc).__name__}: {exc})"
                else:
                    status = resp.status_code
                    if 200 <= status < 300:
                        answer = Answer(kind, url, model, None, status, attempt, time.perf_counter() - t0, started)
                        try:
                            answer.data = orjson.loads(resp.content)
                        except orjson.JSONDecodeError as exc:
                            if text_ok:
                                answer.data = resp.text
                                return answer
                            raise self.bad_body(answer, f"the body is not JSON: {resp.text[:200]!r}") from exc
                        return answer
                    server_message = error_message(resp)
                    problem = f"HTTP {status}: {server_message}"
                    if not is_retryable(status):
                        break
                    retry_after = retry_after_seconds(resp.headers)
                delay = self.retry.delay(attempt, retry_after)
                if not self.retry.allows(attempt, time.perf_counter() - started, delay):
                    break
                await self._sleep(delay)
        elapsed = time.perf_counter() - started
        self._remember(CallRecord(kind, url, model, False, status, attempt, elapsed, error=problem))
        raise EndpointError(
            f"{method} {url} failed after {attempt} attempt(s): {problem}",
            url=url,
            status=status,
            server_message=server_message,
            attempts=attempt,
        )

    def record(self, answer: Answer, usage: Usage | None = None) -> None:
        """Log a call whose answer was read (with the tokens it used, when the answer says)."""
        self._remember(
            CallRecord(
                answer.kind,
                answer.url,
                answer.model,
                True,
                answer.status,
                answer.attempts,
                time.perf_counter() - answer.started,
                usage or Usage(),
            )
        )

    def bad_body(self, answer: Answer, why: str) -> EndpointError:
        """The error of a 2xx answer that is not what was asked for (logged as a failed call)."""
        elapsed = time.perf_counter() - answer.started
        self._remember(
            CallRecord(answer.kind, answer.url, answer.model, False, answer.status, answer.attempts, elapsed, error=why)
        )
        return EndpointError(
            f"{answer.url} answered HTTP {answer.status} with an unexpected body: {why}",
            url=answer.url,
            status=answer.status,
            attempts=answer.attempts,
        )

    async def aclose(self) -> None:
        if self._http is not None and self._loop is asyncio.get_running_loop():
            await self._http.aclose()
        self._http = None
        self._loop = None

    def _session(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._http is None or self._semaphore is None or self._loop is not loop:
            # A connection pool belongs to one event loop: a new loop gets a new pool.
            self._http = httpx.AsyncClient(
                timeout=self.timeout,
                transport=self._transport,
                headers=self._headers,
                trust_env=self._trust_env,
                limits=httpx.Limits(
                    max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency
                ),
            )
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
            self._loop = loop
        return self._http, self._semaphore

    def _remember(self, call: CallRecord) -> None:
        self.calls.append(call)
        self.stats.add(call)


# blocking calls -------------------------------------------------------------------------------------------


class EndpointView:
    """What a client built on an :class:`Endpoint` tells of it: its URL, concurrency, calls and totals."""

    endpoint: Endpoint

    @property
    def base_url(self) -> str:
        return self.endpoint.base_url

    @property
    def max_concurrency(self) -> int:
        return self.endpoint.max_concurrency

    @property
    def calls(self) -> deque[CallRecord]:
        """The latest calls, oldest first."""
        return self.endpoint.calls

    @property
    def stats(self) -> ClientStats:
        return self.endpoint.stats


class _LoopThread:
    """One event loop in a daemon thread, for the whole process: blocking callers submit coroutines to it,
    so a blocking call works inside another running loop (a notebook, an async caller) too, and connection
    pools live on across calls. A forked child starts its own (threads do not survive a fork)."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None
    _pid: int | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None or cls._pid != os.getpid():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="flywheel-endpoint-loop", daemon=True).start()
                cls._loop, cls._pid = loop, os.getpid()
            return cls._loop


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the process's endpoint loop and wait for its result (from any thread)."""
    loop = _LoopThread.get()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coro.close()
        raise RuntimeError("run_blocking called from the endpoint loop itself: await the coroutine instead")
    return asyncio.run_coroutine_threadsafe(coro, loop).result()
