"""What the job page and the report show, as typed values built from the job store's records (pure: records
in, view models out; the templates only lay them out). The jobs list is :mod:`.jobs_list`, the stage timeline
:mod:`.timeline`.

* :func:`job_page`: one job: its stage timeline, the results table (every metric with its interval, cost
  and latency), the accuracy-vs-cost chart, the confusion of logged tool against the candidate's outcome, the
  LoRA loss curves, the curation funnel and the recommendation.
* :func:`samples_view`: a page of one eval's samples, each with its differences marked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup

from dataflywheel.api.schemas import job_progress
from dataflywheel.decision.recommend import METRIC_NAMES
from dataflywheel.decision.schema import Recommendation, RecommendationStatus, eval_result_key, eval_type_name
from dataflywheel.evaluation.breakdown import PredictedOutcome
from dataflywheel.evaluation.metrics import METRICS
from dataflywheel.jobs.records import JobDetail, JobRecord, StageRecord
from dataflywheel.jobs.status import JobKind, JobStatus
from dataflywheel.records.chat import NO_TOOL
from dataflywheel.results.funnel import CurationFunnel
from dataflywheel.results.model import EVAL_TYPES, EvalResult, Interval, JobResult, TrainingSummary, parse_result
from dataflywheel.results.samples import Sample, SamplesPage, Verdict
from dataflywheel.web import charts
from dataflywheel.web import format as fmt
from dataflywheel.web.diff import AnswerDiff, answer_diff
from dataflywheel.web.timeline import TimelineRow, candidates_of, timeline

__all__ = [
    "METRIC_LABELS",
    "METRIC_TITLES",
    "ConfusionView",
    "JobPage",
    "ResultRow",
    "SampleItem",
    "SamplesView",
    "job_page",
    "samples_view",
]

METRIC_LABELS: dict[str, str] = {
    "function_name_accuracy": "tool name",
    "function_name_and_args_accuracy": "exact call",
    "required_arguments_accuracy": "required args",
    "argument_similarity": "arg similarity",
    "call_precision": "call precision",
    "call_recall": "call recall",
    "embedding_similarity": "text similarity",
    "judge": "judge",
}
"""Short column names of the metrics."""
METRIC_TITLES: dict[str, str] = {**METRIC_NAMES, "function_name_accuracy": "tool-name accuracy", "judge": "judge score"}
"""What each metric is called in a sentence, a tooltip or a chart's axis."""
EVAL_LABELS = {"base-eval": "base", "icl-eval": "ICL", "customized-eval": "customized"}
VERDICT_LABELS = {
    Verdict.ERROR: "request failed",
    Verdict.UNPARSABLE: "unparsable",
    Verdict.WRONG_TOOL: "wrong tool",
    Verdict.WRONG_ARGUMENTS: "wrong arguments",
    Verdict.CORRECT: "correct",
}
CHART_METRIC = "function_name_accuracy"
"""The chart's metric when the result names no recommendation rule."""


# ---- results ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResultRow:
    candidate: str
    eval_type: str
    metrics: dict[str, Interval]
    samples: int
    errors: int
    cost: str
    """Cost per 1,000 requests: money, "unknown" (no price) or "not computed" (no cost in the result)."""
    saving: str
    monthly: str
    p50: str
    p95: str
    recommended: bool


@dataclass(frozen=True)
class TeacherRow:
    model: str
    cost: str
    monthly: str
    estimated: bool


@dataclass(frozen=True)
class ConfusionView:
    candidate: str
    eval_type: str
    rows: list[str]
    columns: list[str]
    counts: dict[str, dict[str, int]]
    open: bool = False

    def count(self, ref: str, pred: str) -> int:
        return self.counts.get(ref, {}).get(pred, 0)

    def row_total(self, ref: str) -> int:
        return sum(self.counts.get(ref, {}).values())

    @property
    def total(self) -> int:
        return sum(self.row_total(ref) for ref in self.rows)

    @property
    def right(self) -> int:
        """Samples whose outcome is the logged tool (a text answer where the logged one was text)."""
        return sum(n for ref, row in self.counts.items() for pred, n in row.items() if self.correct(ref, pred))

    @staticmethod
    def correct(ref: str, pred: str) -> bool:
        return pred == ref or (ref == NO_TOOL and pred == PredictedOutcome.TEXT.value)

    def shade(self, ref: str, pred: str) -> float:
        """The cell's share of its row (0 to 1): how strongly it is coloured."""
        total = self.row_total(ref)
        return round(self.count(ref, pred) / total, 3) if total else 0.0


