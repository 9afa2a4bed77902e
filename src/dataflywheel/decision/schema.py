"""What a finished job says about cost, latency and the recommendation: stored in the job's result under
``cost``, ``latency`` and ``recommendation`` and served as is by ``GET /api/jobs/{id}`` (documented in the
OpenAPI schema through these models), the CLI's result table, the web page and ``flywheel report``.

A price that is not configured is **unknown** (``None``) everywhere: never guessed, never a default. Money
is in the settings' currency (``cost.currency``), per 1,000 requests unless the field says otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel, Field, TypeAdapter, ValidationError


class CostBasis(StrEnum):
    """How a cost per 1,000 requests was computed."""

    TOKENS = "tokens"
    """Mean prompt and completion tokens per request times the per-token prices."""
    GPU_HOUR = "gpu_hour"
    """The GPU-hour price divided by the measured throughput (requests per hour)."""
    UNKNOWN = "unknown"
    """No price configured: the cost is unknown."""


class TokenSource(StrEnum):
    """Where the big (logged) model's token counts come from."""

    LOGGED_USAGE = "logged_usage"
    """The records' own ``response.usage``."""
    TOKENIZER = "tokenizer"
    """Counted with a tokenizer over the logged request and answer: an estimate."""
    UNKNOWN = "unknown"
    """Neither logged nor counted (e.g. no tokenizer could be loaded): the token counts are unknown."""


class EvalCost(BaseModel):
    """One candidate under one eval type: what a request costs and how long it takes."""

    candidate: str
    eval_type: str = Field(description="base, icl or customized.")
    requests: int = Field(description="Eval samples answered (errors left out).")
    mean_prompt_tokens: float | None
    mean_completion_tokens: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    throughput_rps: float | None = Field(description="Requests answered per second of the eval's wall time.")
    cost_per_1k: float | None = Field(description="Cost of 1,000 requests; None: unknown (no price set).")
    basis: CostBasis
    monthly_cost: float | None = Field(description="cost_per_1k at the workload's observed traffic, per 30 days.")
    saving_vs_teacher: float | None = Field(
        description="1 - cost_per_1k / the logged model's cost_per_1k; None when either is unknown."
    )
    unknown_reason: str | None = Field(None, description="Why cost_per_1k is unknown (None when it is known).")


class TeacherCost(BaseModel):
    """The logged (big) model's cost, from its price setting and its token counts."""

    model: str | None = Field(description="The teacher's name from the settings (None: not set).")
    mean_prompt_tokens: float | None
    mean_completion_tokens: float | None
    tokens_from: TokenSource
    estimated: bool = Field(description="True when the token counts were counted, not logged.")
    cost_per_1k: float | None
    basis: CostBasis
    monthly_cost: float | None
    unknown_reason: str | None = Field(None, description="Why cost_per_1k is unknown (None when it is known).")


class Traffic(BaseModel):
    """The workload's observed traffic, from the log records' timestamps."""

    records: int
    first: str | None = Field(description="ISO time of the oldest record read.")
    last: str | None = Field(description="ISO time of the newest record read.")
    records_per_day: float | None = Field(description="None when the records span no time (or have no timestamps).")


class JudgeCost(BaseModel):
    """What the LLM judge used, reported apart from the candidates' cost."""

    prompt_tokens: int
    completion_tokens: int
    cost: float | None = Field(description="Total for the job; None: unknown (no judge price set).")


class CostReport(BaseModel):
    """``result.cost``."""

    currency: str = "USD"
    teacher: TeacherCost
    traffic: Traffic
    evals: list[EvalCost]
    judge: JudgeCost | None
    notes: list[str] = Field(
        default_factory=list,
        description="What could not be computed and why (e.g. the traffic of a build without timestamps).",
    )


class LatencyRow(BaseModel):
    """``result.latency[]``: one candidate under one eval type."""

    candidate: str
    eval_type: str
    requests: int
    mean_s: float | None
    p50_s: float | None
    p95_s: float | None
    throughput_rps: float | None


class RecommendationStatus(StrEnum):
    RECOMMENDED = "recommended"
    """A candidate and eval type meet the rule; the cheapest such is named."""
    NONE_QUALIFIES = "none_qualifies"
    """Results exist but none meets the rule; the closest is named with its gap."""
    NO_RESULTS = "no_results"
    """No eval finished: nothing to recommend."""


class RecommendationRule(BaseModel):
    """The rule, from the settings (``recommendation``) or the job's overrides."""

    metric: str = Field(description="The metric compared, e.g. function_name_accuracy.")
    min_ratio: float = Field(description="The metric's 95% interval lower bound must reach min_ratio x the teacher's.")
    teacher_value: float = Field(description="The logged model's value of the metric (1.0: it is the reference).")


class Recommendation(BaseModel):
    """``result.recommendation``."""

    status: RecommendationStatus
    rule: RecommendationRule
    candidate: str | None = Field(description="The recommended (or, when none qualifies, the closest) candidate.")
    eval_type: str | None
    value: float | None = Field(description="The metric's mean for that candidate and eval type.")
    ci_low: float | None
    ci_high: float | None
    gap: float | None = Field(description="How far the lower bound is below the threshold (0 when it qualifies).")
    cost_per_1k: float | None
    saving_vs_teacher: float | None
    sentence: str = Field(description="One plain sentence saying what to do and why.")
    advice: str | None = Field(description="When none qualifies: what would help (e.g. more logged records).")


EVAL_TYPES = ("base", "icl", "customized")
"""The eval types as stored here, in the order they run."""
EVAL_TYPE_SUFFIX = "-eval"


def eval_type_name(kind: str) -> str:
    """The eval type as stored here (``base``, ``icl``, ``customized``) of a job result's key (``base-eval``...)."""
    return kind.removesuffix(EVAL_TYPE_SUFFIX)


def eval_result_key(eval_type: str) -> str:
    """The job result's key (``base-eval``...) of an eval type as stored here (``base``...)."""
    return eval_type_name(eval_type) + EVAL_TYPE_SUFFIX


class StoredDecision(NamedTuple):
    """A stored job result's ``cost``, ``latency`` and ``recommendation`` as models."""

    cost: CostReport | None
    latency: list[LatencyRow] | None
    recommendation: Recommendation | None


_logger = logging.getLogger(__name__)
_T = TypeVar("_T")
_COST: TypeAdapter[CostReport] = TypeAdapter(CostReport)
_LATENCY: TypeAdapter[list[LatencyRow]] = TypeAdapter(list[LatencyRow])
_RECOMMENDATION: TypeAdapter[Recommendation] = TypeAdapter(Recommendation)


def _stored(shape: TypeAdapter[_T], result: Mapping[str, Any], key: str) -> _T | None:
    value = result.get(key)
    if value is None:
        return None
    try:
        return shape.validate_python(value)
    except ValidationError as exc:
        _logger.warning("stored result.%s is not readable, left out: %s", key, exc)
        return None


def read_stored(result: Mapping[str, Any] | None) -> StoredDecision:
    """The decision keys of a stored job result; each None when absent (a result stored before they existed)
    or not of its shape (logged: a page or table must not fail for one odd key)."""
    result = result or {}
    return StoredDecision(
        _stored(_COST, result, "cost"),
        _stored(_LATENCY, result, "latency"),
        _stored(_RECOMMENDATION, result, "recommendation"),
    )
