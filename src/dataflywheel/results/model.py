"""A job's stored result (``fw_jobs.result``, a JSON dict) as typed values.

The result is written by the job's finalize stage: per candidate and eval type the metrics with their 95%
intervals, per class and the confusion counts; per customized candidate how its LoRA run went; and, from
the decision step, ``cost``, ``latency`` and ``recommendation`` (:mod:`dataflywheel.decision.schema`).

Results stored by older versions lack later keys (no ``cost``, no ``per_class``): each section is read on
its own, and one that is absent is None (shown as "not computed"), one that cannot be read is None with the
reason in :attr:`JobResult.problems`, so a page never fails on an old or odd result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from dataflywheel.decision.schema import CostReport, EvalCost, LatencyRow, Recommendation, eval_type_name
from dataflywheel.evaluation.runner import EvalType

__all__ = [
    "EVAL_TYPES",
    "ClassResult",
    "EpochPoint",
    "EvalResult",
    "Interval",
    "JobResult",
    "JudgeCheck",
    "TrainingSummary",
    "parse_result",
]

M = TypeVar("M", bound=BaseModel)

EVAL_TYPES: tuple[str, ...] = tuple(t.value for t in EvalType)
"""The eval types in the order a person compares them: as is, with examples, fine-tuned."""


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Interval(_Lenient):
    """A metric's mean over the samples it is defined for, with its bootstrap 95% interval."""

    mean: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0


class ClassResult(_Lenient):
    """One reference class (the logged answer's first tool, or ``no_tool``)."""

    n: int = 0
    errors: int = 0
    metrics: dict[str, Interval] = Field(default_factory=dict)


class EvalResult(_Lenient):
    """One candidate under one eval type."""

    metrics: dict[str, Interval] = Field(default_factory=dict)
    per_class: dict[str, ClassResult] = Field(default_factory=dict)
    confusion: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="Reference class -> predicted outcome -> samples."
    )
    judge: dict[str, JsonValue] | None = None
    samples: int = 0
    errors: int = 0


class EpochPoint(_Lenient):
    epoch: int
    train_loss: float | None = None
    val_loss: float | None = None
    val_function_name_accuracy: float | None = None


class TrainingSummary(_Lenient):
    """How a candidate's LoRA run went (:func:`dataflywheel.training.report.training_summary`)."""

    recipe: str | None = None
    hyperparameters: dict[str, JsonValue] = Field(default_factory=dict)
    class_balance: bool | None = None
    class_counts: dict[str, int] | None = None
    curve: list[EpochPoint] = Field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool | None = None


class JudgeCheck(_Lenient):
    """How the job's judge check ended: ``completed`` (the evals carry judge scores) or ``skipped`` with the
    reason (no judge configured, or it did not answer and ``judge.required`` is false)."""

    status: str
    model: str | None = None
    reason: str | None = None


class JobResult(_Lenient):
    """A job's result. ``cost``, ``latency`` and ``recommendation`` are None when the result has none
    (stored before they existed, or not computed)."""

    candidates: dict[str, dict[str, EvalResult]] = Field(default_factory=dict)
    training: dict[str, TrainingSummary] = Field(default_factory=dict)
    cost: CostReport | None = None
    latency: list[LatencyRow] | None = None
    recommendation: Recommendation | None = None
    judge: JudgeCheck | None = None
    problems: list[str] = Field(default_factory=list, description="Sections that could not be read, and why.")

    def evals(self) -> list[tuple[str, str, EvalResult]]:
        """Every (candidate, eval type, result), candidates in stored order, eval types in :data:`EVAL_TYPES`
        order (unknown ones after)."""
        out = []
        for candidate, evals in self.candidates.items():
            for eval_type in sorted(evals, key=_eval_order):
                out.append((candidate, eval_type, evals[eval_type]))
        return out

    def cost_of(self, candidate: str, eval_type: str) -> EvalCost | None:
        if self.cost is None:
            return None
        return next(
            (c for c in self.cost.evals if c.candidate == candidate and c.eval_type == eval_type_name(eval_type)), None
        )

    def latency_of(self, candidate: str, eval_type: str) -> LatencyRow | None:
        if self.latency is None:
            return None
        return next(
            (r for r in self.latency if r.candidate == candidate and r.eval_type == eval_type_name(eval_type)), None
        )


def _eval_order(eval_type: str) -> tuple[int, str]:
    return (EVAL_TYPES.index(eval_type) if eval_type in EVAL_TYPES else len(EVAL_TYPES), eval_type)


def parse_result(raw: Mapping[str, Any] | None) -> JobResult | None:
    """The typed result of a job's stored ``result`` (None: the job has none yet)."""
    if raw is None:
        return None
    problems: list[str] = []
    candidates: dict[str, dict[str, EvalResult]] = {}
    for candidate, evals in _mapping(raw.get("candidates"), "candidates", problems).items():
        parsed: dict[str, EvalResult] = {}
        for eval_type, value in _mapping(evals, f"candidates.{candidate}", problems).items():
            item = _section(EvalResult, value, f"candidates.{candidate}.{eval_type}", problems)
            if item is not None:
                parsed[str(eval_type)] = item
        candidates[str(candidate)] = parsed
    training: dict[str, TrainingSummary] = {}
    for candidate, value in _mapping(raw.get("training"), "training", problems).items():
        summary = _section(TrainingSummary, value, f"training.{candidate}", problems)
        if summary is not None:
            training[str(candidate)] = summary
    latency: list[LatencyRow] | None = None
    if raw.get("latency") is not None:
        rows = raw["latency"]
        if isinstance(rows, list):
            latency = [row for i, r in enumerate(rows) if (row := _section(LatencyRow, r, f"latency[{i}]", problems))]
        else:
            problems.append("latency: expected a list")
    return JobResult(
        candidates=candidates,
        training=training,
        cost=_section(CostReport, raw.get("cost"), "cost", problems),
        latency=latency,
        recommendation=_section(Recommendation, raw.get("recommendation"), "recommendation", problems),
        judge=_section(JudgeCheck, raw.get("judge"), "judge", problems),
        problems=problems,
    )


def _mapping(value: Any, where: str, problems: list[str]) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(f"{where}: expected an object")
        return {}
    return value


def _section(model: type[M], value: Any, where: str, problems: list[str]) -> M | None:
    if value is None:
        return None
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        problems.append(f"{where}{'.' + loc if loc else ''}: {first.get('msg')}")
        return None
