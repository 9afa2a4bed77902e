"""The pages in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright, against the
real app served by uvicorn on a free loopback port (:class:`BackgroundServer`), over the finished job's
store, with API-key auth on.

Every number checked is read back from the stored result or the stored samples, never written here. Each
run saves screenshots under ``.artifacts/screenshots/`` (git-ignored). Without Chromium or Playwright these
tests skip and say why, or fail under ``FLYWHEEL_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dataflywheel.api import create_api
from dataflywheel.decision.schema import eval_result_key
from dataflywheel.evaluation.runner import read_samples
from dataflywheel.jobs import JobStatus, JobStore, TaskStatus
from dataflywheel.results.samples import Verdict, verdict_of
from dataflywheel.serving.background import BackgroundServer
from dataflywheel.workflow.stages import eval_dir
from tests.conftest import service_unavailable
from tests.helpers.dashboard_job import FinishedJob
from tests.web.conftest import API_KEY, API_KEY_ENV, settings_of

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("FLYWHEEL_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".artifacts" / "screenshots"
TIMEOUT_MS = 10_000


@dataclass
class Server:
    url: str
    store: JobStore
    job_id: str
    finished: FinishedJob

    def result(self) -> dict[str, Any]:
        result = self.store.get_job(self.job_id).result
        assert result is not None
        return result


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        service_unavailable("Playwright", f"{exc} (pip install -e '.[dev]')")
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        service_unavailable(
            "Chromium", f"no browser at {CHROMIUM} (apt-get install chromium, or set FLYWHEEL_TEST_CHROMIUM)"
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(finished: FinishedJob) -> Iterator[Server]:
    os.environ[API_KEY_ENV] = API_KEY  # read once, by create_api
    try:
        settings = settings_of(finished, api={"api_key_env": API_KEY_ENV})
        app = create_api(settings, start_jobs=False, recover=False)
    finally:
        del os.environ[API_KEY_ENV]
    with BackgroundServer(app) as background:
        store = JobStore.from_settings(settings)
        try:
            yield Server(background.url, store, finished.job_id, finished)
        finally:
            store.close()


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    """A logged-in page (through the login form, as a person does)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server.url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/")
    assert "/login" in page.url
    page.fill("input[name=key]", API_KEY)
    page.click("#login button[type=submit]")
    page.wait_for_url(server.url + "/")
    yield page
    context.close()
    assert not errors, f"script errors on the page: {errors}"


def shot(page: Any, name: str, **kwargs: Any) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), **kwargs)
    return path


def test_a_wrong_key_is_refused_by_the_login_form(browser: Any, server: Server) -> None:
    context = browser.new_context(base_url=server.url)
    page = context.new_page()
    page.goto(f"/jobs/{server.job_id}")
    page.fill("input[name=key]", "not-the-key")
    page.click("#login button[type=submit]")
    assert "not the API key" in page.inner_text("[role=alert]")
    page.fill("input[name=key]", API_KEY)
    page.click("#login button[type=submit]")
    page.wait_for_url(f"{server.url}/jobs/{server.job_id}")  # back where it was going
    context.close()


