"""``flywheel run`` (one whole job in this process, with live progress and the result table) and
``flywheel worker`` (a Celery worker for the celery executor)."""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from dataflywheel.cli.common import console, guarded, parse_assignments, print_json, state
from dataflywheel.cli.decision import decision_renderables
from dataflywheel.cli.job_view import follow_job
from dataflywheel.cli.options import CandidatesOption, ClientIdOption, Overrides, WorkloadIdOption, overrides_option
from dataflywheel.errors import ConfigError
from dataflywheel.settings import Settings
from dataflywheel.workflow.plan import Queue
from dataflywheel.workflow.service import FlywheelService

REPORTED = {
    "function_name_accuracy": "tool name",
    "required_arguments_accuracy": "required args",
    "function_name_and_args_accuracy": "exact call",
    "embedding_similarity": "text similarity",
    "judge": "judge",
}
"""The metrics of the result table, with their short headers (``flywheel eval`` and the API show every
metric; this table fits an 80-column terminal)."""


EVAL_TYPES = ("base-eval", "icl-eval", "customized-eval")


def result_table(result: dict[str, Any], teacher: str = "the logged model") -> RenderableType:
    """The metrics table (:func:`metrics_table`), then per candidate the tool-name accuracy per reference
    class (:func:`per_class_table`) when the result has it, how each LoRA run went, why a configured judge
    was skipped, and last the cost and latency per eval type with the recommendation sentence
    (:mod:`dataflywheel.cli.decision`; "unknown" where a price is not set)."""
    candidates: dict[str, Any] = result.get("candidates", {})
    tables: list[RenderableType] = [metrics_table(result, teacher)]
    for candidate, evals in candidates.items():
        per_class = per_class_table(evals, candidate if len(candidates) > 1 else None)
        if per_class is not None:
            tables.append(per_class)
    for candidate, summary in (result.get("training") or {}).items():
        tables.append(Text(training_line(candidate, summary)))
    for candidate, points in (result.get("learning_curve") or {}).items():
        tables.append(Text(learning_curve_line(candidate, points)))
    judge = result.get("judge") or {}
    if judge.get("status") == "skipped" and judge.get("model"):  # configured, but it did not answer
        tables.append(Text(f"Judge {judge['model']} skipped, no judge metrics: {judge.get('reason')}"))
    tables.extend(decision_renderables(result))
    return Group(*tables)


def learning_curve_line(candidate: str, points: list[dict[str, Any]], metric: str = "function_name_accuracy") -> str:
    """One sentence on a candidate's learning curve: its customized accuracy per share of the train rows, and
    whether it was still rising at the full split."""
    from dataflywheel.training.learning_curve import CurvePoint, trend

    curve = sorted((CurvePoint.of(p) for p in points), key=lambda p: p.fraction)
    parts = []
    for p in curve:
        mean = p.mean(metric)
        parts.append(f"{p.fraction:.0%} ({p.train_examples} rows) {'-' if mean is None else f'{mean:.2f}'}")
    verdict = {"rising": "still rising: more logged records should help", "flat": "flat: more of the same helps little"}
    said = verdict.get(trend(curve, metric) or "", "not enough points to tell")
    return f"Learning curve {candidate} (tool-name accuracy): " + ", ".join(parts) + f"; {said}."


def training_line(candidate: str, summary: dict[str, Any]) -> str:
    """One sentence on a candidate's LoRA run: recipe, the main hyperparameters, the epoch kept and why."""
    hp = summary.get("hyperparameters") or {}
    curve = summary.get("curve") or []
    parts = [f"LoRA {candidate}: recipe {summary.get('recipe') or '?'}"]
    if hp:
        parts.append(
            f"lr {hp.get('learning_rate')}, rank {hp.get('adapter_dim')}, batch {hp.get('batch_size')}, "
            f"{len(curve)} of {hp.get('epochs')} epochs"
        )
    best = summary.get("best_epoch")
    if best:
        accuracy = next((e.get("val_function_name_accuracy") for e in curve if e.get("epoch") == best), None)
        kept = f"kept epoch {best}"
        if accuracy is not None:
            kept += f" (validation tool-name accuracy {accuracy:.2f})"
        parts.append(kept + (", stopped early" if summary.get("stopped_early") else ""))
    return "; ".join(parts) + "."


