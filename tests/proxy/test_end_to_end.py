"""The loop, end to end (issue 16's acceptance): the stand-in big model behind the logging proxy; traffic
through the proxy is logged; a flywheel job runs on those logs; its winner, served by our model server, is
promoted to a 50% canary; about half the requests are then answered by it and the logs say which; rollback
returns all traffic to the big model. Marked ``loop`` (``make test-loop``): a job with LoRA takes minutes."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from dataflywheel.api import create_api
from dataflywheel.logstore import open_log_store
from dataflywheel.logstore.base import LogQuery
from dataflywheel.models.engine import LocalEngine
from dataflywheel.proxy.build import build_proxy_app
from dataflywheel.serving.app import create_app
from dataflywheel.serving.background import BackgroundServer
from dataflywheel.serving.standin import create_standin_app
from dataflywheel.settings import Settings
from dataflywheel.synth.generator import SynthConfig, write_jsonl
from tests.proxy.conftest import SALT_ENV
from tests.workflow.conftest import QUICK_TRAINING, job_settings

WORKLOAD, CLIENT = "primary_assistant", "northwind-1"
HEADERS = {"X-Flywheel-Workload": WORKLOAD, "X-Flywheel-Client": CLIENT}
CANDIDATE = "tiny-random-llama"
BIG = SynthConfig().teacher_model
"""The model the logged requests name; the stand-in answers under the requested name."""


def traffic(tmp_path: Path, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` synthetic customer-service calls (request and the big model's logged answer)."""
    path = tmp_path / f"traffic-{seed}.jsonl"
    write_jsonl(SynthConfig(records=n, seed=seed, workload_id=WORKLOAD, client_id=CLIENT), path)
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def schedule_job_on_new_records(api: TestClient, config: dict[str, Any], records: int) -> int:
    """A schedule that starts the workload's job once ``records`` new records are logged (issue 16 point 3)."""
    made = api.post(
        "/api/schedules",
        json={"workload_id": WORKLOAD, "client_id": CLIENT, "min_new_records": records, "job_config": config},
    )
    assert made.status_code == 201, made.text
    schedule_id: int = made.json()["id"]
    return schedule_id


def scheduled_job(api: TestClient, schedule_id: int, timeout_s: float = 600) -> dict[str, Any]:
    """The job the schedule fired (the API's scheduler ticks every ``schedule.tick_s``), once it finished."""
    deadline = time.monotonic() + timeout_s
    job_id = None
    while time.monotonic() < deadline:
        job_id = job_id or api.get(f"/api/schedules/{schedule_id}").json()["last_job_id"]
        if job_id:
            job: dict[str, Any] = api.get(f"/api/jobs/{job_id}").json()
            if job["status"] in ("completed", "failed", "cancelled", "crashed"):
                return job
        time.sleep(0.5)
    raise AssertionError(f"schedule {schedule_id}: job {job_id} did not fire or finish in {timeout_s} s")


@pytest.fixture
def home(tmp_path: Path, tiny_model_dir: str) -> Path:
    home = tmp_path / "home"
    shutil.copytree(Path(tiny_model_dir), home / "models" / CANDIDATE)
    return home


