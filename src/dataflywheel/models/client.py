"""The one client of OpenAI-compatible endpoints: candidates, judges and embedders alike.

:class:`OpenAIClient` is asynchronous (httpx): :meth:`~OpenAIClient.chat` sends a
:class:`~dataflywheel.models.types.ChatRequest` as an OpenAI chat-completions request (tool-call arguments
as JSON strings, :func:`~dataflywheel.records.toolcalls.to_wire_messages`) and parses the answer into a
:class:`~dataflywheel.models.types.ChatResult`; :meth:`~OpenAIClient.chat_many` runs many with bounded
concurrency; :meth:`~OpenAIClient.embeddings` and :meth:`~OpenAIClient.models` cover the rest.
:class:`SyncOpenAIClient` offers the same calls to code without an event loop.

Failures: 408, 429, 5xx answers, timeouts and connection errors are retried ``max_retries`` times with
exponential backoff and jitter (at least what the server's ``Retry-After`` asks); other 4xx answers are not
retried. What still fails raises :class:`EndpointError`, naming the URL, the HTTP status and the server's
own message. Every call is recorded (:attr:`OpenAIClient.calls`, :attr:`OpenAIClient.stats`): latency,
tokens, attempts.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar, overload

import httpx
import orjson

from dataflywheel import __version__
from dataflywheel.errors import ConfigError, FlywheelError
from dataflywheel.models.types import ChatRequest, ChatResult, Usage
from dataflywheel.records.toolcalls import to_wire_messages

T = TypeVar("T")
CallKind = Literal["chat", "embeddings", "models"]
OnResult = Callable[[int, ChatResult], object]

MAX_RETRY_AFTER_S = 60.0
"""The longest wait a server's ``Retry-After`` can impose between two attempts."""


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
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None


@dataclass
class ClientStats:
    """Totals over every call a client made."""

    calls: int = 0
    failures: int = 0
    attempts: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0

    def add(self, call: CallRecord) -> None:
        self.calls += 1
        self.failures += not call.ok
        self.attempts += call.attempts
        self.retries += call.attempts - 1
        self.prompt_tokens += call.prompt_tokens
        self.completion_tokens += call.completion_tokens
        self.latency_s += call.latency_s


@dataclass
class _Answer:
    data: Any
    status: int
    attempts: int
    attempt_latency_s: float
    started: float


