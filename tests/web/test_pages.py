"""The web page and the samples API over a real finished job (tests.helpers.dashboard_job), through the real
app: every number read back from the stored result, prices that are missing, results stored before cost
existed, the sample browser's filters and bad input."""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from dataflywheel.decision.schema import eval_result_key
from dataflywheel.evaluation.runner import read_samples
from dataflywheel.jobs import JobStatus, TaskStatus
from dataflywheel.results.samples import Verdict, verdict_of
from dataflywheel.web.format import interval, money, number
from dataflywheel.workflow.stages import eval_dir
from tests.web.conftest import Site
from tests.web.markup import find, words

EVAL_TYPES = ("base-eval", "icl-eval", "customized-eval")


def test_the_results_table_shows_every_metric_with_its_interval_cost_and_latency(site: Site) -> None:
    page = site.client.get(f"/jobs/{site.job_id}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html, result = page.text, site.result()
    costs = {(c["candidate"], eval_result_key(c["eval_type"])): c for c in result["cost"]["evals"]}
    latency = {(r["candidate"], eval_result_key(r["eval_type"])): r for r in result["latency"]}
    rows = find(html, "tr", data_eval_type=None)
    assert len(rows) == 9
    for candidate, evals in result["candidates"].items():
        for eval_type, ev in evals.items():
            row_html = _row(html, candidate, eval_type)
            for metric, agg in ev["metrics"].items():
                if not agg["n"]:
                    continue
                [cell] = find(row_html, "td", data_metric=metric)
                assert words(cell.text) == f"{number(agg['mean'])}{interval(agg['ci_low'], agg['ci_high'])}"
            [cost] = find(row_html, "td", class_="cost")
            assert words(cost.text) == money(costs[(candidate, eval_type)]["cost_per_1k"])
            assert "ms" in row_html or " s<" in row_html
            assert _latency_text(latency[(candidate, eval_type)]["p95_s"]) in row_html


def _row(html: str, candidate: str, eval_type: str) -> str:
    start = html.index(f'data-candidate="{candidate}" data-eval-type="{eval_type}"')
    return html[start : html.index("</tr>", start)]


def _latency_text(value: float) -> str:
    from dataflywheel.web.format import seconds

    return seconds(value)


def test_a_missing_price_shows_unknown_on_the_page_and_in_the_report(site: Site) -> None:
    result = site.result()
    unpriced = [c for c in result["cost"]["evals"] if c["cost_per_1k"] is None]
    assert unpriced, "the fixture leaves one candidate without a price"
    page = site.client.get(f"/jobs/{site.job_id}").text
    report = site.client.get(f"/jobs/{site.job_id}/report.html").text
    for html in (page, report):
        for c in unpriced:
            [cost] = find(_row(html, c["candidate"], eval_result_key(c["eval_type"])), "td", class_="cost")
            assert words(cost.text) == "unknown"
        drawn = [p for p in find(html, "g", class_="point") if p.attrs["data-candidate"] == unpriced[0]["candidate"]]
        assert drawn and all(p.attrs["data-cost"] == "unknown" for p in drawn)


def test_a_result_stored_before_cost_existed_renders_not_computed(site: Site) -> None:
    old = {k: v for k, v in site.result().items() if k not in ("cost", "latency", "recommendation")}
    job = site.completed_job(old)
    for url in (f"/jobs/{job.id}", f"/jobs/{job.id}/report.html"):
        html = site.client.get(url)
        assert html.status_code == 200
        [rec] = find(html.text, "section", id="recommendation")
        assert "not computed" in rec.text
        costs = find(html.text, "td", class_="cost")
        assert len(costs) == 9 and {words(c.text) for c in costs} == {"not computed"}
        assert "Cost: not computed" in words(html.text)


def test_the_recommendation_and_confusion_are_the_stored_ones(site: Site) -> None:
    html, result = site.client.get(f"/jobs/{site.job_id}").text, site.result()
    [rec] = find(html, "section", id="recommendation")
    assert result["recommendation"]["sentence"] in words(rec.text)
    for candidate, evals in result["candidates"].items():
        for eval_type, ev in evals.items():
            start = html.index(f'<details class="confusion" data-candidate="{candidate}" data-eval-type="{eval_type}"')
            block = html[start : html.index("</details>", start)]
            shown = {
                (c.attrs["data-ref"], c.attrs["data-pred"]): int(c.attrs["data-count"])
                for c in find(block, "td", class_="cell")
                if c.attrs["data-count"] != "0"
            }
            stored = {(ref, pred): n for ref, row in ev["confusion"].items() for pred, n in row.items()}
            assert shown == stored
            header = words(find(block, "thead")[0].text)
            assert all(outcome in header for outcome in ("text", "unknown_tool", "no_call"))


def test_the_funnel_and_the_training_curves_are_shown(site: Site) -> None:
    html, result = site.client.get(f"/jobs/{site.job_id}").text, site.result()
    steps = find(html, "g", class_="step")
    assert steps[0].attrs["data-label"] == "read from the log store" and int(steps[0].attrs["data-count"]) > 0
    split = {g.attrs["data-name"]: int(g.attrs["data-count"]) for g in find(html, "g", class_="split")}
    job = site.store.job_detail(site.job_id)
    assert split == {d.name: d.num_records for d in job.datasets if d.name != "icl"}
    for candidate, summary in result["training"].items():
        [figure] = [f for f in find(html, "figure", class_="training") if f.attrs["data-candidate"] == candidate]
        assert summary["recipe"] in figure.text
    dots = [float(c.attrs["data-loss"]) for c in find(html, "circle", class_="train")]
    stored = [e["train_loss"] for s in result["training"].values() for e in s["curve"]]
    assert dots == stored


def _samples(site: Site, candidate: str, eval_type: str) -> list[dict[str, Any]]:
    return read_samples(eval_dir(site.settings, site.job_id, candidate, eval_type))


def test_the_samples_api_pages_and_filters_by_verdict(site: Site) -> None:
    candidate = next(iter(site.result()["candidates"]))
    stored = _samples(site, candidate, "base-eval")
    expected = {v.value: sum(verdict_of(s) is v for s in stored) for v in Verdict}
    url = f"/api/jobs/{site.job_id}/samples"
    whole = site.client.get(url, params={"candidate": candidate, "eval_type": "base-eval", "limit": 200}).json()
    assert whole["count"] == len(stored) and whole["verdicts"] == expected
    assert [s["record_id"] for s in whole["data"]] == [s["record_id"] for s in stored]
    first = whole["data"][0]
    assert first["conversation"][-1]["role"] == "user" and first["reference"] == stored[0]["reference"]
    wrong = site.client.get(
        url, params={"candidate": candidate, "eval_type": "base-eval", "verdict": "wrong_tool", "limit": 2, "offset": 1}
    ).json()
    assert wrong["count"] == expected["wrong_tool"] >= 3
    kept = [s["record_id"] for s in stored if verdict_of(s) is Verdict.WRONG_TOOL]
    assert [s["record_id"] for s in wrong["data"]] == kept[1:3]
    assert all(s["verdict"] == "wrong_tool" for s in wrong["data"])


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"eval_type": "base-eval"}, 422, "candidate"),
        ({"candidate": "x", "eval_type": "best-eval"}, 422, "eval_type"),
        ({"candidate": "x", "eval_type": "base-eval", "verdict": "meh"}, 422, "verdict"),
        ({"candidate": "x", "eval_type": "base-eval", "limit": 0}, 422, "limit"),
        ({"candidate": "x", "eval_type": "base-eval", "offset": -1}, 422, "offset"),
        ({"candidate": "nobody", "eval_type": "base-eval"}, 404, "no candidate 'nobody'"),
    ],
)
def test_the_samples_api_refuses_bad_filters_with_the_reason(
    site: Site, params: dict[str, Any], status: int, says: str
) -> None:
    reply = site.client.get(f"/api/jobs/{site.job_id}/samples", params=params)
    assert reply.status_code == status
    assert says in str(reply.json()["detail"])


