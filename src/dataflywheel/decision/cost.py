"""What a request costs and how long it takes, per candidate and eval type, and what the logged model costs.

Pure functions over what the evals measured (each sample's ``usage``, ``latency_s`` and ``error``; the eval's
wall time) and the prices in the settings:

* **tokens** basis: ``(mean prompt tokens x input price + mean completion tokens x output price) / 1e6`` per
  request, so an ICL eval's longer prompts cost more without a special case;
* **gpu_hour** basis: the hourly price divided by the throughput the eval measured (requests answered per
  second of its wall time, x 3600);
* a price that is not set is **unknown** (``None``, basis ``unknown``, with the reason): never guessed.

Costs are per 1,000 requests; the monthly figure is that cost at the workload's observed traffic
(:func:`observed_traffic`) over :data:`DAYS_PER_MONTH` days.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dataflywheel.decision.schema import (
    CostBasis,
    EvalCost,
    JudgeCost,
    LatencyRow,
    TeacherCost,
    TokenSource,
    Traffic,
)
from dataflywheel.evaluation.stats import quantile
from dataflywheel.projection import project

__all__ = [
    "DAYS_PER_MONTH",
    "REQUESTS_PER_UNIT",
    "Costed",
    "EvalMeasure",
    "Price",
    "TokenCounts",
    "cost_per_1k",
    "eval_cost",
    "format_money",
    "format_saving",
    "judge_cost",
    "latency_row",
    "logged_usage",
    "mean_tokens",
    "measure_eval",
    "monthly_cost",
    "observed_traffic",
    "saving",
    "teacher_cost",
]

REQUESTS_PER_UNIT = 1000
"""Costs are reported per this many requests."""
DAYS_PER_MONTH = 30
SECONDS_PER_DAY = 86_400.0
_TOKENS_PER_PRICE = 1_000_000


@dataclass(frozen=True)
class Price:
    """A model's price as configured: per 1M input and output tokens, or per GPU-hour (None: not set)."""

    per_1m_input_tokens: float | None = None
    per_1m_output_tokens: float | None = None
    per_gpu_hour: float | None = None
    setting: str = "price"
    """Where the price is set, named in the reason of an unknown cost (``candidates[NAME]``, ``teacher``)."""

    @property
    def per_token(self) -> bool:
        return self.per_1m_input_tokens is not None and self.per_1m_output_tokens is not None


@dataclass(frozen=True)
class Costed:
    """A cost per 1,000 requests, how it was computed, and why it is unknown when it is."""

    cost_per_1k: float | None
    basis: CostBasis
    unknown_reason: str | None = None


@dataclass(frozen=True)
class EvalMeasure:
    """What one eval of one candidate measured, from its samples and wall time."""

    candidate: str
    eval_type: str
    requests: int
    """Samples answered (failed requests left out)."""
    mean_prompt_tokens: float | None
    mean_completion_tokens: float | None
    latency_mean_s: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    throughput_rps: float | None


@dataclass(frozen=True)
class TokenCounts:
    """The logged model's mean tokens per request, and where they come from."""

    mean_prompt_tokens: float | None
    mean_completion_tokens: float | None
    source: TokenSource
    unknown_reason: str | None = None

    @classmethod
    def unknown(cls, reason: str) -> TokenCounts:
        return cls(None, None, TokenSource.UNKNOWN, reason)


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def measure_eval(
    candidate: str, eval_type: str, samples: Iterable[Mapping[str, Any]], wall_s: float | None
) -> EvalMeasure:
    """Token means, latency and throughput of one eval. Failed samples are left out; a sample whose usage
    has no prompt token is one whose endpoint reported no usage, left out of the token means."""
    answered = [s for s in samples if s.get("error") is None]
    usages = [u for s in answered if isinstance(u := s.get("usage"), Mapping) and (u.get("prompt_tokens") or 0) > 0]
    latencies = sorted(float(s["latency_s"]) for s in answered if s.get("latency_s") is not None)
    rate = len(answered) / wall_s if answered and wall_s is not None and wall_s > 0 else None
    return EvalMeasure(
        candidate=candidate,
        eval_type=eval_type,
        requests=len(answered),
        mean_prompt_tokens=_mean([float(u["prompt_tokens"]) for u in usages]),
        mean_completion_tokens=_mean([float(u.get("completion_tokens") or 0) for u in usages]),
        latency_mean_s=_mean(latencies),
        latency_p50_s=quantile(latencies, 0.5),
        latency_p95_s=quantile(latencies, 0.95),
        throughput_rps=rate,
    )


