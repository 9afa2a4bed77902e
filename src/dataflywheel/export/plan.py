"""What an export logs for one finished job, as a typed plan (pure: no I/O, no tracker client).

One run per job, with a nested run per candidate:

* **params** (the job run): the job's id, kind, workload and client, its candidates, its overrides flattened
  (``config.data_split_config.eval_size``), the dataset build (``dataset.build_id``,
  ``dataset.content_sha256``, per split file ``dataset.eval.sha256`` / ``.records`` / ``.bytes``, the seed and
  the settings the build used), and the words of the cost report and the recommendation. A candidate's run:
  its name, adapter and LoRA hyperparameters (``training.*``).
* **metrics**: every metric of every candidate and eval type with its interval, as
  ``<candidate>/<eval type>/<metric>/{mean,ci_low,ci_high,n}`` on the job's run and without the candidate
  prefix on the candidate's run (so candidates compare side by side), the judge score the same way,
  ``samples`` and ``errors``; cost (``.../cost/cost_per_1k``...), latency (``.../latency/p95_s``...),
  the teacher's cost, the traffic and the recommendation when the result has them
  (:mod:`dataflywheel.decision.schema`); a candidate's LoRA curve per epoch (``training/val_loss``, step = epoch).
* **artifacts** (the job run): the dataset manifest (``dataset/``), the result as ``result.json``, each eval's
  summary (``evals/<candidate>/<eval type>/summary.json``), each adapter folder (``adapters/<candidate>/``)
  and the HTML report (``report/``).

Names are made safe for MLflow (letters, digits, ``_ - . / : space``); values longer than MLflow keeps are
cut, with a warning in the plan.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from dataflywheel.decision.schema import CostReport, LatencyRow, Recommendation
from dataflywheel.export.inputs import JobFiles
from dataflywheel.jobs.records import CandidateRunDetail, JobDetail
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.results.model import Interval

__all__ = [
    "ArtifactPlan",
    "DocumentPlan",
    "MetricPoint",
    "RunPlan",
    "metric_key",
    "param_key",
    "plan_job_run",
]

PARAM_VALUE_MAX = 6000
"""The longest parameter value MLflow stores."""
TAG_VALUE_MAX = 8000
RESULT_DOCUMENT = "result.json"
STATS = ("mean", "ci_low", "ci_high", "n")
_UNSAFE = re.compile(r"[^\w.\- :]")


@dataclass(frozen=True)
class MetricPoint:
    key: str
    value: float
    step: int = 0


@dataclass(frozen=True)
class ArtifactPlan:
    """A local file or folder, logged under ``artifact_path`` in the run ("" is the run's root)."""

    source: Path
    artifact_path: str


@dataclass(frozen=True)
class DocumentPlan:
    """A JSON document written at log time (it exists nowhere on disk as such)."""

    name: str
    content: Mapping[str, Any]
    artifact_path: str = ""


@dataclass(frozen=True)
class RunPlan:
    name: str
    tags: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: tuple[MetricPoint, ...] = ()
    artifacts: tuple[ArtifactPlan, ...] = ()
    documents: tuple[DocumentPlan, ...] = ()
    children: tuple[RunPlan, ...] = ()
    warnings: tuple[str, ...] = ()
    """What could not be planned as is (a malformed result section, a value cut to MLflow's limit)."""


# ---- the result's shapes -----------------------------------------------------------------------------
class _Judge(BaseModel):
    model_config = ConfigDict(extra="ignore")
    score: Interval | None = None


class _EvalResult(BaseModel):
    """``result.candidates[c][eval_type]`` (per class and confusion stay in ``result.json``)."""

    model_config = ConfigDict(extra="ignore")
    metrics: dict[str, Interval] = {}
    judge: _Judge | None = None
    samples: int | None = None
    errors: int | None = None


_EVALS = TypeAdapter(dict[str, dict[str, _EvalResult]])
_LATENCY = TypeAdapter(list[LatencyRow])


# ---- names -------------------------------------------------------------------------------------------
def _parts(segments: Iterable[str]) -> list[str]:
    out = []
    for segment in segments:
        for part in str(segment).split("/"):
            cleaned = _UNSAFE.sub("_", part).strip()
            out.append("_" if cleaned in ("", ".", "..") else cleaned)
    return out


def metric_key(*segments: str) -> str:
    """``a/b/c``: slashes group metrics in MLflow's charts; each segment made safe."""
    return "/".join(_parts(segments))


def param_key(*segments: str) -> str:
    """``a.b.c`` (a segment's own slashes are kept, as a candidate ``org/model`` is one name)."""
    return ".".join(metric_key(s) for s in segments)


# ---- the plan ----------------------------------------------------------------------------------------
@dataclass
class _Builder:
    """One run's plan as it is filled in."""

    name: str
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: list[MetricPoint] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def param(self, key: str, value: Any) -> None:
        text = value if isinstance(value, str) else _scalar_text(value)
        if len(text) > PARAM_VALUE_MAX:
            self.warnings.append(f"param {key} cut to {PARAM_VALUE_MAX} characters (MLflow's limit)")
            text = text[: PARAM_VALUE_MAX - 1] + "…"
        self.params[key] = text

    def tag(self, key: str, value: str) -> None:
        self.tags[key] = value if len(value) <= TAG_VALUE_MAX else value[: TAG_VALUE_MAX - 1] + "…"

    def metric(self, key: str, value: float | int | None, step: int = 0) -> None:
        if value is not None and not isinstance(value, bool):
            self.metrics.append(MetricPoint(key, float(value), step))

    def flat_params(self, prefix: tuple[str, ...], value: Any) -> None:
        """Nested dicts as dotted keys; anything else (lists too) as one value."""
        if isinstance(value, Mapping):
            for k, v in value.items():
                self.flat_params((*prefix, str(k)), v)
        else:
            self.param(param_key(*prefix), value)

    def numbers_and_words(self, prefix: tuple[str, ...], data: Mapping[str, Any], skip: Iterable[str] = ()) -> None:
        """A model's dump: numbers as metrics ``prefix/key``, words (text, flags) as params ``prefix.key``;
        nested objects recursively, lists and None left out."""
        for k, v in data.items():
            if k in skip or v is None or isinstance(v, list):
                continue
            if isinstance(v, Mapping):
                self.numbers_and_words((*prefix, k), v)
            elif isinstance(v, int | float) and not isinstance(v, bool):
                self.metric(metric_key(*prefix, k), v)
            else:
                self.param(param_key(*prefix, k), v)

    def build(self, **more: Any) -> RunPlan:
        return RunPlan(
            name=self.name,
            tags=dict(self.tags),
            params=dict(self.params),
            metrics=tuple(self.metrics),
            warnings=tuple(self.warnings),
            **more,
        )


def _scalar_text(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    return orjson.dumps(value, default=str).decode()


def _eval_metrics(run: _Builder, prefix: tuple[str, ...], evals: Mapping[str, _EvalResult]) -> None:
    for eval_type, ev in evals.items():
        for name, interval in ev.metrics.items():
            _interval(run, (*prefix, eval_type, name), interval)
        if ev.judge is not None and ev.judge.score is not None:
            _interval(run, (*prefix, eval_type, "judge", "score"), ev.judge.score)
        run.metric(metric_key(*prefix, eval_type, "samples"), ev.samples)
        run.metric(metric_key(*prefix, eval_type, "errors"), ev.errors)


def _interval(run: _Builder, prefix: tuple[str, ...], interval: Interval) -> None:
    for stat in STATS:
        run.metric(metric_key(*prefix, stat), getattr(interval, stat))


def _parse(run: _Builder, what: str, parse: Any, value: Any) -> Any:
    """``parse(value)``, or None with a warning when the result's section does not have the documented shape."""
    try:
        return parse(value)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"])
        run.warnings.append(f"result.{what} left out: {where}: {problem['msg']}")
        return None


def plan_job_run(detail: JobDetail, files: JobFiles, status: str | None = None) -> RunPlan:
    """The run of a finished job, with one nested run per candidate. ``status`` is recorded as the job's
    (default: the stored one; the driver exports just before it marks the job completed)."""
    job = detail.job
    result: JsonObject = {k: v for k, v in (job.result or {}).items() if k != "mlflow"}
    run = _Builder(f"{job.workload_id} {job.id[:8]}")
    run.warnings.extend(f"{what} not found: left out" for what in files.missing)
    job_status = status or job.status.value
    candidates = [c.candidate for c in detail.candidates] or list((job.config or {}).get("candidates") or [])
    for key, value in {
        "flywheel.job_id": job.id,
        "flywheel.job_kind": job.kind.value,
        "flywheel.job_status": job_status,
        "flywheel.workload_id": job.workload_id,
        "flywheel.client_id": job.client_id,
    }.items():
        run.tag(key, value)
    run.param("job.id", job.id)
    run.param("job.kind", job.kind.value)
    run.param("workload_id", job.workload_id)
    run.param("client_id", job.client_id)
    run.param("candidates", ",".join(candidates))
    run.param("num_records", job.num_records)
    run.flat_params(("config",), {k: v for k, v in (job.config or {}).items() if k != "candidates"})
    artifacts: list[ArtifactPlan] = []
    if files.dataset is not None:
        ds = files.dataset
        run.param("dataset.build_id", ds.build_id)
        for f in ds.files:
            stem = f.name.removesuffix(".jsonl")
            run.param(param_key("dataset", stem, "sha256"), f.sha256)
            if f.records is not None:
                run.param(param_key("dataset", stem, "records"), f.records)
            if f.bytes is not None:
                run.param(param_key("dataset", stem, "bytes"), f.bytes)
        for key in ("content_sha256", "seed", "workload_type", "created_at"):
            if ds.manifest.get(key) is not None:
                run.param(param_key("dataset", key), ds.manifest[key])
        run.flat_params(("dataset", "source"), ds.manifest.get("source") or {})
        run.flat_params(("dataset", "settings"), ds.manifest.get("settings") or {})
        if ds.manifest_path is not None:
            artifacts.append(ArtifactPlan(ds.manifest_path, "dataset"))

    evals = _parse(run, "candidates", _EVALS.validate_python, result.get("candidates") or {}) or {}
    for candidate, per_type in evals.items():
        _eval_metrics(run, (candidate,), per_type)

    cost = _parse(run, "cost", CostReport.model_validate, result["cost"]) if "cost" in result else None
    latency = _parse(run, "latency", _LATENCY.validate_python, result["latency"]) if "latency" in result else None
    recommendation = (
        _parse(run, "recommendation", Recommendation.model_validate, result["recommendation"])
        if "recommendation" in result
        else None
    )
    row_keys = {"candidate", "eval_type"}
    if cost is not None:
        run.param("cost.currency", cost.currency)
        run.numbers_and_words(("teacher",), cost.teacher.model_dump(mode="json"))
        run.numbers_and_words(("traffic",), cost.traffic.model_dump(mode="json"))
        if cost.judge is not None:
            run.numbers_and_words(("judge_cost",), cost.judge.model_dump(mode="json"))
        for row in cost.evals:
            run.numbers_and_words((row.candidate, row.eval_type, "cost"), row.model_dump(mode="json"), row_keys)
    for lat in latency or []:
        run.numbers_and_words((lat.candidate, lat.eval_type, "latency"), lat.model_dump(mode="json"), row_keys)
    if recommendation is not None:
        run.numbers_and_words(("recommendation",), recommendation.model_dump(mode="json"))
        run.tag("flywheel.recommendation", recommendation.status.value)
        if recommendation.candidate:
            run.tag("flywheel.recommended_candidate", recommendation.candidate)
        run.tag("mlflow.note.content", recommendation.sentence)  # the run's description in MLflow's UI

    for (candidate, eval_type), summary in sorted(files.eval_summaries.items()):
        artifacts.append(ArtifactPlan(summary, metric_key("evals", candidate, eval_type)))
    for candidate, folder in sorted(files.adapters.items()):
        artifacts.append(ArtifactPlan(folder, metric_key("adapters", candidate)))
    if files.report is not None:
        artifacts.append(ArtifactPlan(files.report, "report"))

    children = tuple(
        _candidate_run(c, job.id, evals.get(c.candidate) or {}, result, cost, latency) for c in detail.candidates
    )
    return run.build(
        artifacts=tuple(artifacts),
        documents=(DocumentPlan(RESULT_DOCUMENT, result),),
        children=children,
    )


def _candidate_run(
    c: CandidateRunDetail,
    job_id: str,
    evals: Mapping[str, _EvalResult],
    result: Mapping[str, Any],
    cost: CostReport | None,
    latency: list[LatencyRow] | None,
) -> RunPlan:
    run = _Builder(c.candidate)
    run.tag("flywheel.job_id", job_id)
    run.tag("flywheel.candidate", c.candidate)
    run.tag("flywheel.candidate_stage", c.stage.value)
    run.param("candidate", c.candidate)
    run.param("eval_types", ",".join(evals))
    _eval_metrics(run, (), evals)
    row_keys = {"candidate", "eval_type"}
    for row in cost.evals if cost is not None else []:
        if row.candidate == c.candidate:
            run.numbers_and_words((row.eval_type, "cost"), row.model_dump(mode="json"), row_keys)
    for lat in latency or []:
        if lat.candidate == c.candidate:
            run.numbers_and_words((lat.eval_type, "latency"), lat.model_dump(mode="json"), row_keys)
    if c.customization is not None and c.customization.adapter_name:
        run.param("adapter_name", c.customization.adapter_name)
    training = (result.get("training") or {}).get(c.candidate)
    if isinstance(training, Mapping):
        _training(run, training)
    return run.build()


def _training(run: _Builder, summary: Mapping[str, Any]) -> None:
    """A LoRA run's summary (:func:`dataflywheel.training.report.training_summary`): its recipe and
    hyperparameters as params, its curve as metrics per epoch."""
    if summary.get("recipe") is not None:
        run.param("training.recipe", summary["recipe"])
    if summary.get("class_balance") is not None:
        run.param("training.class_balance", summary["class_balance"])
    run.flat_params(("training",), summary.get("hyperparameters") or {})
    for point in summary.get("curve") or []:
        epoch = point.get("epoch")
        if not isinstance(epoch, int):
            continue
        for name, value in point.items():
            if name != "epoch" and isinstance(value, int | float):
                run.metric(metric_key("training", name), value, step=epoch)
    run.metric(metric_key("training", "best_epoch"), summary.get("best_epoch"))
