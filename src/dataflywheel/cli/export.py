"""``flywheel export-mlflow JOB_ID``: log a finished job to MLflow (a completed job is exported by itself when
``mlflow.tracking_uri`` is set; this is for jobs that finished before, or whose export failed)."""

from __future__ import annotations

from pathlib import Path

import typer

from dataflywheel.cli.common import console, guarded, print_json, state
from dataflywheel.errors import ConfigError, FlywheelError
from dataflywheel.jobs import JobKind, open_job_store
from dataflywheel.jobs.errors import JobRunningError
from dataflywheel.settings import with_overrides


@guarded
def export_mlflow(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., help="The finished job to export."),
    tracking_uri: str | None = typer.Option(
        None, "--tracking-uri", help="MLflow tracking URI (default: the setting mlflow.tracking_uri)."
    ),
    experiment: str | None = typer.Option(None, "--experiment", help="Experiment (default: mlflow.experiment)."),
    report: Path | None = typer.Option(
        None,
        "--report",
        exists=True,
        dir_okay=False,
        help="HTML report to attach (default: <home>/jobs/<job id>/report.html when it exists).",
    ),
    again: bool = typer.Option(False, "--again", help="Export a job already exported (it gets another run)."),
    as_json: bool = typer.Option(False, "--json", help="Print the export's record (result.mlflow) as JSON."),
) -> None:
    """Log a finished job to MLflow: params, metrics with intervals, datasets' hashes, summaries, adapters."""
    settings = with_overrides(state(ctx).settings(), mlflow={"tracking_uri": tracking_uri, "experiment": experiment})
    if not settings.mlflow.tracking_uri:
        raise ConfigError(
            "mlflow.tracking_uri: not set; set it in the settings (env FLYWHEEL_MLFLOW__TRACKING_URI) "
            "or pass --tracking-uri"
        )
    from dataflywheel.export.mlflow import export_and_record

    with open_job_store(settings) as store:
        job = store.get_job(job_id)
        if not job.status.terminal:
            raise JobRunningError(f"job {job_id} is {job.status.value}: export it once it has finished")
        if job.kind is not JobKind.FLYWHEEL:
            raise FlywheelError(f"job {job_id} is a {job.kind.value} job: only flywheel jobs are exported")
        previous = (job.result or {}).get("mlflow") or {}
        if previous.get("run_id") and not previous.get("error") and not again:
            raise FlywheelError(
                f"job {job_id} is already in MLflow run {previous['run_id']} ({previous.get('tracking_uri')}): "
                "pass --again to log another run"
            )
        outcome = export_and_record(store, settings, job_id, report=report)
    if as_json:
        print_json(outcome.model_dump(mode="json"))
    if outcome.error is not None:
        console.print(f"[bold red]error:[/] {outcome.error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    if not as_json:
        console.print(
            f"job {job_id} exported to MLflow run {outcome.run_id} "
            f"(experiment {outcome.experiment} at {outcome.tracking_uri})",
            highlight=False,
            soft_wrap=True,
        )