@pytest.fixture
def settings(home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv(SALT_ENV, "proxy-tests-salt-0123456789")  # see tests/proxy/conftest.py's settings
    return job_settings(
        home,
        proxy={"route_ttl_s": 0.2, "flush_interval_s": 0.05},
        privacy={"salt_env": SALT_ENV},
        schedule={"tick_s": 0.5},
    )


def _by_user_text(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["request"]["messages"][-1]["content"]: r["response"]["choices"][0]["message"] for r in records}


def _send(proxy: httpx.Client, records: list[dict[str, Any]], stream_every: int = 0) -> list[str]:
    """Send each record's request through the proxy; the model that answered each (the answer's ``model``)."""
    answered = []
    for i, record in enumerate(records):
        body = {**record["request"], "max_tokens": 8}
        if stream_every and i % stream_every == 0:
            with proxy.stream("POST", "/chat/completions", json={**body, "stream": True}) as reply:
                assert reply.status_code == 200, reply.read()
                events = [orjson.loads(x[6:]) for x in reply.read().split(b"\n\n") if x.startswith(b"data: {")]
            answered.append(events[0]["model"])
        else:
            reply = proxy.post("/chat/completions", json=body)
            assert reply.status_code == 200, reply.text
            answered.append(reply.json()["model"])
    return answered


def _logged(settings: Settings, n: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        with open_log_store(settings) as logs:
            rows = [r for _, r in logs.iter_records(LogQuery(WORKLOAD, CLIENT))]
        if len(rows) >= n or time.monotonic() > deadline:
            return sorted(rows, key=lambda r: r["timestamp"])
        time.sleep(0.1)


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[BackgroundServer, BackgroundServer, TestClient, Settings]]:
    history = traffic(settings.home, 60, seed=3) + traffic(settings.home, 100, seed=4)
    answers = _by_user_text(history)
    teacher = create_standin_app(lambda body: answers[body["messages"][-1]["content"]], model="big-model")
    with BackgroundServer(teacher) as upstream, BackgroundServer(build_proxy_app(settings, upstream.base_url)) as proxy:
        app = create_api(settings, recover=False)
        with TestClient(app) as api:
            yield upstream, proxy, api, settings


@pytest.mark.loop
@pytest.mark.timeout(900)
def test_logged_traffic_trains_a_candidate_that_a_canary_routes_half_the_calls_to_and_rollback_undoes(
    served: tuple[BackgroundServer, BackgroundServer, TestClient, Settings],
) -> None:
    _upstream, proxy, api, settings = served
    client = httpx.Client(base_url=proxy.base_url, headers=HEADERS, timeout=120)

    # 0. the workload's schedule: a job once 60 new records are logged
    schedule_id = schedule_job_on_new_records(api, {"candidates": [CANDIDATE], "training_config": QUICK_TRAINING}, 60)

    # 1. production traffic through the proxy is logged (a stream now and then)
    first = traffic(settings.home, 60, seed=3)
    assert set(_send(client, first, stream_every=7)) == {BIG}
    logged = _logged(settings, 60)
    assert len(logged) == 60 and {r["proxy"]["answered_by"] for r in logged} == {"teacher"}
    assert [r["request"]["messages"] for r in logged] == [r["request"]["messages"] for r in first]

    # 2. the scheduler fires the flywheel job on the logged traffic
    job = scheduled_job(api, schedule_id)
    assert job["status"] == "completed", job.get("error")
    job_id = job["id"]
    detail = api.get(f"/api/jobs/{job_id}").json()
    stored = api.app.state.api.service.store.job_detail(job_id)  # type: ignore[attr-defined]
    customization = stored.candidates[0].customization
    adapter_name, adapter_path = customization.adapter_name, customization.adapter_path

    # 3. its winner, served by our model server, promoted to a 50% canary (the gate, then an override)
    engine = LocalEngine.from_name(CANDIDATE, settings, adapters={adapter_name: adapter_path}, threads=2)
    with BackgroundServer(create_app(engine, CANDIDATE)) as candidate:
        promote = {
            "mode": "canary",
            "canary_share": 0.5,
            "candidate": CANDIDATE,
            "eval_type": "customized",
            "base_url": candidate.base_url,
        }
        refused = api.post(f"/api/jobs/{job_id}/promote", json=promote)
        recommended = detail["recommendation"]
        if refused.status_code == 409:  # the tiny random model does not pass the gate
            assert "the gate does not pass" in refused.json()["detail"]
            reason = "end-to-end test: the tiny model cannot pass the gate"
            done = api.post(f"/api/jobs/{job_id}/promote", json={**promote, "override": True, "reason": reason})
            assert done.status_code == 200, done.text
            assert done.json()["event"]["override"] is True and done.json()["event"]["reason"] == reason
        else:
            assert refused.status_code == 200 and recommended["candidate"] == CANDIDATE, refused.text
        event = api.get(f"/api/workloads/{WORKLOAD}/route", params={"client_id": CLIENT}).json()["current"][0]
        assert (event["mode"], event["canary_share"], event["model"]) == ("canary", 0.5, adapter_name)
        time.sleep(0.3)  # the proxy's route cache (0.2 s)

        # about half the requests are answered by the candidate, and the logs say which
        second = traffic(settings.home, 100, seed=4)
        answered = _send(client, second, stream_every=10)
        by_candidate = sum(m == adapter_name for m in answered)
        assert set(answered) <= {BIG, adapter_name}
        # binomial(100, 0.5): mean 50, sd 5; within 3.5 sd
        assert 32 <= by_candidate <= 68, by_candidate
        logged = _logged(settings, 160)[60:]
        assert len(logged) == 100
        assert [r["proxy"]["answered_by"] for r in logged] == [
            "candidate" if m == adapter_name else "teacher" for m in answered
        ]
        for record in logged:
            info = record["proxy"]
            assert info["mode"] == "canary" and info["route_event"] == event["id"]
            # the big model was asked too (canary compare), so the log keeps its answer for training
            assert info["response_from"] == "teacher"
            if info["answered_by"] == "candidate":
                assert info["model"] == adapter_name and info["candidate"]["error"] is None
        agreement = api.get(f"/api/workloads/{WORKLOAD}/agreement", params={"client_id": CLIENT}).json()["data"]
        assert [(d["model"], d["answered_by_candidate"], d["compared"]) for d in agreement] == [
            (adapter_name, by_candidate, by_candidate)
        ]

        # rollback returns all traffic to the big model, in one call
        rolled = api.post(f"/api/workloads/{WORKLOAD}/rollback", json={"reason": "end of the canary"})
        assert rolled.status_code == 200 and rolled.json()["data"][0]["active"] is False
        time.sleep(0.3)
        assert set(_send(client, second[:20])) == {BIG}
    logged = _logged(settings, 180)[160:]
    assert [r["proxy"]["answered_by"] for r in logged] == ["teacher"] * 20
    assert {r["proxy"]["mode"] for r in logged} == {None}
    events = api.get(f"/api/workloads/{WORKLOAD}/route").json()["history"]
    assert [(e["action"], e["mode"]) for e in events] == [("rollback", None), ("promote", "canary")]
    assert api.post(f"/api/workloads/{WORKLOAD}/rollback").status_code == 409  # nothing left to roll back
    client.close()
