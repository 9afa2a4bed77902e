"""``POST /api/jobs/{id}/promote``, ``POST /api/workloads/{id}/rollback``, ``GET .../route`` and
``.../agreement``: the gate, the override that is recorded, every refusal a 4xx with its reason."""

from __future__ import annotations

import time
from typing import Any

import pytest

from dataflywheel.jobs import JobStatus
from dataflywheel.logstore import open_log_store
from dataflywheel.records.model import parse_record
from tests.api.conftest import CANDIDATE, Api, make_job
from tests.helpers.finished_job import CLIENT, WORKLOAD, EvalPlan, make_finished_job

URL = "http://127.0.0.1:8001/v1"
PASSING = {"base-eval": EvalPlan(right=2), "customized-eval": EvalPlan(right=10)}
FAILING = {"base-eval": EvalPlan(right=2), "customized-eval": EvalPlan(right=4)}


def _promote(api: Api, job_id: str, **body: Any) -> Any:
    return api.client.post(f"/api/jobs/{job_id}/promote", json={"base_url": URL, "model": "adapter-1", **body})


def test_a_job_whose_recommendation_passes_is_promoted_and_the_change_stored(api: Api) -> None:
    job = make_finished_job(api.store, api.settings, CANDIDATE, PASSING)
    r = _promote(api, job.id, mode="canary", canary_share=0.25)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["gate"]["passes"] is True and body["gate"]["recommended_eval_type"] == "customized"
    event = body["event"]
    assert (event["candidate"], event["eval_type"], event["mode"], event["canary_share"]) == (
        CANDIDATE,
        "customized",
        "canary",
        0.25,
    )
    assert (event["base_url"], event["model"], event["override"], event["active"]) == (URL, "adapter-1", False, True)
    route = api.client.get(f"/api/workloads/{WORKLOAD}/route", params={"client_id": CLIENT}).json()
    assert route["current"] == [event] and route["history"] == [event]
    assert api.store.current_route(WORKLOAD, CLIENT).id == event["id"]  # type: ignore[union-attr]


def test_a_failing_gate_is_409_without_override_and_recorded_with_one(api: Api) -> None:
    job = make_finished_job(api.store, api.settings, CANDIDATE, FAILING)
    refused = _promote(api, job.id, mode="shadow", candidate=CANDIDATE, eval_type="customized")
    assert refused.status_code == 409
    assert "the gate does not pass" in refused.json()["detail"] and "override" in refused.json()["detail"]
    assert api.store.current_route(WORKLOAD, CLIENT) is None
    done = _promote(
        api,
        job.id,
        mode="shadow",
        candidate=CANDIDATE,
        eval_type="customized",
        override=True,
        reason="measure it on live traffic",
    )
    assert done.status_code == 200, done.text
    assert done.json()["gate"]["passes"] is False
    assert (done.json()["event"]["override"], done.json()["event"]["reason"]) == (True, "measure it on live traffic")


def test_a_candidate_other_than_the_recommended_one_needs_an_override(api: Api) -> None:
    job = make_finished_job(api.store, api.settings, CANDIDATE, PASSING)
    r = _promote(api, job.id, mode="full", eval_type="base")
    assert r.status_code == 409 and "recommends" in r.json()["detail"]


def test_promote_on_an_unknown_job_is_404_and_a_malformed_id_400(api: Api) -> None:
    assert _promote(api, "0" * 32, mode="shadow").status_code == 404
    assert _promote(api, "nope", mode="shadow").status_code == 400


def test_a_job_that_has_not_completed_is_409(api: Api) -> None:
    job = make_job(api.store, JobStatus.RUNNING, candidates=(CANDIDATE,))
    r = _promote(api, job.id, mode="shadow")
    assert r.status_code == 409 and "only a completed flywheel job" in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"mode": "sideways"}, "mode"),
        ({"mode": "canary"}, "canary_share"),
        ({"mode": "canary", "canary_share": 1.5}, "canary_share"),
        ({"mode": "full", "canary_share": 0.5}, "canary_share"),
        ({"mode": "full", "override": True}, "reason"),
        ({"mode": "full", "eval_type": "fancy"}, "eval_type"),
        ({"mode": "full", "base_url": "ftp://x"}, "base_url"),
        ({"mode": "full", "extra": 1}, "extra"),
    ],
)
def test_bad_values_are_422_naming_them(api: Api, body: dict[str, Any], needle: str) -> None:
    job = make_finished_job(api.store, api.settings, CANDIDATE, PASSING)
    r = api.client.post(f"/api/jobs/{job.id}/promote", json={"base_url": URL, **body})
    assert r.status_code == 422, r.text
    assert needle in str(r.json()["detail"])


