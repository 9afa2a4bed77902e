"""``flywheel feedback``: the feedback loop as one command (student inference over logged prompts,
normalization, quality filter, write-back), optionally followed by a flywheel job on the curated records.

``flywheel curate`` is its former name: a deprecated alias (same options) that says so, until the next
release."""

from __future__ import annotations

import functools
import time
from typing import Any

import typer
from rich.table import Table

from dataflywheel.cli.common import console, guarded, print_json, state
from dataflywheel.cli.job_view import follow_job
from dataflywheel.cli.options import ClientIdOption, WorkloadIdOption
from dataflywheel.cli.run import result_table
from dataflywheel.workflow.service import FlywheelService


def report_table(report: dict[str, Any]) -> Table:
    counts = report["counts"]
    title = (
        f"{report['model']} over {report['source']['workload_id']}/{report['source']['client_id']}"
        f" -> {report['target']['client_id']}" + (" (dry run: nothing written)" if report["dry_run"] else "")
    )
    table = Table(title=title, title_justify="left")
    table.add_column("step")
    table.add_column("records", justify="right")
    for label, key in [
        ("inferred", "inferred"),
        ("normalized: ok", "ok"),
        ("normalized: repaired", "repaired"),
        ("normalized: rejected", "rejected"),
        ("judge: pass", "judged_pass"),
        ("judge: fail", "judged_fail"),
        ("judge: no verdict", "judge_unparsed"),
        ("passed the filter", "passed"),
        ("written", "written"),
        ("already written (rerun)", "already_written"),
        ("not storable (refused by the log store)", "write_refused"),
    ]:
        table.add_row(label, str(counts.get(key, 0)))
    for refusal in report.get("write_refusals", [])[:3]:
        table.add_row("  not stored", refusal[:100])
    for reason, n in sorted(report.get("rejected_by_reason", {}).items(), key=lambda kv: -kv[1]):
        sample = (report.get("rejection_samples", {}).get(reason) or [""])[0]
        table.add_row(f"  failed: {reason}", f"{n}  e.g. {sample[:80]}" if sample else str(n))
    return table


@guarded
def feedback(
    ctx: typer.Context,
    workload_id: WorkloadIdOption,
    client_id: ClientIdOption,
    model: str = typer.Option(..., "--model", help="The student: candidate name, built-in alias or endpoint."),
    judge: str | None = typer.Option(None, "--judge", help="A model to judge with (default: settings.judge)."),
    target_client_id: str | None = typer.Option(None, "--target-client-id", help="Default: <client-id>-curated."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Newest logged records to use."),
    max_tokens: int = typer.Option(256, "--max-tokens", min=1),
    require_teacher_agreement: bool = typer.Option(
        True,
        "--require-teacher-agreement/--any-tools",
        help="Keep only answers calling the tools the logged answer called (default), or judge them freely.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the counts; write nothing."),
    then_run: bool = typer.Option(False, "--then-run", help="Then run a flywheel job for --model on the curated data."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run a student over logged prompts, normalize and filter its answers, write the good ones back."""
    settings = state(ctx).settings()
    config: dict[str, Any] = {
        "model": model,
        "judge": judge,
        "target_client_id": target_client_id,
        "limit": limit,
        "max_tokens": max_tokens,
        "dry_run": dry_run,
        "pass_rule": {"require_teacher_agreement": require_teacher_agreement},
    }
    started = time.monotonic()
    with FlywheelService(settings) as service:
        job = service.create_feedback(workload_id, client_id, {k: v for k, v in config.items() if v is not None})
        job = service.wait(job.id) if as_json else follow_job(service, job.id, started)
        report = job.result or {}
        flywheel: dict[str, Any] | None = None
        if then_run and job.status.value == "completed" and report and not dry_run:
            target = report["target"]
            run_job = service.create_job(target["workload_id"], target["client_id"], {"candidates": [model]})
            if not as_json:
                follow_job(service, run_job.id, started)
            run_job = service.wait(run_job.id)
            flywheel = {
                "id": run_job.id,
                "status": run_job.status.value,
                "error": run_job.error,
                "result": run_job.result,
            }
    if as_json:
        print_json(
            {"id": job.id, "status": job.status.value, "error": job.error, "report": report, "flywheel_job": flywheel}
        )
    else:
        if report:
            console.print(report_table(report))
        console.print(
            f"feedback job {job.id} {job.status.value}" + (f": {job.error}" if job.error else ""),
            highlight=False,
            soft_wrap=True,
        )
        if flywheel and flywheel.get("result"):
            console.print(result_table(flywheel["result"]))
    if job.status.value != "completed":
        raise typer.Exit(1)


@functools.wraps(feedback)
def curate(*args: Any, **kwargs: Any) -> None:
    """Deprecated alias of ``flywheel feedback`` (same options); removed in the next release."""
    console.print(
        "[yellow]flywheel curate is deprecated: use flywheel feedback (same options); "
        "the alias goes in the next release.[/]",
        highlight=False,
    )
    feedback(*args, **kwargs)
