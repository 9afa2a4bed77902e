"""``flywheel run``: one whole job in the process, ending with the result table (and JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataflywheel.cli.main import app
from dataflywheel.jobs import JobStatus, JobStore
from tests.workflow.conftest import CLIENT, ENV, WORKLOAD


@pytest.mark.jobs
def test_flywheel_run_prints_the_result_table_then_json(
    home: Path, job_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_HOME", str(home))
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    args = [
        "run",
        "--workload-id",
        WORKLOAD,
        "--client-id",
        CLIENT,
        "--candidate",
        "tiny-random-llama",
        "--training",
        "epochs=1",
        "--training",
        "batch_size=8",
        "--training",
        "lora.adapter_dim=4",
    ]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Results" in out and "tool name" in out and "exact call" in out
    for eval_type in ("base-eval", "icl-eval", "customized-eval"):
        assert eval_type in out
    assert "completed in" in out

    bad = CliRunner().invoke(app, ["run", "--workload-id", WORKLOAD, "--client-id", CLIENT, "--candidate", "nope"])
    assert bad.exit_code == 2 and "unknown candidate 'nope'" in " ".join(bad.output.split())

    as_json = CliRunner().invoke(app, [*args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    detail = json.loads(as_json.stdout)
    assert detail["job"]["status"] == "completed"
    (run,) = detail["candidates"]
    assert {e["eval_type"] for e in run["evaluations"]} == {"base-eval", "icl-eval", "customized-eval"}
    with JobStore(job_store_url) as store:  # both runs' jobs are in the job store the settings name
        jobs, count = store.list_jobs()
    assert count == 2 and jobs[0].id == detail["job"]["id"] and all(j.status == JobStatus.COMPLETED for j in jobs)


def test_a_bad_recommendation_override_stops_flywheel_run_before_a_job_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    args = ["run", "--workload-id", WORKLOAD, "--client-id", CLIENT, "--candidate", "tiny-random-llama"]
    bad = CliRunner().invoke(app, [*args, "--recommend", "min_ratio=2"])
    assert bad.exit_code == 2 and "recommendation_config.min_ratio" in " ".join(bad.output.split())
    unknown = CliRunner().invoke(app, [*args, "--recommend", "metric=vibes"])
    assert unknown.exit_code == 2 and "metric 'vibes' is unknown" in " ".join(unknown.output.split())
