"""Where a model goes wrong, per class: per-class metric aggregates and a confusion table of outcomes.

A sample's *reference class* is the curation label of the big model's answer (its first tool name, or
``no_tool`` for a text answer: :func:`dataflywheel.curation.workload.tool_name`). Its *predicted outcome* is
what the candidate did, read from its answer (:func:`predicted_outcome`):

* the first tool name it called, when that tool is one of the request's tools;
* ``unknown_tool``: it called a tool the request did not offer (or the request offered none);
* ``text``: it answered in text without calling a tool (the right move for class ``no_tool``);
* ``no_call``: nothing usable, an empty answer or tool calls without a name;
* ``error``: the request failed, there is no answer.

A tool named like one of these labels is reported under that label: the names are the OpenAI-style ones
people give tools (``ToOrderStatus``, ``search_kb``), so the overlap is not worth a prefix on every name.

The functions here are pure: they read scored samples as stored in ``samples.jsonl`` (``reference_class``,
``predicted_outcome``, ``error``, ``scores``) and return typed results with ``to_dict()`` for JSON.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypedDict

from dataflywheel.evaluation.metrics import calls_of
from dataflywheel.evaluation.stats import Aggregate, AggregateDict, aggregate
from dataflywheel.records.tools import ToolIndex

__all__ = [
    "ClassMetrics",
    "Confusion",
    "PredictedOutcome",
    "confusion",
    "per_class_metrics",
    "predicted_outcome",
]


class PredictedOutcome(StrEnum):
    """The outcomes of a prediction that are not the name of an offered tool."""

    UNKNOWN_TOOL = "unknown_tool"
    """Called a tool the request did not offer."""
    TEXT = "text"
    """Answered in text, no tool call."""
    NO_CALL = "no_call"
    """Nothing usable: an empty answer, or tool calls without a name."""
    ERROR = "error"
    """The request failed."""


def predicted_outcome(
    prediction: Mapping[str, Any] | None,
    tools: Sequence[Mapping[str, Any]] | None,
    *,
    failed: bool = False,
) -> str:
    """What the candidate did: the first called tool's name, or a :class:`PredictedOutcome` value."""
    if failed:
        return PredictedOutcome.ERROR.value
    if prediction and prediction.get("tool_calls"):
        calls = calls_of(prediction)
        name = calls[0].name if calls else ""
        if not name:
            return PredictedOutcome.NO_CALL.value
        return name if name in ToolIndex.of(tools) else PredictedOutcome.UNKNOWN_TOOL.value
    content = prediction.get("content") if prediction else None
    if _has_text(content):
        return PredictedOutcome.TEXT.value
    return PredictedOutcome.NO_CALL.value


def _has_text(content: Any) -> bool:
    if isinstance(content, str):
        return bool(content.strip())
    if isinstance(content, list):  # content parts
        return any(isinstance(p, Mapping) and str(p.get("text") or "").strip() for p in content)
    return False


class ClassMetricsDict(TypedDict):
    """A :class:`ClassMetrics` as stored (``summary.json``'s ``per_class``)."""

    n: int
    errors: int
    metrics: dict[str, AggregateDict]


@dataclass(frozen=True)
class ClassMetrics:
    """One reference class: its sample count, failed requests, and every metric's aggregate over the
    samples whose request succeeded (as the eval's overall metrics)."""

    label: str
    n: int
    errors: int
    metrics: dict[str, Aggregate]

    def to_dict(self) -> ClassMetricsDict:
        return {"n": self.n, "errors": self.errors, "metrics": {m: a.to_dict() for m, a in self.metrics.items()}}


def per_class_metrics(samples: Iterable[Mapping[str, Any]], metrics: Sequence[str]) -> dict[str, ClassMetrics]:
    """Per reference class, ``metrics`` aggregated (mean with bootstrap 95% interval); classes by size, then
    name."""
    by_class: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for s in samples:
        by_class[str(s["reference_class"])].append(s)
    out: dict[str, ClassMetrics] = {}
    for label, group in sorted(by_class.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        ok = [s for s in group if s.get("error") is None]
        out[label] = ClassMetrics(
            label=label,
            n=len(group),
            errors=len(group) - len(ok),
            metrics={m: aggregate((s.get("scores") or {}).get(m) for s in ok) for m in metrics},
        )
    return out


@dataclass(frozen=True)
class Confusion:
    """Counts of reference class (rows) against predicted outcome (columns); only non-zero cells are kept."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(sum(row.values()) for row in self.counts.values())

    def count(self, reference: str, predicted: str) -> int:
        return self.counts.get(reference, {}).get(predicted, 0)

    def predicted_labels(self) -> list[str]:
        """Every predicted outcome seen, most frequent first."""
        totals: Counter[str] = Counter()
        for row in self.counts.values():
            totals.update(row)
        return [label for label, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))]

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {ref: dict(row) for ref, row in self.counts.items()}


def confusion(samples: Iterable[Mapping[str, Any]]) -> Confusion:
    """The confusion counts of scored samples (each with ``reference_class`` and ``predicted_outcome``);
    rows and cells by count, then name."""
    pairs = Counter((str(s["reference_class"]), str(s["predicted_outcome"])) for s in samples)
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    for (ref, pred), n in pairs.items():
        rows[ref][pred] += n
    ordered = sorted(rows.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    return Confusion({ref: dict(sorted(row.items(), key=lambda kv: (-kv[1], kv[0]))) for ref, row in ordered})
