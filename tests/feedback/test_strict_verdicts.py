"""The feedback loop's judge on our stand-in server: a reply counts only in the prompt's exact format. An echo
of the format line ("VERDICT: PASS or FAIL") or a verdict buried in prose is unparsable: counted, the record
is not written back, and the reason is kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dataflywheel.jobs.status import JobStatus
from dataflywheel.logstore import open_log_store
from dataflywheel.serving.background import BackgroundServer
from dataflywheel.serving.standin import create_standin_app
from dataflywheel.settings import CandidateSettings
from dataflywheel.workflow.service import FlywheelService
from tests.feedback.test_pipeline import TARGET, _student, _teacher_calls
from tests.workflow.conftest import CLIENT, WORKLOAD, job_settings

ECHO = "VERDICT: PASS or FAIL\nREASON: one sentence"
PROSE = "The answer looks right to me. VERDICT: PASS\nREASON: right tool"
GOOD = "VERDICT: PASS\nREASON: right tool, right arguments"


def _judge(body: dict[str, Any]) -> str:
    prompt = body["messages"][-1]["content"]
    if "Reply with the number 1" in prompt:
        return "1"
    user = prompt.split("Conversation:")[-1].split("Tools:")[0]
    return (ECHO, PROSE, GOOD)[sum(map(ord, user)) % 3]  # the same record always gets the same reply


def test_echoed_or_buried_verdicts_are_counted_unparsable_and_not_written_back(home: Path) -> None:
    student_app = create_standin_app(_student(_teacher_calls(home)), model="student-1b")
    judge_app = create_standin_app(_judge, model="judge-70b")
    with BackgroundServer(student_app) as student, BackgroundServer(judge_app) as judge:
        settings = job_settings(
            home,
            candidates=[
                CandidateSettings(name="student-1b", engine="openai", base_url=student.base_url, customizable=False),
                CandidateSettings(name="judge-70b", engine="openai", base_url=judge.base_url, customizable=False),
            ],
        )
        config = {"model": "student-1b", "judge": "judge-70b", "target_client_id": TARGET}
        with FlywheelService(settings) as service:
            job = service.wait(service.create_feedback(WORKLOAD, CLIENT, config).id, timeout=120)
        asked = [b for b in judge_app.state.standin.requests if "Reply with the number 1" not in str(b["messages"])]
    assert job.status == JobStatus.COMPLETED, job.error
    counts = job.result["counts"]
    expected = [_judge(b) for b in asked]  # what the judge answered each record
    assert len(expected) == counts["ok"] + counts["repaired"] > 0
    assert ECHO in expected and PROSE in expected and GOOD in expected
    unparsable = expected.count(ECHO) + expected.count(PROSE)
    assert counts["judge_unparsed"] == unparsable and counts["judged_fail"] == 0
    assert counts["judged_pass"] == expected.count(GOOD) == counts["passed"] == counts["written"]
    samples = job.result["rejection_samples"]["judge: no verdict in the reply"]
    assert samples and all("unparsable reply: " in s for s in samples)
    with open_log_store(settings) as logs:
        assert logs.count(WORKLOAD, TARGET) == counts["written"]
