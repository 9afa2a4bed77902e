"""The feedback loop as a job (kind ``feedback``): a student model answers a workload's logged requests, its
outputs are normalized into proper tool calls, a quality filter (programmatic checks + an LLM judge) keeps
the good ones, and those are written back to the log store under a target client (with provenance), ready
for a flywheel job.

Every step leaves its work in ``<home>/jobs/<job id>/curation/``: ``outputs.jsonl`` (one raw answer per
source record, appended as they come) and ``verdicts.jsonl`` (normalization + quality verdict per record). A
rerun of the job after a crash skips the records already there, and write-back is idempotent (a record's id
is the hash of its content), so nothing is asked, judged or written twice.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from dataflywheel.errors import ConfigError, FlywheelError, RecordError
from dataflywheel.feedback.normalize import Normalized, NormalizeReport, normalize_output
from dataflywheel.feedback.quality import (
    PassRule,
    QualityVerdict,
    ask_judge,
    decide,
    load_quality_prompt,
    teacher_agreement,
)
from dataflywheel.logstore import LogQuery, open_log_store
from dataflywheel.models.types import ChatRequest, SamplingParams
from dataflywheel.progress import Progress, ProgressFn
from dataflywheel.records.model import LogRecord, parse_record
from dataflywheel.settings import Settings

__all__ = [
    "CurationCancelled",
    "CurationConfig",
    "FeedbackCancelled",
    "FeedbackConfig",
    "curated_record",
    "run_curation",
    "run_feedback",
]

OUTPUTS = "outputs.jsonl"
VERDICTS = "verdicts.jsonl"


class FeedbackCancelled(FlywheelError):
    """The feedback job was cancelled; what was done so far is kept for a rerun."""


@dataclass(frozen=True)
class FeedbackConfig:
    workload_id: str
    client_id: str
    model: str
    judge: str | None = None
    """None: settings.judge when enabled, else no judge; a candidate name: that model judges."""
    target_client_id: str | None = None
    target_workload_id: str | None = None
    dry_run: bool = False
    limit: int | None = None
    concurrency: int = 8
    max_tokens: int = 256
    rule: PassRule = field(default_factory=PassRule)

    @property
    def target_client(self) -> str:
        return self.target_client_id or f"{self.client_id}-curated"

    @property
    def target_workload(self) -> str:
        return self.target_workload_id or self.workload_id

    @classmethod
    def from_job(cls, workload_id: str, client_id: str, config: dict[str, Any]) -> FeedbackConfig:
        model = config.get("model")
        if not isinstance(model, str) or not model:
            raise ConfigError("model: the student model to run over the logs is required")
        rule = config.get("pass_rule") or {}
        if not isinstance(rule, dict):
            raise ConfigError("pass_rule: expected an object")
        unknown = set(rule) - set(PassRule.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"pass_rule.{sorted(unknown)[0]}: unknown key")
        limit = config.get("limit")
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ConfigError("limit: expected an integer >= 1")
        if (
            config.get("target_client_id") == client_id
            and (config.get("target_workload_id") or workload_id) == workload_id
        ):
            raise ConfigError("target_client_id: must differ from client_id (curated records go beside the originals)")
        return cls(
            workload_id=workload_id,
            client_id=client_id,
            model=model,
            judge=config.get("judge"),
            target_client_id=config.get("target_client_id"),
            target_workload_id=config.get("target_workload_id"),
            dry_run=bool(config.get("dry_run", False)),
            limit=limit,
            concurrency=int(config.get("concurrency", 8)),
            max_tokens=int(config.get("max_tokens", 256)),
            rule=PassRule(**rule),
        )


def curated_record(
    record: dict[str, Any],
    source_id: str,
    normalized: Normalized,
    verdict: QualityVerdict,
    config: FeedbackConfig,
    job_id: str,
) -> dict[str, Any]:
    """The log record written back for a passing answer (pure)."""
    return {
        "timestamp": record.get("timestamp"),
        "workload_id": config.target_workload,
        "client_id": config.target_client,
        "request": record["request"],
        "response": {
            "model": config.model,
            "choices": [
                {
                    "index": 0,
                    "message": normalized.message,
                    "finish_reason": "tool_calls" if (normalized.message or {}).get("tool_calls") else "stop",
                }
            ],
        },
        "flywheel_provenance": {
            "source_record_id": source_id,
            "source_client_id": config.client_id,
            "model": config.model,
            "normalize_status": normalized.status.value,
            "repairs": list(normalized.repairs),
            "judge": verdict.judge,
            "judge_reason": verdict.judge_reason,
            "job_id": job_id,
        },
    }


def _read_lines(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return out
    for line in path.read_bytes().splitlines():
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:  # a line cut by a crash: asked again
            continue
        out[row["record_id"]] = row
    return out


def _report(progress: ProgressFn, stage: str, done: int, total: int) -> None:
    """The loop's :class:`~dataflywheel.progress.Progress`: stages ``inference``, ``judging`` and ``write-back``,
    in records."""
    progress(Progress(stage=stage, done=done, total=total, unit="records"))


def run_feedback(
    settings: Settings,
    job_id: str,
    config: FeedbackConfig,
    *,
    chat_for: Callable[[str], tuple[Any, str]],
    should_cancel: Callable[[], bool],
    progress: ProgressFn,
) -> dict[str, Any]:
    """Run the pipeline; ``chat_for(name)`` gives ``(client, model)`` to ask a model by name (deploying it
    when needed). Returns the report."""
    folder = settings.home / "jobs" / job_id / "curation"
    folder.mkdir(parents=True, exist_ok=True)
    with open_log_store(settings) as logs:
        records = list(logs.iter_records(LogQuery(config.workload_id, config.client_id, limit=config.limit)))
    if not records:
        raise FlywheelError(f"no logged records for workload {config.workload_id!r} of client {config.client_id!r}")

    # 1. inference (resumable: outputs already stored are not asked again)
    outputs = _read_lines(folder / OUTPUTS)
    todo = [(rid, r) for rid, r in records if rid not in outputs]
    if todo:
        client, model = chat_for(config.model)
        _infer(client, model, todo, folder / OUTPUTS, config, outputs, should_cancel, progress, len(records))
    _report(progress, "inference", len(records), len(records))

    # 2. normalization (pure, cheap: always recomputed)
    normalized: dict[str, Normalized] = {}
    report = NormalizeReport()
    for rid, record in records:
        out = outputs[rid]
        request = record.get("request") or {}
        result = normalize_output(out["message"], request.get("tools"), tool_choice=request.get("tool_choice"))
        normalized[rid] = result
        report.add(result, out["message"])

    # 3. quality filter (judge verdicts are stored, so a rerun does not ask again)
    judged = _read_lines(folder / VERDICTS)
    judge_chat = _judge_chat(settings, config, chat_for)
    prompt = load_quality_prompt()
    verdicts: dict[str, QualityVerdict] = {}
    pending = []
    for rid, record in records:
        n = normalized[rid]
        agrees = teacher_agreement(record, n) if n.message else None
        if rid in judged and "judge" in judged[rid]:
            stored = judged[rid]["judge"]
            verdicts[rid] = decide(n, agrees, tuple(stored) if stored else None, config.rule)
        elif n.status.value == "rejected" or judge_chat is None:
            verdicts[rid] = decide(n, agrees, None, config.rule)
            if rid not in judged:
                _append(folder / VERDICTS, {"record_id": rid, "judge": None})
        else:
            pending.append((rid, record, n, agrees))
    if pending and judge_chat is not None:
        _judge_all(judge_chat, prompt, pending, folder / VERDICTS, verdicts, config, should_cancel, progress)
    _report(progress, "judging", len(records), len(records))

    # 4. write-back (idempotent)
    passing = [(rid, r) for rid, r in records if verdicts[rid].passed]
    added = duplicates = 0
    refused: list[str] = []  # "<source record id>: why", one per curated record that could not be stored
    if not config.dry_run and passing:
        # Each curated record on its own: one the log store cannot hold (a student's lone surrogate, a NUL on
        # PostgreSQL) is counted and named, and the others are written.
        new: list[tuple[str, LogRecord]] = []
        for rid, r in passing:
            try:
                new.append((rid, parse_record(curated_record(r, rid, normalized[rid], verdicts[rid], config, job_id))))
            except RecordError as exc:
                refused.append(f"{rid}: {exc}")
        with open_log_store(settings) as logs:
            added_result = logs.add(record for _, record in new)
        added, duplicates = added_result.added, added_result.duplicates
        refused += [f"{new[r.index][0]}: {r.reason}" for r in added_result.rejected]
    _report(progress, "write-back", len(records), len(records))

    rejected_reasons = Counter(v.reasons[0].split(" (")[0] for v in verdicts.values() if not v.passed)
    samples: dict[str, list[str]] = {}
    for rid, v in verdicts.items():
        if not v.passed:
            samples.setdefault(v.reasons[0].split(" (")[0], []).append(f"{rid}: {'; '.join(v.reasons)}")
    return {
        "source": {"workload_id": config.workload_id, "client_id": config.client_id},
        "target": {"workload_id": config.target_workload, "client_id": config.target_client},
        "model": config.model,
        "dry_run": config.dry_run,
        "counts": {
            "inferred": len(records),
            **{status: report.statuses.get(status, 0) for status in ("ok", "repaired", "rejected")},
            "judged_pass": sum(1 for v in verdicts.values() if v.judge == "PASS"),
            "judged_fail": sum(1 for v in verdicts.values() if v.judge == "FAIL"),
            "judge_unparsed": sum(1 for v in verdicts.values() if (v.judge_reason or "").startswith("unparsable")),
            "passed": len(passing),
            "written": added,
            "already_written": duplicates,
            "write_refused": len(refused),
        },
        "write_refusals": refused[:10],
        "rejected_by_reason": dict(rejected_reasons),
        "rejection_samples": {k: v[:3] for k, v in samples.items()},
        "normalize": report.to_dict(),
    }


def _append(path: Path, row: dict[str, Any]) -> None:
    with path.open("ab") as fh:
        fh.write(orjson.dumps(row) + b"\n")


def _infer(
    client: Any,
    model: str,
    todo: list[tuple[str, dict[str, Any]]],
    path: Path,
    config: FeedbackConfig,
    outputs: dict[str, dict[str, Any]],
    should_cancel: Callable[[], bool],
    progress: ProgressFn,
    total: int,
) -> None:
    from dataflywheel.asyncio_util import run_async

    lock = threading.Lock()
    done = [total - len(todo)]
    started = time.monotonic()

    async def one(rid: str, record: dict[str, Any], sem: asyncio.Semaphore) -> None:
        async with sem:
            if should_cancel():
                return
            request = record.get("request") or {}
            messages = request.get("messages") or []
            chat = ChatRequest(
                messages=messages,
                tools=request.get("tools"),
                tool_choice=request.get("tool_choice"),
                sampling=SamplingParams(max_tokens=config.max_tokens, temperature=0.0),
            )
            try:
                result = await client.chat(chat, model)
                row = {
                    "record_id": rid,
                    "message": result.message,
                    "finish_reason": result.finish_reason,
                    "latency_s": result.latency_s,
                }
            except Exception as exc:  # a failed request is an output too: it is rejected, not retried forever
                row = {
                    "record_id": rid,
                    "message": {"role": "assistant", "content": None},
                    "error": f"{type(exc).__name__}: {exc}"[:500],
                }
        with lock:
            _append(path, row)
            outputs[rid] = row
            done[0] += 1
            _report(progress, "inference", done[0], total)

    async def main() -> None:
        sem = asyncio.Semaphore(max(1, config.concurrency))
        await asyncio.gather(*(one(rid, r, sem) for rid, r in todo))

    run_async(main())
    if should_cancel():
        raise FeedbackCancelled(f"cancelled after {done[0]} of {total} outputs ({time.monotonic() - started:.0f} s)")


def _judge_chat(settings: Settings, config: FeedbackConfig, chat_for: Callable[[str], tuple[Any, str]]) -> Any:
    from dataflywheel.evaluation.judge import client_judge_chat, judge_client

    if config.judge:
        client, model = chat_for(config.judge)
        return client_judge_chat(client, model)
    if settings.judge.enabled and settings.judge.base_url and settings.judge.model:
        return client_judge_chat(judge_client(settings.judge), settings.judge.model)
    return None


def _judge_all(
    chat: Any,
    prompt: Any,
    pending: list[tuple[str, dict[str, Any], Normalized, bool | None]],
    path: Path,
    verdicts: dict[str, QualityVerdict],
    config: FeedbackConfig,
    should_cancel: Callable[[], bool],
    progress: ProgressFn,
) -> None:
    from dataflywheel.asyncio_util import run_async

    total = len(pending)
    done = [0]

    async def one(rid: str, record: dict[str, Any], n: Normalized, agrees: bool | None, sem: asyncio.Semaphore) -> None:
        async with sem:
            if should_cancel():
                return
            try:
                judged = await ask_judge(chat, prompt, record, n)
            except Exception as exc:  # an unreachable judge fails the record, with the reason
                judged = (None, f"judge request failed: {type(exc).__name__}", str(exc)[:300])
        verdicts[rid] = decide(n, agrees, judged, config.rule)
        _append(path, {"record_id": rid, "judge": list(judged)})
        done[0] += 1
        _report(progress, "judging", done[0], total)

    async def main() -> None:
        sem = asyncio.Semaphore(max(1, config.concurrency))
        await asyncio.gather(*(one(rid, r, n, a, sem) for rid, r, n, a in pending))

    run_async(main())
    if should_cancel():
        raise FeedbackCancelled(f"cancelled while judging ({done[0]} of {total})")


# Deprecated names (the feedback loop was called "curation", which is the dataset build's word); to be removed
# in the next release.
CurationCancelled = FeedbackCancelled
CurationConfig = FeedbackConfig
run_curation = run_feedback
