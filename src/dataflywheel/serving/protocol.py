"""The OpenAI chat-completions protocol as pydantic models: what the server reads and what it writes.

Request models accept fields they do not know (OpenAI payloads keep growing: ``user``, ``metadata``,
``parallel_tool_calls``...) and log them instead of failing, like vLLM. Response models follow the shapes
the official ``openai`` client parses: ``chat.completion``, ``chat.completion.chunk``, a ``list`` of
``model`` cards, and errors as ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

logger = logging.getLogger(__name__)

FinishReason = Literal["stop", "length", "tool_calls"]


class OpenAIBaseModel(BaseModel):
    """Base of request models: unknown fields are kept (``model_extra``) and logged, never refused."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _log_unknown_fields(self) -> OpenAIBaseModel:
        if self.model_extra:
            logger.warning(
                "%s: ignoring fields this server does not use: %s",
                type(self).__name__,
                ", ".join(sorted(self.model_extra)),
            )
        return self


class ResponseModel(BaseModel):
    """Base of response models (what the server writes; extra fields are not expected)."""

    model_config = ConfigDict(extra="ignore")


# Requests ---------------------------------------------------------------------------------------------


class FunctionDefinition(OpenAIBaseModel):
    name: str = Field(min_length=1, description="The function's name, as the model must call it.")
    description: str | None = None
    parameters: dict[str, Any] | None = Field(None, description="JSON schema of the arguments.")
    strict: bool | None = None


class ChatCompletionToolParam(OpenAIBaseModel):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class NamedFunction(OpenAIBaseModel):
    name: str = Field(min_length=1)


class NamedToolChoice(OpenAIBaseModel):
    """``{"type": "function", "function": {"name": ...}}``: the model must call this function."""

    type: Literal["function"] = "function"
    function: NamedFunction


class StreamOptions(OpenAIBaseModel):
    include_usage: bool = Field(False, description="Send a last chunk with the token usage (and no choices).")


class ChatCompletionRequest(OpenAIBaseModel):
    """``POST /v1/chat/completions``. Only one choice per request (``n`` must be 1)."""

    messages: list[dict[str, Any]] = Field(description="The conversation, OpenAI message objects.")
    model: str | None = Field(None, description="The base model's name or a LoRA adapter alias; null: base.")
    tools: list[ChatCompletionToolParam] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="0 (or null): greedy decoding.")
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1, description="Most tokens to generate (legacy name).")
    max_completion_tokens: int | None = Field(None, ge=1, description="Most tokens to generate; wins over max_tokens.")
    stop: str | list[str] | None = None
    n: int | None = Field(None, description="Choices to return; only 1 is supported.")
    seed: int | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    logprobs: bool | None = Field(None, description="Not supported: must be false or absent.")
    top_logprobs: int | None = None
    constrain_tool_names: bool | None = Field(
        None,
        description="This server's extension (an extra body field): while a tool call's name is generated, "
        "only the names in `tools` can come out. On (null or true) when the request has tools; false: off.",
    )

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


# Responses --------------------------------------------------------------------------------------------


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


class FunctionCall(ResponseModel):
    name: str
    arguments: str
    """JSON text, as OpenAI sends it."""


class ToolCall(ResponseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(ResponseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None


class UsageInfo(ResponseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatCompletionChoice(ResponseModel):
    index: int = 0
    message: ChatMessage
    finish_reason: FinishReason
    logprobs: None = None


class ChatCompletionResponse(ResponseModel):
    id: str = Field(default_factory=new_completion_id)
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=now)
    model: str
    choices: list[ChatCompletionChoice]
    usage: UsageInfo


class DeltaFunctionCall(ResponseModel):
    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(ResponseModel):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: DeltaFunctionCall | None = None


class DeltaMessage(ResponseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None


class ChatCompletionStreamChoice(ResponseModel):
    index: int = 0
    delta: DeltaMessage
    finish_reason: FinishReason | None = None
    logprobs: None = None


class ChatCompletionChunk(ResponseModel):
    """One server-sent event of a streamed completion (serialize it with :meth:`wire`)."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatCompletionStreamChoice]
    usage: UsageInfo | None = None

    def wire(self, *, usage_field: bool) -> dict[str, Any]:
        """OpenAI's form: deltas carry only what they set; ``finish_reason`` is always there (null until the
        end); ``usage`` is there (null but in the last chunk) only when the client asked for it."""
        data = self.model_dump(exclude={"choices"})
        if not usage_field:
            data.pop("usage")
        data["choices"] = [
            {
                "index": c.index,
                "delta": c.delta.model_dump(exclude_none=True),
                "logprobs": None,
                "finish_reason": c.finish_reason,
            }
            for c in self.choices
        ]
        return data


class ModelCard(ResponseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=now)
    owned_by: str = "data-flywheel"
    root: str | None = None
    """The base model an adapter was trained from (vLLM's convention); the base model itself otherwise."""
    parent: str | None = None
    """The base model's name for an adapter; null for the base model."""


class ModelList(ResponseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorInfo(ResponseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(ResponseModel):
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""

    error: ErrorInfo