def cost_per_1k(
    price: Price,
    mean_prompt_tokens: float | None,
    mean_completion_tokens: float | None,
    throughput_rps: float | None = None,
) -> Costed:
    """The cost of 1,000 requests: per-token prices x the mean tokens, else the GPU-hour price / the measured
    throughput; unknown (with the reason) when the price, the tokens or the throughput it needs is missing."""
    if price.per_token:
        assert price.per_1m_input_tokens is not None and price.per_1m_output_tokens is not None
        if mean_prompt_tokens is None or mean_completion_tokens is None:
            return Costed(None, CostBasis.UNKNOWN, "no token counts (the endpoint reported no usage)")
        per_request = (
            mean_prompt_tokens * price.per_1m_input_tokens + mean_completion_tokens * price.per_1m_output_tokens
        ) / _TOKENS_PER_PRICE
        return Costed(per_request * REQUESTS_PER_UNIT, CostBasis.TOKENS)
    if price.per_gpu_hour is not None:
        if throughput_rps is None or throughput_rps <= 0:
            return Costed(None, CostBasis.UNKNOWN, "no measured throughput (no request was answered)")
        per_request = price.per_gpu_hour / (throughput_rps * 3600.0)
        return Costed(per_request * REQUESTS_PER_UNIT, CostBasis.GPU_HOUR)
    return Costed(None, CostBasis.UNKNOWN, f"no price set: {price.setting}")


def monthly_cost(cost: float | None, records_per_day: float | None) -> float | None:
    """``cost`` (per 1,000 requests) at ``records_per_day`` requests a day, over :data:`DAYS_PER_MONTH` days."""
    if cost is None or records_per_day is None:
        return None
    return cost / REQUESTS_PER_UNIT * records_per_day * DAYS_PER_MONTH


def saving(cost: float | None, teacher_cost: float | None) -> float | None:
    """``1 - cost / teacher_cost`` (0.97: 97% cheaper, negative: dearer); None when either is unknown or the
    teacher's cost is 0 (no ratio to it)."""
    if cost is None or teacher_cost is None or teacher_cost <= 0:
        return None
    return 1.0 - cost / teacher_cost


def observed_traffic(records: int, first_timestamp: float | None, last_timestamp: float | None) -> Traffic:
    """The workload's traffic from ``records`` calls logged between two epoch timestamps: records per day is
    the gaps between them (``records - 1``) over the days they span; None when they span no time."""
    span = last_timestamp - first_timestamp if first_timestamp is not None and last_timestamp is not None else None
    per_day = (records - 1) / (span / SECONDS_PER_DAY) if span is not None and span > 0 and records > 1 else None
    return Traffic(records=records, first=_iso(first_timestamp), last=_iso(last_timestamp), records_per_day=per_day)


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


def logged_usage(records: Iterable[Mapping[str, Any]]) -> list[tuple[int, int]] | None:
    """Each record's logged ``response.usage`` as (prompt, completion) tokens; None unless every record has
    one (a mix would compare counted and logged tokens) or there is no record."""
    out: list[tuple[int, int]] = []
    for record in records:
        response = record.get("response")
        usage = response.get("usage") if isinstance(response, Mapping) else None
        if not isinstance(usage, Mapping):
            return None
        prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
        if prompt is None or prompt <= 0 or completion is None:
            return None
        out.append((prompt, completion))
    return out or None


