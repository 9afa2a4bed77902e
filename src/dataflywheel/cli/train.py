"""``flywheel train`` (a LoRA run outside a job) and ``flywheel adapters`` (the adapter registry)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.progress import MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from dataflywheel.cli.common import console, guarded, parse_assignments, print_json, progress_bar, state
from dataflywheel.cli.run import training_line
from dataflywheel.errors import ConfigError
from dataflywheel.training import TrainProgress, customize
from dataflywheel.training.adapters import delete_adapter, get_adapter, list_adapters, merge_adapter
from dataflywheel.training.report import training_summary

adapters_app = typer.Typer(help="Trained LoRA adapters (the registry under <home>/adapters).", no_args_is_help=True)


def metrics_table(name: str, metrics: dict[str, Any]) -> Table:
    table = Table(title=f"adapter {name}", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for epoch in metrics.get("epochs", []):
        val = epoch.get("val_loss")
        table.add_row(
            f"epoch {epoch['epoch']} loss (train / val)",
            f"{epoch['train_loss']:.4f} / {val:.4f}" if val is not None else f"{epoch['train_loss']:.4f}",
        )
    tps = metrics.get("tokens_per_s")
    table.add_row("examples (train / val)", f"{metrics['train_examples']} / {metrics['val_examples']}")
    table.add_row("skipped rows", str(metrics.get("skipped_count", 0)))
    table.add_row("steps", str(metrics["total_steps"]))
    table.add_row("tokens/s", f"{tps:,.0f}" if tps else "-")
    table.add_row(
        "shared-prefix micro-batches", f"{metrics['shared_prefix_micro_batches']} of {metrics['micro_batches']}"
    )
    table.add_row("device / dtype", f"{metrics['device']} / {metrics['dtype']}")
    table.add_row("time", f"{metrics['runtime_seconds']:.1f} s")
    return table


@guarded
def train(
    ctx: typer.Context,
    model: str = typer.Option(..., "--model", "-m", help="Candidate name, built-in alias, model folder or hub id."),
    dataset: Path = typer.Option(
        ..., "--dataset", "-d", exists=True, file_okay=False, help="A dataset build folder (train.jsonl, val.jsonl)."
    ),
    epochs: int | None = typer.Option(None, "--epochs", min=1),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Examples per optimizer step."),
    learning_rate: float | None = typer.Option(None, "--learning-rate", "--lr"),
    lora_rank: int | None = typer.Option(None, "--lora-rank", min=1, help="LoRA rank (adapter_dim)."),
    max_seq_length: int | None = typer.Option(None, "--max-seq-length", min=16),
    shared_prefix: bool = typer.Option(True, "--shared-prefix/--no-shared-prefix", help="Run shared prefixes once."),
    set_: list[str] | None = typer.Option(None, "--set", help="Any training/lora key as KEY=VALUE (repeatable)."),
    run_id: str | None = typer.Option(None, "--resume", help="Run id of an interrupted run to continue."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Fine-tune a LoRA adapter on a dataset build and register it as <candidate>-<workload>-<id>."""
    settings = state(ctx).settings()
    overrides: dict[str, Any] = {
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "adapter_dim": lora_rank,
        "max_seq_length": max_seq_length,
        "shared_prefix": shared_prefix,
        **parse_assignments(set_, "--set"),
    }
    if as_json:
        result = customize(settings, model, dataset, overrides=overrides, run_id=run_id)
    else:
        with progress_bar(
            "[bold]{task.fields[phase]}",
            MofNCompleteColumn(),
            TextColumn("epoch {task.fields[epoch]}  loss {task.fields[loss]}  {task.fields[tps]} tok/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ) as bar:
            task = bar.add_task("train", total=None, phase="loading", epoch="-", loss="-", tps="-")

            def progress(p: TrainProgress) -> None:
                bar.update(
                    task,
                    total=p.total_steps or None,
                    completed=p.steps_completed,
                    phase=p.phase,
                    epoch=f"{p.epochs_completed}/{p.total_epochs}",
                    loss=f"{p.loss:.4f}" if p.loss is not None else "-",
                    tps=f"{p.tokens_per_s:,.0f}" if p.tokens_per_s else "-",
                )

            result = customize(settings, model, dataset, overrides=overrides, run_id=run_id, progress=progress)
    if as_json:
        print_json(
            {
                "adapter": result.adapter.name,
                "path": str(result.adapter.path),
                "run_id": result.run_id,
                "metrics": result.metrics,
            }
        )
        return
    console.print(metrics_table(result.adapter.name, result.metrics))
    console.print(training_line(result.adapter.name, training_summary(result.metrics)), highlight=False)
    console.print(
        f"registered {result.adapter.name} at {result.adapter.path}\n"
        f"serve it: flywheel serve-model --model {model} --adapter {result.adapter.name}",
        highlight=False,
        soft_wrap=True,
    )


@adapters_app.command("list")
@guarded
def list_cmd(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Registered adapters, newest first."""
    found = list_adapters(state(ctx).settings())
    if as_json:
        print_json([{"name": a.name, "path": str(a.path), **a.info} for a in found])
        return
    table = Table(title=f"{len(found)} adapters", title_justify="left")
    for column in ("name", "base model", "workload", "val loss", "created"):
        table.add_column(column)
    for a in found:
        val = a.info.get("final_val_loss")
        table.add_row(
            a.name,
            str(a.base_model),
            str(a.info.get("workload_id", "-")),
            f"{val:.4f}" if isinstance(val, float) else "-",
            str(a.info.get("created_at", "-"))[:19],
        )
    console.print(table)


@adapters_app.command("delete")
@guarded
def delete_cmd(ctx: typer.Context, name: str = typer.Argument(..., help="Adapter name.")) -> None:
    """Remove a registered adapter."""
    if not delete_adapter(state(ctx).settings(), name):
        console.print(f"[bold red]error:[/] no adapter named {name!r}", highlight=False)
        raise typer.Exit(1)
    console.print(f"deleted {name}", highlight=False)


@adapters_app.command("export")
@guarded
def export_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Adapter name."),
    out: Path = typer.Option(..., "--out", help="Folder for the merged model."),
) -> None:
    """Write base model + adapter merged into one plain model folder."""
    settings = state(ctx).settings()
    adapter = get_adapter(settings, name)
    base_dir = adapter.info.get("base_model_dir")
    if not base_dir:
        raise ConfigError(f"adapter {name!r} does not record its base model folder")
    with console.status(f"merging {name}…"):
        path = merge_adapter(adapter, str(base_dir), out)
    console.print(f"merged model written to {path}", highlight=False)