@dataclass(frozen=True)
class TrainingView:
    candidate: str
    summary: TrainingSummary
    chart: Markup
    line: str


@dataclass(frozen=True)
class RecommendationView:
    computed: bool
    sentence: str
    advice: str | None = None
    status: str | None = None
    candidate: str | None = None
    eval_type: str | None = None


@dataclass(frozen=True)
class SampleItem:
    sample: Sample
    diff: AnswerDiff

    @property
    def request(self) -> str:
        """The last user turn of the request (what the person asked)."""
        for message in reversed(self.sample.conversation):
            if message.get("role") == "user":
                content = message.get("content")
                return content if isinstance(content, str) else str(content or "")
        return ""


@dataclass(frozen=True)
class SamplesView:
    candidates: list[str]
    eval_types: list[str]
    candidate: str
    eval_type: str
    verdict: Verdict | None
    page: SamplesPage | None
    items: list[SampleItem]
    message: str | None = None
    """Why there is nothing to show (no samples stored for this eval)."""

    @property
    def verdicts(self) -> list[tuple[str, str, int]]:
        counts = self.page.verdicts if self.page else {}
        return [(v.value, VERDICT_LABELS[v], counts.get(v.value, 0)) for v in Verdict]

    @property
    def previous_offset(self) -> int | None:
        if self.page is None or self.page.offset == 0:
            return None
        return max(0, self.page.offset - self.page.limit)

    @property
    def next_offset(self) -> int | None:
        if self.page is None or self.page.offset + self.page.limit >= self.page.count:
            return None
        return self.page.offset + self.page.limit


@dataclass(frozen=True)
class JobPage:
    job: JobRecord
    progress: float
    eta_s: float | None
    candidates: list[str]
    timeline: list[TimelineRow]
    result: JobResult | None
    rows: list[ResultRow]
    metrics: list[str]
    teacher: TeacherRow | None
    currency: str
    chart: Markup
    chart_metric: str
    confusions: list[ConfusionView]
    trainings: list[TrainingView]
    funnel: CurationFunnel | None
    funnel_chart: Markup
    recommendation: RecommendationView
    samples: SamplesView | None
    generated_at: datetime
    auth: bool = False

    @property
    def terminal(self) -> bool:
        return self.job.status.terminal

    @property
    def can_cancel(self) -> bool:
        return self.job.status in (JobStatus.PENDING, JobStatus.RUNNING)

    @property
    def cost_computed(self) -> bool:
        return self.result is not None and self.result.cost is not None

    @property
    def raw_result(self) -> Mapping[str, Any] | None:
        """A feedback job's result (another shape than a flywheel job's), shown as is."""
        return self.job.result if self.job.kind is JobKind.FEEDBACK else None


def _metric_names(result: JobResult) -> list[str]:
    order = [*METRICS, "embedding_similarity", "judge"]
    present = {name for _, _, ev in result.evals() for name, agg in _metrics_of(ev).items() if agg.n}
    return [m for m in order if m in present] + sorted(present - set(order))


def _metrics_of(ev: EvalResult) -> dict[str, Interval]:
    metrics = dict(ev.metrics)
    score = (ev.judge or {}).get("score")
    if isinstance(score, Mapping):
        metrics["judge"] = Interval.model_validate(score)
    return metrics


def _is_recommended(rec: Recommendation | None, candidate: str, eval_type: str) -> bool:
    return (
        rec is not None
        and rec.status is RecommendationStatus.RECOMMENDED
        and rec.candidate == candidate
        and rec.eval_type == eval_type_name(eval_type)
    )


