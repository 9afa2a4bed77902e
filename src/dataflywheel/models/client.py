"""The one client of OpenAI-compatible endpoints: candidates, judges, embedders and model servers alike.

:class:`OpenAIClient` is asynchronous (httpx): :meth:`~OpenAIClient.chat` sends a
:class:`~dataflywheel.models.types.ChatRequest` as an OpenAI chat-completions request (tool-call arguments
as JSON strings, :func:`~dataflywheel.records.toolcalls.to_wire_messages`) and parses the answer into a
:class:`~dataflywheel.models.types.ChatResult`; :meth:`~OpenAIClient.chat_many` runs many with bounded
concurrency (:meth:`~OpenAIClient.chat_many_settled`: each failure in its request's place);
:meth:`~OpenAIClient.embeddings`, :meth:`~OpenAIClient.models` and
:meth:`~OpenAIClient.load_lora_adapter` cover the rest. :class:`SyncOpenAIClient` offers the same calls to
code without an event loop.

Each call is a thin typed layer (bodies and answers: :mod:`dataflywheel.models.wire`) over an
:class:`~dataflywheel.models.endpoint.Endpoint`, which owns the API key, retries (408, 409, 425, 429, 5xx,
timeouts and connection errors, with backoff and the server's ``Retry-After``), the mapping of failures to
:class:`EndpointError` (naming the URL, the HTTP status and the server's own message) and the call log
(:attr:`OpenAIClient.calls`, :attr:`OpenAIClient.stats`: latency, tokens, attempts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from typing_extensions import Unpack

from dataflywheel.closing import Closing
from dataflywheel.models.chat_template import TOOL_CHOICE_KWARG
from dataflywheel.models.codec import fallback_prefill, parse_answer
from dataflywheel.models.endpoint import (
    MAX_RETRY_AFTER_S,
    Answer,
    CallRecord,
    ClientStats,
    Endpoint,
    EndpointError,
    EndpointOptions,
    EndpointView,
    RetryPolicy,
    error_message,
    is_retryable,
    retry_after_seconds,
    run_blocking,
)
from dataflywheel.models.types import ChatRequest, ChatResult, Usage
from dataflywheel.models.wire import (
    ChatCompletion,
    ChatCompletionBody,
    EmbeddingsBody,
    EmbeddingsResponse,
    LoraAdapterBody,
    ModelsResponse,
)
from dataflywheel.records.jsonvalue import JsonObject, JsonValue
from dataflywheel.records.toolcalls import to_wire_messages

__all__ = [
    "MAX_RETRY_AFTER_S",
    "CallRecord",
    "ClientStats",
    "EndpointError",
    "OpenAIClient",
    "RetryPolicy",
    "SyncOpenAIClient",
    "chat_payload",
    "error_message",
    "is_retryable",
    "parse_chat_response",
    "read_text_answer",
    "retry_after_seconds",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
OnResult = Callable[[int, ChatResult], object]


class OpenAIClient(EndpointView):
    """Asynchronous client of one OpenAI-compatible base URL (``http://host:port/v1``).

    The options of :class:`EndpointOptions` go to the client's :class:`Endpoint` as they are:
    ``api_key`` (or the environment variable ``api_key_env``) is sent as a bearer token. ``max_retries``
    is the number of retries after the first attempt; ``backoff`` the first wait in seconds (doubling each
    time, up to ``max_backoff``); ``give_up_after_s`` stops retrying after that long (``max_retries`` None:
    only then); ``max_concurrency`` bounds the requests in flight across all calls; ``transport`` replaces
    the network (``httpx.MockTransport`` in tests) and ``sleep`` the waits between attempts. The client may
    be used from several event loops in turn (each gets its own connection pool), but from one at a time.
    """

    def __init__(
        self,
        base_url: str,
        *,
        max_retries: int | None = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        give_up_after_s: float | None = None,
        tool_calls_as_text: bool = False,
        **options: Unpack[EndpointOptions],
    ) -> None:
        self.tool_calls_as_text = tool_calls_as_text
        """The server renders prompts with the codec's chat template and answers with the model's text (vLLM
        serving a candidate, :mod:`dataflywheel.models.chat_template`): ``tool_choice`` travels to the template
        in ``chat_template_kwargs`` and tool calls are read out of the text here, by our parser."""
        retry = RetryPolicy(max_retries, backoff, max_backoff, give_up_after_s)
        self.endpoint = Endpoint(base_url, retry=retry, **options)

    def __repr__(self) -> str:
        return f"OpenAIClient({self.base_url!r})"

    # public calls ----------------------------------------------------------------------------------
    async def chat(self, request: ChatRequest, model: str) -> ChatResult:
        """Ask ``model`` (or the request's ``adapter``, which names a model on our own server)."""
        model = request.adapter or model
        body = chat_payload(request, model, tool_calls_as_text=self.tool_calls_as_text)
        answer = await self.endpoint.request("POST", "/chat/completions", body, kind="chat", model=model)
        try:
            result = parse_chat_response(answer.data)
        except (ValidationError, TypeError) as exc:
            raise self.endpoint.bad_body(answer, f"not a chat completion ({_why(exc)})") from exc
        if self.tool_calls_as_text:
            result = read_text_answer(result, request)
        result.latency_s = answer.attempt_latency_s
        self.endpoint.record(answer, result.usage)
        return result

    async def chat_many(
        self, requests: Sequence[ChatRequest], model: str, on_result: OnResult | None = None
    ) -> list[ChatResult]:
        """Results in the order of ``requests``, at most ``max_concurrency`` in flight.

        ``on_result(index, result)`` is called as each one arrives (progress, incremental writes). The
        first :class:`EndpointError` cancels the rest and is raised (:meth:`chat_many_settled` keeps going).
        """
        return await self._each(requests, lambda request: self.chat(request, model), on_result)

    async def chat_many_settled(
        self, requests: Sequence[ChatRequest], model: str, on_result: OnResult | None = None
    ) -> list[ChatResult | EndpointError]:
        """As :meth:`chat_many`, but a failed request's :class:`EndpointError` takes its place in the list and
        the other requests go on (``on_result`` is called for the answers only)."""

        async def settled(request: ChatRequest) -> ChatResult | EndpointError:
            try:
                return await self.chat(request, model)
            except EndpointError as exc:
                return exc

        def answered(index: int, result: ChatResult | EndpointError) -> None:
            if on_result is not None and isinstance(result, ChatResult):
                on_result(index, result)

        return await self._each(requests, settled, answered)

    async def _each(
        self,
        requests: Sequence[ChatRequest],
        call: Callable[[ChatRequest], Awaitable[T]],
        on_result: Callable[[int, T], object] | None,
    ) -> list[T]:
        """``call(request)`` for each request, results in order, at most ``max_concurrency`` in flight; the
        first exception cancels the rest and is raised."""
        results: dict[int, T] = {}
        indices = iter(range(len(requests)))

        async def worker() -> None:
            for i in indices:  # one shared iterator: each index is taken by exactly one worker
                results[i] = await call(requests[i])
                if on_result is not None:
                    on_result(i, results[i])

        tasks = [asyncio.create_task(worker()) for _ in range(min(self.max_concurrency, len(requests)))]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return [results[i] for i in range(len(requests))]

    async def embeddings(self, texts: Sequence[str], model: str, input_type: str | None = None) -> list[list[float]]:
        """One vector per text, in order (``input_type`` is sent when given: NIM embedders want it)."""
        body = EmbeddingsBody(model=model, input=list(texts), input_type=input_type or None)
        answer = await self.endpoint.request("POST", "/embeddings", body.wire(), kind="embeddings", model=model)
        parsed = self._read(answer, EmbeddingsResponse, "no embeddings in the answer")
        vectors = parsed.vectors()
        if len(vectors) != len(texts):
            raise self.endpoint.bad_body(answer, f"{len(vectors)} vectors for {len(texts)} inputs")
        self.endpoint.record(answer, Usage(parsed.usage.prompt_tokens) if parsed.usage else None)
        return vectors

    async def models(self) -> list[str]:
        """The ids ``GET /models`` lists."""
        answer = await self.endpoint.request("GET", "/models", None, kind="models", model=None)
        parsed = self._read(answer, ModelsResponse, "no model list in the answer")
        self.endpoint.record(answer)
        return [item.id for item in parsed.data]

    async def load_lora_adapter(self, name: str, path: str) -> None:
        """Have the server load the LoRA adapter folder ``path`` under the model name ``name`` (vLLM's runtime
        LoRA API, which our server shares). An adapter the server says it already has is not an error."""
        body = LoraAdapterBody(lora_name=name, lora_path=path).wire()
        try:
            answer = await self.endpoint.request(
                "POST", "/load_lora_adapter", body, kind="adapters", model=name, text_ok=True
            )
        except EndpointError as exc:
            if exc.status is not None and "already" in (exc.server_message or ""):
                return
            raise
        self.endpoint.record(answer)

    async def aclose(self) -> None:
        await self.endpoint.aclose()

    async def __aenter__(self) -> OpenAIClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def sync(self) -> SyncOpenAIClient:
        """A blocking twin of this client (same settings, statistics and call history)."""
        return SyncOpenAIClient(self)

    def _read(self, answer: Answer, model: type[M], what: str) -> M:
        try:
            return model.model_validate(answer.data)
        except ValidationError as exc:
            raise self.endpoint.bad_body(answer, f"{what} ({_why(exc)})") from exc


# the wire format --------------------------------------------------------------------------------------


def chat_payload(request: ChatRequest, model: str, *, tool_calls_as_text: bool = False) -> dict[str, object]:
    """The OpenAI request body for ``request`` (arguments of earlier tool calls as JSON strings).

    ``tool_calls_as_text``: for a server that renders the codec's chat template (vLLM): the request's
    ``tool_choice`` goes to the template (``chat_template_kwargs``), and the server is asked for text
    (``tool_choice: none``), which :func:`read_text_answer` parses."""
    s = request.sampling
    tools = [dict(t) for t in request.tools] if request.tools else None
    choice = request.tool_choice
    tool_choice = (dict(choice) if isinstance(choice, Mapping) else choice) if tools else None
    template_kwargs = None
    if tool_calls_as_text and tools:
        template_kwargs = {TOOL_CHOICE_KWARG: tool_choice}
        tool_choice = "none"
    body = ChatCompletionBody(
        model=model,
        messages=to_wire_messages(request.messages),
        max_tokens=s.max_tokens,
        temperature=s.temperature,
        top_p=s.top_p,
        stop=list(s.stop) or None,
        seed=s.seed,
        tools=tools,
        tool_choice=tool_choice,
        constrain_tool_names=False if tools and not request.constrain_tool_names and not tool_calls_as_text else None,
        chat_template_kwargs=template_kwargs,
    )
    return body.wire()


def read_text_answer(result: ChatResult, request: ChatRequest) -> ChatResult:
    """``result`` with its text read by our tool-call parser, as our own server reads a model's output: the
    prefill the codec's template forced for ``request.tool_choice``, then the generated text."""
    offered = bool(request.tools) and request.tool_choice != "none"
    prefill = fallback_prefill(request.tool_choice) if offered else ""
    text = prefill + (result.message.get("content") or "")
    message = parse_answer(text, request.tools).message
    # as the local engine decides: a call wins over a cut answer
    finish: Literal["stop", "length", "tool_calls"] = (
        "tool_calls" if message.get("tool_calls") else ("length" if result.finish_reason == "length" else "stop")
    )
    return ChatResult(message=message, finish_reason=finish, usage=result.usage, raw_text=text)


def parse_chat_response(data: Any) -> ChatResult:
    """A :class:`ChatResult` from an OpenAI chat-completion body (the first choice); pydantic's
    ValidationError when it is not one."""
    completion = ChatCompletion.model_validate(data)
    choice = completion.choices[0]
    content = choice.message.content
    message: JsonObject = {"role": "assistant", "content": content}
    calls: list[JsonValue] = [
        {
            "id": call.id or f"call_{i}",
            "type": "function",
            "function": {"name": call.function.name, "arguments": call.function.arguments},
        }
        for i, call in enumerate(choice.message.tool_calls or [])
    ]
    if calls:
        message["tool_calls"] = calls
    finish: Literal["stop", "length", "tool_calls"]
    if choice.finish_reason == "length":
        finish = "length"
    elif calls or choice.finish_reason in ("tool_calls", "function_call"):
        finish = "tool_calls"
    else:
        finish = "stop"
    usage = completion.usage
    return ChatResult(
        message=message,
        finish_reason=finish,
        usage=Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage(),
        raw_text=content or "",
    )


def _why(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the body"
        return f"{where}: {first['msg']}"
    return f"{type(exc).__name__}: {exc}"


# the blocking twin ------------------------------------------------------------------------------------


class SyncOpenAIClient(EndpointView, Closing):
    """:class:`OpenAIClient`'s calls for code without an event loop.

    The asynchronous client runs on the process's endpoint loop (a daemon thread shared by every blocking
    client, :func:`~dataflywheel.models.endpoint.run_blocking`), so it also works when called from inside
    another running loop (a notebook) and keeps its connection pool across calls.
    ``SyncOpenAIClient(base_url, **options)`` or ``SyncOpenAIClient(an_async_client)``.
    """

    def __init__(self, client: OpenAIClient | str, **options: Any) -> None:
        self.client = client if isinstance(client, OpenAIClient) else OpenAIClient(client, **options)
        self.endpoint = self.client.endpoint
        self._closed = False

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("the client is closed")
        return run_blocking(coro)

    def chat(self, request: ChatRequest, model: str) -> ChatResult:
        return self._run(self.client.chat(request, model))

    def chat_many(
        self, requests: Sequence[ChatRequest], model: str, on_result: OnResult | None = None
    ) -> list[ChatResult]:
        """Like :meth:`OpenAIClient.chat_many`; ``on_result`` runs on the endpoint loop's thread."""
        return self._run(self.client.chat_many(requests, model, on_result))

    def chat_many_settled(
        self, requests: Sequence[ChatRequest], model: str, on_result: OnResult | None = None
    ) -> list[ChatResult | EndpointError]:
        """Like :meth:`OpenAIClient.chat_many_settled`; ``on_result`` runs on the endpoint loop's thread."""
        return self._run(self.client.chat_many_settled(requests, model, on_result))

    def embeddings(self, texts: Sequence[str], model: str, input_type: str | None = None) -> list[list[float]]:
        return self._run(self.client.embeddings(texts, model, input_type))

    def models(self) -> list[str]:
        return self._run(self.client.models())

    def load_lora_adapter(self, name: str, path: str) -> None:
        self._run(self.client.load_lora_adapter(name, path))

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._run(self.client.aclose())
        finally:
            self._closed = True
