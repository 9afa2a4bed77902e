"""``flywheel datasets``: build and list a workload's eval / ICL / train / val datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.progress import MofNCompleteColumn, TimeElapsedColumn
from rich.table import Table

from dataflywheel.cli.common import console, guarded, print_json, progress_bar, state
from dataflywheel.cli.options import ClientIdOption, WorkloadIdOption
from dataflywheel.cli.render import build_tables
from dataflywheel.datasets.artifacts import list_builds, read_manifest
from dataflywheel.datasets.build import DatasetBuild, build_datasets
from dataflywheel.datasets.sources import JsonlSource, RecordSource, StoreSource
from dataflywheel.logstore import LogQuery, open_log_store
from dataflywheel.privacy.config import build_redactor
from dataflywheel.progress import Progress as ProgressEvent
from dataflywheel.settings import ExampleSelection, Settings, with_overrides

app = typer.Typer(help="Build and list datasets (eval, ICL, train, val) from a workload's logs.", no_args_is_help=True)


def run_build(settings: Settings, source: RecordSource, workload_id: str, client_id: str, quiet: bool) -> DatasetBuild:
    if quiet:
        return build_datasets(source, settings, workload_id=workload_id, client_id=client_id)
    with progress_bar("[bold]{task.description:<6}", MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        tasks: dict[str, Any] = {}

        def progress(p: ProgressEvent) -> None:
            if p.stage not in tasks:
                tasks[p.stage] = bar.add_task(p.stage, total=p.total)
            bar.update(tasks[p.stage], completed=p.done, total=p.total)

        return build_datasets(source, settings, workload_id=workload_id, client_id=client_id, progress=progress)


@app.command("build")
@guarded
def build(
    ctx: typer.Context,
    workload_id: WorkloadIdOption,
    client_id: ClientIdOption,
    eval_size: int | None = typer.Option(None, "--eval-size", help="Override data_split.eval_size."),
    val_ratio: float | None = typer.Option(None, "--val-ratio", help="Override data_split.val_ratio."),
    seed: int | None = typer.Option(None, "--seed", help="Override data_split.random_seed."),
    limit: int | None = typer.Option(None, "--limit", help="Override data_split.limit."),
    min_total_records: int | None = typer.Option(None, "--min-total-records"),
    icl_selection: ExampleSelection | None = typer.Option(None, "--icl-selection", help="ICL example selection."),
    max_examples: int | None = typer.Option(None, "--max-examples", help="Override icl.max_examples."),
    since: float | None = typer.Option(None, "--since", help="Only records at or after this epoch second."),
    until: float | None = typer.Option(None, "--until", help="Only records before this epoch second."),
    from_file: Path | None = typer.Option(
        None, "--from-file", exists=True, dir_okay=False, help="Read a JSONL file instead of the log store."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Curate a workload's logs and write a versioned dataset folder; print the stats and the split."""
    settings = with_overrides(
        state(ctx).settings(),
        data_split={
            "eval_size": eval_size,
            "val_ratio": val_ratio,
            "random_seed": seed,
            "limit": limit,
            "min_total_records": min_total_records,
        },
        icl={"example_selection": icl_selection, "max_examples": max_examples},
    )
    if from_file is not None:
        result = run_build(settings, JsonlSource(from_file, build_redactor(settings)), workload_id, client_id, as_json)
    else:
        with open_log_store(settings) as store:
            source = StoreSource(store, LogQuery(workload_id, client_id, since=since, until=until))
            result = run_build(settings, source, workload_id, client_id, as_json)
    if as_json:
        print_json({"path": str(result.path), **result.manifest})
    else:
        console.print(build_tables(result.manifest, str(result.path)))


@app.command("list")
@guarded
def list_cmd(
    ctx: typer.Context,
    workload_id: WorkloadIdOption,
    client_id: ClientIdOption,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List the dataset builds of a workload/client, oldest first."""
    settings = state(ctx).settings()
    builds = [(p, read_manifest(p)) for p in list_builds(settings.datasets_dir, workload_id, client_id)]
    if as_json:
        print_json(
            [
                {
                    "path": str(p),
                    "build_id": m["build_id"],
                    "created_at": m["created_at"],
                    "counts": m["counts"],
                    "seed": m["seed"],
                }
                for p, m in builds
            ]
        )
        return
    table = Table(title=f"Datasets of {workload_id} / {client_id}", title_justify="left")
    for col in ("build", "created", "eval", "train", "val", "seed", "selection"):
        table.add_column(col)
    for _, m in builds:
        c = m["counts"]
        table.add_row(
            m["build_id"],
            m["created_at"][:19],
            str(c["eval"]),
            str(c["train"]),
            str(c["val"]),
            str(m["seed"]),
            m["settings"]["icl"]["example_selection"],
        )
    console.print(table)
