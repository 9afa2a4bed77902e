"""What a job leaves on disk: two real tiny jobs side by side, one cancelled after its LoRA run finished (it
keeps no trained weights), the other deleted over the API (everything it made goes, with the bytes freed,
and not one file of the other job changes), then the cancelled one deleted with ``flywheel jobs delete``."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from dataflywheel.api import create_api
from dataflywheel.cli.main import app
from dataflywheel.jobs.status import JobStatus, TaskStatus
from dataflywheel.serving.background import BackgroundServer
from dataflywheel.settings import load_settings
from dataflywheel.training.adapters import list_adapters
from dataflywheel.workflow.service import FlywheelService
from dataflywheel.workflow.stages import training_run_name
from tests.workflow.conftest import CLIENT, QUICK_TRAINING, WORKLOAD, job_settings

TINY = {"candidates": ["tiny-random-llama"], "training_config": QUICK_TRAINING}
CUSTOMIZE = "customize:tiny-random-llama"


def _files(home: Path) -> dict[Path, int]:
    """Every file under ``home`` with its size, but the SQLite files of the job and log stores (a delete
    writes to the job store)."""
    out = {}
    for root, _dirs, names in os.walk(home):
        for name in names:
            path = Path(root) / name
            if path.parent != home or ".db" not in name:
                out[path] = path.lstat().st_size
    return out


def _under(path: Path, folders: list[Path]) -> bool:
    return any(path == f or path.is_relative_to(f) for f in folders)


@pytest.mark.jobs
def test_a_cancelled_job_keeps_no_weights_and_deleting_a_job_removes_all_it_made_and_nothing_else(
    home: Path,
) -> None:
    settings = job_settings(home)
    with FlywheelService(settings) as service:
        kept = service.create_job(WORKLOAD, CLIENT, TINY)
        cancelled = service.create_job(WORKLOAD, CLIENT, TINY)
        deadline = time.monotonic() + 240
        while (stage := service.store.get_stage(cancelled.id, CUSTOMIZE)) is None or stage.status != "completed":
            assert time.monotonic() < deadline, "the second job's LoRA run did not finish"
            time.sleep(0.2)
        trained = list_adapters(settings)
        service.cancel(cancelled.id)
        assert service.wait(kept.id, timeout=300).status == JobStatus.COMPLETED
        assert service.wait(cancelled.id, timeout=300).status == JobStatus.CANCELLED
        details = {job.id: service.store.job_detail(job.id) for job in (kept, cancelled)}
        events = [e for e in service.store.list_events(cancelled.id) if "trained weights discarded" in e.message]

    runs = {job_id: [training_run_name(job_id, r.id) for r in d.candidates] for job_id, d in details.items()}
    adapters = {a.info["run_id"]: a for a in trained}
    # The cancelled job's training had finished and registered an adapter; cancelling removed both.
    [cancelled_run] = runs[cancelled.id]
    assert cancelled_run in adapters and details[cancelled.id].candidates[0].customization.status == "completed"
    assert not (home / "training" / cancelled_run).exists() and not adapters[cancelled_run].path.exists()
    [event] = events
    assert {item["kind"] for item in event.data["removed"]} == {"training_run", "adapter"}
    assert event.data["freed_bytes"] > 0 and not event.data["problems"]
    # ... and nothing of the other job, which completed with its checkpoints, adapter and deployment log.
    [kept_run] = runs[kept.id]
    [kept_adapter] = [a for a in list_adapters(settings) if a.info["run_id"] == kept_run]
    kept_detail = details[kept.id]
    deployment_log = Path(kept_detail.candidates[0].deployment["log_path"])
    assert deployment_log.is_relative_to(home / "jobs" / kept.id) and deployment_log.stat().st_size > 0
    assert any((home / "training" / kept_run).rglob("trainer_state.pt")), "no optimizer state in the checkpoints"
    evals = home / "jobs" / kept.id / "evals"
    assert len(list(evals.rglob("samples.jsonl"))) == 3
    kept_paths = [
        home / "jobs" / kept.id,
        Path(kept_detail.datasets[0].path or "").parent,
        home / "training" / kept_run,
        kept_adapter.path,
    ]
    assert all(p.exists() for p in kept_paths)

    before = _files(home)
    expected_freed = sum(size for path, size in before.items() if _under(path, kept_paths))
    with BackgroundServer(create_api(settings, recover=False)) as server:
        answer = httpx.delete(f"{server.url}/api/jobs/{kept.id}", timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["freed_bytes"] == expected_freed > 0 and not body["problems"]
        assert {r["kind"] for r in body["removed"]} == {"job_folder", "datasets", "training_run", "adapter"}
        assert sum(r["bytes"] for r in body["removed"]) == expected_freed
        assert not any(p.exists() for p in kept_paths) and not deployment_log.exists()
        # Not one file of anyone else changed: the cancelled job's datasets and deployment log (it was
        # cancelled before its evals had their turn), the shared models.
        after = _files(home)
        assert after == {path: size for path, size in before.items() if not _under(path, kept_paths)}
        cancelled_folder = home / "jobs" / cancelled.id
        cancelled_build = Path(details[cancelled.id].datasets[0].path or "").parent
        assert any(cancelled_folder.rglob("*.log")) and (cancelled_build / "train.jsonl").is_file()

        result = CliRunner().invoke(app, ["jobs", "delete", cancelled.id, "--yes", "--url", server.url])
        assert result.exit_code == 0, result.output
        said = " ".join(result.output.split())
        assert said.startswith(f"job {cancelled.id} deleted: ") and "B freed (1 job folder, 1 dataset build)" in said
    assert not cancelled_folder.exists() and not cancelled_build.exists()
    leftovers = [p for p in _files(home) if _under(p, [home / "jobs", home / "training", home / "adapters"])]
    assert leftovers == [] and not any((home / "datasets").rglob("*.jsonl"))


def test_a_stored_path_is_only_removed_where_files_of_its_kind_live(tmp_path: Path) -> None:
    """The store's paths are not trusted: a dataset path outside ``home`` or at the log store, an adapter name
    that climbs out of the registry and a deployment log that is not one are all left alone."""
    settings = load_settings(home=tmp_path / "home", job_store={"url": f"sqlite:///{tmp_path / 'jobs.db'}"})
    outside = tmp_path / "elsewhere" / "build"
    inside = settings.home / "datasets" / WORKLOAD / CLIENT / "build-1"
    for folder in (outside, inside):
        folder.mkdir(parents=True)
        (folder / "rows.jsonl").write_text('{"a": 1}\n' * 10)
    (settings.home / "training" / "other-run").mkdir(parents=True)
    (settings.home / "logs.db").write_text("the log store")
    datasets = [
        ("eval", 10, str(outside / "rows.jsonl"), "x"),
        ("train", 10, str(inside / "rows.jsonl"), "y"),
        ("val", 1, str(settings.home / "datasets" / "val.jsonl"), "z"),  # its parent: the whole datasets folder
    ]
    with FlywheelService(settings) as service:
        job = service.store.create_job(WORKLOAD, CLIENT, {})
        run = service.store.add_candidate_run(job.id, "c")
        service.store.set_datasets(job.id, datasets)
        service.store.update_candidate_run(run.id, deployment={"log_path": str(settings.home / "logs.db")})
        service.store.upsert_customization(run.id, adapter_name="../training", status=TaskStatus.COMPLETED)
        service.store.set_job_status(job.id, JobStatus.RUNNING)
        service.store.set_job_status(job.id, JobStatus.FAILED, error="boom")
        deletion = service.delete(job.id)
    assert (outside / "rows.jsonl").is_file() and not inside.exists()
    assert (settings.home / "logs.db").is_file() and (settings.home / "training" / "other-run").is_dir()
    assert [(r.kind.value, r.path, r.bytes) for r in deletion.removal.removed] == [("datasets", inside, 90)]
