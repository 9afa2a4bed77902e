"""A job's evaluated samples as a person browses them: each with a verdict (what went wrong, if anything),
the user's request, the logged model's answer and the candidate's.

Samples are what an eval stored in its ``samples.jsonl`` (:func:`dataflywheel.evaluation.runner.read_samples`);
the request's turns come from the job's eval dataset, by record id. Reading is I/O (:func:`load_samples`),
the verdict and the paging are pure (:func:`verdict_of`, :func:`page_of`).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, Field, JsonValue

from dataflywheel.evaluation.breakdown import PredictedOutcome
from dataflywheel.evaluation.runner import read_samples
from dataflywheel.jobs.errors import JobNotFoundError
from dataflywheel.jobs.records import JobDetail
from dataflywheel.settings import Settings
from dataflywheel.workflow.stages import eval_dir

__all__ = ["Sample", "SamplesPage", "Verdict", "eval_folder", "load_samples", "page_of", "verdict_of"]


class Verdict(StrEnum):
    """What a sample's answer got wrong, the first that applies in this order."""

    ERROR = "error"
    """The request failed: there is no answer."""
    UNPARSABLE = "unparsable"
    """Nothing usable: an empty answer, a call without a name, or arguments that are not a JSON object."""
    WRONG_TOOL = "wrong_tool"
    """Another tool (or none, or a call where the logged model answered in text): tool-name accuracy 0."""
    WRONG_ARGUMENTS = "wrong_arguments"
    """The right tool, but a required argument is missing or an identifier differs (free text may differ)."""
    CORRECT = "correct"
    """The right tool with its required arguments right, or a text answer where the logged one was text."""


def verdict_of(sample: Mapping[str, Any]) -> Verdict:
    """The verdict of one stored sample (its ``error``, ``flags``, ``predicted_outcome`` and ``scores``)."""
    if sample.get("error") is not None:
        return Verdict.ERROR
    flags = sample.get("flags") or ()
    if "unparsable_arguments" in flags or sample.get("predicted_outcome") == PredictedOutcome.NO_CALL.value:
        return Verdict.UNPARSABLE
    scores = sample.get("scores") or {}
    if scores.get("function_name_accuracy") != 1.0:
        return Verdict.WRONG_TOOL
    if scores.get("required_arguments_accuracy") == 0.0:
        return Verdict.WRONG_ARGUMENTS
    return Verdict.CORRECT


class Sample(BaseModel):
    """One evaluated request: what was asked, what the logged model answered, what the candidate answered."""

    record_id: str
    index: int = Field(description="Position in the eval dataset.")
    verdict: Verdict
    reference_class: str = Field(description="The logged answer's first tool, or no_tool for a text answer.")
    predicted_outcome: str = Field(
        description="The candidate's first tool, or unknown_tool, text, no_call, error (evaluation.breakdown)."
    )
    conversation: list[dict[str, JsonValue]] = Field(
        description="The request's messages after the system prompt (empty when the eval dataset is gone)."
    )
    reference: dict[str, JsonValue] | None = Field(description="The logged (big) model's answer message.")
    prediction: dict[str, JsonValue] | None = Field(description="The candidate's answer message, parsed.")
    raw_text: str | None = Field(description="What the candidate generated, before parsing.")
    scores: dict[str, float | None]
    flags: list[str]
    error: str | None
    latency_s: float | None


class SamplesPage(BaseModel):
    """A page of one eval's samples, in dataset order; ``count`` counts every sample the filter keeps."""

    candidate: str
    eval_type: str
    verdict: Verdict | None = Field(description="The filter applied (None: every sample).")
    data: list[Sample]
    count: int
    limit: int
    offset: int
    verdicts: dict[str, int] = Field(description="Samples per verdict, over the eval's samples (unfiltered).")


