"""Whole jobs on the tiny model: embedded executor, cancellation during training and during an eval, a
crashed process whose job is resumed, bad job configurations."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dataflywheel.errors import ConfigError
from dataflywheel.jobs.status import CandidateStage, JobStatus, TaskStatus
from dataflywheel.training.adapters import list_adapters
from dataflywheel.workflow.service import FlywheelService
from tests.serving import pid_alive
from tests.workflow.conftest import CLIENT, ENV, QUICK_TRAINING, WORKLOAD, job_settings

TINY = {"candidates": ["tiny-random-llama"], "training_config": QUICK_TRAINING}


def wait_for(predicate, timeout: float = 120.0, every: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out")


@pytest.mark.jobs
def test_a_full_job_completes_with_all_three_evaluations(home: Path, job_store_url: str) -> None:
    settings = job_settings(home)
    with FlywheelService(settings) as service:
        job = service.create_job(WORKLOAD, CLIENT, TINY)
        assert job.status == JobStatus.PENDING
        assert service.store.dsn == job_store_url
        done = service.wait(job.id, timeout=300)
        assert done.status == JobStatus.COMPLETED, done.error
        detail = service.store.job_detail(job.id)
        stages = {s.key: s for s in service.store.list_stages(job.id)}
        events = service.store.list_events(job.id)
    assert done.num_records == 40 and done.started_at and done.finished_at  # data_split.limit
    counts = {d.name: d.num_records for d in detail.datasets}
    assert counts["eval"] == counts["icl"] == 8 and counts["train"] + counts["val"] == 32 and counts["val"] >= 1
    (run,) = detail.candidates
    assert run.stage == CandidateStage.COMPLETED and run.runtime_s
    evals = {e.eval_type: e for e in run.evaluations}
    assert set(evals) == {"base-eval", "icl-eval", "customized-eval"}
    for e in evals.values():
        assert e.status == TaskStatus.COMPLETED and e.progress == 100.0 and e.done == 8
        assert "function_name_accuracy" in e.scores
        assert (Path(e.artifact_path or "") / "samples.jsonl").is_file()
    custom = run.customization
    assert custom is not None and custom.status == TaskStatus.COMPLETED and custom.progress == 100.0
    assert custom.epochs_completed == 1 and custom.steps_completed == custom.total_steps == -(-counts["train"] // 8)
    assert custom.adapter_name and custom.adapter_name.startswith("tiny-random-llama-primary_assistant-")
    assert stages["judge"].status == TaskStatus.SKIPPED  # no judge configured
    assert all(s.attempts == 1 for k, s in stages.items() if k != "judge")
    assert stages["customized-eval:tiny-random-llama"].output["model"] == custom.adapter_name
    assert set(done.result["candidates"]["tiny-random-llama"]) == {"base-eval", "icl-eval", "customized-eval"}
    for kind, ev in done.result["candidates"]["tiny-random-llama"].items():  # per class, from every sample
        stored = (Path(evals[kind].artifact_path or "") / "samples.jsonl").read_text().splitlines()
        samples = [json.loads(line) for line in stored]
        cells: dict[str, dict[str, int]] = {}
        for s in samples:
            row = cells.setdefault(s["reference_class"], {})
            row[s["predicted_outcome"]] = row.get(s["predicted_outcome"], 0) + 1
        assert ev["confusion"] == cells == stages[f"{kind}:tiny-random-llama"].output["summary"]["confusion"]
        assert {c: e["n"] for c, e in ev["per_class"].items()} == {c: sum(r.values()) for c, r in cells.items()}
        assert all("function_name_accuracy" in e["metrics"] for e in ev["per_class"].values())
    assert not pid_alive(int(run.deployment["pid"]))  # shut down
    assert any("completed" in e.message for e in events)


def test_bad_job_configurations_are_refused_before_a_job_exists(home: Path) -> None:
    with FlywheelService(job_settings(home)) as service:
        for config, named in [
            ({"candidates": ["no-such-model"]}, "unknown candidate 'no-such-model'"),
            ({}, "candidates: none given"),
            ({**TINY, "training_config": {"epochs": 0}}, "training_config.epochs"),
            ({**TINY, "data_split_config": {"eval_size": -1}}, "data_split_config.eval_size"),
            ({**TINY, "candidates": ["tiny-random-llama", "tiny-random-llama"]}, "listed twice"),
            ({**TINY, "learning_curve": [0.5, 1.0]}, "learning_curve: 1.0 is not a fraction"),
            ({**TINY, "learning_curve": "half"}, "learning_curve: expected a list"),
        ]:
            with pytest.raises(ConfigError, match=named):
                service.create_job(WORKLOAD, CLIENT, config)
        assert service.store.list_jobs()[1] == 0


@pytest.mark.jobs
def test_cancel_during_training_stops_it_and_shuts_the_model_down(home: Path) -> None:
    settings = job_settings(home)
    config = {**TINY, "training_config": {**QUICK_TRAINING, "epochs": 200}}
    with FlywheelService(settings) as service:
        job = service.create_job(WORKLOAD, CLIENT, config)

        def training() -> bool:
            (run,) = service.store.job_detail(job.id).candidates
            return bool(run.customization and run.customization.steps_completed >= 2)

        wait_for(training)
        asked = time.monotonic()
        assert service.cancel(job.id).status == JobStatus.CANCELLING
        done = service.wait(job.id, timeout=60)
        took = time.monotonic() - asked
        detail = service.store.job_detail(job.id)
        stages = {s.key: s for s in service.store.list_stages(job.id)}
    assert done.status == JobStatus.CANCELLED and took < 15
    (run,) = detail.candidates
    assert run.stage == CandidateStage.CANCELLED
    assert run.customization is not None and run.customization.status == TaskStatus.CANCELLED
    assert stages["customize:tiny-random-llama"].status == TaskStatus.CANCELLED
    assert stages["customized-eval:tiny-random-llama"].status == TaskStatus.CANCELLED
    assert stages["shutdown:tiny-random-llama"].status == TaskStatus.COMPLETED
    assert list_adapters(settings) == []  # no half-trained adapter registered
    assert not pid_alive(int(run.deployment["pid"]))


@pytest.mark.jobs
def test_cancel_during_an_eval_stops_it(home: Path) -> None:
    settings = job_settings(
        home,
        executor={"eval_max_tokens": 400, "eval_concurrency": 1},
        data_split={"eval_size": 30, "limit": 60, "min_total_records": 20},
    )
    with FlywheelService(settings) as service:
        job = service.create_job(WORKLOAD, CLIENT, TINY)

        def evaluating() -> bool:
            (run,) = service.store.job_detail(job.id).candidates
            return any(e.done >= 1 for e in run.evaluations)

        wait_for(evaluating)
        service.cancel(job.id)
        done = service.wait(job.id, timeout=120)
        (run,) = service.store.job_detail(job.id).candidates
        stages = [(s.key, s.status.value, s.error) for s in service.store.list_stages(job.id)]
    assert done.status == JobStatus.CANCELLED, stages
    evals = {e.eval_type: e for e in run.evaluations}
    assert evals["base-eval"].status == TaskStatus.CANCELLED or evals["icl-eval"].status == TaskStatus.CANCELLED
    assert all(e.done < 30 for e in evals.values())


@pytest.mark.jobs
def test_a_job_whose_process_is_killed_is_resumed_by_the_next_one(
    home: Path, tmp_path: Path, job_store_url: str
) -> None:
    env = {**os.environ, **ENV, "FLYWHEEL_HOME": str(home)}
    training = ",".join(f"{k}={v}" for k, v in {**QUICK_TRAINING, "epochs": 3, "batch_size": 4}.items())
    argv = [
        sys.executable,
        "-m",
        "dataflywheel.cli.main",
        "run",
        "--workload-id",
        WORKLOAD,
        "--client-id",
        CLIENT,
        "--candidate",
        "tiny-random-llama",
        "--json",
    ]
    for item in training.split(","):
        argv += ["--training", item]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    settings = job_settings(home)
    with FlywheelService(settings) as service:
        try:

            def in_training() -> str | None:
                jobs, _ = service.store.list_jobs()
                if not jobs:
                    return None
                (run,) = service.store.job_detail(jobs[0].id).candidates or (None,)
                c = run.customization if run else None
                return jobs[0].id if c and c.epochs_completed >= 1 and c.steps_completed < 16 else None

            job_id = wait_for(in_training, timeout=180, every=0.1)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        at_kill = {s.key: s.status for s in service.store.list_stages(job_id)}
        assert service.store.get_job(job_id).status == JobStatus.RUNNING
        assert wait_for(lambda: service.recover() == [job_id], timeout=30, every=0.5)
        done = service.wait(job_id, timeout=300)
        stages = {s.key: s for s in service.store.list_stages(job_id)}
        (run,) = service.store.job_detail(job_id).candidates
        events = [e.message for e in service.store.list_events(job_id, limit=1000)]
    assert done.status == JobStatus.COMPLETED, done.error
    # A stage finished before the kill is never run again; one the kill caught mid-way is taken over once.
    for key, stage in stages.items():
        if key in at_kill and at_kill[key] == TaskStatus.COMPLETED:
            assert stage.attempts == 1, key
    assert stages["datasets"].attempts == 1 and stages["deploy:tiny-random-llama"].attempts in (1, 2)
    # The LoRA run's child process outlives the killed `flywheel run` and, its lease alive, is waited for
    # (attempt 1); had it died too, its stale lease would have been taken over (attempt 2, from the checkpoint).
    assert stages["customize:tiny-random-llama"].attempts in (1, 2)
    assert {e.eval_type for e in run.evaluations} == {"base-eval", "icl-eval", "customized-eval"}
    assert run.customization is not None and run.customization.metrics["epochs"][-1]["epoch"] == 3
    assert any("resumed by" in m for m in events)
    assert not pid_alive(int(run.deployment["pid"]))
    assert json.dumps(done.result)  # the result was written by the resumed driver


@pytest.mark.jobs
def test_a_learning_curve_trains_and_scores_each_fraction_of_the_train_split(home: Path) -> None:
    settings = job_settings(home)
    with FlywheelService(settings) as service:
        job = service.create_job(WORKLOAD, CLIENT, {**TINY, "learning_curve": [0.5, 0.25]})
        done = service.wait(job.id, timeout=400)
        assert done.status == JobStatus.COMPLETED, done.error
        stages = {s.key: s for s in service.store.list_stages(job.id)}
    customize = stages["customize:tiny-random-llama"].output
    full_rows = customize["train_examples"]
    trained = [(p["fraction"], p["train_examples"]) for p in customize["learning_curve"]]
    assert [f for f, _ in trained] == [0.25, 0.5]  # sorted, each its own LoRA run
    assert 0 < trained[0][1] <= trained[1][1] < full_rows
    names = [p["adapter_name"] for p in customize["learning_curve"]]
    assert len({*names, customize["adapter_name"]}) == 3
    assert {a.name for a in list_adapters(settings)} >= set(names)
    curve = done.result["learning_curve"]["tiny-random-llama"]
    assert [p["fraction"] for p in curve] == [0.25, 0.5, 1.0]
    assert [p["train_examples"] for p in curve] == [n for _, n in trained] + [full_rows]
    scored = stages["customized-eval:tiny-random-llama"].output
    full = scored["summary"]["metrics"]
    assert curve[-1]["metrics"] == full  # the full split is the job's own customized eval
    for point, stored in zip(curve[:-1], scored["learning_curve"], strict=True):
        samples = (Path(stored["artifact_path"]) / "samples.jsonl").read_text().splitlines()
        assert len(samples) == 8  # the same eval rows as every other eval
        rights = [json.loads(line)["scores"]["function_name_accuracy"] for line in samples]
        assert point["metrics"]["function_name_accuracy"]["mean"] == pytest.approx(sum(rights) / len(rights))