def per_class_table(evals: dict[str, Any], candidate: str | None = None) -> Table | None:
    """One row per reference class: its sample count and, per eval type, the share of its samples whose tool
    name was right (text for ``no_tool``), so a class the model never gets stands out; None without
    per-class results (a result stored before they existed)."""
    kinds = [k for k in EVAL_TYPES if (evals.get(k) or {}).get("per_class")]
    if not kinds:
        return None
    sizes: dict[str, int] = {}
    for kind in kinds:
        for label, entry in evals[kind]["per_class"].items():
            sizes[label] = max(sizes.get(label, 0), int(entry.get("n") or 0))
    title = "Tool name accuracy per reference class" + (f" ({candidate})" if candidate else "")
    table = Table(title=title, title_justify="left")
    table.add_column("class", overflow="fold", min_width=10, max_width=28)
    table.add_column("n", justify="right")
    for kind in kinds:
        table.add_column(kind, justify="right")
    for label in sorted(sizes, key=lambda c: (-sizes[c], c)):
        cells = []
        for kind in kinds:
            entry = evals[kind]["per_class"].get(label) or {}
            agg = (entry.get("metrics") or {}).get("function_name_accuracy") or {}
            cells.append(f"{agg['mean']:.3f}" if agg.get("n") else "-")
        table.add_row(label, str(sizes[label]), *cells)
    return table


