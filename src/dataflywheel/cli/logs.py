"""``flywheel logs``: load, inspect and delete production logs."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import DownloadColumn, TimeRemainingColumn

from dataflywheel.cli.common import console, guarded, print_json, progress_bar, state
from dataflywheel.cli.options import ClientIdFilter, WorkloadIdFilter, WorkloadIdOption
from dataflywheel.cli.render import ingest_table, workloads_table
from dataflywheel.errors import FlywheelError
from dataflywheel.ingest.jsonl import IngestProgress, load_file
from dataflywheel.logstore import open_log_store

app = typer.Typer(help="Load, inspect and delete production logs in the configured log store.", no_args_is_help=True)


@app.command("load")
@guarded
def load(
    ctx: typer.Context,
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="JSONL of log records."),
    workload_id: str | None = typer.Option(None, "--workload-id", help="Override every record's workload_id."),
    client_id: str | None = typer.Option(None, "--client-id", help="Override every record's client_id."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Stream a JSONL file (log or conversation form) into the log store. Bad lines are reported and skipped."""
    settings = state(ctx).settings()
    size = file.stat().st_size
    with open_log_store(settings) as store:
        if as_json:
            report = load_file(
                store, file, workload_id=workload_id, client_id=client_id, batch_size=settings.log_store.batch_size
            )
        else:
            with progress_bar(
                "[bold]loading[/] {task.fields[records]} records", DownloadColumn(), TimeRemainingColumn()
            ) as bar:
                task = bar.add_task("load", total=size, records=0)

                def on_batch(p: IngestProgress) -> None:
                    bar.update(task, completed=p.done, records=p.records)

                report = load_file(
                    store,
                    file,
                    workload_id=workload_id,
                    client_id=client_id,
                    batch_size=settings.log_store.batch_size,
                    progress=on_batch,
                )
    if as_json:
        print_json({"file": str(file), "backend": settings.log_store.backend.value, **report.to_dict()})
    else:
        console.print(ingest_table(report, str(file)))
    if report.store.accepted == 0 and report.skipped:
        raise typer.Exit(1)


@app.command("stats")
@guarded
def stats(
    ctx: typer.Context,
    workload_id: WorkloadIdFilter = None,
    client_id: ClientIdFilter = None,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List workloads (and clients) with their record counts and time ranges."""
    settings = state(ctx).settings()
    with open_log_store(settings) as store:
        rows = store.counts(workload_id, client_id)
    if as_json:
        print_json(
            [
                {
                    "workload_id": r.workload_id,
                    "client_id": r.client_id,
                    "records": r.records,
                    "first_timestamp": r.first_timestamp,
                    "last_timestamp": r.last_timestamp,
                }
                for r in rows
            ]
        )
    else:
        console.print(workloads_table(rows, settings.log_store.backend.value))


@app.command("delete")
@guarded
def delete(
    ctx: typer.Context,
    workload_id: WorkloadIdOption,
    client_id: ClientIdFilter = None,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Delete a workload's records (of one client, or of every client)."""
    settings = state(ctx).settings()
    with open_log_store(settings) as store:
        n = store.count(workload_id, client_id) if client_id else sum(r.records for r in store.counts(workload_id))
        if n == 0:
            raise FlywheelError(
                f"no records for workload {workload_id!r}" + (f" of client {client_id!r}" if client_id else "")
            )
        if not yes:
            if as_json:
                raise FlywheelError("--json deletes without asking only with --yes")
            if not typer.confirm(f"Delete {n} records?", err=True):
                raise typer.Exit(1)
        deleted = store.delete(workload_id, client_id)
    if as_json:
        print_json({"deleted": deleted, "workload_id": workload_id, "client_id": client_id})
    else:
        console.print(f"deleted {deleted} records")
