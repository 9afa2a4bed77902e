"""What the endpoint client sends to OpenAI-compatible servers and reads back, as pydantic models.

Requests are written exactly (``None`` fields are left out of the body). Answers are read leniently: unknown
fields are ignored (servers add their own), token counts that are missing or not numbers count 0, tool-call
arguments may come as an object, and a finish reason we do not know is kept as sent. What an answer *must*
carry (a choice, an embedding per input, a model id) is required, so a body that lacks it fails validation
and the client reports it as an unexpected body, naming what was missing.

The server's side of the protocol (strict answers, requests that log unknown fields) is
:mod:`dataflywheel.serving.protocol`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "ChatCompletion",
    "ChatCompletionBody",
    "EmbeddingsBody",
    "EmbeddingsResponse",
    "LoraAdapterBody",
    "ModelsResponse",
    "WireUsage",
]


def _count(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _arguments(value: Any) -> str:
    """OpenAI sends arguments as a JSON string; some servers send the object itself."""
    if value is None:
        return "{}"
    return value if isinstance(value, str) else orjson.dumps(value).decode()


TokenCount = Annotated[int, BeforeValidator(_count)]


class _Body(BaseModel):
    """A request body: exactly the fields set (``None`` ones are left out by :meth:`wire`)."""

    model_config = ConfigDict(extra="forbid")

    def wire(self) -> dict[str, object]:
        """The JSON body."""
        return self.model_dump(mode="json", exclude_none=True)


class _Answer(BaseModel):
    """An answer: fields we do not read are ignored."""

    model_config = ConfigDict(extra="ignore")


# requests -------------------------------------------------------------------------------------------------


class ChatCompletionBody(_Body):
    """``POST /chat/completions``."""

    model: str
    messages: list[dict[str, Any]] = Field(description="OpenAI messages, tool-call arguments as JSON strings.")
    max_tokens: int
    temperature: float
    top_p: float
    stop: list[str] | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    constrain_tool_names: Literal[False] | None = Field(
        None,
        description="Our server's extension, sent only to opt out (other servers may refuse unknown fields; "
        "vLLM ignores it and always holds `required` and named calls to the tools by structured output).",
    )
    chat_template_kwargs: dict[str, Any] | None = Field(
        None,
        description="vLLM's extension: variables for the server's chat template (the codec's template reads the "
        "request's real tool_choice from it, dataflywheel.models.chat_template).",
    )


class EmbeddingsBody(_Body):
    """``POST /embeddings``."""

    model: str
    input: list[str]
    encoding_format: Literal["float"] = "float"
    input_type: str | None = Field(None, description="NIM embedders want it (query or passage).")


class LoraAdapterBody(_Body):
    """``POST /load_lora_adapter``: vLLM's runtime LoRA API, which our server shares."""

    lora_name: str
    lora_path: str


# answers --------------------------------------------------------------------------------------------------


class WireUsage(_Answer):
    prompt_tokens: TokenCount = 0
    completion_tokens: TokenCount = 0


class WireFunction(_Answer):
    name: str
    arguments: Annotated[str, BeforeValidator(_arguments)] = "{}"


class WireToolCall(_Answer):
    id: str | None = None
    function: WireFunction


class WireMessage(_Answer):
    content: str | None = None
    tool_calls: list[WireToolCall] | None = None


class WireChoice(_Answer):
    message: WireMessage = Field(default_factory=WireMessage)
    finish_reason: str | None = None


class ChatCompletion(_Answer):
    """A chat completion; only its first choice is read."""

    choices: list[WireChoice] = Field(min_length=1)
    usage: WireUsage | None = None


class EmbeddingItem(_Answer):
    index: int = 0
    embedding: list[float]


class EmbeddingsResponse(_Answer):
    data: list[EmbeddingItem]
    usage: WireUsage | None = None

    def vectors(self) -> list[list[float]]:
        """The vectors in input order (servers may answer in any order; ``index`` says which is which)."""
        return [item.embedding for item in sorted(self.data, key=lambda item: item.index)]


class ModelItem(_Answer):
    id: str


class ModelsResponse(_Answer):
    """``GET /models``."""

    data: list[ModelItem]
