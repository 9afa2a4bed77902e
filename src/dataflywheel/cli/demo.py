"""``flywheel demo``: the whole existing pipeline on the embedded defaults, with no service.

Generates realistic traffic (with the imperfections real logs have: duplicates, text answers, broken
lines), loads it into the SQLite log store, builds the datasets and prints the report.
"""

from __future__ import annotations

import time

import typer
from rich.rule import Rule

from dataflywheel.cli.common import console, guarded, state
from dataflywheel.cli.datasets import run_build
from dataflywheel.cli.render import build_tables, ingest_table
from dataflywheel.datasets.sources import StoreSource
from dataflywheel.ingest.jsonl import load_file
from dataflywheel.logstore import LogQuery, open_log_store
from dataflywheel.synth.generator import SynthConfig, write_jsonl


@guarded
def demo(
    ctx: typer.Context,
    records: int = typer.Option(2000, "--records", help="Synthetic records to generate."),
    seed: int = typer.Option(1, "--seed"),
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
    console.print(Rule())
    console.print(
        f"Done in {time.perf_counter() - started:.1f} s. Evaluation, customization and the job "
        "orchestrator are not built yet: this demo ends at the datasets."
    )