def metrics_table(result: dict[str, Any], teacher: str = "the logged model") -> Table:
    """Per candidate and eval type, each metric's mean with its 95% interval below it; the teacher scores 1.0
    by construction. With one candidate its name goes in the title, leaving the width to the scores."""
    candidates: dict[str, Any] = result.get("candidates", {})
    single = len(candidates) == 1
    evals_seen = [ev for evals in candidates.values() for ev in evals.values()]
    samples = {ev.get("samples") for ev in evals_seen}
    about = f"{next(iter(candidates))}, " if single else ""
    about += f"{samples.pop()} samples each, " if len(samples) == 1 else ""
    table = Table(
        title=f"Results ({about}mean and 95% interval; {teacher}'s answers score 1.000)", title_justify="left"
    )
    if not single:
        table.add_column("candidate", overflow="fold", min_width=10, max_width=24)
    table.add_column("eval", no_wrap=True, min_width=15)

    def measured(metric: str, ev: dict[str, Any]) -> bool:
        agg = (ev.get("judge") or {}).get("score") if metric == "judge" else (ev.get("metrics") or {}).get(metric)
        return bool(agg and agg.get("n"))

    metrics = [m for m in REPORTED if any(measured(m, ev) for ev in evals_seen)]
    for m in metrics:
        table.add_column(REPORTED[m], justify="right", min_width=9)
    for candidate, evals in candidates.items():
        for eval_type in EVAL_TYPES:
            ev = evals.get(eval_type)
            if ev is None:
                continue
            cells = []
            for m in metrics:
                agg = ev.get("judge", {}).get("score") if m == "judge" and ev.get("judge") else ev["metrics"].get(m)
                if not agg or not agg.get("n"):
                    cells.append("-")
                else:
                    cells.append(f"{agg['mean']:.3f}\n{agg['ci_low']:.2f}-{agg['ci_high']:.2f}")
            table.add_row(*([] if single else [candidate]), eval_type, *cells)
    return table


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@guarded
def run(
    ctx: typer.Context,
    workload_id: WorkloadIdOption,
    client_id: ClientIdOption,
    candidate: CandidatesOption = None,
    split: Annotated[Overrides, overrides_option("--split", "data_split", "eval_size=20")] = None,
    training: Annotated[Overrides, overrides_option("--training", "training", "epochs=1, lora.adapter_dim=8")] = None,
    recommend: Annotated[
        Overrides,
        overrides_option(
            "--recommend", "recommendation rule", "min_ratio=0.9 or metric=function_name_and_args_accuracy"
        ),
    ] = None,
    learning_curve: str | None = typer.Option(
        None,
        "--learning-curve",
        help="Also train on these fractions of the train split, comma-separated (e.g. 0.25,0.5), and score each: "
        "does more data still help?",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the finished job as JSON."),
) -> None:
    """Run one whole flywheel job here (embedded executor) and print its result table."""
    settings: Settings = state(ctx).settings()
    # No API shares this process, so its compute stages run in its threads: a spawned, niced child process
    # (what `flywheel serve` does to keep the API fast) measured ~1.4x slower per LoRA step here.
    executor = settings.executor.model_copy(update={"kind": "embedded", "isolate_compute": False})
    settings = settings.model_copy(update={"executor": executor})
    config: dict[str, Any] = {
        "candidates": list(candidate or []) or None,
        "data_split_config": parse_assignments(split, "--split") or None,
        "training_config": parse_assignments(training, "--training") or None,
        "recommendation_config": parse_assignments(recommend, "--recommend") or None,
        "learning_curve": _fractions(learning_curve),
    }
    config = {k: v for k, v in config.items() if v is not None}
    started = time.monotonic()
    with FlywheelService(settings) as service:
        job = service.create_job(workload_id, client_id, config)
        job = service.wait(job.id) if as_json else follow_job(service, job.id, started)
        detail = service.store.job_detail(job.id)
    if as_json:
        print_json(_plain(dataclasses.asdict(detail)))
    else:
        if job.result:
            console.print(result_table(job.result))
        elapsed = time.monotonic() - started
        status = job.status.value + (f": {job.error}" if job.error else "")
        console.print(f"job {job.id} {status} in {elapsed:.0f} s", highlight=False, soft_wrap=True)
    if job.status.value != "completed":
        raise typer.Exit(1)


def worker(
    ctx: typer.Context,
    queues: str = typer.Option(
        f"{Queue.CPU.value},{Queue.ACCELERATOR.value}", "--queues", "-Q", help="Comma-separated queues to consume."
    ),
    concurrency: int = typer.Option(2, "--concurrency", "-c", min=1, help="Stages this worker runs at once."),
    log_level: str = typer.Option("info", "--log-level"),
    name: str | None = typer.Option(
        None,
        "--name",
        "-n",
        help="The worker's node name (e.g. gpu@%h; Celery's -n), recorded as the owner of every stage it runs. "
        "Default: celery@<host>.",
    ),
) -> None:
    """A Celery worker running job stages (executor celery; broker: executor.broker_url)."""
    from dataflywheel.cli.common import handle_errors

    with handle_errors():
        settings = state(ctx).settings()
        try:
            from dataflywheel.workflow.celery_app import make_celery
        except ImportError as exc:
            raise ConfigError("flywheel worker needs celery: pip install 'data-flywheel[celery]'") from exc
        app = make_celery(settings.executor.broker_url, settings.executor.visibility_timeout_s)
        console.print(f"worker on {settings.executor.broker_url} queues {queues}", highlight=False)
        app.worker_main(
            [
                "worker",
                *(["-n", name] if name else []),
                "-Q",
                queues,
                "--concurrency",
                str(concurrency),
                "--loglevel",
                log_level,
                "--without-gossip",
                "--without-mingle",
                "--pool",
                "prefork",
            ]
        )


def _fractions(text: str | None) -> list[float] | None:
    """``--learning-curve 0.25,0.5`` as numbers (their range is checked with the job's config)."""
    if not text:
        return None
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--learning-curve: {text!r} is not a comma-separated list of fractions") from None
