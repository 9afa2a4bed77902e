"""Which candidate can replace the logged model: one rule, one sentence.

The rule (settings ``recommendation``, or a job's ``recommendation_config``): a candidate under an eval type
*qualifies* when the lower bound of its metric's 95% interval reaches ``min_ratio`` x the logged model's value
of the metric (1.0: the logged answers are the reference). Of those, the cheapest known cost wins; candidates
whose cost is unknown come after every known one and are ordered by the higher lower bound (the sentence then
says the cost is unknown). When none qualifies, the closest (highest lower bound) is named with its gap and
what would help. Pure: the inputs are the job result's scores and the cost report's rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dataflywheel.decision.cost import format_money, format_saving
from dataflywheel.decision.schema import (
    EVAL_TYPES,
    EvalCost,
    Recommendation,
    RecommendationRule,
    RecommendationStatus,
    eval_type_name,
)
from dataflywheel.training.learning_curve import RISING

__all__ = [
    "METRIC_NAMES",
    "TEACHER_VALUE",
    "MetricScore",
    "metric_label",
    "metric_scores",
    "recommend",
    "validation_curve",
]

TEACHER_VALUE = 1.0
"""The logged model's value of every metric: its own answers are the reference."""

METRIC_NAMES: dict[str, str] = {
    "function_name_accuracy": "function-name accuracy",
    "function_name_and_args_accuracy": "exact-call accuracy",
    "required_arguments_accuracy": "required-arguments accuracy",
    "argument_similarity": "argument similarity",
    "call_precision": "call precision",
    "call_recall": "call recall",
    "embedding_similarity": "text similarity",
}
"""How a sentence names each metric (the dashboard's names start from these)."""


def metric_label(metric: str) -> str:
    """How a sentence names a metric (``function-name accuracy``)."""
    return METRIC_NAMES.get(metric, metric.replace("_", " "))


@dataclass(frozen=True)
class MetricScore:
    """One candidate under one eval type: the metric's mean and 95% interval over ``n`` samples."""

    candidate: str
    eval_type: str
    mean: float
    ci_low: float
    ci_high: float
    n: int


def metric_scores(candidates: Mapping[str, Mapping[str, Any]], metric: str) -> list[MetricScore]:
    """The ``metric`` of every candidate and eval type of a job result's ``candidates`` (evals where the metric
    was measured on no sample are left out)."""
    out = []
    for candidate, evals in candidates.items():
        for kind, ev in evals.items():
            agg = ((ev or {}).get("metrics") or {}).get(metric) or {}
            if agg.get("n") and None not in (agg.get("mean"), agg.get("ci_low"), agg.get("ci_high")):
                out.append(
                    MetricScore(
                        candidate=candidate,
                        eval_type=eval_type_name(kind),
                        mean=float(agg["mean"]),
                        ci_low=float(agg["ci_low"]),
                        ci_high=float(agg["ci_high"]),
                        n=int(agg["n"]),
                    )
                )
    return out


def validation_curve(training: Mapping[str, Any] | None) -> list[float]:
    """A LoRA run's validation function-name accuracy per epoch, from the job result's ``training[candidate]``
    summary (:func:`dataflywheel.training.report.training_summary`); epochs without it are left out."""
    curve = (training or {}).get("curve") or []
    return [float(v) for e in curve if (v := e.get("val_function_name_accuracy")) is not None]


@dataclass(frozen=True)
class _Option:
    score: MetricScore
    cost: EvalCost | None

    @property
    def cost_per_1k(self) -> float | None:
        return self.cost.cost_per_1k if self.cost is not None else None

    def order(self) -> tuple[str, int]:
        kind = self.score.eval_type
        return self.score.candidate, EVAL_TYPES.index(kind) if kind in EVAL_TYPES else len(EVAL_TYPES)


def recommend(
    rule: RecommendationRule,
    scores: Sequence[MetricScore],
    costs: Sequence[EvalCost] = (),
    *,
    currency: str = "USD",
    teacher_cost_per_1k: float | None = None,
    curves: Mapping[str, Sequence[float]] | None = None,
    data_curves: Mapping[str, Sequence[tuple[int, float]]] | None = None,
) -> Recommendation:
    """Apply ``rule`` to the ``scores``; ``costs`` give each candidate's and eval type's cost (missing: unknown),
    ``curves`` each customized candidate's validation accuracy per epoch, ``data_curves`` its learning curve
    (train rows, the metric's mean), smallest first, when the job measured one (both for the advice)."""
    if not scores:
        return _empty(rule)
    by_key = {(c.candidate, c.eval_type): c for c in costs}
    options = [_Option(s, by_key.get((s.candidate, s.eval_type))) for s in scores]
    threshold = rule.min_ratio * rule.teacher_value
    qualifying = [o for o in options if o.score.ci_low >= threshold]
    if qualifying:
        best = min(
            qualifying,
            key=lambda o: (o.cost_per_1k is None, o.cost_per_1k or 0.0, -o.score.ci_low, -o.score.mean, o.order()),
        )
        return _recommendation(
            rule, best, RecommendationStatus.RECOMMENDED, 0.0, _sentence(rule, best, currency, teacher_cost_per_1k)
        )
    closest = min(
        options,
        key=lambda o: (-o.score.ci_low, -o.score.mean, o.cost_per_1k is None, o.cost_per_1k or 0.0, o.order()),
    )
    gap = threshold - closest.score.ci_low
    s = closest.score
    sentence = (
        f"No candidate reaches {rule.min_ratio:g} x the logged model's {metric_label(rule.metric)} yet: the closest, "
        f"{s.candidate} {s.eval_type}, has {_interval(s)}, its lower bound {gap:.2f} short of {threshold:.2f}."
    )
    customized = {o.score.candidate for o in options if o.score.eval_type == "customized"}
    advice = _advice(
        closest.score,
        threshold,
        (curves or {}).get(s.candidate) or [],
        s.candidate in customized,
        (data_curves or {}).get(s.candidate) or [],
    )
    return _recommendation(rule, closest, RecommendationStatus.NONE_QUALIFIES, gap, sentence, advice)


