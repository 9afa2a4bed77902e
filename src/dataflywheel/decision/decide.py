"""A finished job's decision: its cost report, latency rows and recommendation, from what the job left on disk.

The I/O edge of :mod:`.cost` and :mod:`.recommend`: it reads each eval's samples, the dataset build's manifest
(the traffic) and eval records (the logged model's tokens), looks the prices up in the settings, and hands
plain values to the pure functions. What cannot be read or counted makes the figures that need it unknown,
with the reason (``unknown_reason``, ``notes``); it never fails the job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from dataflywheel.decision.cost import (
    EvalMeasure,
    Price,
    TokenCounts,
    eval_cost,
    judge_cost,
    latency_row,
    logged_usage,
    mean_tokens,
    measure_eval,
    observed_traffic,
    teacher_cost,
)
from dataflywheel.decision.recommend import TEACHER_VALUE, metric_scores, recommend, validation_curve
from dataflywheel.decision.schema import (
    CostBasis,
    CostReport,
    JudgeCost,
    LatencyRow,
    Recommendation,
    RecommendationRule,
    TeacherCost,
    TokenSource,
    Traffic,
)
from dataflywheel.records.chat import response_message
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.settings import Settings
from dataflywheel.training.learning_curve import CurvePoint

logger = logging.getLogger(__name__)

__all__ = [
    "Decision",
    "FinishedEval",
    "TokenCounter",
    "candidate_price",
    "decide",
    "recommendation_for",
    "teacher_price",
    "teacher_tokens",
    "without_cost",
]


class TokenCounter(Protocol):
    """Counts a logged request's and answer's tokens (:class:`~.tokens.ChatTokenCounter`)."""

    def count(self, request: Mapping[str, Any], answer: Mapping[str, Any]) -> tuple[int, int]: ...


@dataclass(frozen=True)
class FinishedEval:
    """A completed eval of a job: its candidate, eval type (base, icl, customized), summary and samples."""

    candidate: str
    eval_type: str
    summary: Mapping[str, Any]
    samples_dir: Path | None


@dataclass(frozen=True)
class Decision:
    cost: CostReport
    latency: list[LatencyRow]
    recommendation: Recommendation

    def to_result(self) -> JsonObject:
        """The job result's ``cost``, ``latency`` and ``recommendation`` keys, as JSON values."""
        return {
            "cost": self.cost.model_dump(mode="json"),
            "latency": [row.model_dump(mode="json") for row in self.latency],
            "recommendation": self.recommendation.model_dump(mode="json"),
        }


def decide(
    settings: Settings,
    evals: Sequence[FinishedEval],
    candidates: Mapping[str, Mapping[str, Any]],
    training: Mapping[str, Any],
    dataset_dir: Path,
    *,
    load_counter: Callable[[], TokenCounter] | None = None,
    learning_curves: Mapping[str, Sequence[CurvePoint]] | None = None,
) -> Decision:
    """Cost, latency and the recommendation of a job whose evals are ``evals`` and whose result holds
    ``candidates`` (scores) and ``training`` (LoRA summaries); ``dataset_dir`` is its dataset build.
    ``load_counter`` gives the tokenizer that counts the logged model's tokens when the records have no usage
    (default: ``teacher.tokenizer``), called only then."""
    notes: list[str] = []
    traffic = _traffic(dataset_dir, notes)
    measures = [_measure(e, notes) for e in evals]
    tokens = teacher_tokens(dataset_dir / "eval.jsonl", load_counter or _default_counter(settings))
    teacher = teacher_cost(settings.teacher.name, tokens, teacher_price(settings), traffic)
    report = CostReport(
        currency=settings.cost.currency,
        teacher=teacher,
        traffic=traffic,
        evals=[eval_cost(m, candidate_price(settings, m.candidate), teacher, traffic) for m in measures],
        judge=_judge(settings, evals),
        notes=notes,
    )
    latency = [latency_row(m) for m in measures]
    return Decision(report, latency, recommendation_for(settings, candidates, training, report, learning_curves))


def without_cost(
    settings: Settings,
    candidates: Mapping[str, Mapping[str, Any]],
    training: Mapping[str, Any],
    reason: str,
    learning_curves: Mapping[str, Sequence[CurvePoint]] | None = None,
) -> Decision:
    """The decision when the cost could not be computed at all: every cost unknown with ``reason``, the
    recommendation from the scores alone."""
    teacher = TeacherCost(
        model=settings.teacher.name,
        mean_prompt_tokens=None,
        mean_completion_tokens=None,
        tokens_from=TokenSource.UNKNOWN,
        estimated=True,
        cost_per_1k=None,
        basis=CostBasis.UNKNOWN,
        monthly_cost=None,
        unknown_reason=reason,
    )
    report = CostReport(
        currency=settings.cost.currency,
        teacher=teacher,
        traffic=Traffic(records=0, first=None, last=None, records_per_day=None),
        evals=[],
        judge=None,
        notes=[reason],
    )
    return Decision(report, [], recommendation_for(settings, candidates, training, report, learning_curves))


