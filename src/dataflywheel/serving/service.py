"""What the server does with a chat-completions request: validate it, batch it, answer or stream it.

* :meth:`ChatService.prepare` turns a :class:`~.protocol.ChatCompletionRequest` into the engine's
  :class:`~dataflywheel.models.types.ChatRequest` (the model name picks the base model or a LoRA adapter),
  refusing what the engine cannot honour with a 400 that names the parameter.
* :class:`BatchQueue` collects the requests that arrive within a few milliseconds of each other (up to the
  engine's batch size) and hands them to ``engine.chat`` together, on one worker thread, so concurrent
  clients share a forward pass; results are delivered to the asyncio futures the handlers await.
* :meth:`ChatService.stream` writes the answer as OpenAI server-sent events: a role chunk, the content
  and/or tool-call deltas, a last chunk with ``finish_reason``, an optional usage chunk, ``data: [DONE]``.
  The engine generates the whole answer at once, so the content arrives as one delta.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from dataflywheel.errors import FlywheelError
from dataflywheel.models.engine import UnknownAdapterError
from dataflywheel.models.types import ChatRequest, ChatResult, SamplingParams, ToolChoice
from dataflywheel.records.toolcalls import normalize_tool_calls
from dataflywheel.serving.protocol import (
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionStreamChoice,
    ChatMessage,
    DeltaFunctionCall,
    DeltaMessage,
    DeltaToolCall,
    ErrorInfo,
    ErrorResponse,
    FinishReason,
    FunctionCall,
    ModelCard,
    ModelList,
    NamedToolChoice,
    ToolCall,
    UsageInfo,
    new_completion_id,
    now,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 16
DEFAULT_BATCH_WAIT_S = 0.005
MESSAGE_ROLES = ("system", "developer", "user", "assistant", "tool")


# Errors -----------------------------------------------------------------------------------------------


class ServingError(FlywheelError):
    """An answer the server gives as an HTTP error, in OpenAI's shape."""

    status_code = 500
    error_type = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def to_response(self) -> ErrorResponse:
        return ErrorResponse(
            error=ErrorInfo(message=self.message, type=self.error_type, param=self.param, code=self.code)
        )


class InvalidRequestError(ServingError):
    """400: the request cannot be served as it is (bad value, unsupported option)."""

    status_code = 400
    error_type = "invalid_request_error"


class ModelNotFoundError(ServingError):
    """404: the request names a model that is neither the base model nor a loaded adapter."""

    status_code = 404
    error_type = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = "model", code: str | None = "model_not_found") -> None:
        super().__init__(message, param=param, code=code)

    @classmethod
    def for_model(cls, model: str, available: Sequence[str]) -> ModelNotFoundError:
        return cls(f"The model `{model}` does not exist. Available models: {', '.join(available)}")


class ServiceUnavailableError(ServingError):
    """503: the server is shutting down."""

    status_code = 503
    error_type = "service_unavailable"


class InternalServerError(ServingError):
    """500: the engine failed on a request it had accepted."""

    status_code = 500
    error_type = "internal_error"


# The engine -------------------------------------------------------------------------------------------


