"""A finished flywheel job with everything a person reads about it, made by the project's own code paths
without training a model: for the web page's tests, the report's and the render benchmark.

* logs: synthetic traffic (:mod:`dataflywheel.synth`) with duplicates, text answers and broken lines, loaded
  into the SQLite log store;
* datasets: the real ``datasets`` stage (curation, split, ICL), so the manifest's funnel is real;
* evaluations: the real eval runner (:func:`run_eval`, scoring, per-class metrics, confusion, samples.jsonl)
  over a scripted candidate that answers right, calls another tool, gets an identifier wrong, answers in
  text, writes unparsable arguments or invents a tool, at a skill set per candidate and eval type;
* LoRA runs: the stored customization metrics a run leaves (recipe, curve, epoch kept), no training;
* result: the real ``finalize`` stage, ``cost``, ``latency`` and ``recommendation`` included, from prices
  in the settings (the third candidate has none, so its cost is unknown);
* times: the stages spread over a plausible half hour, so the timeline reads as a real one.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import update

from dataflywheel.curation.workload import message_text, response_message
from dataflywheel.evaluation.metrics import calls_of
from dataflywheel.evaluation.runner import EvalConfig, EvalType, load_dataset, run_async, run_eval
from dataflywheel.ingest.jsonl import load_file
from dataflywheel.jobs import JobStore
from dataflywheel.jobs.status import CandidateStage, JobStatus, TaskStatus
from dataflywheel.jobs.tables import Job, Stage
from dataflywheel.logstore import open_log_store
from dataflywheel.models.types import ChatRequest, ChatResult, Usage
from dataflywheel.settings import Settings, load_settings
from dataflywheel.synth.generator import SynthConfig, write_jsonl
from dataflywheel.workflow.plan import StageKind, stage_key
from dataflywheel.workflow.stages import eval_dir, execute_stage

WORKLOAD, CLIENT = "primary_assistant", "northwind-1"
CANDIDATES = ("qwen2.5-1.5b-instruct", "llama-3.2-1b-instruct", "smollm2-135m-instruct")
TEACHER = "meta/llama-3.3-70b-instruct"
EVAL_TYPES = tuple(t.value for t in EvalType)
# Probability of a right answer per candidate and eval type; the wrong ones split between the failure kinds.
SKILL = {
    CANDIDATES[0]: {"base-eval": 0.45, "icl-eval": 0.7, "customized-eval": 0.93},
    CANDIDATES[1]: {"base-eval": 0.3, "icl-eval": 0.55, "customized-eval": 0.85},
    CANDIDATES[2]: {"base-eval": 0.05, "icl-eval": 0.15, "customized-eval": 0.6},
}
PRICES = {  # USD per 1M input / output tokens; the last candidate has none: its cost is unknown
    TEACHER: (0.88, 0.88),
    CANDIDATES[0]: (0.04, 0.04),
    CANDIDATES[1]: (0.03, 0.03),
}
MIN_RATIO = 0.8
OWNER = "finished-job-fixture"


@dataclass(frozen=True)
class FinishedJob:
    settings: Settings
    job_id: str
    candidates: tuple[str, ...]


def _rng(*parts: str) -> random.Random:
    return random.Random(int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:12], 16))


def _scripted_candidate(candidate: str, eval_type: str, rows: list[dict[str, Any]]) -> Any:
    """A chat function that answers each eval request as a model of the given skill would."""
    references = {_last_user(r["request"]["messages"]): response_message(r) or {} for r in rows}
    skill = SKILL[candidate][eval_type]

    async def chat(request: ChatRequest) -> ChatResult:
        user = _last_user(request.messages)
        reference = references[user]
        tools = [t["function"]["name"] for t in request.tools or []]
        rng = _rng(candidate, eval_type, user)
        latency = (
            (0.18 + 0.5 * CANDIDATES.index(candidate) / 2)
            * (1 + rng.random())
            * (1.6 if eval_type == "icl-eval" else 1.0)
        )
        ref_calls = reference.get("tool_calls") or []
        roll = rng.random()
        if roll < skill:
            message = dict(reference, role="assistant")
        else:
            kind = rng.choice(["wrong_tool", "wrong_tool", "wrong_arguments", "text", "unparsable", "unknown_tool"])
            if not ref_calls:  # the logged model answered in text: calling a tool is the mistake
                kind = "wrong_tool"
            message = _mistake(kind, reference, tools, rng)
        raw = message_text(message.get("content")) or str(message.get("tool_calls"))
        return ChatResult(
            message=message,
            finish_reason="tool_calls" if message.get("tool_calls") else "stop",
            usage=Usage(prompt_tokens=900 + (900 if eval_type == "icl-eval" else 0), completion_tokens=40),
            raw_text=raw,
            latency_s=latency,
        )

    return chat


def _last_user(messages: list[dict[str, Any]]) -> str:
    return next(str(m.get("content")) for m in reversed(messages) if m.get("role") == "user")


def _call(name: str, arguments: Any) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_0", "type": "function", "function": {"name": name, "arguments": arguments}}],
    }


def _mistake(kind: str, reference: dict[str, Any], tools: list[str], rng: random.Random) -> dict[str, Any]:
    calls = calls_of(reference)
    ref_name = calls[0].name if calls else None
    ref_args = dict(calls[0].arguments) if calls else {}
    if kind == "wrong_tool":
        other = rng.choice([t for t in tools if t != ref_name] or tools)
        return _call(other, {"query": "help with my order", **{k: v for k, v in ref_args.items() if k != "query"}})
    if kind == "wrong_arguments":
        args = dict(ref_args)
        if "user_id" in args:
            args["user_id"] = str(int(args["user_id"]) + 7) if str(args["user_id"]).isdigit() else "0"
        else:
            args.pop(next(iter(args), ""), None)
        return _call(ref_name or tools[0], args)
    if kind == "text":
        return {"role": "assistant", "content": "I can help with that. Could you tell me more about your order?"}
    if kind == "unparsable":
        return _call(ref_name or tools[0], '{"query": "return the tent", "user_id": ')
    return _call("ToRefundDesk", ref_args)  # unknown_tool


def _training_metrics(candidate: str, train_classes: dict[str, int]) -> dict[str, Any]:
    rng = _rng("train", candidate)
    epochs, loss, val = [], 1.6 + rng.random() * 0.3, 1.5 + rng.random() * 0.3
    for epoch in range(1, 5):
        loss *= 0.55 + 0.1 * rng.random()
        val *= 0.7 + 0.12 * rng.random() if epoch < 4 else 1.03
        accuracy = min(1.0, 0.2 * epoch + 0.1 * rng.random())
        epochs.append({"epoch": epoch, "train_loss": loss, "val_loss": val, "val_function_name_accuracy": accuracy})
    best = max(epochs, key=lambda e: (e["val_function_name_accuracy"], -e["epoch"]))
    return {
        "recipe": "tiny" if "135m" in candidate else "small",
        "config": {
            "epochs": 4,
            "batch_size": 8,
            "learning_rate": 0.001,
            "adapter_dim": 16,
            "alpha": 32,
            "dropout": 0.05,
            "decision_weight": 3.0,
            "class_balance": True,
        },
        "class_counts": train_classes,
        "epochs": epochs,
        "best_epoch": best["epoch"],
        "stopped_early": False,
        "final_train_loss": epochs[-1]["train_loss"],
        "final_val_loss": epochs[-1]["val_loss"],
    }


def build_finished_job(home: Path, *, candidates: tuple[str, ...] = CANDIDATES, eval_size: int = 30) -> FinishedJob:
    """A completed 3-candidate job (each with base, ICL and customized evals) in the job store under ``home``."""
    settings = load_settings(
        home=home,
        curation_workers=0,
        data_split={"eval_size": eval_size, "limit": 400, "min_total_records": 40, "random_seed": 7},
        teacher={
            "name": TEACHER,
            "price_per_1m_input_tokens": PRICES[TEACHER][0],
            "price_per_1m_output_tokens": PRICES[TEACHER][1],
        },
        candidates=[
            {"name": c, "engine": "openai", "base_url": "http://127.0.0.1:1/v1", "customizable": False}
            | (
                {"price_per_1m_input_tokens": PRICES[c][0], "price_per_1m_output_tokens": PRICES[c][1]}
                if c in PRICES
                else {}
            )
            for c in candidates
        ],
        recommendation={"min_ratio": MIN_RATIO},
    )
    traffic = home / "traffic.jsonl"
    home.mkdir(parents=True, exist_ok=True)
    write_jsonl(
        SynthConfig(records=260, seed=11, duplicate_rate=0.08, text_answer_rate=0.06, malformed_rate=0.03), traffic
    )
    with open_log_store(settings) as logs:
        load_file(logs, traffic)
    store = JobStore.from_settings(settings)
    try:
        job = store.create_job(WORKLOAD, CLIENT, {"candidates": list(candidates)})
        store.set_job_status(job.id, JobStatus.RUNNING)
        assert execute_stage(store, settings, job.id, "datasets", OWNER) is TaskStatus.COMPLETED
        store.upsert_judge(job.id, kind="disabled", status=TaskStatus.SKIPPED)
        store.finish_stage(job.id, "judge", TaskStatus.SKIPPED, error="no judge configured (judge.enabled is false)")
        datasets = store.get_stage(job.id, "datasets").output or {}  # type: ignore[union-attr]
        build = Path(datasets["path"])
        rows = {"eval": load_dataset(build / "eval.jsonl"), "icl": load_dataset(build / "icl.jsonl")}
        train_classes = orjson.loads((build / "manifest.json").read_bytes())["classes"]["train"]
        for candidate in candidates:
            run = store.add_candidate_run(job.id, candidate)
            _run_stage(store, job.id, stage_key(StageKind.DEPLOY, candidate), {"base_url": "http://127.0.0.1:1/v1"})
            store.set_candidate_stage(run.id, CandidateStage.DEPLOYING)
            store.update_candidate_run(run.id, deployment={"base_url": "http://127.0.0.1:1/v1", "local": False})
            store.set_candidate_stage(run.id, CandidateStage.EVALUATING)
            metrics = _training_metrics(candidate, train_classes)
            store.upsert_customization(run.id, status=TaskStatus.RUNNING, total_epochs=4, total_steps=60)
            adapter = f"{candidate}-{WORKLOAD}-{job.id[:6]}"
            store.upsert_customization(
                run.id,
                status=TaskStatus.COMPLETED,
                progress=100.0,
                epochs_completed=4,
                steps_completed=60,
                loss=metrics["final_train_loss"],
                adapter_name=adapter,
                metrics=metrics,
                eta_s=0.0,
                runtime_s=290.0,
            )
            _run_stage(store, job.id, stage_key(StageKind.CUSTOMIZE, candidate), {"adapter_name": adapter})
            for eval_type in EVAL_TYPES:
                eval_rows = rows["icl" if eval_type == "icl-eval" else "eval"]
                out = eval_dir(settings, job.id, candidate, eval_type)
                store.upsert_evaluation(run.id, eval_type, status=TaskStatus.RUNNING, total=len(eval_rows))
                config = EvalConfig(EvalType(eval_type), candidate, concurrency=4)
                summary = run_async(
                    run_eval(eval_rows, _scripted_candidate(candidate, eval_type, eval_rows), out, config)
                )
                scores = {name: agg["mean"] for name, agg in summary.metrics.items() if agg.get("n")}
                store.upsert_evaluation(
                    run.id,
                    eval_type,
                    status=TaskStatus.COMPLETED,
                    progress=100.0,
                    done=summary.samples,
                    total=len(eval_rows),
                    eta_s=0.0,
                    scores=scores,
                    artifact_path=str(out),
                )
                output = {"summary": summary.to_dict(), "artifact_path": str(out), "model": candidate}
                _run_stage(store, job.id, stage_key(StageKind(eval_type), candidate), output)
            store.set_candidate_stage(run.id, CandidateStage.SHUTTING_DOWN)
            _run_stage(store, job.id, stage_key(StageKind.SHUTDOWN, candidate), {"stopped": False})
            store.set_candidate_stage(run.id, CandidateStage.COMPLETED)
        assert execute_stage(store, settings, job.id, "finalize", OWNER) is TaskStatus.COMPLETED
        result = dict(store.get_stage(job.id, "finalize").output or {})  # type: ignore[union-attr]
        store.update_job(job.id, result=result)
        store.set_job_status(job.id, JobStatus.COMPLETED)
        _spread_times(store, job.id, candidates)
    finally:
        store.close()
    return FinishedJob(settings=settings, job_id=job.id, candidates=candidates)


def _run_stage(store: JobStore, job_id: str, key: str, output: dict[str, Any]) -> None:
    store.start_stage(job_id, key, OWNER)
    store.finish_stage(job_id, key, TaskStatus.COMPLETED, output=output)


def _spread_times(store: JobStore, job_id: str, candidates: tuple[str, ...]) -> None:
    """Stage times as a real run of this job would leave them (the fixture ran in a second)."""
    start = datetime.now(UTC) - timedelta(hours=2)
    spans: dict[str, tuple[float, float]] = {"datasets": (0, 6)}
    end = 6.0
    for i, c in enumerate(candidates):
        spans[stage_key(StageKind.DEPLOY, c)] = (6 + 40 * i, 30 + 40 * i)
        spans[stage_key(StageKind.BASE_EVAL, c)] = (30 + 40 * i, 150 + 60 * i)
        spans[stage_key(StageKind.ICL_EVAL, c)] = (150 + 60 * i, 330 + 60 * i)
        train0 = 8 + 420 * i
        spans[stage_key(StageKind.CUSTOMIZE, c)] = (train0, train0 + 400)
        spans[stage_key(StageKind.CUSTOMIZED_EVAL, c)] = (train0 + 400, train0 + 520)
        spans[stage_key(StageKind.SHUTDOWN, c)] = (train0 + 520, train0 + 524)
        end = train0 + 524
    spans["finalize"] = (end, end + 1)
    with store.engine.begin() as conn:
        for key, (s0, s1) in spans.items():
            conn.execute(
                update(Stage)
                .where(Stage.job_id == job_id, Stage.key == key)
                .values(started_at=start + timedelta(seconds=s0), finished_at=start + timedelta(seconds=s1))
            )
        conn.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                created_at=start - timedelta(seconds=3),
                started_at=start,
                finished_at=start + timedelta(seconds=end + 1),
            )
        )