def _count(value: Any) -> int | None:
    """A token count: a non-negative integer (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def mean_tokens(counts: Sequence[tuple[int, int]], source: TokenSource) -> TokenCounts:
    """The mean prompt and completion tokens of (prompt, completion) pairs."""
    if not counts:
        return TokenCounts.unknown("no records to count")
    return TokenCounts(
        mean_prompt_tokens=_mean([float(p) for p, _ in counts]),
        mean_completion_tokens=_mean([float(c) for _, c in counts]),
        source=source,
    )


def teacher_cost(name: str | None, tokens: TokenCounts, price: Price, traffic: Traffic) -> TeacherCost:
    """The logged model's cost per 1,000 requests (per-token prices x its mean tokens) and per month."""
    costed = cost_per_1k(price, tokens.mean_prompt_tokens, tokens.mean_completion_tokens)
    if costed.cost_per_1k is None and price.per_token and tokens.unknown_reason:
        costed = Costed(None, CostBasis.UNKNOWN, f"its token counts are unknown: {tokens.unknown_reason}")
    return TeacherCost(
        model=name,
        mean_prompt_tokens=tokens.mean_prompt_tokens,
        mean_completion_tokens=tokens.mean_completion_tokens,
        tokens_from=tokens.source,
        estimated=tokens.source is not TokenSource.LOGGED_USAGE,
        cost_per_1k=costed.cost_per_1k,
        basis=costed.basis,
        monthly_cost=monthly_cost(costed.cost_per_1k, traffic.records_per_day),
        unknown_reason=costed.unknown_reason,
    )


def eval_cost(measure: EvalMeasure, price: Price, teacher: TeacherCost, traffic: Traffic) -> EvalCost:
    """One candidate under one eval type: its cost per 1,000 requests, per month, and against the teacher's."""
    costed = cost_per_1k(price, measure.mean_prompt_tokens, measure.mean_completion_tokens, measure.throughput_rps)
    return project(
        EvalCost,
        measure,
        cost_per_1k=costed.cost_per_1k,
        basis=costed.basis,
        monthly_cost=monthly_cost(costed.cost_per_1k, traffic.records_per_day),
        saving_vs_teacher=saving(costed.cost_per_1k, teacher.cost_per_1k),
        unknown_reason=costed.unknown_reason,
    )


def latency_row(measure: EvalMeasure) -> LatencyRow:
    return project(
        LatencyRow, measure, mean_s=measure.latency_mean_s, p50_s=measure.latency_p50_s, p95_s=measure.latency_p95_s
    )


def judge_cost(prompt_tokens: int, completion_tokens: int, price: Price) -> JudgeCost:
    """What the judge's tokens cost in all (None: no judge price set)."""
    total = (
        (prompt_tokens * price.per_1m_input_tokens + completion_tokens * price.per_1m_output_tokens) / _TOKENS_PER_PRICE
        if price.per_1m_input_tokens is not None and price.per_1m_output_tokens is not None
        else None
    )
    return JudgeCost(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost=total)


_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def format_money(amount: float | None, currency: str = "USD") -> str:
    """``$0.02``, ``$1,234.50``, ``0.0043 CHF``; two significant digits below 0.1; "unknown" for None."""
    if amount is None:
        return "unknown"
    magnitude = abs(amount)
    if magnitude == 0:
        text = "0"
    elif magnitude >= 0.1:
        text = f"{magnitude:,.2f}"
    else:
        text = f"{magnitude:.{1 - math.floor(math.log10(magnitude))}f}"
    sign = "-" if amount < 0 else ""
    symbol = _SYMBOLS.get(currency)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency}"


def format_saving(value: float | None) -> str:
    """``97% less`` / ``20% more`` than the logged model; "unknown" for None. A saving short of 100% never
    rounds up to it."""
    if value is None:
        return "unknown"
    percent = abs(value) * 100
    shown = min(round(percent), 99) if 0 < value < 1 else round(percent)
    return f"{shown}% {'less' if value >= 0 else 'more'}"
