"""``flywheel eval``: run one evaluation outside a job."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer
from rich.progress import MofNCompleteColumn, TimeRemainingColumn
from rich.table import Table

from dataflywheel.cli.common import console, guarded, print_json, progress_bar, state
from dataflywheel.evaluation.judge import (
    Judge,
    JudgeCache,
    JudgeUnavailableError,
    check_judge,
    client_judge_chat,
    judge_client,
)
from dataflywheel.evaluation.runner import (
    EvalConfig,
    EvalProgress,
    EvalSummary,
    EvalType,
    load_dataset,
    run_async,
    run_eval,
)
from dataflywheel.models.deployments import DeploymentManager
from dataflywheel.models.registry import resolve_model
from dataflywheel.settings import Settings


def summary_table(summary: EvalSummary) -> Table:
    table = Table(
        title=f"{summary.eval_type} of {summary.model} ({summary.samples} samples, {summary.errors} errors)",
        title_justify="left",
    )
    table.add_column("metric")
    table.add_column("mean", justify="right")
    table.add_column("95% interval", justify="right")
    table.add_column("n", justify="right")
    rows = dict(summary.metrics)
    if summary.judge:
        rows[f"judge ({summary.judge.get('model')})"] = summary.judge["score"]
    for name, agg in rows.items():
        if agg["n"] == 0:
            continue
        table.add_row(name, f"{agg['mean']:.3f}", f"[{agg['ci_low']:.3f}, {agg['ci_high']:.3f}]", str(agg["n"]))
    return table


def _judge(settings: Settings, name: str | None, manager: DeploymentManager, kind: str) -> tuple[Judge | None, str]:
    """The judge named on the command line (a candidate name) or configured in settings, or why there is none."""
    if name is None and not settings.judge.enabled:
        return None, "no judge configured"
    if name is not None:
        spec = resolve_model(name, settings)
        deployment = manager.deploy(spec)
        client, model = deployment.client(), deployment.model
    else:
        assert settings.judge.model
        client, model = judge_client(settings.judge), settings.judge.model
    chat = client_judge_chat(client, model)
    problem = asyncio.run(check_judge(chat))
    if problem:
        return None, problem
    cache = JudgeCache(settings.home / "judge-cache.db")
    return Judge(chat, model=model, kind=kind, cache=cache), ""  # type: ignore[arg-type]


@guarded
def evaluate(
    ctx: typer.Context,
    model: str = typer.Option(..., "--model", help="Candidate name, built-in alias, folder or hub id."),
    dataset: Path = typer.Option(..., "--dataset", exists=True, dir_okay=False, help="eval.jsonl or icl.jsonl."),
    adapter: Path | None = typer.Option(None, "--adapter", exists=True, file_okay=False, help="LoRA adapter folder."),
    eval_type: EvalType | None = typer.Option(
        None, "--eval-type", help="Default: icl-eval for an icl file, customized-eval with --adapter, else base-eval."
    ),
    judge: str | None = typer.Option(None, "--judge", help="A model to judge with (default: settings.judge)."),
    concurrency: int = typer.Option(8, "--concurrency", min=1),
    max_tokens: int = typer.Option(256, "--max-tokens", min=1),
    out: Path | None = typer.Option(None, "--out", help="Folder for samples and summary."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Evaluate a model on an eval dataset: every sample stored, every metric with its interval."""
    settings = state(ctx).settings()
    rows = load_dataset(dataset)
    kind = eval_type or (EvalType.CUSTOMIZED if adapter else EvalType.ICL if "icl" in dataset.name else EvalType.BASE)
    spec = resolve_model(model, settings)
    out_dir = out or settings.home / "evals" / f"{spec.name.replace('/', '_')}-{kind.value}-{dataset.parent.name}"
    tool_calling = any(
        ((r.get("response") or {}).get("choices") or [{}])[0].get("message", {}).get("tool_calls") for r in rows
    )
    with DeploymentManager(settings) as manager:
        adapters = {"adapter": adapter} if adapter else {}
        with console.status(f"starting {spec.name}…"):
            deployment = manager.deploy(spec, adapters=adapters)
            the_judge, why = _judge(
                settings, judge, manager, "tool_calling_correctness" if tool_calling else "similarity"
            )
        if the_judge is None and judge is None and settings.judge.enabled and settings.judge.required:
            raise JudgeUnavailableError(f"judge {settings.judge.model} at {settings.judge.base_url}: {why}")
        if the_judge is None and (judge or settings.judge.enabled):
            console.print(f"[yellow]warning:[/] {why}; judge metrics are skipped")
        # A local server queues requests behind its batch: allow long waits, not only slow answers.
        client = deployment.client(max_concurrency=concurrency, timeout=600.0 if deployment.local else 120.0)
        model_name = "adapter" if adapter else deployment.model
        config = EvalConfig(kind, spec.name, concurrency=concurrency, max_tokens=max_tokens)
        if not tool_calling:  # text answers: embedding similarity needs no judge
            from dataflywheel.icl.embedders import make_embedder

            config.embedder = make_embedder(settings.icl.embedder)

        async def chat(request: Any) -> Any:
            return await client.chat(request, model_name)

        if as_json:
            summary = run_async(run_eval(rows, chat, out_dir, config, judge=the_judge))
        else:
            with progress_bar(f"[bold]{kind.value}", MofNCompleteColumn(), TimeRemainingColumn()) as bar:
                task = bar.add_task("eval", total=len(rows))

                def progress(p: EvalProgress) -> None:
                    bar.update(task, completed=p.done)

                summary = run_async(run_eval(rows, chat, out_dir, config, judge=the_judge, progress=progress))
    if as_json:
        print_json({"out": str(out_dir), **summary.to_dict()})
    else:
        console.print(summary_table(summary))
        if summary.judge.get("parse_failures"):
            first = (summary.judge.get("parse_failure_examples") or [{}])[0]
            console.print(
                f"[yellow]judge:[/] {summary.judge['parse_failures']} replies not in the prompt's answer format "
                f"(not scored), e.g. {first.get('record_id')}: {first.get('reason')}",
                highlight=False,
            )
        console.print(f"samples and summary: {out_dir}  ({summary.wall_s:.1f} s)")