class ChatEngine(Protocol):
    """What the server needs of an engine (:class:`~dataflywheel.models.engine.LocalEngine` is one)."""

    @property
    def adapters(self) -> Collection[str]:
        """Names of the loaded LoRA adapters."""
        ...

    def chat(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Answer a batch of requests, one result per request, in order. Called from one worker thread."""
        ...


def engine_max_batch(engine: object) -> int:
    """The engine's batch size when it tells one (``max_batch_size``), else :data:`DEFAULT_MAX_BATCH`."""
    for attr in ("max_batch_size", "max_batch"):
        value = getattr(engine, attr, None)
        if isinstance(value, int) and value >= 1:
            return value
    return DEFAULT_MAX_BATCH


# The batching queue -----------------------------------------------------------------------------------


@dataclass
class BatchStats:
    """What the queue has sent to the engine so far."""

    batches: int = 0
    requests: int = 0
    largest_batch: int = 0
    sizes: Counter[int] = field(default_factory=Counter)
    """Batch size -> how many batches had that size."""
    busy_s: float = 0.0
    """Seconds spent inside ``engine.chat``."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, size: int, seconds: float) -> None:
        with self._lock:
            self.batches += 1
            self.requests += size
            self.largest_batch = max(self.largest_batch, size)
            self.sizes[size] += 1
            self.busy_s += seconds

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "batches": self.batches,
                "requests": self.requests,
                "largest_batch": self.largest_batch,
                "sizes": {str(k): v for k, v in sorted(self.sizes.items())},
                "busy_s": round(self.busy_s, 3),
            }


@dataclass
class _Job:
    request: ChatRequest
    future: asyncio.Future[ChatResult]
    loop: asyncio.AbstractEventLoop


def _resolve(job: _Job, result: ChatResult | None, error: BaseException | None) -> None:
    """Runs on the job's event loop: deliver the outcome unless the waiter has gone (client hung up)."""
    if job.future.done():
        return
    if result is not None:
        job.future.set_result(result)
    else:
        job.future.set_exception(error or RuntimeError("no result"))


class BatchQueue:
    """Requests in, batches of them out to ``engine.chat`` on one worker thread.

    The worker blocks for a first request, then keeps collecting for ``max_wait_s`` (or until
    ``max_batch`` requests are in hand); while the engine is busy, new requests pile up and form the next
    batch. If a batch of several fails, each of its requests is retried alone, so one bad request cannot
    fail its neighbours.
    """

    def __init__(
        self,
        engine: ChatEngine,
        *,
        max_batch: int | None = None,
        max_wait_s: float = DEFAULT_BATCH_WAIT_S,
        after_batch: Callable[[], None] | None = None,
    ):
        self.engine = engine
        self.after_batch = after_batch
        """Called on the worker thread after each batch (while the engine is idle)."""
        self.max_batch = max_batch or engine_max_batch(engine)
        if self.max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.max_wait_s = max_wait_s
        self.stats = BatchStats()
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> None:
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        if self._closed:
            raise ServiceUnavailableError("the server is shutting down")
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="flywheel-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in progress, fail what is still queued, end the worker."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        self._queue.put(None)
        if thread is not None:
            thread.join(timeout)
        self._fail_pending(ServiceUnavailableError("the server is shutting down"))

    async def submit(self, request: ChatRequest) -> ChatResult:
        """Queue one request and wait for its result (or the engine's exception)."""
        loop = asyncio.get_running_loop()
        job = _Job(request, loop.create_future(), loop)
        with self._lock:  # so that stop() cannot slip between the check and the put
            self._start_locked()
            self._queue.put(job)
        return await job.future

    # worker thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._collect(first)
            live = [j for j in batch if not j.future.done()]  # skip requests whose client is gone
            if live:
                self._execute(live)
            if self.after_batch is not None:
                try:
                    self.after_batch()
                except Exception:
                    logger.exception("after_batch failed")
            if stop:
                return

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        batch = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return batch, True
            batch.append(job)
        return batch, False

    def _execute(self, jobs: list[_Job]) -> None:
        started = time.perf_counter()
        try:
            results = self.engine.chat([j.request for j in jobs])
            if len(results) != len(jobs):
                raise RuntimeError(f"the engine returned {len(results)} results for {len(jobs)} requests")
        except Exception as exc:
            self.stats.record(len(jobs), time.perf_counter() - started)
            if len(jobs) > 1:
                logger.warning("a batch of %d failed (%s); retrying its requests one by one", len(jobs), exc)
                for job in jobs:
                    self._execute([job])
                return
            if not isinstance(exc, FlywheelError):
                logger.exception("the engine failed on a request")
            self._deliver(jobs[0], None, exc)
            return
        self.stats.record(len(jobs), time.perf_counter() - started)
        for job, result in zip(jobs, results, strict=True):
            self._deliver(job, result, None)

    @staticmethod
    def _deliver(job: _Job, result: ChatResult | None, error: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            job.loop.call_soon_threadsafe(_resolve, job, result, error)

    def _fail_pending(self, error: ServingError) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                self._deliver(job, None, error)


# The service ------------------------------------------------------------------------------------------


@dataclass
class PreparedRequest:
    """A validated request: what to ask the engine, and the model name to answer with."""

    chat: ChatRequest
    model: str
    stream: bool
    include_usage: bool


class ChatService:
    """The behaviour behind ``/v1/models`` and ``/v1/chat/completions`` for one engine."""

    def __init__(
        self,
        engine: ChatEngine,
        model_name: str,
        *,
        max_batch: int | None = None,
        batch_wait_s: float = DEFAULT_BATCH_WAIT_S,
        default_max_tokens: int | None = None,
    ) -> None:
        self.engine = engine
        self.model_name = model_name
        self.default_max_tokens = default_max_tokens or SamplingParams().max_tokens
        self.adapters: tuple[str, ...] = ()
        """The engine's adapter names, as of the last batch. The engine's ``adapters`` waits for a running
        generation to end, so the event loop reads this copy, which the worker refreshes between batches."""
        self.refresh_adapters()
        self.batcher = BatchQueue(
            engine, max_batch=max_batch, max_wait_s=batch_wait_s, after_batch=self.refresh_adapters
        )
        self.created = now()

    # models ----------------------------------------------------------------------------------------
    def refresh_adapters(self) -> None:
        self.adapters = tuple(sorted(self.engine.adapters))

    def model_names(self) -> list[str]:
        return [self.model_name, *self.adapters]

    def load_adapter(self, name: str, path: str) -> None:
        """Load (or replace) a LoRA adapter while serving (vLLM's ``/v1/load_lora_adapter``). Blocks until
        the running batch ends: call it off the event loop."""
        from dataflywheel.errors import FlywheelError

        load = getattr(self.engine, "load_adapter", None)
        if load is None:
            raise InvalidRequestError("this engine cannot load adapters", param="lora_name")
        if not name or name == self.model_name:
            raise InvalidRequestError(f"adapter name {name!r} is empty or the base model's", param="lora_name")
        try:
            load(name, path)
        except FlywheelError as exc:
            raise InvalidRequestError(str(exc), param="lora_path") from exc
        self.refresh_adapters()

    def unload_adapter(self, name: str) -> None:
        unload = getattr(self.engine, "unload_adapter", None)
        if unload is None or name not in self.engine.adapters:
            raise ModelNotFoundError(f"no adapter named {name!r} is loaded", param="lora_name")
        unload(name)
        self.refresh_adapters()

    def models(self) -> ModelList:
        cards = [ModelCard(id=self.model_name, created=self.created, root=self.model_name)]
        cards += [
            ModelCard(id=name, created=self.created, root=self.model_name, parent=self.model_name)
            for name in self.adapters
        ]
        return ModelList(data=cards)

    def adapter_for(self, model: str | None) -> str | None:
        """None for the base model (or no name), the adapter's name for an adapter alias; 404 otherwise."""
        if model is None or model == self.model_name:
            return None
        if model in self.adapters:
            return model
        raise ModelNotFoundError.for_model(model, self.model_names())

    # validation ------------------------------------------------------------------------------------
    def prepare(self, req: ChatCompletionRequest) -> PreparedRequest:
        """Validate ``req`` into the engine's request; raise a 400/404 :class:`ServingError` otherwise."""
        if req.n is not None and req.n != 1:
            raise InvalidRequestError(
                f"n={req.n} is not supported: this server returns one choice per request (n=1)",
                param="n",
                code="unsupported_value",
            )
        if req.logprobs:
            raise InvalidRequestError("logprobs are not supported by this server", param="logprobs")
        adapter = self.adapter_for(req.model)
        tools, tool_choice = _tools_and_choice(req)
        sampling = SamplingParams(
            max_tokens=req.max_completion_tokens or req.max_tokens or self.default_max_tokens,
            temperature=req.temperature if req.temperature is not None else 0.0,
            top_p=req.top_p if req.top_p is not None else 1.0,
            stop=req.stop_list,
            seed=req.seed,
        )
        chat = ChatRequest(
            messages=normalize_messages(req.messages),
            tools=tools,
            tool_choice=tool_choice,
            sampling=sampling,
            adapter=adapter,
            constrain_tool_names=req.constrain_tool_names is not False,
        )
        return PreparedRequest(
            chat=chat, model=req.model or self.model_name, stream=bool(req.stream), include_usage=req.include_usage
        )

    # answering -------------------------------------------------------------------------------------
    async def generate(self, prepared: PreparedRequest) -> ChatResult:
        try:
            return await self.batcher.submit(prepared.chat)
        except Exception as exc:
            raise map_engine_error(exc) from exc

    async def complete(self, prepared: PreparedRequest) -> ChatCompletionResponse:
        result = await self.generate(prepared)
        return ChatCompletionResponse(
            model=prepared.model,
            choices=[
                ChatCompletionChoice(message=response_message(result.message), finish_reason=result.finish_reason)
            ],
            usage=usage_info(result),
        )

    async def stream(self, prepared: PreparedRequest) -> AsyncIterator[str]:
        """Server-sent events of one completion. Errors after the first event are sent as an ``error``
        event followed by ``[DONE]`` (the HTTP status is already 200 by then)."""
        # Queue the request before the first event, so it joins the next batch at once.
        task = asyncio.ensure_future(self.generate(prepared))
        completion_id, created = new_completion_id(), now()

        def chunk(delta: DeltaMessage, finish_reason: FinishReason | None = None) -> str:
            choice = ChatCompletionStreamChoice(index=0, delta=delta, finish_reason=finish_reason)
            event = ChatCompletionChunk(id=completion_id, created=created, model=prepared.model, choices=[choice])
            return _sse(event.wire(usage_field=prepared.include_usage))

        try:
            yield chunk(DeltaMessage(role="assistant", content=""))
            try:
                result = await task
            except ServingError as exc:
                yield _sse(exc.to_response().model_dump())
                yield "data: [DONE]\n\n"
                return
            message = response_message(result.message)
            if message.content:
                yield chunk(DeltaMessage(content=message.content))
            for i, call in enumerate(message.tool_calls or []):
                yield chunk(
                    DeltaMessage(
                        tool_calls=[
                            DeltaToolCall(
                                index=i,
                                id=call.id,
                                type="function",
                                function=DeltaFunctionCall(name=call.function.name, arguments=""),
                            )
                        ]
                    )
                )
                yield chunk(
                    DeltaMessage(
                        tool_calls=[
                            DeltaToolCall(index=i, function=DeltaFunctionCall(arguments=call.function.arguments))
                        ]
                    )
                )
            yield chunk(DeltaMessage(), finish_reason=result.finish_reason)
            if prepared.include_usage:
                event = ChatCompletionChunk(
                    id=completion_id, created=created, model=prepared.model, choices=[], usage=usage_info(result)
                )
                yield _sse(event.wire(usage_field=True))
            yield "data: [DONE]\n\n"
        finally:
            if not task.done():
                task.cancel()

    def close(self) -> None:
        self.batcher.stop()


# helpers ----------------------------------------------------------------------------------------------


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {orjson.dumps(payload).decode()}\n\n"


def map_engine_error(exc: BaseException) -> ServingError:
    """The HTTP error for an exception of the engine: 404 for an unknown adapter, 400 for a request it
    refuses (``ValueError``: a prompt longer than the model takes), 500 for the rest."""
    if isinstance(exc, ServingError):
        return exc
    if isinstance(exc, UnknownAdapterError):
        return ModelNotFoundError(str(exc))
    if isinstance(exc, ValueError):  # the engine refuses a request it cannot run (a prompt too long)
        return InvalidRequestError(str(exc), param="messages")
    return InternalServerError(f"the engine failed: {type(exc).__name__}: {exc}")


def _tools_and_choice(req: ChatCompletionRequest) -> tuple[list[dict[str, Any]] | None, ToolChoice]:
    tools = [t.model_dump(exclude_none=True) for t in req.tools] if req.tools else None
    names = [t.function.name for t in req.tools or []]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidRequestError(f"tools: function name {name!r} appears more than once", param="tools")
        seen.add(name)
    choice = req.tool_choice
    if isinstance(choice, NamedToolChoice):
        name = choice.function.name
        if not tools:
            raise InvalidRequestError(
                f"tool_choice names function {name!r} but the request has no tools", param="tool_choice"
            )
        if name not in seen:
            raise InvalidRequestError(
                f"tool_choice names function {name!r}, which is not one of the tools ({', '.join(names)})",
                param="tool_choice",
            )
        return tools, {"type": "function", "function": {"name": name}}
    if choice == "required" and not tools:
        raise InvalidRequestError("tool_choice 'required' needs at least one tool in 'tools'", param="tool_choice")
    if not tools:
        return None, None
    return tools, choice or "auto"


def normalize_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A validated copy of the request's messages in the engine's form: text content as a string,
    ``developer`` read as ``system``, tool-call arguments as objects (the canonical form)."""
    if not messages:
        raise InvalidRequestError("messages must contain at least one message", param="messages")
    out: list[dict[str, Any]] = []
    for i, original in enumerate(messages):
        msg = copy.deepcopy(original)
        role = msg.get("role")
        if role not in MESSAGE_ROLES:
            raise InvalidRequestError(
                f"messages[{i}].role must be one of {', '.join(MESSAGE_ROLES)} (got {role!r})",
                param=f"messages[{i}].role",
            )
        if role == "developer":
            msg["role"] = "system"
        content = msg.get("content")
        if isinstance(content, list):
            msg["content"] = _text_of_parts(content, i)
        elif content is not None and not isinstance(content, str):
            raise InvalidRequestError(
                f"messages[{i}].content must be a string or a list of text parts", param=f"messages[{i}].content"
            )
        calls = msg.get("tool_calls")
        if calls is not None:
            if role != "assistant":
                raise InvalidRequestError(
                    f"messages[{i}]: only assistant messages carry tool_calls", param=f"messages[{i}].tool_calls"
                )
            _check_tool_calls(calls, i)
            if calls:
                normalize_tool_calls(calls)
            else:
                del msg["tool_calls"]
        if msg.get("content") is None and not msg.get("tool_calls"):
            if role != "assistant":
                raise InvalidRequestError(f"messages[{i}].content is required", param=f"messages[{i}].content")
            msg["content"] = ""
        out.append(msg)
    return out


def _text_of_parts(parts: list[Any], i: int) -> str:
    texts: list[str] = []
    for j, part in enumerate(parts):
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise InvalidRequestError(
                f"messages[{i}].content[{j}]: only text parts are supported (got {kind!r})",
                param=f"messages[{i}].content",
            )
        texts.append(part["text"])
    return "".join(texts)


def _check_tool_calls(calls: Any, i: int) -> None:
    param = f"messages[{i}].tool_calls"
    if not isinstance(calls, list):
        raise InvalidRequestError(f"{param} must be a list", param=param)
    for j, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise InvalidRequestError(f"{param}[{j}].function.name is required", param=param)


def response_message(message: dict[str, Any]) -> ChatMessage:
    """The engine's assistant message in the response's shape (arguments as JSON text, ids present)."""
    calls: list[ToolCall] = []
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        args = fn.get("arguments", {})
        calls.append(
            ToolCall(
                id=call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
                function=FunctionCall(
                    name=str(fn.get("name", "")),
                    arguments=args if isinstance(args, str) else orjson.dumps(args).decode(),
                ),
            )
        )
    content = message.get("content")
    return ChatMessage(content=content if isinstance(content, str) else None, tool_calls=calls or None)


def usage_info(result: ChatResult) -> UsageInfo:
    u = result.usage
    return UsageInfo(prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens, total_tokens=u.total_tokens)
