"""Charts as SVG, drawn from typed values (pure: data in, markup out; no JavaScript, no assets).

* :func:`accuracy_cost_chart`: each candidate and eval type at its cost per 1,000 requests and its metric,
  with the metric's 95% interval as an error bar; the logged model and the recommendation threshold for
  reference; points whose cost is unknown in a lane of their own.
* :func:`loss_chart`: a LoRA run's training and validation loss per epoch, the epoch kept marked.
* :func:`funnel_chart`: the records each curation step kept, then the split.

Every mark carries its numbers in ``data-*`` attributes (exact ``repr`` of the floats) and a ``<title>``
tooltip, so a reader (or a test) can read back what was drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from dataflywheel.results.funnel import CurationFunnel
from dataflywheel.results.model import EVAL_TYPES, EpochPoint
from dataflywheel.web import format as fmt

__all__ = ["PALETTE", "ChartPoint", "accuracy_cost_chart", "funnel_chart", "loss_chart"]

PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#8c6d31", "#666666")
"""Candidate colours (Okabe-Ito, told apart with colour-blindness too)."""
_EVAL_LABELS = {"base-eval": "base", "icl-eval": "ICL", "customized-eval": "customized"}


@dataclass(frozen=True)
class ChartPoint:
    candidate: str
    eval_type: str
    mean: float
    ci_low: float | None
    ci_high: float | None
    cost: float | None
    """Cost per 1,000 requests; None: unknown."""
    recommended: bool = False


def _attr(value: float | None) -> str:
    return "unknown" if value is None else repr(float(value))


def _color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _marker(eval_type: str, x: float, y: float, color: str, size: float = 5.5) -> str:
    """Base: circle, ICL: square, customized: diamond (others: triangle)."""
    style = f'fill="{color}" stroke="#fff" stroke-width="1.2"'
    if eval_type == "base-eval":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{size:.1f}" {style}/>'
    if eval_type == "icl-eval":
        s = size * 0.9
        return f'<rect x="{x - s:.1f}" y="{y - s:.1f}" width="{2 * s:.1f}" height="{2 * s:.1f}" {style}/>'
    if eval_type == "customized-eval":
        s = size * 1.3
        return f'<path d="M{x:.1f} {y - s:.1f}L{x + s:.1f} {y:.1f}L{x:.1f} {y + s:.1f}L{x - s:.1f} {y:.1f}Z" {style}/>'
    s = size * 1.2
    return f'<path d="M{x:.1f} {y - s:.1f}L{x + s:.1f} {y + s * 0.8:.1f}L{x - s:.1f} {y + s * 0.8:.1f}Z" {style}/>'


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / max(ticks, 1)
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * power:
            return m * power
    return 10 * power


class _CostScale:
    """Linear from 0, or logarithmic when the known costs span more than ``LOG_RATIO`` (a big logged model
    next to small candidates would squeeze the candidates into one pixel column)."""

    LOG_RATIO = 30.0

    def __init__(self, costs: Sequence[float], x0: float, x1: float) -> None:
        self.x0, self.x1 = x0, x1
        positive = [c for c in costs if c > 0]
        self.log = bool(positive) and len(positive) == len(costs) and max(positive) / min(positive) > self.LOG_RATIO
        if self.log:
            self.lo = 10 ** math.floor(math.log10(min(positive)))
            self.hi = 10 ** math.ceil(math.log10(max(positive)))
        else:
            top = max(costs, default=0.0) or 1.0
            self.step = _nice_step(top * 1.1)
            self.lo, self.hi = 0.0, self.step * math.ceil(top * 1.1 / self.step)

    def __call__(self, cost: float) -> float:
        if self.log:
            share = (math.log10(cost) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            share = (cost - self.lo) / (self.hi - self.lo)
        return self.x0 + share * (self.x1 - self.x0)

    def ticks(self) -> list[float]:
        if self.log:
            n = round(math.log10(self.hi / self.lo))
            return [self.lo * 10**i for i in range(n + 1)]
        n = round((self.hi - self.lo) / self.step)
        return [self.lo + i * self.step for i in range(n + 1)]


def accuracy_cost_chart(
    points: Sequence[ChartPoint],
    *,
    metric_label: str,
    currency: str = "USD",
    teacher_cost: float | None = None,
    teacher_value: float | None = None,
    threshold: float | None = None,
) -> str:
    """The metric (y, 0 to 1) against the cost per 1,000 requests (x) of every candidate and eval type."""
    width, height = 760, 396
    left, top, bottom = 64, 24, 340
    unknown = [p for p in points if p.cost is None]
    lane = 96 if unknown else 0
    right = width - 24 - lane
    known_costs = [p.cost for p in points if p.cost is not None]
    if teacher_cost is not None:
        known_costs.append(teacher_cost)
    scale = _CostScale(known_costs, left, right)

    def y(value: float) -> float:
        return bottom - max(0.0, min(1.0, value)) * (bottom - top)

    out = [
        f'<svg class="chart accuracy-cost" viewBox="0 0 {width} {height + 34}" role="img" '
        f'aria-label="{escape(metric_label)} against cost per 1,000 requests">',
        f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" class="plot"/>',
    ]
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        out.append(f'<line x1="{left}" x2="{right + lane}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>')
        out.append(f'<text x="{left - 8}" y="{y(v) + 4:.1f}" class="tick" text-anchor="end">{v:.2f}</text>')
    if known_costs:
        for t in scale.ticks():
            x = scale(t)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" class="grid"/>')
            out.append(
                f'<text x="{x:.1f}" y="{bottom + 18}" class="tick" text-anchor="middle">'
                f"{escape(fmt.money(t, currency))}</text>"
            )
    axis = "cost per 1,000 requests" + (" (log scale)" if scale.log else "")
    if not known_costs:
        axis += ": no price configured for any candidate"
    out.append(
        f'<text x="{(left + right) / 2:.1f}" y="{bottom + 40}" class="axis" text-anchor="middle">{escape(axis)}</text>'
    )
    out.append(
        f'<text x="16" y="{(top + bottom) / 2:.1f}" class="axis" text-anchor="middle" '
        f'transform="rotate(-90 16 {(top + bottom) / 2:.1f})">{escape(metric_label)}</text>'
    )
    if lane:
        lane_x = right + 12
        out.append(f'<rect x="{lane_x}" y="{top}" width="{lane - 12}" height="{bottom - top}" class="lane"/>')
        out.append(
            f'<text x="{lane_x + (lane - 12) / 2:.1f}" y="{bottom + 18}" class="tick" text-anchor="middle">'
            f"{fmt.UNKNOWN}</text>"
        )
    if threshold is not None:
        ty = y(threshold)
        out.append(f'<line x1="{left}" x2="{right + lane}" y1="{ty:.1f}" y2="{ty:.1f}" class="threshold"/>')
        out.append(
            f'<text x="{left + 6}" y="{ty - 6:.1f}" class="note" data-threshold="{_attr(threshold)}">'
            f"recommendation threshold {threshold:.2f}</text>"
        )
    if teacher_value is not None and teacher_cost is not None:
        tx, ty = scale(teacher_cost), y(teacher_value)
        out.append(
            f'<g class="teacher" data-cost="{_attr(teacher_cost)}" data-value="{_attr(teacher_value)}">'
            f"<title>logged model: {teacher_value:.3f} at {escape(fmt.money(teacher_cost, currency))} per 1,000</title>"
            f'<path d="M{tx - 7:.1f} {ty - 7:.1f}L{tx + 7:.1f} {ty + 7:.1f}M{tx + 7:.1f} {ty - 7:.1f}L{tx - 7:.1f} '
            f'{ty + 7:.1f}" class="teacher-mark"/>'
            f'<text x="{tx - 10:.1f}" y="{ty + 4:.1f}" class="note" text-anchor="end">logged model</text></g>'
        )
    candidates = list(dict.fromkeys(p.candidate for p in points))
    offsets = {t: (i - 1) * 7.0 for i, t in enumerate(EVAL_TYPES)}
    unknown_slot = {(p.candidate, p.eval_type): i for i, p in enumerate(unknown)}
    for p in points:
        color = _color(candidates.index(p.candidate))
        if p.cost is None:
            slots = max(len(unknown), 1)
            x = right + 12 + (lane - 12) * (unknown_slot[(p.candidate, p.eval_type)] + 0.5) / slots
        else:
            x = scale(p.cost) + offsets.get(p.eval_type, 0.0)
        label = f"{p.candidate} {_EVAL_LABELS.get(p.eval_type, p.eval_type)}"
        tip = (
            f"{label}: {p.mean:.3f} {fmt.interval(p.ci_low, p.ci_high)}, "
            f"{fmt.money(p.cost, currency)} per 1,000 requests"
        )
        out.append(
            f'<g class="point{" recommended" if p.recommended else ""}" data-candidate="{escape(p.candidate)}" '
            f'data-eval-type="{escape(p.eval_type)}" data-mean="{_attr(p.mean)}" data-ci-low="{_attr(p.ci_low)}" '
            f'data-ci-high="{_attr(p.ci_high)}" data-cost="{_attr(p.cost)}"><title>{escape(tip)}</title>'
        )
        if p.ci_low is not None and p.ci_high is not None:
            lo, hi = y(p.ci_low), y(p.ci_high)
            out.append(
                f'<path d="M{x:.1f} {lo:.1f}V{hi:.1f}M{x - 4:.1f} {lo:.1f}H{x + 4:.1f}M{x - 4:.1f} {hi:.1f}'
                f'H{x + 4:.1f}" stroke="{color}" class="errorbar"/>'
            )
        if p.recommended:
            out.append(f'<circle cx="{x:.1f}" cy="{y(p.mean):.1f}" r="11" class="halo"/>')
        out.append(_marker(p.eval_type, x, y(p.mean), color))
        out.append("</g>")
    # Legend: candidates by colour (first row), eval types by shape (second row).
    lx, ly = float(left), height + 6
    for i, name in enumerate(candidates):
        out.append(f'<circle cx="{lx + 5:.1f}" cy="{ly - 4}" r="5" fill="{_color(i)}"/>')
        out.append(f'<text x="{lx + 14:.1f}" y="{ly}" class="legend">{escape(name)}</text>')
        lx += 30 + 6.6 * len(name)
    lx, ly = float(left), height + 24
    for eval_type in EVAL_TYPES:
        out.append(_marker(eval_type, lx + 5, ly - 4, "#555", 4.5))
        label = _EVAL_LABELS[eval_type]
        out.append(f'<text x="{lx + 14:.1f}" y="{ly}" class="legend">{label}</text>')
        lx += 30 + 6.6 * len(label)
    if points and any(p.recommended for p in points):
        out.append(f'<circle cx="{lx + 5:.1f}" cy="{ly - 4}" r="7" class="halo"/>')
        out.append(f'<text x="{lx + 16:.1f}" y="{ly}" class="legend">recommended</text>')
    out.append("</svg>")
    return "".join(out)


def loss_chart(curve: Sequence[EpochPoint], best_epoch: int | None = None) -> str:
    """Training (solid) and validation (dashed) loss per epoch; the epoch kept ringed. Empty string when the
    curve has no loss."""
    losses = [v for e in curve for v in (e.train_loss, e.val_loss) if v is not None]
    if not losses:
        return ""
    width, height = 380, 236
    left, right, top, bottom = 52, width - 16, 16, height - 62
    epochs = [e.epoch for e in curve]
    e0, e1 = min(epochs), max(epochs)
    step = _nice_step(max(losses) * 1.1, 4)
    y_max = step * math.ceil(max(losses) * 1.1 / step)

    def x(epoch: int) -> float:
        return (left + right) / 2 if e1 == e0 else left + (epoch - e0) / (e1 - e0) * (right - left)

    def y(value: float) -> float:
        return bottom - value / y_max * (bottom - top)

    out = [
        f'<svg class="chart loss" viewBox="0 0 {width} {height}" role="img" aria-label="loss per epoch">',
        f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" class="plot"/>',
    ]
    for i in range(round(y_max / step) + 1):
        v = i * step
        out.append(f'<line x1="{left}" x2="{right}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>')
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" class="tick" text-anchor="end">{v:.2g}</text>')
    for epoch in epochs:
        out.append(f'<text x="{x(epoch):.1f}" y="{bottom + 16}" class="tick" text-anchor="middle">{epoch}</text>')
    out.append(f'<text x="{(left + right) / 2:.1f}" y="{bottom + 32}" class="axis" text-anchor="middle">epoch</text>')
    if best_epoch is not None and e0 <= best_epoch <= e1:
        bx = x(best_epoch)
        out.append(
            f'<line x1="{bx:.1f}" x2="{bx:.1f}" y1="{top}" y2="{bottom}" class="best" data-best="{best_epoch}"/>'
        )
        out.append(f'<text x="{bx - 4:.1f}" y="{top + 12}" class="note" text-anchor="end">kept</text>')
    for series, cls in (("train_loss", "train"), ("val_loss", "val")):
        pts = [(e.epoch, getattr(e, series)) for e in curve if getattr(e, series) is not None]
        if not pts:
            continue
        path = "".join(f"{'M' if i == 0 else 'L'}{x(ep):.1f} {y(v):.1f}" for i, (ep, v) in enumerate(pts))
        out.append(f'<path d="{path}" class="line {cls}"/>')
        for ep, v in pts:
            out.append(
                f'<circle cx="{x(ep):.1f}" cy="{y(v):.1f}" r="3" class="dot {cls}" data-epoch="{ep}" '
                f'data-loss="{_attr(v)}"><title>epoch {ep} {cls} loss {v:.4f}</title></circle>'
            )
    out.append(f'<path d="M{left + 8} {height - 6}h18" class="line train"/>')
    out.append(f'<text x="{left + 30}" y="{height - 2}" class="legend">training</text>')
    out.append(f'<path d="M{left + 100} {height - 6}h18" class="line val"/>')
    out.append(f'<text x="{left + 122}" y="{height - 2}" class="legend">validation</text>')
    out.append("</svg>")
    return "".join(out)


def funnel_chart(funnel: CurationFunnel) -> str:
    """A bar per curation step (records left, dropped), then the split into eval / train / validation."""
    rows = [(s.label, s.count, s.dropped) for s in funnel.steps]
    top_count = max([c for _, c, _ in rows] + [1])
    width, bar_x, bar_w, row_h = 760, 220, 380, 30
    height = row_h * (len(rows) + 1) + 24
    out = [f'<svg class="chart funnel" viewBox="0 0 {width} {height}" role="img" aria-label="curation funnel">']
    for i, (label, count, dropped) in enumerate(rows):
        y = 8 + i * row_h
        w = bar_w * count / top_count
        out.append(
            f'<g class="step" data-label="{escape(label)}" data-count="{count}" data-dropped="{dropped}">'
            f'<text x="{bar_x - 10}" y="{y + 16}" class="label" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{bar_x}" y="{y}" width="{max(w, 1):.1f}" height="{row_h - 8}" class="fbar"/>'
            f'<text x="{bar_x + w + 8:.1f}" y="{y + 16}" class="count">{count:,}'
            + (f' <tspan class="dropped">(-{dropped:,})</tspan>' if dropped else "")
            + "</text></g>"
        )
    y = 8 + len(rows) * row_h
    x = float(bar_x)
    out.append(f'<text x="{bar_x - 10}" y="{y + 16}" class="label" text-anchor="end">split</text>')
    for name, cls in (("eval", "eval"), ("train", "train"), ("val", "val")):
        n = funnel.split.get(name, 0)
        w = bar_w * (n / top_count) if top_count else 0
        if n:
            out.append(
                f'<g class="split" data-name="{name}" data-count="{n}"><title>{name}: {n:,}</title>'
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 8}" class="part {cls}"/></g>'
            )
        x += w
    legend = ", ".join(f"{name} {funnel.split.get(name, 0):,}" for name in ("eval", "train", "val"))
    out.append(f'<text x="{x + 8:.1f}" y="{y + 16}" class="count">{escape(legend)}</text>')
    out.append("</svg>")
    return "".join(out)