def test_the_samples_api_of_a_missing_or_malformed_job(site: Site) -> None:
    params = {"candidate": "x", "eval_type": "base-eval"}
    assert site.client.get(f"/api/jobs/{'0' * 32}/samples", params=params).status_code == 404
    assert site.client.get("/api/jobs/nope/samples", params=params).status_code == 400
    schema = site.client.get("/openapi.json").json()
    operation = schema["paths"]["/api/jobs/{job_id}/samples"]["get"]
    assert {"200", "400", "404", "422"} <= set(operation["responses"])
    assert {p["name"] for p in operation["parameters"]} >= {"candidate", "eval_type", "verdict", "limit", "offset"}


def test_the_sample_browser_shows_both_answers_with_the_differences_marked(site: Site) -> None:
    candidate = next(iter(site.result()["candidates"]))
    html = site.client.get(
        f"/jobs/{site.job_id}/partials/samples",
        params={"candidate": candidate, "eval_type": "base-eval", "verdict": "wrong_tool"},
    ).text
    articles = find(html, "article", class_="sample")
    assert articles and all(a.attrs["data-verdict"] == "wrong_tool" for a in articles)
    stored = {s["record_id"]: s for s in _samples(site, candidate, "base-eval")}
    first = articles[0]
    sample = stored[first.attrs["data-record-id"]]
    assert sample["reference"]["tool_calls"][0]["function"]["name"] in first.text
    assert 'class="fn changed"' in html  # the tool names differ
    assert "mark" in html


