"""``flywheel schedule``: add, list and remove the schedules of workloads' jobs (cron, new records, drift).

They are written to the job store of the settings; the scheduler of every ``flywheel serve`` on that store
fires them (each firing once).
"""

from __future__ import annotations

from datetime import datetime

import orjson
import typer
from rich.table import Table

from dataflywheel.cli.common import console, guarded, print_json, state
from dataflywheel.cli.options import CandidatesOption, ClientIdOption, WorkloadIdOption
from dataflywheel.errors import ConfigError
from dataflywheel.jobs import JobStore
from dataflywheel.jobs.records import ScheduleRecord
from dataflywheel.schedule.manage import add_schedule
from dataflywheel.schedule.spec import ScheduleSpec, describe_triggers

app = typer.Typer(
    help="Schedule workloads' jobs: on a cron expression, after N new records, or when the logs drift.",
    no_args_is_help=True,
)


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def triggers(s: ScheduleRecord) -> str:
    return describe_triggers(s.cron, s.min_new_records, s.on_drift)


def _as_json(s: ScheduleRecord) -> dict[str, object]:
    data: dict[str, object] = orjson.loads(orjson.dumps(s))
    return data


@app.command("add")
@guarded
def add(
    ctx: typer.Context,
    workload_id: WorkloadIdOption,
    client_id: ClientIdOption,
    cron: str | None = typer.Option(None, "--cron", help="Five-field cron expression in UTC, e.g. '0 3 * * *'."),
    min_new_records: int | None = typer.Option(
        None, "--min-new-records", min=1, help="Start a job after this many new records."
    ),
    on_drift: bool = typer.Option(False, "--on-drift", help="Start a job when the logs drift from the last dataset."),
    candidates: CandidatesOption = None,
    job_config: str | None = typer.Option(
        None, "--job-config", help='The jobs\' overrides as JSON, e.g. \'{"data_split_config": {"eval_size": 50}}\'.'
    ),
    disabled: bool = typer.Option(False, "--disabled", help="Store it switched off."),
    as_json: bool = typer.Option(False, "--json", help="Print the schedule as JSON."),
) -> None:
    """Add a workload's schedule (one per workload and client). New records are counted from now."""
    config: dict[str, object] = {}
    if job_config:
        try:
            parsed = orjson.loads(job_config)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"--job-config: not JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise ConfigError("--job-config: expected a JSON object")
        config = parsed
    if candidates:
        config["candidates"] = list(candidates)
    settings = state(ctx).settings()
    spec = ScheduleSpec(cron, min_new_records, on_drift, not disabled, config)
    with JobStore.from_settings(settings) as store:
        schedule = add_schedule(store, settings, workload_id, client_id, spec)
    if as_json:
        print_json(_as_json(schedule))
        return
    console.print(
        f"schedule {schedule.id}: {workload_id}/{client_id}, {triggers(schedule)}; next run {_when(schedule.next_due)}",
        highlight=False,
    )


@app.command("list")
@guarded
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print them as JSON.")) -> None:
    """Every schedule with its triggers, next run and last firing."""
    settings = state(ctx).settings()
    with JobStore.from_settings(settings) as store:
        schedules = store.list_schedules()
    if as_json:
        print_json([_as_json(s) for s in schedules])
        return
    table = Table(title="Schedules", title_justify="left")
    for column in ("id", "workload / client", "triggers", "on", "next run", "last fired", "last job", "drift"):
        table.add_column(column, overflow="fold")
    for s in schedules:
        drift = (s.drift or {}).get("status", "-")
        last = f"{_when(s.last_fired_at)} ({s.last_trigger.value})" if s.last_trigger else _when(s.last_fired_at)
        table.add_row(
            str(s.id),
            f"{s.workload_id} / {s.client_id}",
            triggers(s),
            "yes" if s.enabled else "no",
            _when(s.next_due),
            last,
            s.last_job_id or (f"[red]{s.last_error}[/]" if s.last_error else "-"),
            str(drift),
        )
    if not schedules:
        table.add_row("(none)", "", "", "", "", "", "", "")
    console.print(table)


@app.command("rm")
@guarded
def rm(ctx: typer.Context, schedule_id: int = typer.Argument(..., min=1, help="The schedule's id.")) -> None:
    """Remove a schedule (the jobs it started stay)."""
    settings = state(ctx).settings()
    with JobStore.from_settings(settings) as store:
        removed = store.delete_schedule(schedule_id)
    console.print(f"removed schedule {removed.id} ({removed.workload_id}/{removed.client_id})", highlight=False)
