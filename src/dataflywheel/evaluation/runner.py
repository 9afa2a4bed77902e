"""The eval runner: send each eval record's request to a model, score the answer, store every sample.

One runner serves the three eval types (``base-eval``, ``icl-eval``, ``customized-eval``): they differ in
the dataset (eval or ICL) and in the model (base or adapter), never in how they are run or scored.

* Bounded concurrency (``concurrency`` requests in flight), a progress callback with percent and ETA,
  cancellation between requests (a ``threading.Event``; requests in flight finish, none start).
* Resumable: every scored sample is appended to ``samples.jsonl`` in the eval's folder as soon as it is
  done; a restarted eval skips the record ids already there.
* A failed request is recorded on its sample (``error``), not fatal, unless more than ``max_error_rate`` of
  the samples fail (checked once ``min_samples_for_error_rate`` are done): then :class:`EvalError`.
* ``summary.json`` holds every metric's mean with a bootstrap 95% interval and its sample count, the same
  per reference class (``per_class``), and the counts of reference class against predicted outcome
  (``confusion``; see :mod:`.breakdown`). Each stored sample keeps its ``predicted_outcome``.
* Text answers get ``embedding_similarity`` when the config has an embedder; an embedder that fails is
  reported once (a warning) and the metric is left out, the eval goes on.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypedDict

import orjson

from dataflywheel.asyncio_util import run_async as run_async  # re-exported for the workflow's old import
from dataflywheel.errors import FlywheelError
from dataflywheel.evaluation.breakdown import (
    ClassMetrics,
    Confusion,
    PredictedOutcome,
    confusion,
    per_class_metrics,
    predicted_outcome,
)
from dataflywheel.evaluation.judge import Judge
from dataflywheel.evaluation.metrics import METRICS, SUMMARY_METRICS, score_sample
from dataflywheel.evaluation.stats import AggregateDict, aggregate, quantile
from dataflywheel.icl.embedders import Embedder
from dataflywheel.models.types import ChatRequest, ChatResult, SamplingParams
from dataflywheel.progress import Progress
from dataflywheel.records.chat import (
    NO_TOOL,
    WireMessage,
    WorkloadType,
    message_text,
    response_message,
    tool_name,
)
from dataflywheel.records.jsonl_file import read_json_lines
from dataflywheel.records.jsonvalue import JsonObject, JsonValue

ChatFn = Callable[[ChatRequest], Awaitable[ChatResult]]
"""``await chat(request)``: the model under evaluation (an endpoint client, a local engine, ...)."""
ProgressFn = Callable[["EvalProgress"], None]
"""The eval's progress callback: a :data:`dataflywheel.progress.ProgressFn` that gets :class:`EvalProgress`."""

logger = logging.getLogger(__name__)

SAMPLES_FILE = "samples.jsonl"
SUMMARY_FILE = "summary.json"


class EvalType(StrEnum):
    BASE = "base-eval"
    ICL = "icl-eval"
    CUSTOMIZED = "customized-eval"


class EvalError(FlywheelError):
    """An eval could not run or had too many failed requests."""


class EvalCancelled(FlywheelError):
    """The eval was cancelled; the samples done so far are stored."""


@dataclass(frozen=True, kw_only=True)
class EvalProgress(Progress):
    """An eval's progress (:class:`~dataflywheel.progress.Progress`, stage ``eval``, unit ``samples``), with
    the failed requests so far. Sent after every scored sample."""

    stage: str = "eval"
    unit: str = "samples"
    total: int = 0
    errors: int = 0
    """Samples whose request failed (they count as done)."""

    @classmethod
    def at(cls, done: int, total: int, errors: int, elapsed_s: float) -> EvalProgress:
        """The progress after ``done`` of ``total`` samples, the ETA extrapolated from the pace so far."""
        eta = elapsed_s / done * (total - done) if done else None
        return cls(done=done, total=total, errors=errors, elapsed_s=elapsed_s, eta_s=eta)

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0


@dataclass
class EvalConfig:
    eval_type: EvalType
    model: str
    concurrency: int = 8
    max_tokens: int = 256
    temperature: float = 0.0
    max_error_rate: float = 0.5
    min_samples_for_error_rate: int = 10
    embedder: Embedder | None = None
    """For text answers: cosine similarity of reference and prediction embeddings, no judge needed."""


class JudgeSummary(TypedDict, total=False):
    """The judge's part of an eval summary (empty when no sample was judged)."""

    score: AggregateDict
    parse_failures: int
    parse_failure_examples: list[dict[str, str]]
    request_errors: int
    unscored: int
    model: str | None
    prompt_version: str | None
    prompt_tokens: int
    completion_tokens: int


