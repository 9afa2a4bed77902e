"""What the server does with a chat-completions request: validate it, batch it, answer or stream it.

* :meth:`ChatService.prepare` turns a :class:`~.protocol.ChatCompletionRequest` into the engine's
  :class:`~dataflywheel.models.types.ChatRequest` (the model name picks the base model or a LoRA adapter),
  refusing what the engine cannot honour with a 400 that names the parameter.
* a :class:`~.batching.BatchQueue` collects the requests that arrive within a few milliseconds of each other
  (up to the engine's batch size) and hands them to ``engine.chat`` together, on one worker thread, so
  concurrent clients share a forward pass; results are delivered to the asyncio futures the handlers await.
* :meth:`ChatService.stream` writes the answer as OpenAI server-sent events: a role chunk, the content
  and/or tool-call deltas, a last chunk with ``finish_reason``, an optional usage chunk, ``data: [DONE]``.
  The engine generates the whole answer at once, so the content arrives as one delta.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict

import orjson
from typing_extensions import Unpack

from dataflywheel.errors import FlywheelError
from dataflywheel.models.engine import UnknownAdapterError
from dataflywheel.models.types import ChatRequest, ChatResult, SamplingParams, ToolChoice
from dataflywheel.records.toolcalls import normalize_tool_calls
from dataflywheel.serving.batching import (
    DEFAULT_BATCH_WAIT_S,
    DEFAULT_MAX_BATCH,
    BatchQueue,
    BatchStats,
    engine_max_batch,
)
from dataflywheel.serving.errors import (
    InternalServerError,
    InvalidRequestError,
    ModelNotFoundError,
    ServiceUnavailableError,
    ServingError,
)
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

__all__ = [
    "DEFAULT_BATCH_WAIT_S",
    "DEFAULT_MAX_BATCH",
    "BatchQueue",
    "BatchStats",
    "ChatEngine",
    "ChatService",
    "InternalServerError",
    "InvalidRequestError",
    "ModelNotFoundError",
    "PreparedRequest",
    "ServiceOptions",
    "ServiceUnavailableError",
    "ServingError",
    "engine_max_batch",
    "map_engine_error",
    "normalize_messages",
    "response_message",
    "usage_info",
]

MESSAGE_ROLES = ("system", "developer", "user", "assistant", "tool")


class ChatEngine(Protocol):
    """What the server needs of an engine (:class:`~dataflywheel.models.engine.LocalEngine` is one)."""

    @property
    def adapters(self) -> Collection[str]:
        """Names of the loaded LoRA adapters."""
        ...

    def chat(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Answer a batch of requests, one result per request, in order. Called from one worker thread."""
        ...


@dataclass
class PreparedRequest:
    """A validated request: what to ask the engine, and the model name to answer with."""

    chat: ChatRequest
    model: str
    stream: bool
    include_usage: bool


class ServiceOptions(TypedDict, total=False):
    """The keyword options of :class:`ChatService` (and of :func:`~.app.create_app`, which passes them on)."""

    max_batch: int | None
    """The most requests the engine gets at once (None, the default: :func:`engine_max_batch`)."""
    batch_wait_s: float
    """How long a first request waits for others to batch with (default :data:`DEFAULT_BATCH_WAIT_S`)."""
    default_max_tokens: int | None
    """``max_tokens`` of a request that sets none (None, the default: :class:`SamplingParams`' own)."""


class ChatService:
    """The behaviour behind ``/v1/models`` and ``/v1/chat/completions`` for one engine."""

    def __init__(self, engine: ChatEngine, model_name: str, **options: Unpack[ServiceOptions]) -> None:
        self.engine = engine
        self.model_name = model_name
        self.default_max_tokens = options.get("default_max_tokens") or SamplingParams().max_tokens
        self.adapters: tuple[str, ...] = ()
        """The engine's adapter names, as of the last batch. The engine's ``adapters`` waits for a running
        generation to end, so the event loop reads this copy, which the worker refreshes between batches."""
        self.refresh_adapters()
        self.batcher: BatchQueue[ChatRequest, ChatResult] = BatchQueue(
            engine.chat,
            max_batch=options.get("max_batch") or engine_max_batch(engine),
            max_wait_s=options.get("batch_wait_s", DEFAULT_BATCH_WAIT_S),
            after_batch=self.refresh_adapters,
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
