"""``flywheel report JOB_ID -o report.html``: a job's results as one self-contained HTML file.

The file has what the job's web page shows, drawn by the same renderers: the recommendation, the results
table (every metric with its 95% interval, cost per 1,000 requests, latency), the accuracy-vs-cost chart,
the confusion tables, the LoRA loss curves, the curation funnel and the stages. Its stylesheet and charts
are inline and it has no script, so it opens offline and can be mailed or archived as it is.
"""

from __future__ import annotations

from pathlib import Path

import typer

from dataflywheel.cli.common import console, guarded, state


@guarded
def report(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., help="The job (its 32-digit id, as flywheel jobs list shows it)."),
    output: Path = typer.Option(Path("report.html"), "--output", "-o", help="The HTML file to write."),
) -> None:
    """Write a job's results as one self-contained HTML file (inline CSS and SVG charts; opens offline)."""
    from dataflywheel.jobs import JobStore
    from dataflywheel.web.pages import load_job_page
    from dataflywheel.web.render import render_report

    settings = state(ctx).settings()
    store = JobStore.from_settings(settings)
    try:
        html = render_report(load_job_page(store, settings, job_id.strip()))
    finally:
        store.close()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(html, encoding="utf-8")
    console.print(f"wrote {output} ({len(html.encode()) / 1024:.0f} KB)", highlight=False, soft_wrap=True)
