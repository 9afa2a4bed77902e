"""Counting a logged call's tokens when the log does not say (records without ``response.usage``).

A request is rendered as a chat template renders it, through the same codec that serves the candidates
(:class:`~dataflywheel.models.codec.ToolCallCodec`: messages, and the tool schemas in the system turn or the
template's own tool format), and the answer as the model would write it; both are tokenized. With the default
tokenizer (``teacher.tokenizer: builtin:smollm2``, SmolLM2's, shipped and offline) the counts are an
approximation of the teacher's own (another vocabulary, another template): they are always marked estimated.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dataflywheel.settings import SMOLLM2_TOKENIZER

__all__ = ["ChatTokenCounter", "load_chat_token_counter"]


class ChatTokenCounter:
    """Counts (prompt, completion) tokens of a logged request and its answer with one tokenizer."""

    def __init__(self, tokenizer: Any, name: str = "") -> None:
        """``tokenizer``: a transformers tokenizer (with a chat template or not: ChatML is used then)."""
        from dataflywheel.models.codec import ToolCallCodec

        self._tokenizer = tokenizer
        self._codec = ToolCallCodec(tokenizer)
        self.name = name

    def _tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False)) if text else 0

    def count(self, request: Mapping[str, Any], answer: Mapping[str, Any]) -> tuple[int, int]:
        """Tokens of the prompt ``request`` renders to (up to the assistant's turn) and of ``answer``."""
        prompt = self._codec.render_prompt(
            list(request.get("messages") or []), request.get("tools") or None, request.get("tool_choice")
        )
        return self._tokens(prompt.text), self._tokens(self._codec.render_answer(dict(answer)))


def load_chat_token_counter(tokenizer: str, models_dir: Path) -> ChatTokenCounter:
    """The counter of ``teacher.tokenizer``: ``builtin:smollm2`` (extracted once into ``models_dir``) or a
    tokenizer folder or hub id that ``AutoTokenizer`` loads."""
    from transformers import AutoTokenizer

    if tokenizer == SMOLLM2_TOKENIZER:
        from dataflywheel.models.registry import smollm2_tokenizer_dir

        source = str(smollm2_tokenizer_dir(models_dir))
    else:
        source = str(Path(tokenizer).expanduser()) if tokenizer.startswith((".", "/", "~")) else tokenizer
    return ChatTokenCounter(AutoTokenizer.from_pretrained(source), name=tokenizer)