class StoredSample(TypedDict):
    """One line of ``samples.jsonl``: a record's request answered and scored."""

    record_id: str
    index: int
    eval_type: str
    reference_class: str
    predicted_outcome: str
    reference: WireMessage
    """The logged (big) model's answer."""
    prediction: Mapping[str, object] | None
    """The candidate's answer (:attr:`ChatResult.message`); None when the request failed."""
    raw_text: str | None
    scores: dict[str, float | None]
    flags: list[str]
    judge: JsonObject | None
    latency_s: float | None
    usage: dict[str, int] | None
    error: str | None


@dataclass
class EvalSummary:
    """An eval's result, as :func:`summarize` computes it and ``summary.json`` stores it (:meth:`to_dict`)."""

    eval_type: str
    model: str
    workload_type: str
    samples: int
    errors: int
    metrics: dict[str, AggregateDict]
    judge: JudgeSummary = field(default_factory=lambda: JudgeSummary())
    wall_s: float = 0.0
    usage: dict[str, int] = field(default_factory=dict)
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    cancelled: bool = False
    per_class: dict[str, ClassMetrics] = field(default_factory=dict)
    """Per reference class: sample count, errors, every metric's aggregate."""
    confusion: Confusion = field(default_factory=Confusion)
    """Reference class -> predicted outcome -> samples."""

    def to_dict(self) -> JsonObject:
        """The summary as stored (``summary.json``): every field in order, ``per_class`` and ``confusion`` in
        their stored form."""
        stored: JsonObject = asdict(self) | {
            "per_class": {label: c.to_dict() for label, c in self.per_class.items()},
            "confusion": self.confusion.to_dict(),
        }
        return stored


def load_dataset(path: Path) -> list[dict[str, Any]]:
    """Eval records (log records with ``record_id``) from a JSONL file."""
    rows: list[dict[str, Any]] = []
    for line_no, row in read_json_lines(path, lambda n, msg: EvalError(f"{path}: line {n}: not valid JSON ({msg})")):
        if not isinstance(row, dict) or "request" not in row or "response" not in row:
            raise EvalError(f"{path}: line {line_no}: not an eval record (needs request and response)")
        rows.append(row)
    return rows


def _record_id(row: Mapping[str, object], index: int) -> str:
    return str(row.get("record_id") or f"row-{index}")


def _request(row: Mapping[str, object]) -> Mapping[str, Any]:
    """The request of an eval record (:func:`load_dataset` checked that it has one)."""
    request = row["request"]
    if not isinstance(request, Mapping):
        raise EvalError(f"eval record {row.get('record_id')}: request is not an object")
    return request


def _request_of(row: Mapping[str, object], config: EvalConfig) -> ChatRequest:
    request = _request(row)
    return ChatRequest(
        messages=request["messages"],
        tools=request.get("tools") or None,
        tool_choice=request.get("tool_choice"),
        sampling=SamplingParams(max_tokens=config.max_tokens, temperature=config.temperature),
    )


