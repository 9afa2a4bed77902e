"""The end of a job's result table: cost and latency per eval type, then the recommendation sentence.

Rendered from the job result's ``cost``, ``latency`` and ``recommendation`` keys (:mod:`dataflywheel.decision`);
a result stored before they existed renders without them. A cost whose price is not set reads "unknown".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from dataflywheel.decision.cost import format_money, format_saving
from dataflywheel.decision.schema import (
    EVAL_TYPE_SUFFIX,
    EVAL_TYPES,
    CostReport,
    LatencyRow,
    Recommendation,
    TokenSource,
    read_stored,
)

__all__ = ["cost_notes", "cost_table", "decision_renderables", "recommendation_text"]


def decision_renderables(result: dict[str, Any]) -> list[RenderableType]:
    """What follows the metrics tables: the cost and latency table (one per candidate when there are several,
    as the per-class tables, to fit 80 columns) with its notes, then the recommendation."""
    cost, stored_latency, recommendation = read_stored(result)
    latency = stored_latency or []
    out: list[RenderableType] = []
    evals = cost.evals if cost is not None else []
    named = [*(result.get("candidates") or {}), *(c.candidate for c in evals), *(r.candidate for r in latency)]
    candidates = list(dict.fromkeys(named))
    for candidate in candidates if len(candidates) > 1 else [None]:
        table = cost_table(cost, latency, candidate)
        if table is not None:
            out.append(table)
    if cost is not None:
        out.extend(Text(line) for line in cost_notes(cost))
    if recommendation is not None:
        out.append(recommendation_text(recommendation))
    return out


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def cost_table(cost: CostReport | None, latency: list[LatencyRow], candidate: str | None = None) -> Table | None:
    """Per eval type: cost per 1,000 requests and per month, the saving against the logged model, latency
    p50 / p95; the logged model's row first. ``candidate``: only its rows (named in the title); None: every
    row (a job of one candidate). None without cost or latency."""
    if cost is None and not latency:
        return None
    currency = cost.currency if cost is not None else "USD"
    about = f" ({candidate})" if candidate else ""
    table = Table(
        title=f"Cost and latency{about}: per 1,000 requests, per month at the observed traffic", title_justify="left"
    )
    table.add_column("eval", no_wrap=True, min_width=15)
    for header in ("per 1,000", "per month", "vs logged", "p50 / p95 s"):
        table.add_column(header, justify="right", no_wrap=True)
    if cost is not None:
        teacher = cost.teacher
        label = "logged model" + ("*" if teacher.estimated and teacher.cost_per_1k is not None else "")
        table.add_row(
            label, format_money(teacher.cost_per_1k, currency), format_money(teacher.monthly_cost, currency), "", "-"
        )
    mine = (lambda name: name == candidate) if candidate else (lambda name: True)
    costs = {c.eval_type: c for c in (cost.evals if cost is not None else []) if mine(c.candidate)}
    times = {row.eval_type: row for row in latency if mine(row.candidate)}
    kinds = sorted(
        dict.fromkeys([*costs, *times]), key=lambda k: EVAL_TYPES.index(k) if k in EVAL_TYPES else len(EVAL_TYPES)
    )
    for kind in kinds:
        c, t = costs.get(kind), times.get(kind)
        table.add_row(
            kind + EVAL_TYPE_SUFFIX,
            format_money(c.cost_per_1k if c else None, currency),
            format_money(c.monthly_cost if c else None, currency),
            format_saving(c.saving_vs_teacher) if c and c.saving_vs_teacher is not None else "-",
            f"{_seconds(t.p50_s)} / {_seconds(t.p95_s)}" if t else "-",
        )
    return table


def _day(iso: str | None) -> str:
    return datetime.fromisoformat(iso).date().isoformat() if iso else "?"


def cost_notes(cost: CostReport) -> list[str]:
    """Where the logged model's tokens and the traffic come from, why a cost is unknown, the judge's cost."""
    teacher, traffic = cost.teacher, cost.traffic
    lines = []
    name = f" ({teacher.model})" if teacher.model else ""
    if teacher.mean_prompt_tokens is not None and teacher.mean_completion_tokens is not None:
        source = "its logged usage" if teacher.tokens_from is TokenSource.LOGGED_USAGE else "counted: an estimate"
        lines.append(
            f"{'* ' if teacher.estimated else ''}Logged model{name}: {teacher.mean_prompt_tokens:,.0f} prompt + "
            f"{teacher.mean_completion_tokens:,.0f} completion tokens per request ({source})."
        )
    if traffic.records_per_day is not None:
        lines.append(
            f"Traffic: {traffic.records_per_day:,.1f} requests a day ({traffic.records:,} logged from "
            f"{_day(traffic.first)} to {_day(traffic.last)})."
        )
    reasons = [teacher.unknown_reason and f"logged model: {teacher.unknown_reason}"]
    reasons += [c.unknown_reason for c in cost.evals]
    unknown = list(dict.fromkeys(r for r in reasons if r))
    if unknown:
        lines.append("Unknown costs: " + "; ".join(unknown) + ".")
    lines.extend(cost.notes)
    if cost.judge is not None:
        judge = cost.judge
        lines.append(
            f"Judge: {judge.prompt_tokens:,} prompt + {judge.completion_tokens:,} completion tokens, "
            f"{format_money(judge.cost, cost.currency)} in all."
        )
    return lines


def recommendation_text(recommendation: Recommendation) -> Text:
    """The recommendation sentence, then what would help when none qualifies."""
    text = Text("Recommendation: ", style="bold")
    text.append(recommendation.sentence)
    if recommendation.advice:
        text.append("\n" + recommendation.advice)
    return text