def result_rows(result: JobResult) -> list[ResultRow]:
    """One row per candidate and eval type: every metric, the sample count, cost and latency."""
    currency = result.cost.currency if result.cost else "USD"
    rows = []
    for candidate, eval_type, ev in result.evals():
        cost = result.cost_of(candidate, eval_type)
        latency = result.latency_of(candidate, eval_type)
        if result.cost is None:
            cost_text = saving = monthly = fmt.NOT_COMPUTED
        elif cost is None:
            cost_text, saving, monthly = fmt.UNKNOWN, "-", "-"
        else:
            cost_text = fmt.money(cost.cost_per_1k, currency)
            saving = "-" if cost.saving_vs_teacher is None else fmt.percent(cost.saving_vs_teacher)
            monthly = fmt.money(cost.monthly_cost, currency) if cost.cost_per_1k is not None else fmt.UNKNOWN
        if latency is not None:
            p50, p95 = fmt.seconds(latency.p50_s), fmt.seconds(latency.p95_s)
        elif cost is not None:
            p50, p95 = fmt.seconds(cost.latency_p50_s), fmt.seconds(cost.latency_p95_s)
        elif result.latency is None and result.cost is None:
            p50 = p95 = fmt.NOT_COMPUTED
        else:
            p50 = p95 = "-"
        rows.append(
            ResultRow(
                candidate=candidate,
                eval_type=eval_type,
                metrics=_metrics_of(ev),
                samples=ev.samples,
                errors=ev.errors,
                cost=cost_text,
                saving=saving,
                monthly=monthly,
                p50=p50,
                p95=p95,
                recommended=_is_recommended(result.recommendation, candidate, eval_type),
            )
        )
    return rows


def _teacher_row(result: JobResult) -> TeacherRow | None:
    if result.cost is None:
        return None
    t = result.cost.teacher
    return TeacherRow(
        model=t.model or "the logged model",
        cost=fmt.money(t.cost_per_1k, result.cost.currency),
        monthly=fmt.money(t.monthly_cost, result.cost.currency) if t.cost_per_1k is not None else fmt.UNKNOWN,
        estimated=t.estimated,
    )


def chart_of(result: JobResult) -> tuple[Markup, str]:
    """The accuracy-vs-cost chart and the metric it plots (the recommendation rule's, else tool-name
    accuracy)."""
    rec = result.recommendation
    metric = rec.rule.metric if rec is not None else CHART_METRIC
    points = []
    for candidate, eval_type, ev in result.evals():
        agg = _metrics_of(ev).get(metric)
        if agg is None or agg.mean is None:
            continue
        cost = result.cost_of(candidate, eval_type)
        points.append(
            charts.ChartPoint(
                candidate=candidate,
                eval_type=eval_type,
                mean=agg.mean,
                ci_low=agg.ci_low,
                ci_high=agg.ci_high,
                cost=cost.cost_per_1k if cost is not None else None,
                recommended=_is_recommended(rec, candidate, eval_type),
            )
        )
    if not points:
        return Markup(""), metric
    svg = charts.accuracy_cost_chart(
        points,
        metric_label=METRIC_TITLES.get(metric, metric),
        currency=result.cost.currency if result.cost else "USD",
        teacher_cost=result.cost.teacher.cost_per_1k if result.cost else None,
        teacher_value=rec.rule.teacher_value if rec is not None else 1.0,
        threshold=rec.rule.min_ratio * rec.rule.teacher_value if rec is not None else None,
    )
    return Markup(svg), metric


def confusion_views(result: JobResult) -> list[ConfusionView]:
    """A confusion table per candidate and eval type: logged tool (rows) against the candidate's outcome
    (columns: the tools in row order, so right answers run down the diagonal, then other tools, then a text
    answer, an unknown tool, no call, and failed requests when there were any)."""
    rec = result.recommendation
    views = []
    for candidate, eval_type, ev in result.evals():
        if not ev.confusion:
            continue
        rows = list(ev.confusion)
        seen = {p for row in ev.confusion.values() for p in row}
        columns = [PredictedOutcome.TEXT.value if r == NO_TOOL else r for r in rows]
        outcomes = {o.value for o in PredictedOutcome}
        columns += sorted(p for p in seen if p not in columns and p not in outcomes)
        for fixed in (PredictedOutcome.TEXT, PredictedOutcome.UNKNOWN_TOOL, PredictedOutcome.NO_CALL):
            if fixed.value not in columns:
                columns.append(fixed.value)
        if PredictedOutcome.ERROR.value in seen:
            columns.append(PredictedOutcome.ERROR.value)
        views.append(ConfusionView(candidate, eval_type, rows, columns, ev.confusion))
    if views:
        focus = next((i for i, v in enumerate(views) if _is_recommended(rec, v.candidate, v.eval_type)), len(views) - 1)
        views[focus] = replace(views[focus], open=True)
    return views


