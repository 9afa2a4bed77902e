"""The ``flywheel`` command."""

from __future__ import annotations

from pathlib import Path

import typer

from dataflywheel import __version__
from dataflywheel.cli import datasets, logs, schedule
from dataflywheel.cli.api import serve_api
from dataflywheel.cli.common import guarded, print_json, state
from dataflywheel.cli.demo import demo
from dataflywheel.cli.evaluate import evaluate
from dataflywheel.cli.export import export_mlflow
from dataflywheel.cli.feedback import curate, feedback
from dataflywheel.cli.jobs import jobs_app
from dataflywheel.cli.report import report
from dataflywheel.cli.routing import promote, proxy, rollback
from dataflywheel.cli.run import run, worker
from dataflywheel.cli.serve import serve_model
from dataflywheel.cli.synth import synth
from dataflywheel.cli.train import adapters_app, train

app = typer.Typer(
    name="flywheel",
    help="data-flywheel: turn an LLM application's production logs into cheaper models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(logs.app, name="logs")
app.add_typer(datasets.app, name="datasets")
app.add_typer(adapters_app, name="adapters")
app.add_typer(jobs_app, name="jobs")
app.add_typer(schedule.app, name="schedule")
app.command("serve", help="Serve the flywheel REST API (jobs, logs, workloads; docs at /docs).")(serve_api)
app.command("demo")(demo)
app.command("eval", help="Evaluate a model on an eval dataset (base, ICL or customized).")(evaluate)
app.command("serve-model", help="Serve a model (and LoRA adapters) over the OpenAI chat-completions API.")(serve_model)
app.command("train", help="Fine-tune a LoRA adapter on a dataset build (outside a job).")(train)
app.command("feedback", help="Feedback loop: student answers, normalized, judged, written back.")(feedback)
app.command("curate", help="Deprecated: the former name of `flywheel feedback` (same options).")(curate)
app.command("run", help="Run one whole flywheel job in this process and print its results.")(run)
app.command("worker", help="A Celery worker running job stages (executor celery).")(worker)
app.command("synth", help="Write synthetic customer-service traffic in log form (JSONL).")(synth)
app.command("export-mlflow", help="Log a finished job to MLflow (params, metrics, dataset hashes, artifacts).")(
    export_mlflow
)
app.command("proxy", help="Serve the logging proxy in front of the big model (calls logged, routes applied).")(proxy)
app.command("promote", help="Promote a job's candidate into its workload's route (shadow, canary, full).")(promote)
app.command("rollback", help="Send a workload's traffic back to the big model.")(rollback)
app.command("report", help="Write a job's results as one self-contained HTML file (opens offline).")(report)


@app.callback()
def main(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Settings YAML (default: $FLYWHEEL_CONFIG or config/flywheel.yaml)."
    ),
) -> None:
    state(ctx).config = config
    _quiet_libraries()


def _quiet_libraries() -> None:
    """Our own progress displays say what runs: the libraries' per-file progress bars and deprecation
    notices only clutter a person's screen (and log files)."""
    import os
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")


@app.command("config")
@guarded
def show_config(
    ctx: typer.Context,
    template: bool = typer.Option(
        False,
        "--template",
        help="Print every setting at its default under its description, as YAML, instead "
        "(what config/flywheel.yaml holds).",
    ),
) -> None:
    """Validate the settings and print the effective values as JSON."""
    if template:
        from dataflywheel.settings_template import settings_template

        typer.echo(settings_template(), nl=False)
        return
    print_json(state(ctx).settings().model_dump(mode="json"))


@app.command("version")
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