def _done_ids(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    done = set()
    with path.open("rb") as f:
        for line in f:
            try:
                done.add(orjson.loads(line)["record_id"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue  # a line torn by a crash: that sample is redone
    return done


async def run_eval(
    rows: Sequence[Mapping[str, object]],
    chat: ChatFn,
    out_dir: Path,
    config: EvalConfig,
    *,
    judge: Judge | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> EvalSummary:
    """Evaluate ``rows`` with ``chat``; store samples and the summary under ``out_dir``; return the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    samples_path = out_dir / SAMPLES_FILE
    done = _done_ids(samples_path)
    todo = [(i, r) for i, r in enumerate(rows) if _record_id(r, i) not in done]
    total = len(rows)
    counts = {"done": len(rows) - len(todo), "errors": 0}
    started = time.perf_counter()
    lock = asyncio.Lock()
    semaphore = asyncio.Semaphore(max(1, config.concurrency))
    sink = samples_path.open("ab")
    failure: list[EvalError] = []
    similarity = _TextSimilarity(config.embedder) if config.embedder is not None else None

    async def one(index: int, row: Mapping[str, object]) -> None:
        async with semaphore:
            if (cancel is not None and cancel.is_set()) or failure:
                return
            sample = await _evaluate_row(index, row, chat, config, judge, similarity)
        async with lock:
            sink.write(orjson.dumps(sample) + b"\n")
            sink.flush()
            counts["done"] += 1
            counts["errors"] += sample["error"] is not None
            n_new = counts["done"] - (total - len(todo))
            if (
                n_new >= config.min_samples_for_error_rate
                and counts["errors"] / n_new > config.max_error_rate
                and not failure
            ):
                failure.append(
                    EvalError(
                        f"{counts['errors']} of {n_new} requests to {config.model} failed "
                        f"(more than {config.max_error_rate:.0%}); last error: {sample['error']}"
                    )
                )
            if progress:
                progress(EvalProgress.at(counts["done"], total, counts["errors"], time.perf_counter() - started))

    try:
        await asyncio.gather(*(one(i, r) for i, r in todo))
    finally:
        sink.close()
    if failure:
        raise failure[0]
    summary = summarize(out_dir, config, wall_s=time.perf_counter() - started, rows=rows)
    summary.cancelled = cancel is not None and cancel.is_set() and summary.samples < total
    (out_dir / SUMMARY_FILE).write_bytes(orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2))
    if summary.cancelled:
        raise EvalCancelled(f"eval cancelled after {summary.samples} of {total} samples")
    return summary


class _TextSimilarity:
    """``embedding_similarity`` for text answers. The first failure of the embedder (an endpoint down, a
    model that cannot load) is logged once and turns the metric off for the rest of the eval."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.failed = False

    async def __call__(self, reference: str, prediction: str) -> float | None:
        if self.failed:
            return None
        try:
            return await asyncio.to_thread(embedding_similarity, self.embedder, reference, prediction)
        except Exception as exc:  # the metric is optional: its failure must not fail the eval
            if not self.failed:
                self.failed = True
                logger.warning(
                    "embedding_similarity left out: embedder %s failed: %s",
                    getattr(self.embedder, "name", type(self.embedder).__name__),
                    exc,
                )
            return None


async def _evaluate_row(
    index: int,
    row: Mapping[str, object],
    chat: ChatFn,
    config: EvalConfig,
    judge: Judge | None,
    similarity: _TextSimilarity | None = None,
) -> StoredSample:
    reference: WireMessage = response_message(row) or {}
    request = _request(row)
    tools = request.get("tools")
    sample: StoredSample = {
        "record_id": _record_id(row, index),
        "index": index,
        "eval_type": config.eval_type.value,
        "reference_class": tool_name(row),
        "predicted_outcome": PredictedOutcome.ERROR.value,  # until an answer comes
        "reference": reference,
        "prediction": None,
        "raw_text": None,
        "scores": dict.fromkeys(METRICS),
        "flags": [],
        "judge": None,
        "latency_s": None,
        "usage": None,
        "error": None,
    }
    t0 = time.perf_counter()
    try:
        result = await chat(_request_of(row, config))
    except Exception as exc:  # any failure of the model call is this sample's error, not the eval's
        sample["error"] = f"{type(exc).__name__}: {exc}"[:500]
        sample["latency_s"] = time.perf_counter() - t0
        return sample
    sample["latency_s"] = result.latency_s or time.perf_counter() - t0
    sample["prediction"] = result.message
    sample["predicted_outcome"] = predicted_outcome(result.message, tools)
    sample["raw_text"] = result.raw_text
    sample["usage"] = {"prompt_tokens": result.usage.prompt_tokens, "completion_tokens": result.usage.completion_tokens}
    scored = score_sample(reference, result.message, tools)
    sample["scores"], sample["flags"] = scored.scores, scored.flags
    sample["scores"]["embedding_similarity"] = None
    if similarity is not None and not reference.get("tool_calls"):
        ref_text, pred_text = message_text(reference.get("content")), message_text(result.message.get("content"))
        sample["scores"]["embedding_similarity"] = await similarity(ref_text, pred_text)
    if judge is not None:
        ref_part: Any
        pred_part: Any
        if judge.kind == "tool_calling_correctness":
            ref_part, pred_part = reference.get("tool_calls") or [], result.message.get("tool_calls") or []
        else:
            ref_part, pred_part = reference.get("content") or "", result.message.get("content") or ""
        try:
            verdict = await judge.judge(request["messages"], ref_part, pred_part, tools)
            sample["judge"] = verdict.to_dict()
        except Exception as exc:  # the judge failing is recorded, the sample keeps its other scores
            sample["judge"] = {"score": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return sample


def read_samples(out_dir: Path) -> list[JsonObject]:
    """The samples stored in ``out_dir`` (:class:`StoredSample` lines, read as JSON: older runs may lack
    fields), one per record id, by index."""
    path = out_dir / SAMPLES_FILE
    rows: dict[str, JsonObject] = {}
    if path.is_file():
        with path.open("rb") as f:
            for line in f:
                try:
                    row = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(row, dict) and isinstance(row.get("record_id"), str):  # else not a sample: skipped
                    rows[row["record_id"]] = row
    return sorted(rows.values(), key=lambda r: _int(r.get("index")))


def _int(value: JsonValue) -> int:
    """An integer field of a stored sample or verdict; 0 when missing or not an integer."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _obj(value: JsonValue) -> JsonObject:
    """An object field of a stored sample; empty when missing or not an object."""
    return value if isinstance(value, dict) else {}


def _score(value: JsonValue) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def has_text_references(rows: Iterable[Mapping[str, object]]) -> bool:
    """Whether any eval record's reference answer is text (``embedding_similarity`` needs an embedder)."""
    return any(not (response_message(r) or {}).get("tool_calls") for r in rows)


def summarize(
    out_dir: Path, config: EvalConfig, wall_s: float = 0.0, rows: Sequence[Mapping[str, object]] | None = None
) -> EvalSummary:
    """The summary of every sample stored in ``out_dir`` (also those of earlier, resumed runs). ``rows``
    (the eval records) give the request's tools to samples stored without a ``predicted_outcome``."""
    samples = _with_outcomes(read_samples(out_dir), rows or [])
    ok = [s for s in samples if s["error"] is None]
    metrics = {m: aggregate(_score(_obj(s.get("scores")).get(m)) for s in ok).to_dict() for m in SUMMARY_METRICS}
    judged = [j for s in ok if (j := _obj(s.get("judge")))]
    judge_scores = [_score(j.get("score")) for j in judged]
    judge = JudgeSummary()
    if judge_scores:
        judge = {
            "score": aggregate(judge_scores).to_dict(),
            "parse_failures": sum(_int(j.get("parse_failures")) for j in judged),
            "parse_failure_examples": _parse_failure_examples(s for s in ok if s.get("judge")),
            "request_errors": sum(1 for j in judged if j.get("error")),
            "unscored": sum(1 for v in judge_scores if v is None),
            "model": next((str(j["judge_model"]) for j in judged if j.get("judge_model")), None),
            "prompt_version": next((str(j["prompt_version"]) for j in judged if j.get("prompt_version")), None),
            "prompt_tokens": sum(_int(_obj(j.get("usage")).get("prompt_tokens")) for j in judged),
            "completion_tokens": sum(_int(_obj(j.get("usage")).get("completion_tokens")) for j in judged),
        }
    latencies = sorted(v for s in ok if (v := _score(s.get("latency_s"))) is not None)
    has_calls = any(s["reference_class"] != NO_TOOL for s in samples)
    return EvalSummary(
        eval_type=config.eval_type.value,
        model=config.model,
        workload_type=(WorkloadType.TOOL_CALLING if has_calls else WorkloadType.GENERIC).value,
        samples=len(samples),
        errors=len(samples) - len(ok),
        metrics=metrics,
        judge=judge,
        wall_s=wall_s,
        usage={
            "prompt_tokens": sum(_int(_obj(s.get("usage")).get("prompt_tokens")) for s in ok),
            "completion_tokens": sum(_int(_obj(s.get("usage")).get("completion_tokens")) for s in ok),
        },
        latency_p50_s=quantile(latencies, 0.5),
        latency_p95_s=quantile(latencies, 0.95),
        per_class=per_class_metrics(samples, SUMMARY_METRICS),
        confusion=confusion(samples),
    )


PARSE_FAILURE_EXAMPLES = 5
"""Unparsable judge replies an eval summary quotes (with the record and the reason), so a person sees why."""


def _parse_failure_examples(samples: Iterable[JsonObject]) -> list[dict[str, str]]:
    examples: list[dict[str, str]] = []
    for sample in samples:
        verdict = _obj(sample["judge"])
        replies, reasons = verdict.get("replies"), verdict.get("parse_errors")
        for reply, reason in zip(
            replies if isinstance(replies, list) else [], reasons if isinstance(reasons, list) else [], strict=False
        ):
            if reason is None:
                continue
            examples.append({"record_id": str(sample["record_id"]), "reply": str(reply)[:300], "reason": str(reason)})
            if len(examples) == PARSE_FAILURE_EXAMPLES:
                return examples
    return examples


def _with_outcomes(samples: list[JsonObject], rows: Sequence[Mapping[str, object]]) -> list[JsonObject]:
    """Samples stored before outcomes were recorded get theirs from the prediction and the request's tools."""
    if all("predicted_outcome" in s for s in samples):
        return samples
    tools: Mapping[str, Any] = {_record_id(r, i): _request(r).get("tools") for i, r in enumerate(rows)}
    for s in samples:
        if "predicted_outcome" not in s:
            prediction = s.get("prediction")
            s["predicted_outcome"] = predicted_outcome(
                prediction if isinstance(prediction, dict) else None,
                tools.get(str(s["record_id"])),
                failed=s.get("error") is not None,
            )
    return samples


def embedding_similarity(embedder: Embedder, reference: str, prediction: str) -> float:
    """Cosine similarity of the two texts' embeddings, clipped to [0, 1]; an empty prediction scores 0."""
    if not prediction.strip():
        return 0.0
    vectors = embedder.embed([reference, prediction])
    return float(max(0.0, min(1.0, float(vectors[0] @ vectors[1]))))