def eval_folder(settings: Settings, detail: JobDetail, candidate: str, eval_type: str) -> Path:
    """Where a job's eval of ``candidate`` keeps its samples (also while it runs); JobNotFoundError (404)
    when the job has no such candidate."""
    run = next((c for c in detail.candidates if c.candidate == candidate), None)
    if run is None:
        raise JobNotFoundError(f"job {detail.job.id} has no candidate {candidate!r}")
    ev = next((e for e in run.evaluations if e.eval_type == eval_type), None)
    if ev is not None and ev.artifact_path:
        return Path(ev.artifact_path)
    return eval_dir(settings, detail.job.id, candidate, eval_type)  # still running: where it writes


def load_samples(settings: Settings, detail: JobDetail, candidate: str, eval_type: str) -> list[Sample]:
    """Every stored sample of the eval, in dataset order; JobNotFoundError (404) when it stored none."""
    folder = eval_folder(settings, detail, candidate, eval_type)
    stored = read_samples(folder)
    if not stored:
        raise JobNotFoundError(f"job {detail.job.id} has no {eval_type} samples for {candidate!r}")
    eval_set = next((d for d in detail.datasets if d.name == "eval"), None)
    turns = _conversations(eval_set.path) if eval_set is not None and eval_set.path else {}
    return [to_sample(s, turns.get(str(s.get("record_id")), [])) for s in stored]


def _message(value: object) -> dict[str, JsonValue] | None:
    return value if isinstance(value, dict) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def to_sample(stored: Mapping[str, object], conversation: list[dict[str, JsonValue]]) -> Sample:
    """A stored sample (a ``samples.jsonl`` line, :class:`~dataflywheel.evaluation.runner.StoredSample`) as a
    :class:`Sample`; a field of the wrong type reads as missing."""
    index, scores, flags = stored.get("index"), stored.get("scores"), stored.get("flags")
    return Sample(
        record_id=str(stored.get("record_id")),
        index=index if isinstance(index, int) else 0,
        verdict=verdict_of(stored),
        reference_class=str(stored.get("reference_class") or ""),
        predicted_outcome=str(stored.get("predicted_outcome") or ""),
        conversation=conversation,
        reference=_message(stored.get("reference")),
        prediction=_message(stored.get("prediction")),
        raw_text=_text(stored.get("raw_text")),
        scores={str(k): _number(v) for k, v in scores.items()} if isinstance(scores, dict) else {},
        flags=[str(f) for f in flags] if isinstance(flags, list) else [],
        error=_text(stored.get("error")),
        latency_s=_number(stored.get("latency_s")),
    )


def page_of(
    samples: Sequence[Sample],
    candidate: str,
    eval_type: str,
    verdict: Verdict | None = None,
    *,
    offset: int = 0,
    limit: int = 20,
) -> SamplesPage:
    """The page of ``samples`` that ``verdict`` keeps, from ``offset``; with the count per verdict."""
    kept = [s for s in samples if verdict is None or s.verdict is verdict]
    return SamplesPage(
        candidate=candidate,
        eval_type=eval_type,
        verdict=verdict,
        data=kept[offset : offset + limit],
        count=len(kept),
        limit=limit,
        offset=offset,
        verdicts=verdict_counts(samples),
    )


def verdict_counts(samples: Iterable[Sample]) -> dict[str, int]:
    """Samples per verdict, every verdict present (0 when none), in :class:`Verdict` order."""
    counts = Counter(s.verdict for s in samples)
    return {v.value: counts.get(v, 0) for v in Verdict}


def _conversations(path: str) -> dict[str, list[dict[str, JsonValue]]]:
    """Record id -> the request's messages after the system prompt, from an eval dataset (cached while the
    file is unchanged; {} when it is gone)."""
    try:
        stat = Path(path).stat()
    except OSError:
        return {}
    return _read_conversations(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _read_conversations(path: str, mtime_ns: int, size: int) -> dict[str, list[dict[str, JsonValue]]]:
    out: dict[str, list[dict[str, JsonValue]]] = {}
    with open(path, "rb") as f:
        for line in f:
            try:
                row = orjson.loads(line)
                messages = row["request"]["messages"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
            out[str(row.get("record_id"))] = [m for m in messages if isinstance(m, dict) and m.get("role") != "system"]
    return out
