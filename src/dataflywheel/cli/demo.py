"""``flywheel demo``: the whole existing pipeline on the embedded defaults, with no service.

Generates realistic traffic (with the imperfections real logs have: duplicates, text answers, broken
lines), loads it into the SQLite log store, builds the datasets, evaluates the built-in SmolLM2 candidate
as is (base) and with few-shot examples (ICL), and prints the report.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.rule import Rule

from dataflywheel.cli.common import console, guarded, state
from dataflywheel.cli.datasets import run_build
from dataflywheel.cli.evaluate import summary_table
from dataflywheel.cli.render import build_tables, ingest_table
from dataflywheel.datasets.sources import StoreSource
from dataflywheel.evaluation.runner import EvalConfig, EvalType, load_dataset, run_async, run_eval
from dataflywheel.ingest.jsonl import load_file
from dataflywheel.logstore import LogQuery, open_log_store
from dataflywheel.models.deployments import DeploymentManager
from dataflywheel.models.registry import resolve_model
from dataflywheel.settings import Settings
from dataflywheel.synth.generator import SynthConfig, write_jsonl


@guarded
def demo(
    ctx: typer.Context,
    records: int = typer.Option(2000, "--records", help="Synthetic records to generate."),
    seed: int = typer.Option(1, "--seed"),
    model: str = typer.Option("smollm2-135m-instruct", "--model", help="Candidate to evaluate."),
    eval_records: int = typer.Option(20, "--eval-records", min=0, help="Eval records per eval type (0: skip)."),
) -> None:
    """Generate traffic, load it, build datasets and print the report (embedded defaults)."""
    settings = state(ctx).settings()
    started = time.perf_counter()
    config = SynthConfig(
        records=records,
        seed=seed,
        duplicate_rate=0.03,
        text_answer_rate=0.05,
        malformed_rate=0.005,
        multi_turn_rate=0.1,
        string_arguments_rate=0.2,
    )
    traffic = settings.home / "demo" / f"traffic-{records}-{seed}.jsonl"
    traffic.parent.mkdir(parents=True, exist_ok=True)

    console.print(Rule("1. Production traffic (synthetic)"))
    summary = write_jsonl(config, traffic)
    console.print(
        f"{summary.records} records of a customer-service router with 4 tools -> {traffic} "
        f"({summary.bytes_written / 1e6:.1f} MB, {summary.malformed_total} broken lines)"
    )

    console.print(Rule(f"2. Load into the {settings.log_store.backend.value} log store"))
    with open_log_store(settings) as store:
        report = load_file(store, traffic, batch_size=settings.log_store.batch_size)
        console.print(ingest_table(report, traffic.name))

        console.print(Rule("3. Curate and split into datasets"))
        source = StoreSource(store, LogQuery(config.workload_id, config.client_id))
        result = run_build(settings, source, config.workload_id, config.client_id, quiet=False)
    console.print(build_tables(result.manifest, str(result.path)))
    if eval_records:
        console.print(Rule(f"4. Evaluate {model}: base and ICL, {eval_records} records each"))
        _evaluate(settings, model, result.path, eval_records)
    console.print(Rule())
    console.print(
        f"Done in {time.perf_counter() - started:.1f} s. LoRA customization and the job orchestrator are the "
        "next steps of the flywheel; they are not built yet."
    )


def _evaluate(settings: Settings, model: str, dataset_dir: Path, n: int) -> None:
    spec = resolve_model(model, settings)
    with DeploymentManager(settings) as manager:
        with console.status(f"starting {spec.name} (the first time converts its weights, ~15 s)…"):
            deployment = manager.deploy(spec)
        client = deployment.client(max_concurrency=8, timeout=600.0)
        for kind, name in ((EvalType.BASE, "eval.jsonl"), (EvalType.ICL, "icl.jsonl")):
            rows = load_dataset(dataset_dir / name)[:n]
            config = EvalConfig(kind, spec.name, concurrency=8, max_tokens=64)
            out = settings.home / "evals" / f"demo-{spec.name}-{kind.value}-{dataset_dir.name}"

            async def chat(request: Any) -> Any:
                return await client.chat(request, deployment.model)

            with console.status(f"{kind.value}…"):
                summary = run_async(run_eval(rows, chat, out, config))
            console.print(summary_table(summary))