def _empty(rule: RecommendationRule) -> Recommendation:
    return Recommendation(
        status=RecommendationStatus.NO_RESULTS,
        rule=rule,
        candidate=None,
        eval_type=None,
        value=None,
        ci_low=None,
        ci_high=None,
        gap=None,
        cost_per_1k=None,
        saving_vs_teacher=None,
        sentence="No evaluation finished, so there is nothing to recommend.",
        advice=None,
    )


def _recommendation(
    rule: RecommendationRule,
    option: _Option,
    status: RecommendationStatus,
    gap: float,
    sentence: str,
    advice: str | None = None,
) -> Recommendation:
    s = option.score
    return Recommendation(
        status=status,
        rule=rule,
        candidate=s.candidate,
        eval_type=s.eval_type,
        value=s.mean,
        ci_low=s.ci_low,
        ci_high=s.ci_high,
        gap=gap,
        cost_per_1k=option.cost_per_1k,
        saving_vs_teacher=option.cost.saving_vs_teacher if option.cost is not None else None,
        sentence=sentence,
        advice=advice,
    )


def _interval(s: MetricScore) -> str:
    return f"{s.mean:.2f} [{s.ci_low:.2f}, {s.ci_high:.2f}]"


def _sentence(rule: RecommendationRule, best: _Option, currency: str, teacher_cost_per_1k: float | None) -> str:
    s = best.score
    head = (
        f"Use {s.candidate} {s.eval_type}: {metric_label(rule.metric)} {_interval(s)} reaches "
        f"{rule.min_ratio:g} x the logged model's"
    )
    cost = best.cost_per_1k
    if cost is None:
        why = best.cost.unknown_reason if best.cost is not None and best.cost.unknown_reason else "no cost measured"
        return f"{head}; its cost is unknown ({why}), so it was chosen by the highest lower bound."
    money = f"{format_money(cost, currency)} per 1,000 requests"
    saved = best.cost.saving_vs_teacher if best.cost is not None else None
    if saved is not None:
        return f"{head} at {money}, {format_saving(saved)}."
    if teacher_cost_per_1k is None:
        return f"{head} at {money} (the logged model's cost is unknown: set the teacher prices to compare)."
    return f"{head} at {money}."


def _advice(
    score: MetricScore,
    threshold: float,
    curve: Sequence[float],
    customized: bool,
    data_curve: Sequence[tuple[int, float]] = (),
) -> str:
    """What would help the closest candidate qualify, from what the job saw."""
    parts = []
    if len(data_curve) >= 2:
        (rows_before, before), (rows_last, last) = data_curve[-2], data_curve[-1]
        if last - before > RISING:
            parts.append(
                f"its customized accuracy still rose with the train rows ({before:.2f} at {rows_before} rows, "
                f"{last:.2f} at {rows_last}): more logged records should help"
            )
        else:
            parts.append(
                f"its customized accuracy no longer rose with the train rows ({before:.2f} at {rows_before} rows, "
                f"{last:.2f} at {rows_last}): more records of the same kind will help little"
            )
    elif len(curve) >= 2 and curve[-1] > max(curve[:-1]):
        parts.append(
            f"its validation function-name accuracy was still rising at the last epoch "
            f"({curve[-2]:.2f} to {curve[-1]:.2f}): more logged records to train on (or more epochs) should help"
        )
    if score.ci_high >= threshold:
        parts.append(
            f"its interval reaches {threshold:.2f} at the top ({score.ci_high:.2f}): a larger eval set "
            f"(data_split.eval_size, {score.n} samples now) would tell"
        )
    if not customized and score.eval_type != "customized":
        parts.append("fine-tuning it should help: it has no customized result")
    if not parts:
        parts.append(
            "a larger candidate, or more logged records of the classes it gets wrong, is the next thing to try"
        )
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."
