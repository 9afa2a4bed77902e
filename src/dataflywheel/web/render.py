"""HTML from view models (pure: a view in, a string out), through the package's Jinja templates.

The job page and the report share their sections (``_sections.html``); the report inlines its stylesheet
and has no script, so the one file opens offline.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from dataflywheel import __version__
from dataflywheel.web import format as fmt
from dataflywheel.web.jobs_list import JobsPage
from dataflywheel.web.views import (
    EVAL_LABELS,
    METRIC_LABELS,
    METRIC_TITLES,
    VERDICT_LABELS,
    JobPage,
    SamplesView,
)

__all__ = [
    "render_error",
    "render_job_live",
    "render_job_page",
    "render_jobs_page",
    "render_jobs_table",
    "render_login",
    "render_report",
    "render_samples",
    "stylesheet",
]


@functools.cache
def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("dataflywheel.web", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(fmt.FILTERS)
    env.globals.update(
        METRIC_LABELS=METRIC_LABELS,
        METRIC_TITLES=METRIC_TITLES,
        EVAL_LABELS=EVAL_LABELS,
        VERDICT_LABELS=VERDICT_LABELS,
        NOT_COMPUTED=fmt.NOT_COMPUTED,
        UNKNOWN=fmt.UNKNOWN,
        version=__version__,
    )
    return env


@functools.cache
def stylesheet() -> str:
    """The page's stylesheet (``static/app.css``), which the report inlines."""
    return files("dataflywheel.web").joinpath("static/app.css").read_text(encoding="utf-8")


def _render(template: str, **context: Any) -> str:
    return _env().get_template(template).render(**context)


def render_jobs_page(view: JobsPage) -> str:
    return _render("jobs.html", view=view, inline_css=None)


def render_jobs_table(view: JobsPage) -> str:
    """The jobs table with its pager: the part of the jobs page that refreshes."""
    return _render("_jobs_table.html", view=view)


def render_job_page(view: JobPage) -> str:
    return _render("job.html", view=view, inline_css=None)


def render_job_live(view: JobPage) -> str:
    """The parts of the job page that move while it runs: status, progress, the stage timeline."""
    return _render("_live.html", view=view)


def render_samples(view: SamplesView, job_id: str) -> str:
    return _render("_samples.html", samples=view, job_id=job_id)


def render_report(view: JobPage) -> str:
    """One self-contained HTML file: inline CSS, inline SVG, no script, no link to anything else."""
    return _render("report.html", view=view, inline_css=stylesheet())


def render_login(*, next_path: str, error: str | None = None, key_env: str | None = None) -> str:
    return _render("login.html", next_path=next_path, error=error, key_env=key_env, inline_css=None)


def render_error(status: int, message: str) -> str:
    return _render("error.html", status=status, message=message, inline_css=None)