def test_pages_of_missing_or_malformed_jobs_are_4xx_pages(site: Site) -> None:
    missing = site.client.get(f"/jobs/{'0' * 32}")
    assert (
        missing.status_code == 404
        and "not found" in missing.text
        and missing.headers["content-type"].startswith("text/html")
    )
    assert site.client.get("/jobs/nope").status_code == 400
    assert site.client.get(f"/jobs/{site.job_id}?verdict=meh").status_code == 422


def test_the_jobs_list_shows_status_and_progress(site: Site) -> None:
    running = site.store.create_job("primary_assistant", "northwind-1", {"candidates": ["tiny-random-llama"]})
    html = site.client.get("/").text
    [row] = [r for r in find(html, "tr", data_job_id=None) if r.attrs["data-job-id"] == site.job_id]
    assert row.attrs["data-status"] == "completed" and "100%" in row.text
    rows = site.client.get("/partials/jobs").text
    assert f'data-job-id="{running.id}" data-status="pending"' in rows and f'data-cancel="{running.id}"' in rows


def test_a_job_page_with_3_candidates_and_3_evals_renders_in_under_300_ms(site: Site) -> None:
    """Server time (read the store, the manifest and the samples, render), from the page's Server-Timing."""
    url = f"/jobs/{site.job_id}"
    site.client.get(url)  # templates compiled, dataset cached
    times = []
    for _ in range(7):
        reply = site.client.get(url)
        times.append(float(reply.headers["server-timing"].split("dur=")[1]))
    print(f"job page server time, ms: median {statistics.median(times):.1f}, all {times}")
    assert statistics.median(times) < 300, times


def test_a_feedback_loop_jobs_page_shows_its_report_and_its_stage(site: Site) -> None:
    from dataflywheel.jobs.status import JobKind

    job = site.store.create_job("primary_assistant", "northwind-1", {"student": "m"}, kind=JobKind.FEEDBACK)
    site.store.set_job_status(job.id, JobStatus.RUNNING)
    site.store.start_stage(job.id, "feedback", "test")
    site.store.finish_stage(job.id, "feedback", TaskStatus.COMPLETED, output={"counts": {"inferred": 12}})
    site.store.update_job(job.id, result={"counts": {"inferred": 12, "written": 9}})
    site.store.set_job_status(job.id, JobStatus.COMPLETED)
    html = site.client.get(f"/jobs/{job.id}").text
    [stage] = find(html, "tr", data_stage="feedback")
    assert stage.attrs["data-status"] == "completed"
    assert '"written": 9' in html and not find(html, "section", id="results")
    assert not find(html, "section", id="samples")


def test_the_timeline_follows_the_drivers_plan_and_says_what_never_ran(site: Site) -> None:
    from datetime import UTC, datetime

    from dataflywheel.web.timeline import NOT_RUN, timeline

    job = site.store.create_job("primary_assistant", "northwind-1", {"candidates": ["remote-x"]})
    site.store.set_job_status(job.id, JobStatus.RUNNING)
    site.store.start_stage(job.id, "datasets", "test")
    detail = site.store.job_detail(job.id)
    now = datetime.now(UTC)
    rows = timeline(detail, site.store.list_stages(job.id), now, {"remote-x": False})
    assert [r.key for r in rows] == [
        "datasets",
        "judge",
        "deploy:remote-x",
        "base-eval:remote-x",
        "icl-eval:remote-x",
        "shutdown:remote-x",
        "finalize",
    ]  # a remote endpoint is not fine-tuned: no LoRA stages
    assert [r.status for r in rows[:2]] == ["running", "pending"]
    site.store.request_cancel(job.id)
    site.store.finish_stage(job.id, "datasets", TaskStatus.CANCELLED, error="job cancelled")
    site.store.set_job_status(job.id, JobStatus.CANCELLED)
    rows = timeline(site.store.job_detail(job.id), site.store.list_stages(job.id), now)
    assert rows[0].status == "cancelled" and rows[0].detail == "job cancelled"
    assert {r.status for r in rows[1:]} == {NOT_RUN} and any(r.key.startswith("customize:") for r in rows)
