"""The web pages of ``flywheel serve``: the jobs list at ``/``, a job at ``/jobs/{id}``, the server-rendered
parts the pages refresh (``/partials/...``), the downloadable report, and the login form.

With an API key (``api.api_key_env``) every page wants the session cookie the login form sets
(:mod:`dataflywheel.api.session`): a page without it redirects to ``/login``, a part answers 401 (the page's
script then goes to the login form). The pages change nothing themselves: creating and cancelling jobs go
through the JSON API with the same cookie.

Routes are plain ``def``: they read the job store, which blocks, so FastAPI runs them in its thread pool.
Each page answers with a ``Server-Timing`` header giving the time it took to read and render.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from importlib.resources import files
from typing import Annotated, NamedTuple
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from dataflywheel.api.deps import SettingsDep, StoreDep, api_state
from dataflywheel.api.errors import InvalidJobIdError, check_job_id
from dataflywheel.api.session import COOKIE, MAX_AGE_S, session_token, valid_session
from dataflywheel.jobs.errors import JobNotFoundError
from dataflywheel.results.samples import Verdict
from dataflywheel.web import pages
from dataflywheel.web.render import (
    render_error,
    render_job_live,
    render_job_page,
    render_jobs_page,
    render_jobs_table,
    render_login,
    render_report,
    render_samples,
)

__all__ = ["install_web", "router"]


class LoginRequired(Exception):
    """A page asked for without the session cookie while the server has an API key."""

    def __init__(self, partial: bool) -> None:
        self.partial = partial


def _authorized(request: Request) -> bool:
    key = api_state(request).api_key
    if key is None:
        return True
    # The API key as a bearer header works too (a script fetching the report).
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer " and hmac.compare_digest(auth[7:].strip().encode(), key.encode()):
        return True
    return valid_session(request.cookies.get(COOKIE), key)


async def page_access(request: Request) -> bool:
    """Whether the server has a key (the page shows a log-out button); LoginRequired without a session."""
    if not _authorized(request):
        raise LoginRequired(partial="/partials/" in request.url.path)
    return api_state(request).api_key is not None


AuthDep = Annotated[bool, Depends(page_access)]
router = APIRouter(include_in_schema=False)


def _html(body: str, started: float, status: int = 200) -> HTMLResponse:
    elapsed_ms = (time.perf_counter() - started) * 1000
    return HTMLResponse(body, status_code=status, headers={"Server-Timing": f"render;dur={elapsed_ms:.1f}"})


def _job_html(job_id: str, started: float, show: Callable[[str], str | HTMLResponse]) -> HTMLResponse:
    """What ``show`` makes of the checked job id (a page's body, or a whole response): 400 when the id is
    malformed, 404 when there is no such job."""
    try:
        checked = check_job_id(job_id)
    except InvalidJobIdError as exc:
        return HTMLResponse(render_error(400, str(exc)), status_code=400)
    try:
        shown = show(checked)
    except JobNotFoundError as exc:
        return _html(render_error(404, str(exc)), started, 404)
    return shown if isinstance(shown, HTMLResponse) else _html(shown, started)


def _sample_query(
    candidate: str | None = None,
    eval_type: str | None = None,
    verdict: Verdict | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> pages.SampleQuery:
    """The samples a job's page shows, from its query string (an empty value: any)."""
    return pages.SampleQuery(candidate or None, eval_type or None, verdict, offset)


SampleQueryDep = Annotated[pages.SampleQuery, Depends(_sample_query)]


class _JobsWindow(NamedTuple):
    offset: int
    limit: int


def _jobs_window(
    offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> _JobsWindow:
    """Which jobs the jobs page (and its table's refresh) shows, newest first, from its query string."""
    return _JobsWindow(offset, limit)


JobsWindowDep = Annotated[_JobsWindow, Depends(_jobs_window)]


# ---- pages -----------------------------------------------------------------------------------------------
@router.get("/", response_class=HTMLResponse)
def jobs_page(auth: AuthDep, store: StoreDep, settings: SettingsDep, window: JobsWindowDep) -> HTMLResponse:
    started = time.perf_counter()
    view = pages.load_jobs_page(store, settings, limit=window.limit, offset=window.offset, auth=auth)
    return _html(render_jobs_page(view), started)


@router.get("/partials/jobs", response_class=HTMLResponse)
def jobs_table(auth: AuthDep, store: StoreDep, settings: SettingsDep, window: JobsWindowDep) -> HTMLResponse:
    started = time.perf_counter()
    view = pages.load_jobs_page(store, settings, limit=window.limit, offset=window.offset, auth=auth, form=False)
    return _html(render_jobs_table(view), started)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(
    job_id: str,
    auth: AuthDep,
    store: StoreDep,
    settings: SettingsDep,
    query: SampleQueryDep,
) -> HTMLResponse:
    started = time.perf_counter()
    return _job_html(
        job_id,
        started,
        lambda job: render_job_page(pages.load_job_page(store, settings, job, samples=query, auth=auth)),
    )


@router.get("/jobs/{job_id}/partials/live", response_class=HTMLResponse)
def job_live(job_id: str, auth: AuthDep, store: StoreDep, settings: SettingsDep) -> HTMLResponse:
    started = time.perf_counter()
    return _job_html(job_id, started, lambda job: render_job_live(pages.load_job_page(store, settings, job)))


@router.get("/jobs/{job_id}/partials/samples", response_class=HTMLResponse)
def job_samples(
    job_id: str,
    auth: AuthDep,
    store: StoreDep,
    settings: SettingsDep,
    query: SampleQueryDep,
) -> HTMLResponse:
    started = time.perf_counter()

    def samples(job: str) -> str | HTMLResponse:
        view = pages.samples_for(settings, store.job_detail(job), query)
        if view is None:
            return _html(render_error(404, f"job {job} has no evaluated samples"), started, 404)
        return render_samples(view, job)

    return _job_html(job_id, started, samples)


@router.get("/jobs/{job_id}/report.html", response_class=HTMLResponse)
def job_report(job_id: str, auth: AuthDep, store: StoreDep, settings: SettingsDep) -> HTMLResponse:
    """The job's self-contained report, as ``flywheel report`` writes it."""
    started = time.perf_counter()

    def report(job: str) -> HTMLResponse:
        response = _html(render_report(pages.load_job_page(store, settings, job)), started)
        response.headers["Content-Disposition"] = f'attachment; filename="flywheel-report-{job[:12]}.html"'
        return response

    return _job_html(job_id, started, report)


# ---- login -----------------------------------------------------------------------------------------------
def _safe_next(value: str | None) -> str:
    """Only a path of this site: never another host (``//evil``, ``/\\evil``, ``https://...``)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    return value


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    state = api_state(request)
    if state.api_key is None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return HTMLResponse(render_login(next_path=_safe_next(next), key_env=state.settings.api.api_key_env))


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the key from the form; set the session cookie and go on, or show the form again (401)."""
    state = api_state(request)
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    next_path = _safe_next((form.get("next") or ["/"])[0])
    if state.api_key is None:
        return RedirectResponse(next_path, status_code=303)
    given = (form.get("key") or [""])[0].strip()
    if not hmac.compare_digest(given.encode(), state.api_key.encode()):
        body = render_login(
            next_path=next_path, error="Wrong key: it is not the API key this server has.", key_env=None
        )
        return HTMLResponse(body, status_code=401)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        COOKIE,
        session_token(state.api_key),
        max_age=MAX_AGE_S,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


# ---- the app ---------------------------------------------------------------------------------------------
async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    if exc.partial:
        return HTMLResponse("log in first", status_code=401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def install_web(app: FastAPI) -> None:
    """Add the pages, their static files (``/static``) and the login redirect to ``app``."""
    app.include_router(router)
    static = files("dataflywheel.web").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.add_exception_handler(LoginRequired, _login_required)
