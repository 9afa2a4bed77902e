"""``flywheel schedule add/list/rm`` on the job store of the settings."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from dataflywheel.cli.main import app


def test_add_list_rm(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"FLYWHEEL_HOME": str(tmp_path / "home")}
    base = ["schedule", "add", "--workload-id", "wl", "--client-id", "c", "--candidate", "tiny-random-llama"]
    added = runner.invoke(app, [*base, "--cron", "0 3 * * *", "--on-drift", "--json"], env=env)
    assert added.exit_code == 0, added.output
    schedule = orjson.loads(added.stdout)
    assert schedule["cron"] == "0 3 * * *" and schedule["on_drift"] is True
    assert schedule["job_config"] == {"candidates": ["tiny-random-llama"]}
    bad = runner.invoke(app, [*base, "--cron", "0 25 * * *"], env=env)
    assert bad.exit_code == 2 and "cron: invalid cron expression" in bad.output
    listed = orjson.loads(runner.invoke(app, ["schedule", "list", "--json"], env=env).stdout)
    assert [s["id"] for s in listed] == [schedule["id"]]
    assert runner.invoke(app, ["schedule", "rm", str(schedule["id"])], env=env).exit_code == 0
    gone = runner.invoke(app, ["schedule", "rm", str(schedule["id"])], env=env)
    assert gone.exit_code == 1 and f"schedule {schedule['id']} not found" in gone.output
