"""The feedback loop end to end: a scripted student (messy outputs of every kind) and a scripted judge on
our local stand-in server, then a flywheel job on the written records; tiny-random-llama as a real local
student; a rerun after a crash that neither re-asks nor re-writes."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dataflywheel.feedback.pipeline import OUTPUTS, VERDICTS
from dataflywheel.jobs.status import JobKind, JobStatus
from dataflywheel.logstore import LogQuery, open_log_store
from dataflywheel.serving.background import BackgroundServer
from dataflywheel.serving.standin import create_standin_app
from dataflywheel.settings import CandidateSettings, Settings
from dataflywheel.workflow.service import FlywheelService
from tests.workflow.conftest import CLIENT, QUICK_TRAINING, WORKLOAD, job_settings

TARGET = "northwind-curated"


def _teacher_calls(home: Path) -> dict[str, dict[str, Any]]:
    """The user's text -> the teacher's logged call, to script a student that knows the right answer."""
    settings = job_settings(home)
    calls = {}
    with open_log_store(settings) as logs:
        for _, record in logs.iter_records(LogQuery(WORKLOAD, CLIENT)):
            user = [m for m in record["request"]["messages"] if m["role"] == "user"][-1]["content"]
            call = record["response"]["choices"][0]["message"]["tool_calls"][0]["function"]
            args = call["arguments"] if isinstance(call["arguments"], dict) else json.loads(call["arguments"])
            calls[user] = {"name": call["name"], "arguments": args}
    return calls


def _student(calls: dict[str, dict[str, Any]]) -> Any:
    """Each answer in one of the forms small models write (chosen by the user's text, so the same request
    gets the same answer); one form in six calls a tool that does not exist."""

    def answer(body: dict[str, Any]) -> Any:
        user = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
        call = calls[user]
        name, args = call["name"], call["arguments"]
        form = _form(user)
        if form == 0:
            return f'<tool_call>{{"name": "ToTheMoon", "arguments": {json.dumps(args)}}}</tool_call>'
        if form == 1:
            return {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                ],
            }
        if form == 2:
            attrs = " ".join(f'{k}="{v}"' for k, v in args.items())
            return f"<{name} {attrs}/>"
        if form == 3:
            return f"<function>{name}{json.dumps(args)}"
        if form == 4:
            return "Sure! " + f"<tool_call>{{'name': '{name}', 'arguments': {json.dumps(args)},}}</tool_call>"
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [  # arguments double-encoded
                {"id": "c2", "type": "function", "function": {"name": name, "arguments": json.dumps(json.dumps(args))}}
            ],
        }

    return answer


def _form(user: str) -> int:
    return zlib.crc32(user.encode()) % 6


def _judge(body: dict[str, Any]) -> str:
    prompt = body["messages"][-1]["content"]
    if "Reply with the number 1" in prompt:
        return "1"
    if "ToReturnsDesk" in prompt.split("Assistant's answer:")[-1]:
        return "VERDICT: FAIL\nREASON: returns are out of scope for this test"
    return "VERDICT: PASS\nREASON: right tool, right arguments"


@pytest.fixture
def servers(home: Path) -> Iterator[tuple[BackgroundServer, BackgroundServer, Any]]:
    student_app = create_standin_app(_student(_teacher_calls(home)), model="student-1b")
    judge_app = create_standin_app(_judge, model="judge-70b")
    with BackgroundServer(student_app) as student, BackgroundServer(judge_app) as judge:
        yield student, judge, student_app


def _settings(home: Path, student: BackgroundServer, judge: BackgroundServer) -> Settings:
    return job_settings(
        home,
        candidates=[
            CandidateSettings(name="student-1b", engine="openai", base_url=student.base_url, customizable=False),
            CandidateSettings(name="judge-70b", engine="openai", base_url=judge.base_url, customizable=False),
        ],
    )


@pytest.mark.jobs
def test_messy_student_outputs_are_normalized_judged_and_written_back_then_a_job_runs_on_them(
    home: Path, servers: tuple[BackgroundServer, BackgroundServer, Any]
) -> None:
    student, judge, _ = servers
    settings = _settings(home, student, judge)
    config = {"model": "student-1b", "judge": "judge-70b", "target_client_id": TARGET}
    with FlywheelService(settings) as service:
        dry = service.create_feedback(WORKLOAD, CLIENT, {**config, "dry_run": True})
        dry = service.wait(dry.id, timeout=120)
        assert dry.status == JobStatus.COMPLETED, dry.error
        assert dry.kind == JobKind.FEEDBACK and dry.result["counts"]["written"] == 0
        with open_log_store(settings) as logs:
            assert logs.count(WORKLOAD, TARGET) == 0

        job = service.wait(service.create_feedback(WORKLOAD, CLIENT, config).id, timeout=120)
        assert job.status == JobStatus.COMPLETED, job.error
        counts = job.result["counts"]
        assert counts["inferred"] == 80
        # form 0 calls an unknown tool; the others are ok (real tool_calls) or repaired (the messy forms)
        forms = [_form(user) for user in _teacher_calls(home)]
        assert counts["rejected"] == forms.count(0) > 0
        assert counts["ok"] >= forms.count(1) and counts["repaired"] >= sum(forms.count(f) for f in (2, 3, 4, 5))
        assert job.result["rejected_by_reason"]["normalize: unknown_tool"] == forms.count(0)
        assert counts["judged_fail"] > 0 and counts["judged_pass"] > 0
        assert counts["passed"] == counts["judged_pass"] == counts["written"]
        assert job.result["rejection_samples"]["normalize: unknown_tool"]

        with open_log_store(settings) as logs:
            written = list(logs.iter_records(LogQuery(WORKLOAD, TARGET)))
        assert len(written) == counts["written"]
        record = written[0][1]
        message = record["response"]["choices"][0]["message"]
        assert message["tool_calls"][0]["function"]["name"] != "ToReturnsDesk"  # the judge failed those
        arguments = message["tool_calls"][0]["function"]["arguments"]  # stored normalized: an object
        assert isinstance(arguments, dict) and "query" in arguments
        provenance = record["flywheel_provenance"]
        assert provenance["model"] == "student-1b" and provenance["judge"] == "PASS"
        assert provenance["source_client_id"] == CLIENT and provenance["job_id"] == job.id

        # A flywheel job on the curated records completes.
        run = service.create_job(
            WORKLOAD, TARGET, {"candidates": ["tiny-random-llama"], "training_config": QUICK_TRAINING}
        )
        run = service.wait(run.id, timeout=300)
        assert run.status == JobStatus.COMPLETED, run.error
        assert set(run.result["candidates"]["tiny-random-llama"]) == {"base-eval", "icl-eval", "customized-eval"}


def test_a_rerun_after_a_crash_does_not_ask_judge_or_write_twice(
    home: Path, servers: tuple[BackgroundServer, BackgroundServer, Any]
) -> None:
    student, judge, student_app = servers
    settings = _settings(home, student, judge)
    config = {"model": "student-1b", "judge": "judge-70b", "target_client_id": TARGET}
    with FlywheelService(settings) as service:
        job = service.create_feedback(WORKLOAD, CLIENT, config, start=False)
        folder = settings.home / "jobs" / job.id / "curation"
        # A crash mid-inference: 30 outputs stored, the last line cut in half.
        first = service.wait(service.create_feedback(WORKLOAD, CLIENT, config).id, timeout=120)
        lines = (settings.home / "jobs" / first.id / "curation" / OUTPUTS).read_bytes().splitlines()[:30]
        folder.mkdir(parents=True)
        (folder / OUTPUTS).write_bytes(b"\n".join(lines) + b'\n{"record_id": "cut')
        asked_before = student_app.state.standin.count
        service.start(job.id)
        done = service.wait(job.id, timeout=120)
    assert done.status == JobStatus.COMPLETED, done.error
    assert student_app.state.standin.count - asked_before == 50  # only the 50 without an output
    ids = [json.loads(x)["record_id"] for x in (folder / OUTPUTS).read_bytes().splitlines()[:30]]
    assert len(set(ids)) == 30
    verdict_ids = [json.loads(x)["record_id"] for x in (folder / VERDICTS).read_bytes().splitlines()]
    assert len(verdict_ids) == len(set(verdict_ids)) == 80
    # Everything it passed had already been written by the first run: nothing is written twice.
    assert done.result["counts"]["written"] == 0
    assert done.result["counts"]["already_written"] == first.result["counts"]["written"] > 0


@pytest.mark.jobs
def test_tiny_random_llama_as_the_student(home: Path) -> None:
    settings = job_settings(home)
    with FlywheelService(settings) as service:
        job = service.wait(
            service.create_feedback(WORKLOAD, CLIENT, {"model": "tiny-random-llama", "limit": 12, "max_tokens": 16}).id,
            timeout=180,
        )
    assert job.status == JobStatus.COMPLETED, job.error
    counts = job.result["counts"]
    assert counts["inferred"] == 12
    assert counts["ok"] + counts["repaired"] + counts["rejected"] == 12
    assert counts["written"] == counts["passed"]  # no judge configured: the programmatic checks decide


def test_a_curated_record_no_store_can_hold_is_counted_and_the_others_written(home: Path) -> None:
    """A student answering with a lone surrogate in an argument (valid JSON text, not storable UTF-8) failed
    the whole write-back; now that record is named and counted, and every other passing record is written."""
    calls = _teacher_calls(home)
    spoiled = sorted(calls)[:3]

    def answer(body: dict[str, Any]) -> Any:
        user = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
        name, args = calls[user]["name"], dict(calls[user]["arguments"])
        if user in spoiled:
            key = next(k for k, v in args.items() if isinstance(v, str))
            spoilt = json.dumps(args)[:-1] + f', "{key}": "\\ud800"}}'  # the key again, now a lone surrogate
            return f'<tool_call>{{"name": "{name}", "arguments": {spoilt}}}</tool_call>'
        return f"<tool_call>{json.dumps({'name': name, 'arguments': args})}</tool_call>"

    with BackgroundServer(create_standin_app(answer, model="student-1b")) as student:
        settings = job_settings(
            home,
            candidates=[
                CandidateSettings(name="student-1b", engine="openai", base_url=student.base_url, customizable=False)
            ],
        )
        config = {"model": "student-1b", "target_client_id": TARGET, "pass_rule": {"require_teacher_agreement": True}}
        with FlywheelService(settings) as service:
            job = service.wait(service.create_feedback(WORKLOAD, CLIENT, config).id, timeout=120)
    assert job.status == JobStatus.COMPLETED, job.error
    counts = job.result["counts"]
    assert counts["write_refused"] == 3 and counts["written"] == counts["passed"] - 3 > 0
    assert all("surrogate" in line for line in job.result["write_refusals"])
    with open_log_store(settings) as logs:
        assert logs.count(WORKLOAD, TARGET) == counts["written"]
