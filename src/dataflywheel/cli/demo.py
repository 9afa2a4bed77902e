"""``flywheel demo``: a whole flywheel run on the embedded defaults, with no service.

Generates realistic traffic (with the imperfections real logs have: duplicates, text answers, broken
lines), loads it into the SQLite log store, and runs one flywheel job with the built-in SmolLM2 candidate:
datasets, then base and ICL evals while a LoRA adapter trains on the train split, then the customized eval,
and prints the result table, ending with the cost per 1,000 requests (at example prices, labelled as such)
and the recommendation.
"""

from __future__ import annotations

import time

import typer
from rich.rule import Rule

from dataflywheel.cli.common import console, guarded, state
from dataflywheel.cli.job_view import follow_job
from dataflywheel.cli.render import build_tables, ingest_table
from dataflywheel.cli.run import result_table
from dataflywheel.datasets.artifacts import read_manifest
from dataflywheel.decision.cost import format_money
from dataflywheel.ingest.jsonl import load_file
from dataflywheel.logstore import open_log_store
from dataflywheel.settings import CandidateSettings, Settings, with_overrides
from dataflywheel.synth.generator import SynthConfig, write_jsonl
from dataflywheel.workflow.service import FlywheelService

EXAMPLE_TEACHER_PRICE_PER_1M = 0.88
"""Example price of the logged model per 1M input and per 1M output tokens: a hosted 70B model's list price."""
EXAMPLE_MACHINE_PRICE_PER_HOUR = 0.10
"""Example hourly price of the machine serving the candidate: about a 2-vCPU cloud VM, like the demo's."""


def example_prices(settings: Settings, model: str, teacher: str) -> tuple[Settings, list[str]]:
    """``settings`` with example prices for the logged model and the candidate where none is configured, and
    what was set (to be printed as examples). A price the settings have is kept."""
    said: list[str] = []
    currency = settings.cost.currency
    if settings.teacher.price_per_1m_input_tokens is None:
        name = settings.teacher.name or teacher
        settings = with_overrides(
            settings,
            teacher={
                "name": name,
                "price_per_1m_input_tokens": EXAMPLE_TEACHER_PRICE_PER_1M,
                "price_per_1m_output_tokens": EXAMPLE_TEACHER_PRICE_PER_1M,
            },
        )
        said.append(
            f"the logged model ({name}) {format_money(EXAMPLE_TEACHER_PRICE_PER_1M, currency)} per 1M input and "
            "output tokens, like a hosted 70B model"
        )
    configured = next((c for c in settings.candidates if c.name == model), None)
    if configured is None or (configured.price_per_gpu_hour is None and configured.price_per_1m_input_tokens is None):
        base = configured or CandidateSettings(name=model)
        priced = CandidateSettings.model_validate(
            base.model_dump() | {"price_per_gpu_hour": EXAMPLE_MACHINE_PRICE_PER_HOUR}
        )
        others = [c for c in settings.candidates if c.name != model]
        settings = settings.model_copy(update={"candidates": [*others, priced]})
        said.append(
            f"{model} {format_money(EXAMPLE_MACHINE_PRICE_PER_HOUR, currency)} per hour of the machine serving it "
            "(price_per_gpu_hour; about a 2-vCPU cloud VM), divided by the throughput its evals measure"
        )
    return settings, said


@guarded
def demo(
    ctx: typer.Context,
    records: int = typer.Option(2000, "--records", help="Synthetic records to generate."),
    seed: int = typer.Option(1, "--seed"),
    model: str = typer.Option("smollm2-135m-instruct", "--model", help="Candidate to evaluate and customize."),
    eval_records: int = typer.Option(30, "--eval-records", min=5, help="Held-out records each eval scores."),
    train_records: int = typer.Option(
        240,
        "--train-records",
        min=10,
        help="About how many records LoRA trains on (more distinct records beat more epochs over fewer).",
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", min=1, help="LoRA epochs at most (default: the training recipe's, from the data size)."
    ),
) -> None:
    """Generate traffic, load it, and run one whole flywheel job on it (embedded defaults)."""
    settings = state(ctx).settings()
    started = time.monotonic()
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

    console.print(Rule(f"3. A flywheel job for {model}: datasets, base + ICL evals, LoRA, customized eval"))
    # The newest records: eval_records held out, the rest (10% validation) to train on.
    limit = eval_records + round(train_records / 0.9)
    settings = with_overrides(
        settings,
        data_split={"eval_size": eval_records, "limit": limit, "min_total_records": min(50, limit)},
        # no API here: stages in threads; one eval keeps the local server's whole batch (16) busy
        executor={"eval_max_tokens": 64, "isolate_compute": False, "eval_concurrency": 16},
        # bf16 evals on a CPU with native bf16: ~1.4x faster than serving.dtype auto (float32), which keeps the
        # demo in its 10 minutes; its scores may then move with eval concurrency (16 here, the server's batch).
        serving={"dtype": "fastest"},
    )
    settings, examples = example_prices(settings, model, config.teacher_model)
    if examples:
        console.print(
            "Example prices, to show the cost model (set yours under teacher and candidates in the settings): "
            + "; ".join(examples)
            + ".",
            highlight=False,
            soft_wrap=True,
        )
    # No hyperparameter is set here: the job trains with the default recipe for the candidate's size.
    job_config: dict[str, object] = {"candidates": [model]}
    if epochs is not None:
        job_config["training_config"] = {"epochs": epochs}
    with FlywheelService(settings) as service:
        job = service.create_job(config.workload_id, config.client_id, job_config)
        job = follow_job(service, job.id, started)
        datasets = service.store.job_detail(job.id).datasets
    build = next((d.path for d in datasets if d.name == "eval" and d.path), None)
    if build:
        from pathlib import Path

        folder = Path(build).parent
        console.print(build_tables(read_manifest(folder), str(folder)))
    if job.result:
        console.print(result_table(job.result))
    console.print(Rule())
    status = job.status.value + (f" ({job.error})" if job.error else "")
    console.print(
        f"Job {job.id} {status}. Done in {time.monotonic() - started:.1f} s. "
        f"Try: flywheel serve, then flywheel jobs list; flywheel adapters list.",
        highlight=False,
        soft_wrap=True,
    )
    if job.status.value != "completed":
        raise typer.Exit(1)