def recommendation_for(
    settings: Settings,
    candidates: Mapping[str, Mapping[str, Any]],
    training: Mapping[str, Any],
    report: CostReport | None,
    learning_curves: Mapping[str, Sequence[CurvePoint]] | None = None,
) -> Recommendation:
    """The ``recommendation`` settings' rule applied to a job result's scores and its cost report."""
    rule = RecommendationRule(
        metric=settings.recommendation.metric,
        min_ratio=settings.recommendation.min_ratio,
        teacher_value=TEACHER_VALUE,
    )
    return recommend(
        rule,
        metric_scores(candidates, rule.metric),
        report.evals if report is not None else (),
        currency=settings.cost.currency,
        teacher_cost_per_1k=report.teacher.cost_per_1k if report is not None else None,
        curves={name: validation_curve(summary) for name, summary in training.items()},
        data_curves={
            name: [(p.train_examples, m) for p in points if (m := p.mean(rule.metric)) is not None]
            for name, points in (learning_curves or {}).items()
        },
    )


def candidate_price(settings: Settings, name: str) -> Price:
    """A candidate's price from its ``candidates`` entry (a built-in alias not configured there has none)."""
    where = f"candidates[{name}].price_per_gpu_hour or its per-token prices"
    for c in settings.candidates:
        if c.name == name:
            return Price(c.price_per_1m_input_tokens, c.price_per_1m_output_tokens, c.price_per_gpu_hour, where)
    return Price(setting=where)


def teacher_price(settings: Settings) -> Price:
    t = settings.teacher
    return Price(
        t.price_per_1m_input_tokens,
        t.price_per_1m_output_tokens,
        setting="teacher.price_per_1m_input_tokens and teacher.price_per_1m_output_tokens",
    )


def _default_counter(settings: Settings) -> Callable[[], TokenCounter]:
    def load() -> TokenCounter:
        from dataflywheel.decision.tokens import load_chat_token_counter
        from dataflywheel.models.registry import models_dir

        return load_chat_token_counter(settings.teacher.tokenizer, models_dir(settings))

    return load


def teacher_tokens(eval_file: Path, load_counter: Callable[[], TokenCounter]) -> TokenCounts:
    """The logged model's mean tokens per request over the eval records (the requests every candidate
    answered): their logged ``response.usage`` when every record has one, else counted with the tokenizer
    (estimated); unknown, with the reason, when neither works."""
    from dataflywheel.evaluation.runner import EvalError, load_dataset

    try:
        records = load_dataset(eval_file)
    except (OSError, EvalError) as exc:
        return TokenCounts.unknown(f"the eval records cannot be read: {exc}")
    if not records:
        return TokenCounts.unknown("no eval records")
    logged = logged_usage(records)
    if logged is not None:
        return mean_tokens(logged, TokenSource.LOGGED_USAGE)
    try:
        counter = load_counter()
        counted = [counter.count(r["request"], response_message(r) or {}) for r in records]
    except Exception as exc:  # a missing package, a tokenizer that cannot load, a template that chokes
        logger.warning("the logged model's tokens cannot be counted: %s", exc)
        return TokenCounts.unknown(f"the records carry no usage and no tokenizer could count them: {exc}")
    return mean_tokens(counted, TokenSource.TOKENIZER)


def _traffic(dataset_dir: Path, notes: list[str]) -> Traffic:
    from dataflywheel.datasets.artifacts import read_manifest

    unknown = observed_traffic(0, None, None)
    try:
        manifest = read_manifest(dataset_dir)
    except (OSError, ValueError) as exc:
        notes.append(f"traffic unknown: the dataset manifest cannot be read ({exc})")
        return unknown
    seen = manifest.get("traffic")
    if not isinstance(seen, dict):
        notes.append("traffic unknown: the dataset build predates traffic counts (rebuild the datasets)")
        return unknown
    traffic = observed_traffic(int(seen.get("records") or 0), seen.get("first_timestamp"), seen.get("last_timestamp"))
    if traffic.records_per_day is None:
        notes.append("traffic unknown: the records read span no time (or carry no timestamp), so no monthly cost")
    return traffic


def _measure(finished: FinishedEval, notes: list[str]) -> EvalMeasure:
    from dataflywheel.evaluation.runner import read_samples

    samples: list[dict[str, Any]] = []
    if finished.samples_dir is not None:
        try:
            samples = read_samples(finished.samples_dir)
        except (OSError, KeyError, TypeError) as exc:
            notes.append(f"{finished.candidate} {finished.eval_type}: samples unreadable ({exc})")
    wall = finished.summary.get("wall_s")
    return measure_eval(
        finished.candidate, finished.eval_type, samples, float(wall) if isinstance(wall, int | float) else None
    )


def _judge(settings: Settings, evals: Sequence[FinishedEval]) -> JudgeCost | None:
    judged = [j for e in evals if isinstance(j := e.summary.get("judge"), Mapping) and j]
    if not judged:
        return None
    price = Price(settings.judge.price_per_1m_input_tokens, settings.judge.price_per_1m_output_tokens)
    return judge_cost(
        sum(int(j.get("prompt_tokens") or 0) for j in judged),
        sum(int(j.get("completion_tokens") or 0) for j in judged),
        price,
    )