def training_views(result: JobResult) -> list[TrainingView]:
    views = []
    for candidate, summary in result.training.items():
        hp = summary.hyperparameters
        parts = [f"recipe {summary.recipe or '?'}"]
        if hp:
            parts.append(
                f"learning rate {hp.get('learning_rate')}, rank {hp.get('adapter_dim')}, batch {hp.get('batch_size')}, "
                f"{len(summary.curve)} of {hp.get('epochs')} epochs"
            )
        if summary.best_epoch:
            parts.append(f"kept epoch {summary.best_epoch}" + (" (stopped early)" if summary.stopped_early else ""))
        chart = charts.loss_chart(summary.curve, summary.best_epoch)
        views.append(TrainingView(candidate, summary, Markup(chart), "; ".join(parts)))
    return views


def recommendation_view(result: JobResult | None) -> RecommendationView:
    if result is None:
        return RecommendationView(False, "The recommendation comes with the result, when the job completes.")
    rec = result.recommendation
    if rec is None:
        return RecommendationView(False, f"Recommendation: {fmt.NOT_COMPUTED} for this job.")
    key = eval_result_key(rec.eval_type) if rec.eval_type else None
    return RecommendationView(True, rec.sentence, rec.advice, rec.status.value, rec.candidate, key)


def job_page(
    detail: JobDetail,
    stages: Sequence[StageRecord],
    *,
    funnel: CurationFunnel | None = None,
    samples: SamplesView | None = None,
    now: datetime | None = None,
    auth: bool = False,
    customizable: Mapping[str, bool] | None = None,
) -> JobPage:
    """Everything the job page (and the report) shows about ``detail`` (``customizable``: which candidates get
    LoRA stages, as the driver plans them)."""
    now = now or datetime.now(UTC)
    job = detail.job
    progress, eta = job_progress(detail)
    result = parse_result(job.result) if job.kind is JobKind.FLYWHEEL else None
    chart, metric = chart_of(result) if result is not None else (Markup(""), CHART_METRIC)
    return JobPage(
        job=job,
        progress=progress,
        eta_s=eta,
        candidates=candidates_of(detail),
        timeline=timeline(detail, stages, now, customizable),
        result=result,
        rows=result_rows(result) if result is not None else [],
        metrics=_metric_names(result) if result is not None else [],
        teacher=_teacher_row(result) if result is not None else None,
        currency=result.cost.currency if result is not None and result.cost else "USD",
        chart=chart,
        chart_metric=metric,
        confusions=confusion_views(result) if result is not None else [],
        trainings=training_views(result) if result is not None else [],
        funnel=funnel,
        funnel_chart=Markup(charts.funnel_chart(funnel)) if funnel is not None else Markup(""),
        recommendation=recommendation_view(result),
        samples=samples,
        generated_at=now,
        auth=auth,
    )


def samples_view(
    candidates: Sequence[str],
    eval_types: Sequence[str],
    candidate: str,
    eval_type: str,
    verdict: Verdict | None,
    page: SamplesPage | None,
    message: str | None = None,
) -> SamplesView:
    """The sample browser: the chosen eval's page of samples, each with its differences marked."""
    items = [SampleItem(s, answer_diff(s.reference, s.prediction)) for s in page.data] if page else []
    return SamplesView(
        candidates=list(candidates),
        eval_types=[t for t in EVAL_TYPES if t in eval_types] + [t for t in eval_types if t not in EVAL_TYPES],
        candidate=candidate,
        eval_type=eval_type,
        verdict=verdict,
        page=page,
        items=items,
        message=message,
    )
