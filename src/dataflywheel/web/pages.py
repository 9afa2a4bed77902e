"""The I/O edge of the pages: read the job store, the dataset manifest and the samples, then hand typed
records to the pure builders of :mod:`.views`. Shared by the web routes and ``flywheel report``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dataflywheel.api.schemas import job_progress
from dataflywheel.decision.schema import eval_result_key
from dataflywheel.errors import FlywheelError
from dataflywheel.jobs import JobStore
from dataflywheel.jobs.errors import JobNotFoundError
from dataflywheel.jobs.records import JobDetail
from dataflywheel.jobs.status import JobKind
from dataflywheel.models.registry import BUILTIN_ALIASES
from dataflywheel.results.funnel import CurationFunnel, read_funnel
from dataflywheel.results.model import EVAL_TYPES, parse_result
from dataflywheel.results.samples import Verdict, load_samples, page_of
from dataflywheel.settings import Settings
from dataflywheel.web.jobs_list import JobsPage, jobs_page
from dataflywheel.web.schedules_view import ScheduleRow, schedule_rows
from dataflywheel.web.timeline import candidates_of
from dataflywheel.web.views import JobPage, SamplesView, job_page, samples_view
from dataflywheel.workflow.driver import JobDriver
from dataflywheel.workflow.plan import StageKind

logger = logging.getLogger(__name__)

__all__ = ["SampleQuery", "load_job_page", "load_jobs_page", "load_samples_view"]

SAMPLES_PER_PAGE = 10


@dataclass(frozen=True)
class SampleQuery:
    """Which samples the browser shows: None picks the recommended candidate and eval type (else the first)."""

    candidate: str | None = None
    eval_type: str | None = None
    verdict: Verdict | None = None
    offset: int = 0
    limit: int = SAMPLES_PER_PAGE


def load_jobs_page(
    store: JobStore, settings: Settings, *, limit: int = 50, offset: int = 0, auth: bool = False, form: bool = True
) -> JobsPage:
    """A page of jobs, newest first, with the progress of the unfinished ones; with ``form``, the workloads and
    candidates a new job can name too."""
    jobs, count = store.list_jobs(limit=limit, offset=offset)
    progress = {j.id: job_progress(store.job_detail(j.id))[0] for j in jobs if not j.status.terminal}
    workloads: list[tuple[str, str]] = []
    candidates: list[str] = []
    schedules: list[ScheduleRow] = []
    if form:
        schedules = schedule_rows(store.list_schedules())
        workloads = _workloads(store, settings)
        candidates = list(dict.fromkeys([*(c.name for c in settings.candidates), *BUILTIN_ALIASES]))
    return jobs_page(
        jobs,
        progress,
        count=count,
        limit=limit,
        offset=offset,
        workloads=workloads,
        candidates=candidates,
        auth=auth,
        schedules=schedules,
    )


def _workloads(store: JobStore, settings: Settings) -> list[tuple[str, str]]:
    from dataflywheel.api.routes.workloads import list_workloads

    try:
        return [(w.workload_id, w.client_id) for w in list_workloads(store, settings).data]
    except FlywheelError as exc:  # the form still works without suggestions
        logger.warning("jobs page: no workload suggestions: %s", exc)
        return []


def load_job_page(
    store: JobStore,
    settings: Settings,
    job_id: str,
    *,
    samples: SampleQuery | None = None,
    auth: bool = False,
    now: datetime | None = None,
) -> JobPage:
    """The job page's view of ``job_id`` (JobNotFoundError: no such job); with ``samples``, the sample
    browser too."""
    detail = store.job_detail(job_id)
    stages = store.list_stages(job_id)
    view = samples_for(settings, detail, samples) if samples is not None else None
    funnel = _funnel(detail, store)
    customizable = {c: JobDriver._customizable(settings, c) for c in candidates_of(detail)}
    return job_page(
        detail,
        stages,
        funnel=funnel,
        samples=view,
        now=now or datetime.now(UTC),
        auth=auth,
        customizable=customizable,
    )


def _funnel(detail: JobDetail, store: JobStore) -> CurationFunnel | None:
    stage = store.get_stage(detail.job.id, StageKind.DATASETS.value)
    path = (stage.output or {}).get("path") if stage is not None else None
    if path is None:  # a job whose stage outputs are gone: the datasets' folder
        path = next((str(Path(d.path).parent) for d in detail.datasets if d.path), None)
    return read_funnel(path)


def samples_for(settings: Settings, detail: JobDetail, query: SampleQuery) -> SamplesView | None:
    """The sample browser of a job (None for a job without candidate evals)."""
    if detail.job.kind is not JobKind.FLYWHEEL:
        return None
    evals = {r.candidate: [e.eval_type for e in r.evaluations] for r in detail.candidates}
    evals = {c: types for c, types in evals.items() if types}
    if not evals:
        return None
    default_candidate, default_eval = _default_choice(detail, evals)
    candidate = query.candidate or default_candidate
    if query.eval_type:
        eval_type = query.eval_type
    elif default_eval in evals.get(candidate, ()):
        eval_type = default_eval
    else:
        eval_type = next(iter(evals.get(candidate) or EVAL_TYPES))
    return load_samples_view(settings, detail, list(evals), candidate, eval_type, query)


def _default_choice(detail: JobDetail, evals: dict[str, list[str]]) -> tuple[str, str]:
    result = parse_result(detail.job.result)
    rec = result.recommendation if result is not None else None
    key = eval_result_key(rec.eval_type) if rec is not None and rec.eval_type else None
    if rec is not None and rec.candidate in evals and key in evals[rec.candidate]:
        return rec.candidate, str(key)
    candidate = next(iter(evals))
    return candidate, evals[candidate][0]


def load_samples_view(
    settings: Settings,
    detail: JobDetail,
    candidates: list[str],
    candidate: str,
    eval_type: str,
    query: SampleQuery,
) -> SamplesView:
    """One eval's page of samples; a message instead when the eval stored none (yet)."""
    types = sorted({e.eval_type for r in detail.candidates for e in r.evaluations} | {eval_type})
    try:
        samples = load_samples(settings, detail, candidate, eval_type)
    except JobNotFoundError as exc:
        return samples_view(candidates, types, candidate, eval_type, query.verdict, None, message=str(exc))
    page = page_of(samples, candidate, eval_type, query.verdict, offset=query.offset, limit=query.limit)
    return samples_view(candidates, types, candidate, eval_type, query.verdict, page)