def test_what_the_job_lacks_is_422_naming_the_field(api: Api) -> None:
    job = make_finished_job(api.store, api.settings, CANDIDATE, PASSING)
    cases = [
        ({"mode": "full", "candidate": "other"}, "candidate: the job has no candidate 'other'"),
        ({"mode": "full", "eval_type": "icl", "override": True, "reason": "r"}, "has no icl eval"),
    ]
    for body, needle in cases:
        r = _promote(api, job.id, **body)
        assert r.status_code == 422 and needle in r.json()["detail"], r.text
    no_url = api.client.post(f"/api/jobs/{job.id}/promote", json={"mode": "full", "model": "m"})
    assert no_url.status_code == 422 and no_url.json()["detail"].startswith("base_url: where is")
    no_adapter = api.client.post(f"/api/jobs/{job.id}/promote", json={"mode": "full", "base_url": URL})
    assert no_adapter.status_code == 422 and "no customized adapter" in no_adapter.json()["detail"]


def test_rollback_in_one_call_and_409_when_nothing_is_promoted(api: Api) -> None:
    assert api.client.post(f"/api/workloads/{WORKLOAD}/rollback").status_code == 409
    job = make_finished_job(api.store, api.settings, CANDIDATE, PASSING)
    assert _promote(api, job.id, mode="full").status_code == 200
    r = api.client.post(f"/api/workloads/{WORKLOAD}/rollback", json={"reason": "errors went up"})
    assert r.status_code == 200, r.text
    (event,) = r.json()["data"]
    assert (event["action"], event["mode"], event["active"], event["reason"]) == (
        "rollback",
        None,
        False,
        "errors went up",
    )
    assert api.store.current_route(WORKLOAD, CLIENT).active is False  # type: ignore[union-attr]
    history = api.client.get(f"/api/workloads/{WORKLOAD}/route").json()["history"]
    assert [e["action"] for e in history] == ["rollback", "promote"]
    assert api.client.post(f"/api/workloads/{WORKLOAD}/rollback").status_code == 409
    assert api.client.post(f"/api/workloads/{WORKLOAD}/rollback", json={"client_id": ""}).status_code == 422


def _proxied(ts: float, teacher: str, candidate: list[str] | None, error: str | None = None) -> dict[str, Any]:
    call = {"id": "c", "type": "function", "function": {"name": teacher, "arguments": {"q": "x"}}}
    return {
        "timestamp": ts,
        "workload_id": WORKLOAD,
        "client_id": CLIENT,
        "request": {"messages": [{"role": "user", "content": f"q {ts}"}]},
        "response": {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [call]}}]},
        "proxy": {
            "answered_by": "candidate",
            "model": "adapter-1",
            "mode": "canary",
            "route_event": 1,
            "response_from": "teacher",
            "latency_ms": 1.0,
            "candidate": {
                "model": "adapter-1",
                "calls": candidate or [],
                "text": candidate is None,
                "error": error,
                "latency_ms": 1.0,
            },
        },
    }


def test_live_agreement_per_day_from_the_logs(api: Api) -> None:
    today = time.time() // 86_400 * 86_400 + 1  # the start of today (UTC): the rows below stay in their day
    yesterday = today - 86_400
    records = [
        _proxied(yesterday, "A", ["A"]),
        _proxied(yesterday + 1, "A", ["B"]),
        _proxied(today, "A", ["A"]),
        _proxied(today + 1, "B", ["B"]),
        _proxied(today + 2, "B", None),  # answered in text: disagrees
        _proxied(today + 3, "B", None, error="HTTP 500"),  # not compared
    ]
    with open_log_store(api.settings) as logs:
        logs.add(parse_record(r) for r in records)
    r = api.client.get(f"/api/workloads/{WORKLOAD}/agreement", params={"client_id": CLIENT})
    assert r.status_code == 200, r.text
    rows = [(d["compared"], d["agreed"], d["rate"], d["candidate_errors"], d["calls"]) for d in r.json()["data"]]
    assert rows == [(2, 1, 0.5, 0, 2), (3, 2, pytest.approx(2 / 3), 1, 4)]
    assert api.client.get(f"/api/workloads/{WORKLOAD}/agreement").status_code == 422  # client_id is required
