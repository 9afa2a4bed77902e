"""Training rows to token ids, through the same codec serving uses (train/serve parity).

A row is ``{"messages": [..., assistant], "tools"?: [...]}`` (a dataset's ``train.jsonl``/``val.jsonl``).
Its prompt is what serving would render for the conversation before the answer, tokenized alone (the server
tokenizes the prompt alone too); its completion is the rendered answer, end-of-turn included. A row longer
than ``max_seq_length`` is not cut (cutting the prompt's end would cut into the answer's context, cutting the
end would cut the answer): it is left out and reported by index and length.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataflywheel.errors import FlywheelError
from dataflywheel.models.codec import ToolCallCodec
from dataflywheel.records.jsonl_file import read_json_lines
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.training.loss import Example

__all__ = ["SkippedRow", "TokenizedRows", "TrainingDataError", "read_rows", "tokenize_rows"]


class TrainingDataError(FlywheelError):
    """A training dataset is missing, unreadable, or has no usable row."""


@dataclass(frozen=True)
class SkippedRow:
    index: int
    reason: str


@dataclass
class TokenizedRows:
    examples: list[Example]
    skipped: list[SkippedRow] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(e.tokens for e in self.examples)


def read_rows(path: Path) -> list[JsonObject]:
    """The rows of a JSONL file (:class:`~dataflywheel.records.chat.TrainingRow` objects, checked when they
    are tokenized); a bad line is an error naming the file and line."""
    if not path.is_file():
        raise TrainingDataError(f"{path}: no such dataset file")
    rows: list[JsonObject] = []

    def bad_json(line: int, msg: str) -> TrainingDataError:
        return TrainingDataError(f"{path}:{line}: not JSON ({msg})")

    for number, row in read_json_lines(path, bad_json, loads=json.loads):
        if not isinstance(row, dict):
            raise TrainingDataError(f"{path}:{number}: expected an object with messages")
        rows.append(row)
    return rows


def tokenize_rows(rows: Iterable[Mapping[str, object]], codec: ToolCallCodec, max_seq_length: int) -> TokenizedRows:
    """Tokenize each row's (prompt, completion); rows that cannot be rendered or are too long are skipped
    with the reason."""
    tokenizer = codec.tokenizer
    out = TokenizedRows(examples=[])
    for index, row in enumerate(rows):
        try:
            prompt, completion = codec.training_example(row)
        except (ValueError, TypeError, KeyError) as exc:
            out.skipped.append(SkippedRow(index, f"cannot render: {exc}"))
            continue
        prompt_ids = _ids(tokenizer, prompt)
        completion_ids, head = _completion_ids(tokenizer, completion, decision_end(row, completion))
        total = len(prompt_ids) + len(completion_ids)
        if not completion_ids:
            out.skipped.append(SkippedRow(index, "empty answer"))
        elif total > max_seq_length:
            out.skipped.append(
                SkippedRow(
                    index, f"{total} tokens > max_seq_length {max_seq_length} (not cut: it would lose the answer)"
                )
            )
        else:
            out.examples.append(
                Example(index=index, prompt=tuple(prompt_ids), completion=tuple(completion_ids), head=head)
            )
    return out


def _ids(tokenizer: Any, text: str) -> Sequence[int]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [int(i) for i in ids]


def decision_end(row: Mapping[str, object], completion: str) -> int:
    """Characters of the rendered ``completion`` that carry the answer's decision: through the first called
    tool's name (located by the row's own structure), or a text answer's first character."""
    messages = row.get("messages")
    answer = messages[-1] if isinstance(messages, list) and messages else None
    calls = answer.get("tool_calls") if isinstance(answer, dict) else None
    calls = calls if isinstance(calls, list) else []
    function = calls[0].get("function") if calls and isinstance(calls[0], dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if isinstance(name, str) and name:
        at = completion.find(name)
        if at >= 0:
            return at + len(name)
    return 1 if completion else 0


def _completion_ids(tokenizer: Any, text: str, head_chars: int) -> tuple[Sequence[int], int]:
    """The completion's token ids and how many of them start before ``head_chars``."""
    try:
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except (NotImplementedError, ValueError, TypeError):  # a slow tokenizer: no offsets
        return _ids(tokenizer, text), 0
    ids = [int(i) for i in encoded["input_ids"]]
    head = sum(1 for start, _ in encoded["offset_mapping"] if start < head_chars)
    return ids, head