def test_the_finished_job_shows_its_chart_confusion_and_recommendation(page: Any, server: Server) -> None:
    from playwright.sync_api import expect

    result = server.result()
    row = page.locator(f"tr[data-job-id='{server.job_id}']")
    expect(row).to_have_attribute("data-status", "completed")
    shot(page, "jobs-list.png")
    row.locator("a").click()
    page.wait_for_url(f"{server.url}/jobs/{server.job_id}")

    expect(page.locator("#recommendation .sentence")).to_have_text(result["recommendation"]["sentence"])
    metric = result["recommendation"]["rule"]["metric"]
    costs = {(c["candidate"], eval_result_key(c["eval_type"])): c["cost_per_1k"] for c in result["cost"]["evals"]}
    drawn = page.eval_on_selector_all("svg.accuracy-cost g.point", "gs => gs.map(g => ({...g.dataset}))")
    expected = [(c, t, ev["metrics"][metric]) for c, evs in result["candidates"].items() for t, ev in evs.items()]
    assert len(drawn) == len(expected) == 9
    by_key = {(d["candidate"], d["evalType"]): d for d in drawn}
    for candidate, eval_type, agg in expected:
        d = by_key[(candidate, eval_type)]
        assert float(d["mean"]) == agg["mean"]
        assert float(d["ciLow"]) == agg["ci_low"] and float(d["ciHigh"]) == agg["ci_high"]
        cost = costs[(candidate, eval_type)]
        assert d["cost"] == ("unknown" if cost is None else repr(cost))
    recommended = page.locator("svg.accuracy-cost g.point.recommended")
    rec = result["recommendation"]
    expect(recommended).to_have_attribute("data-candidate", rec["candidate"])
    expect(recommended).to_have_attribute("data-eval-type", eval_result_key(rec["eval_type"]))
    assert page.locator("svg.accuracy-cost").bounding_box()["height"] > 200  # really drawn

    # The confusion of another candidate and eval type than the one shown open: open it, read its cells.
    candidate = next(c for c in result["candidates"] if c != rec["candidate"])
    block = page.locator(f"details.confusion[data-candidate='{candidate}'][data-eval-type='base-eval']")
    block.locator("summary").click()
    cells = block.locator("td.cell")
    expect(cells.first).to_be_visible()
    shown = {
        (c["ref"], c["pred"]): int(c["count"])
        for c in cells.evaluate_all("cs => cs.map(c => ({...c.dataset}))")
        if c["count"] != "0"
    }
    confusion = result["candidates"][candidate]["base-eval"]["confusion"]
    assert shown == {(ref, pred): n for ref, row in confusion.items() for pred, n in row.items()}
    bottom = page.evaluate("document.querySelector('#chart').getBoundingClientRect().bottom + window.scrollY")
    shot(page, "job.png", full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": bottom + 12})
    shot(page, "job-full.png", full_page=True)


def _stored_samples(server: Server, candidate: str, eval_type: str) -> list[dict[str, Any]]:
    return read_samples(eval_dir(server.finished.settings, server.job_id, candidate, eval_type))


def test_samples_filter_by_candidate_eval_type_and_verdict(page: Any, server: Server) -> None:
    from playwright.sync_api import expect

    result = server.result()
    candidate = list(result["candidates"])[1]
    stored = _stored_samples(server, candidate, "icl-eval")
    wrong = [s["record_id"] for s in stored if verdict_of(s) is Verdict.WRONG_TOOL]
    assert wrong
    page.goto(f"/jobs/{server.job_id}")
    page.select_option("#sample-filter select[name=candidate]", candidate)
    expect(page.locator("#sample-filter select[name=candidate]")).to_have_value(candidate)
    page.select_option("#sample-filter select[name=eval_type]", "icl-eval")
    expect(page.locator("#sample-filter select[name=eval_type]")).to_have_value("icl-eval")
    page.check("#sample-filter input[name=verdict][value=wrong_tool]")
    expect(page.locator("#samples-count")).to_have_attribute("data-count", str(len(wrong)))
    articles = page.locator("article.sample")
    shown = articles.evaluate_all("as => as.map(a => [a.dataset.recordId, a.dataset.verdict])")
    assert [r for r, _ in shown] == wrong[: len(shown)] and {v for _, v in shown} == {"wrong_tool"}
    first = articles.first
    reference = next(s for s in stored if s["record_id"] == shown[0][0])["reference"]
    expect(first.locator(".answer.reference .fn")).to_have_text(reference["tool_calls"][0]["function"]["name"])
    expect(first.locator(".fn.changed, mark").first).to_be_visible()  # what differs is marked
    assert "verdict=wrong_tool" in page.url and "eval_type=icl-eval" in page.url
    page.locator("#samples").scroll_into_view_if_needed()
    shot(page, "samples.png")
    page.reload()  # the filter is in the address: a reload keeps it
    expect(page.locator("#samples-count")).to_have_attribute("data-count", str(len(wrong)))


def test_create_a_job_then_cancel_it_from_the_page(page: Any, server: Server) -> None:
    from playwright.sync_api import expect

    page.click("#new-job summary")
    page.fill("input[name=workload_id]", "primary_assistant")
    page.fill("input[name=client_id]", "northwind-1")
    page.check("input[name=candidate][value='tiny-random-llama']")
    page.fill("textarea[name=data_split_config]", "eval_size=abc")
    page.click("#create-job button[type=submit]")
    expect(page.locator("#create-result")).to_contain_text("data_split_config.eval_size")  # the API's 422 reason
    page.fill("textarea[name=data_split_config]", "eval_size=12\nval_ratio=0.2")
    page.click("#create-job button[type=submit]")
    expect(page.locator("#create-result")).to_contain_text("created (pending)")
    job_id = page.locator("#create-result a").inner_text()
    job = server.store.get_job(job_id)
    assert job.status is JobStatus.PENDING
    assert job.config["data_split_config"] == {"eval_size": 12, "val_ratio": 0.2}
    assert job.config["candidates"] == ["tiny-random-llama"]
    row = page.locator(f"tr[data-job-id='{job_id}']")
    expect(row).to_have_attribute("data-status", "pending")
    shot(page, "jobs.png")  # the README's: the form filled in, a new job pending next to a finished one
    row.locator("[data-cancel]").click()
    expect(row).to_have_attribute("data-status", "cancelled")
    assert server.store.get_job(job_id).status is JobStatus.CANCELLED


def test_a_running_jobs_page_follows_its_progress_live(page: Any, server: Server) -> None:
    from playwright.sync_api import expect

    store = server.store
    job = store.create_job("primary_assistant", "northwind-1", {"candidates": ["tiny-random-llama"]})
    store.set_job_status(job.id, JobStatus.RUNNING)
    run = store.add_candidate_run(job.id, "tiny-random-llama")
    store.start_stage(job.id, "base-eval:tiny-random-llama", "test")
    store.upsert_evaluation(run.id, "base-eval", status=TaskStatus.RUNNING, progress=20.0, done=6, total=30)
    page.goto(f"/jobs/{job.id}")
    stage = page.locator("tr[data-stage='base-eval:tiny-random-llama']")
    expect(stage.locator(".detail")).to_have_text("6/30 samples")
    store.upsert_evaluation(run.id, "base-eval", progress=80.0, done=24, total=30, eta_s=12.0)
    expect(stage.locator(".detail")).to_contain_text("24/30 samples", timeout=TIMEOUT_MS)  # no reload
    page.click("#live [data-cancel]")
    expect(page.locator("#job-status")).to_have_text("cancelling")


def test_promote_to_a_canary_then_roll_back_from_the_job_page(page: Any, server: Server) -> None:
    """The promotion card: a person fills the form (canary 30%, where the adapter is served, a reason) and
    presses Promote (the job's recommendation passes the gate: no override needed); the card and the job store
    show the route; Roll back returns all traffic to the big model, with the reason the page gives."""
    from playwright.sync_api import expect

    job = server.store.get_job(server.job_id)
    page.goto(f"/jobs/{server.job_id}")
    card = page.locator("#promotion")
    expect(card.locator("#route-now")).to_have_text("All traffic goes to the big model.")
    card.locator("select[name=mode]").select_option("canary")
    card.locator("input[name=canary_share]").fill("0.3")
    card.locator("input[name=base_url]").fill("http://127.0.0.1:8001/v1")
    card.locator("input[name=model]").fill("candidate-adapter")
    card.locator("input[name=reason]").fill("tried on a third of traffic first")
    card.locator("[data-promote]").click()
    expect(card.locator("#promote-result")).to_have_text("promoted: canary")
    expect(card.locator("#route-now")).to_contain_text("canary 30% to ")
    expect(card.locator("#route-now")).to_contain_text("as candidate-adapter at http://127.0.0.1:8001/v1")
    route = server.store.current_route(job.workload_id, job.client_id)
    assert route is not None and route.active and route.mode is not None and route.mode.value == "canary"
    assert route.canary_share == 0.3 and not route.override and route.reason == "tried on a third of traffic first"
    assert route.candidate == server.result()["recommendation"]["candidate"]
    assert route.job_id == server.job_id and route.target is not None and route.target.model == "candidate-adapter"
    shot(page, "promotion.png", full_page=True)

    card.locator("[data-rollback]").click()
    expect(card.locator("#promote-result")).to_have_text("rolled back")
    expect(card.locator("#route-now")).to_have_text(
        "All traffic goes to the big model (rolled back: from the job page)."
    )
    after = server.store.current_route(job.workload_id, job.client_id)
    assert after is not None and not after.active and after.reason == "from the job page"
