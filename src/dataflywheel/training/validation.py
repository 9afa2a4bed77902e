"""Score a model being trained on the validation rows: the metric that decides which epoch to keep.

Validation loss says how well the model predicts every answer token, most of which are free-text arguments;
what a routing workload needs is the right tool. So after each epoch the trainer generates the start of each
validation answer (enough tokens for the tool's name) with the model as it is, through the same engine and
codec as serving (:class:`~dataflywheel.models.engine.LocalEngine` wrapped around the in-memory model, tool
names constrained as in evals), and scores it with the evals' own function-name metric.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from dataflywheel.evaluation.metrics import score_sample
from dataflywheel.models.types import ChatRequest, SamplingParams
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.training.balance import row_class

__all__ = ["ValidationScore", "score_rows"]

METRIC = "function_name_accuracy"


@dataclass(frozen=True)
class ValidationScore:
    accuracy: float
    n: int
    per_class: dict[str, float] = field(default_factory=dict)
    """Accuracy per class of the validation rows."""

    def to_dict(self) -> JsonObject:
        return asdict(self)


def _messages(row: Mapping[str, object]) -> list[Any]:
    messages = row.get("messages")
    return messages if isinstance(messages, list) else []


def _tools(row: Mapping[str, object]) -> list[Any] | None:
    tools = row.get("tools")
    return tools if isinstance(tools, list) and tools else None


def requests_of(rows: Sequence[Mapping[str, object]], max_tokens: int) -> list[ChatRequest]:
    """Each row's conversation before its answer, as the request an eval would send."""
    return [
        ChatRequest(
            messages=_messages(row)[:-1],
            tools=_tools(row),
            sampling=SamplingParams(max_tokens=max_tokens),
        )
        for row in rows
    ]


def score_answers(rows: Sequence[Mapping[str, object]], answers: Sequence[Mapping[str, object]]) -> ValidationScore:
    """Function-name accuracy of ``answers`` (assistant messages) against the rows' own answers."""
    values: list[float] = []
    by_class: dict[str, list[float]] = {}
    for row, answer in zip(rows, answers, strict=True):
        messages = _messages(row)
        scores = score_sample(messages[-1] if messages else None, answer, _tools(row)).scores
        value = scores.get(METRIC)
        if value is None:
            continue
        values.append(float(value))
        by_class.setdefault(row_class(row), []).append(float(value))
    per_class = {c: sum(v) / len(v) for c, v in sorted(by_class.items())}
    return ValidationScore(sum(values) / len(values) if values else 0.0, len(values), per_class)


def score_rows(
    model: Any, tokenizer: Any, rows: Sequence[Mapping[str, object]], *, device: str, dtype: str, max_tokens: int
) -> ValidationScore:
    """Generate the start of each row's answer with ``model`` (in memory, LoRA active) and score it."""
    from dataflywheel.models.engine import LocalEngine

    engine = LocalEngine("<in-memory>", device=device, dtype=dtype, loaded=(model, tokenizer))
    try:
        results = engine.chat(requests_of(rows, max_tokens))
    finally:
        engine.release()
    return score_answers(rows, [r.message for r in results])