class OpenAIClient:
    """Asynchronous client of one OpenAI-compatible base URL (``http://host:port/v1``).

    ``api_key`` (or the environment variable ``api_key_env``) is sent as a bearer token. ``max_retries``
    is the number of retries after the first attempt; ``backoff`` the first wait in seconds (doubling each
    time, up to ``max_backoff``); ``max_concurrency`` bounds the requests in flight across all calls;
    ``transport`` replaces the network (``httpx.MockTransport`` in tests). The client may be used from
    several event loops in turn (each gets its own connection pool), but from one at a time.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        api_key_env: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_concurrency: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        history: int = 10_000,
    ) -> None:
        if not base_url:
            raise ConfigError("base_url: required for an OpenAI-compatible endpoint")
        if max_retries < 0:
            raise ValueError("max_retries cannot be negative")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if api_key is None and api_key_env:
            api_key = os.environ.get(api_key_env) or None
            if api_key is None:
                raise ConfigError(f"api_key_env: environment variable {api_key_env} is not set or empty")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_concurrency = max_concurrency
        self._transport = transport
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
        return f"OpenAIClient({self.base_url!r})"

    # public calls ----------------------------------------------------------------------------------
    async def chat(self, request: ChatRequest, model: str) -> ChatResult:
        """Ask ``model`` (or the request's ``adapter``, which names a model on our own server)."""
        model = request.adapter or model
        answer = await self._call("POST", "/chat/completions", chat_payload(request, model), kind="chat", model=model)
        return self._finish_chat(answer, model)

    @overload
    async def chat_many(
        self,
        requests: Sequence[ChatRequest],
        model: str,
        on_result: OnResult | None = None,
        *,
        return_exceptions: Literal[False] = False,
    ) -> list[ChatResult]: ...

    @overload
    async def chat_many(
        self,
        requests: Sequence[ChatRequest],
        model: str,
        on_result: OnResult | None = None,
        *,
        return_exceptions: Literal[True],
    ) -> list[ChatResult | EndpointError]: ...

    async def chat_many(
        self,
        requests: Sequence[ChatRequest],
        model: str,
        on_result: OnResult | None = None,
        *,
        return_exceptions: bool = False,
    ) -> list[ChatResult] | list[ChatResult | EndpointError]:
        """Results in the order of ``requests``, at most ``max_concurrency`` in flight.

        ``on_result(index, result)`` is called as each one arrives (progress, incremental writes). The
        first :class:`EndpointError` cancels the rest and is raised, unless ``return_exceptions``: then it
        takes the failed request's place in the list.
        """
        results: list[ChatResult | EndpointError | None] = [None] * len(requests)
        indices = iter(range(len(requests)))

        async def worker() -> None:
            for i in indices:  # one shared iterator: each index is taken by exactly one worker
                try:
                    result = await self.chat(requests[i], model)
                except EndpointError as exc:
                    if not return_exceptions:
                        raise
                    results[i] = exc
                    continue
                results[i] = result
                if on_result is not None:
                    on_result(i, result)

        tasks = [asyncio.create_task(worker()) for _ in range(min(self.max_concurrency, len(requests)))]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        if return_exceptions:
            return [r for r in results if r is not None]
        return [r for r in results if isinstance(r, ChatResult)]

    async def embeddings(self, texts: Sequence[str], model: str, input_type: str | None = None) -> list[list[float]]:
        """One vector per text, in order (``input_type`` is sent when given: NIM embedders want it)."""
        payload: dict[str, Any] = {"model": model, "input": list(texts), "encoding_format": "float"}
        if input_type:
            payload["input_type"] = input_type
        answer = await self._call("POST", "/embeddings", payload, kind="embeddings", model=model)
        url = self.base_url + "/embeddings"
        try:
            items = sorted(answer.data["data"], key=lambda d: int(d.get("index", 0)))
            vectors = [[float(x) for x in item["embedding"]] for item in items]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self._bad_body(
                "embeddings", url, answer, f"no embeddings in the answer ({type(exc).__name__}: {exc})"
            ) from exc
        if len(vectors) != len(texts):
            raise self._bad_body("embeddings", url, answer, f"{len(vectors)} embeddings for {len(texts)} inputs")
        usage = answer.data.get("usage") if isinstance(answer.data, dict) else None
        self._record("embeddings", url, model, answer, prompt_tokens=_int((usage or {}).get("prompt_tokens")))
        return vectors

    async def models(self) -> list[str]:
        """The ids ``GET /models`` lists."""
        answer = await self._call("GET", "/models", None, kind="models", model=None)
        url = self.base_url + "/models"
        try:
            ids = [str(item["id"]) for item in answer.data["data"]]
        except (KeyError, TypeError) as exc:
            raise self._bad_body(
                "models", url, answer, f"no model list in the answer ({type(exc).__name__}: {exc})"
            ) from exc
        self._record("models", url, None, answer)
        return ids

    async def aclose(self) -> None:
        if self._http is not None and self._loop is asyncio.get_running_loop():
            await self._http.aclose()
        self._http = None
        self._loop = None

    async def __aenter__(self) -> OpenAIClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def sync(self) -> SyncOpenAIClient:
        """A blocking twin of this client (same settings, statistics and call history)."""
        return SyncOpenAIClient(self)

    # internals -------------------------------------------------------------------------------------
    def _session(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._http is None or self._semaphore is None or self._loop is not loop:
            # A connection pool belongs to one event loop: a new loop gets a new pool.
            self._http = httpx.AsyncClient(
                timeout=self.timeout,
                transport=self._transport,
                headers=self._headers,
                limits=httpx.Limits(
                    max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency
                ),
            )
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
            self._loop = loop
        return self._http, self._semaphore

    async def _call(
        self, method: str, path: str, payload: dict[str, Any] | None, *, kind: CallKind, model: str | None
    ) -> _Answer:
        url = self.base_url + path
        http, semaphore = self._session()
        started = time.perf_counter()
        content = orjson.dumps(payload) if payload is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        status: int | None = None
        server_message: str | None = None
        problem = ""
        attempt = 0
        async with semaphore:
            for attempt in range(1, self.max_retries + 2):
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
                        try:
                            data = orjson.loads(resp.content)
                        except orjson.JSONDecodeError as exc:
                            answer = _Answer(None, status, attempt, time.perf_counter() - t0, started)
                            raise self._bad_body(
                                kind, url, answer, f"the body is not JSON: {resp.text[:200]!r}"
                            ) from exc
                        return _Answer(data, status, attempt, time.perf_counter() - t0, started)
                    server_message = error_message(resp)
                    problem = f"HTTP {status}: {server_message}"
                    if not is_retryable(status):
                        break
                    retry_after = retry_after_seconds(resp.headers)
                if attempt <= self.max_retries:
                    await asyncio.sleep(self._delay(attempt, retry_after))
        error = EndpointError(
            f"{method} {url} failed after {attempt} attempt(s): {problem}",
            url=url,
            status=status,
            server_message=server_message,
            attempts=attempt,
        )
        self._remember(
            CallRecord(kind, url, model, False, status, attempt, time.perf_counter() - started, error=problem)
        )
        raise error

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        delay = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1)) * random.uniform(0.8, 1.2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
        return delay

    def _finish_chat(self, answer: _Answer, model: str) -> ChatResult:
        url = self.base_url + "/chat/completions"
        try:
            result = parse_chat_response(answer.data)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise self._bad_body("chat", url, answer, f"not a chat completion ({type(exc).__name__}: {exc})") from exc
        result.latency_s = answer.attempt_latency_s
        self._record(
            "chat",
            url,
            model,
            answer,
            prompt_tokens=result.usage.prompt_tokens,
            completion_tokens=result.usage.completion_tokens,
        )
        return result

    def _record(
        self,
        kind: CallKind,
        url: str,
        model: str | None,
        answer: _Answer,
        *,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
    ) -> None:
        self._remember(
            CallRecord(
                kind,
                url,
                model,
                True,
                answer.status,
                answer.attempts,
                time.perf_counter() - answer.started,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
            )
        )

    def _remember(self, call: CallRecord) -> None:
        self.calls.append(call)
        self.stats.add(call)

    def _bad_body(self, kind: CallKind, url: str, answer: _Answer, why: str) -> EndpointError:
        message = f"{url} answered HTTP {answer.status} with an unexpected body: {why}"
        self._remember(
            CallRecord(
                kind,
                url,
                None,
                False,
                answer.status,
                answer.attempts,
                time.perf_counter() - answer.started,
                error=why,
            )
        )
        return EndpointError(message, url=url, status=answer.status, attempts=answer.attempts)


# the wire format --------------------------------------------------------------------------------------


def chat_payload(request: ChatRequest, model: str) -> dict[str, Any]:
    """The OpenAI request body for ``request`` (arguments of earlier tool calls as JSON strings)."""
    s = request.sampling
    payload: dict[str, Any] = {
        "model": model,
        "messages": to_wire_messages(request.messages),
        "max_tokens": s.max_tokens,
        "temperature": s.temperature,
        "top_p": s.top_p,
    }
    if s.stop:
        payload["stop"] = list(s.stop)
    if s.seed is not None:
        payload["seed"] = s.seed
    if request.tools:
        payload["tools"] = request.tools
        if request.tool_choice is not None:
            payload["tool_choice"] = request.tool_choice
        if not request.constrain_tool_names:
            # Our server's extension, sent only to opt out (other servers may refuse unknown fields; vLLM
            # ignores it and always holds `required` and named calls to the tools by structured output).
            payload["constrain_tool_names"] = False
    return payload


def parse_chat_response(data: Any) -> ChatResult:
    """A :class:`ChatResult` from an OpenAI chat-completion body (the first choice)."""
    choice = data["choices"][0]
    msg = choice.get("message") or {}
    content = msg.get("content")
    if content is not None and not isinstance(content, str):
        raise TypeError(f"message.content is a {type(content).__name__}")
    message: dict[str, Any] = {"role": "assistant", "content": content}
    calls = []
    for i, call in enumerate(msg.get("tool_calls") or []):
        fn = call["function"]
        args = fn.get("arguments", "{}")
        calls.append(
            {
                "id": call.get("id") or f"call_{i}",
                "type": "function",
                "function": {
                    "name": str(fn["name"]),
                    "arguments": args if isinstance(args, str) else orjson.dumps(args).decode(),
                },
            }
        )
    if calls:
        message["tool_calls"] = calls
    reason = choice.get("finish_reason")
    finish: Literal["stop", "length", "tool_calls"]
    if reason == "length":
        finish = "length"
    elif calls or reason in ("tool_calls", "function_call"):
        finish = "tool_calls"
    else:
        finish = "stop"
    usage = data.get("usage") or {}
    return ChatResult(
        message=message,
        finish_reason=finish,
        usage=Usage(
            prompt_tokens=_int(usage.get("prompt_tokens")), completion_tokens=_int(usage.get("completion_tokens"))
        ),
        raw_text=content or "",
    )


def is_retryable(status: int) -> bool:
    """Rate limits (429), request timeouts (408) and server-side failures (5xx) are worth another try."""
    return status in (408, 429) or status >= 500


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


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


# the blocking twin ------------------------------------------------------------------------------------


class SyncOpenAIClient:
    """:class:`OpenAIClient`'s calls for code without an event loop.

    It runs the asynchronous client on a private event loop in a daemon thread, so it also works when
    called from inside another running loop (a notebook) and keeps one connection pool across calls.
    ``SyncOpenAIClient(base_url, **options)`` or ``SyncOpenAIClient(an_async_client)``.
    """

    def __init__(self, client: OpenAIClient | str, **options: Any) -> None:
        self.client = client if isinstance(client, OpenAIClient) else OpenAIClient(client, **options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="flywheel-openai-client", daemon=True)
        self._thread.start()
        self._closed = False

    @property
    def stats(self) -> ClientStats:
        return self.client.stats

    @property
    def calls(self) -> deque[CallRecord]:
        return self.client.calls

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("the client is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def chat(self, request: ChatRequest, model: str) -> ChatResult:
        return self._run(self.client.chat(request, model))

    def chat_many(
        self, requests: Sequence[ChatRequest], model: str, on_result: OnResult | None = None
    ) -> list[ChatResult]:
        """Like :meth:`OpenAIClient.chat_many`; ``on_result`` runs on the client's thread."""
        return self._run(self.client.chat_many(requests, model, on_result))

    def embeddings(self, texts: Sequence[str], model: str, input_type: str | None = None) -> list[list[float]]:
        return self._run(self.client.embeddings(texts, model, input_type))

    def models(self) -> list[str]:
        return self._run(self.client.models())

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._run(self.client.aclose())
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop.close()

    def __enter__(self) -> SyncOpenAIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
