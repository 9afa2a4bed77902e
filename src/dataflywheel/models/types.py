"""The one shape every model is asked in: an OpenAI chat request in, an OpenAI assistant message out.

The local engine (:mod:`.engine`), the HTTP server (:mod:`dataflywheel.serving`) and the endpoint client
(:mod:`.client`) all speak these types, so evaluation and the feedback loop never care where a model runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

ToolChoice = Literal["auto", "none", "required"] | Mapping[str, object] | None
"""OpenAI ``tool_choice``: auto / none / required, or ``{"type": "function", "function": {"name": ...}}``."""


@dataclass
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 0.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass
class ChatRequest:
    messages: Sequence[Mapping[str, object]]
    """OpenAI messages (:class:`~dataflywheel.records.chat.WireMessage`), tool-call arguments as objects or
    JSON strings."""
    tools: Sequence[Mapping[str, object]] | None = None
    """OpenAI tools (:class:`~dataflywheel.records.chat.WireTool`)."""
    tool_choice: ToolChoice = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    adapter: str | None = None
    """Name of a loaded LoRA adapter to answer with; None: the base model."""
    constrain_tool_names: bool = True
    """The local engine writes only the names in ``tools`` as a tool call's name (a mask on the next tokens,
    :mod:`.constrain`); no effect without tools or with ``tool_choice="none"``. False: unconstrained."""


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens)


@dataclass
class ChatResult:
    message: dict[str, Any]
    """OpenAI assistant message: ``role``, ``content`` (str or None) and ``tool_calls`` (arguments as JSON
    strings, ids ``call_...``, ``type: function``) when the model called tools."""
    finish_reason: Literal["stop", "length", "tool_calls"]
    usage: Usage
    raw_text: str = ""
    """What the model generated, before parsing (including any prefill the codec forced)."""
    latency_s: float = 0.0
