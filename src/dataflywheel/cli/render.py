"""Tables a person reads: ingestion summaries, workload counts, dataset builds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table

from dataflywheel.ingest.jsonl import IngestReport
from dataflywheel.logstore.base import WorkloadCount

_MAX_ERRORS_SHOWN = 20


def _when(ts: float | None) -> str:
    """A timestamp as a UTC date and time; one no date can show (stored before timestamps were checked, say
    ``1e308``) as the number itself."""
    if ts is None:
        return "-"
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, OSError, ValueError):
        return f"{ts:.6g}"


def ingest_table(report: IngestReport, source: str) -> RenderableType:
    summary = Table(title=f"Loaded {source}", show_header=False, title_justify="left")
    summary.add_column(style="bold")
    summary.add_column(justify="right")
    summary.add_row("lines", str(report.lines))
    summary.add_row("loaded (new)", f"[green]{report.store.added}[/]")
    summary.add_row("duplicates (already stored)", str(report.store.duplicates))
    summary.add_row("skipped (bad lines)", f"[red]{report.skipped}[/]" if report.skipped else "0")
    for key, n in sorted(report.workloads.items()):
        summary.add_row(f"  workload/client {key}", str(n))
    parts: list[RenderableType] = [summary]
    if report.errors:
        errors = Table(title="Bad lines (skipped)", title_justify="left")
        errors.add_column("line", justify="right")
        errors.add_column("reason")
        for err in report.errors[:_MAX_ERRORS_SHOWN]:
            errors.add_row(str(err.line), err.reason)
        if report.skipped > _MAX_ERRORS_SHOWN:
            errors.add_row("…", f"{report.skipped - _MAX_ERRORS_SHOWN} more (use --json for all)")
        parts.append(errors)
    return Group(*parts)


def workloads_table(rows: Sequence[WorkloadCount], backend: str) -> Table:
    table = Table(title=f"Workloads in the {backend} log store", title_justify="left")
    table.add_column("workload_id")
    table.add_column("client_id")
    table.add_column("records", justify="right")
    table.add_column("oldest")
    table.add_column("newest")
    for r in rows:
        table.add_row(r.workload_id, r.client_id, str(r.records), _when(r.first_timestamp), _when(r.last_timestamp))
    if not rows:
        table.add_row("(none)", "", "0", "", "")
    return table


def build_tables(manifest: dict[str, Any], path: str) -> RenderableType:
    cur = manifest["curation"]
    funnel = Table(title="Curation", title_justify="left", show_header=False)
    funnel.add_column(style="bold")
    funnel.add_column(justify="right")
    funnel.add_row("records read", str(cur["total_records"]))
    funnel.add_row("invalid OpenAI format", str(cur["invalid_format"]))
    funnel.add_row("removed by quality filters", str(cur["removed_quality"]))
    funnel.add_row("duplicates", str(cur["deduplicated"]))
    funnel.add_row(
        "selected", f"[green]{cur['final_selected']}[/]" + (" (limit reached)" if cur["limit_reached"] else "")
    )
    funnel.add_row("workload type", cur["workload_type"])
    funnel.add_row("seed", str(manifest["seed"]))

    classes = manifest["classes"]
    counts = manifest["counts"]
    split = Table(title="Split by class (count, share)", title_justify="left")
    split.add_column("class")
    for name in ("all", "eval", "train", "val"):
        split.add_column(name, justify="right")
    for label in classes["all"]:
        cells = []
        for name in ("all", "eval", "train", "val"):
            n = classes[name].get(label, 0)
            total = counts["selected"] if name == "all" else counts[name]
            cells.append(f"{n} ({100 * n / total:.1f}%)" if total else "0")
        split.add_row(label, *cells)
    split.add_row("[bold]total[/]", *(f"[bold]{counts[k]}[/]" for k in ("selected", "eval", "train", "val")))
    parts: list[RenderableType] = [funnel, split]
    if cur["dropped_by_reason"]:
        drops = Table(title="Dropped records by reason", title_justify="left")
        drops.add_column("reason")
        drops.add_column("count", justify="right")
        drops.add_column("example")
        for reason, n in cur["dropped_by_reason"].items():
            example = (cur["dropped_samples"].get(reason) or [""])[0]
            drops.add_row(reason, str(n), example[:80])
        parts.append(drops)
    icl = manifest.get("icl") or {}
    if icl:
        t = Table(title="ICL examples", title_justify="left", show_header=False)
        t.add_column(style="bold")
        t.add_column(justify="right")
        for key, value in icl.items():
            if key in ("warnings",) or isinstance(value, dict | list):
                continue
            t.add_row(key.replace("_", " "), f"{value:.2f}" if isinstance(value, float) else str(value))
        parts.append(t)
    files = Table(title=f"Dataset {manifest['build_id']}  →  {path}", title_justify="left")
    files.add_column("file")
    files.add_column("records", justify="right")
    files.add_column("bytes", justify="right")
    files.add_column("sha256")
    for name, f in manifest["files"].items():
        files.add_row(name, str(f["records"]), f"{f['bytes']:,}", f["sha256"][:16])
    parts.append(files)
    for warning in manifest.get("warnings", []):
        parts.append(f"[yellow]warning:[/] {warning}")
    return Group(*parts)
