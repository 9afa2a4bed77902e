"""``flywheel synth``: write synthetic customer-service traffic as JSONL log records."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import typer
from rich.console import Console
from rich.table import Table

from dataflywheel.errors import ConfigError
from dataflywheel.synth.generator import SynthConfig, SynthSummary, write_jsonl


def _rate(value: float, option: str, *, below_one: bool = False) -> float:
    ok = 0.0 <= value < 1.0 if below_one else 0.0 <= value <= 1.0
    if not ok:
        interval = "[0, 1)" if below_one else "[0, 1]"
        raise typer.BadParameter(f"must be a share in {interval}, got {value}", param_hint=option)
    return value


def _summary_table(summary: SynthSummary, target: str) -> Table:
    table = Table(title=f"Synthetic traffic -> {target}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("records (valid)", str(summary.records))
    for name, count in summary.per_class.items():
        if count:
            table.add_row(f"  {name}", f"{count} ({100.0 * count / max(summary.records, 1):.1f}%)")
    table.add_row("duplicates", str(summary.duplicates))
    table.add_row("text answers", str(summary.text_answers))
    table.add_row("multi-turn", str(summary.multi_turn))
    table.add_row("string arguments", str(summary.string_arguments))
    malformed = ", ".join(f"{k} {v}" for k, v in summary.malformed.items() if v)
    table.add_row("malformed lines", f"{summary.malformed_total}" + (f" ({malformed})" if malformed else ""))
    table.add_row("lines", str(summary.lines))
    table.add_row("bytes written", f"{summary.bytes_written:,}")
    return table


_OUT_OPTION: Path | None = typer.Option(None, "--out", help="Output JSONL file (default: stdout).", dir_okay=False)


def synth(
    records: int = typer.Option(1000, "--records", help="Number of valid records."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same options give the same bytes."),
    out: Path | None = _OUT_OPTION,
    workload_id: str = typer.Option("primary_assistant", "--workload-id", help="workload_id of every record."),
    client_id: str = typer.Option("northwind-1", "--client-id", help="client_id of every record."),
    duplicate_rate: float = typer.Option(
        0.0, "--duplicate-rate", help="Share of records repeating an earlier user message."
    ),
    text_answer_rate: float = typer.Option(
        0.0, "--text-answer-rate", help="Share of records where the teacher answers in text (no tool call)."
    ),
    malformed_rate: float = typer.Option(
        0.0, "--malformed-rate", help="Share of output lines that are broken (bad JSON, garbage, no request)."
    ),
    multi_turn_rate: float = typer.Option(
        0.0, "--multi-turn-rate", help="Share of records with an earlier tool-call exchange in the request."
    ),
    string_arguments_rate: float = typer.Option(
        0.0, "--string-arguments-rate", help="Share of records whose tool-call arguments are a JSON string."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON instead of a table."),
) -> None:
    """Write synthetic customer-service traffic (a routing assistant's tool calls) as JSONL log records.

    The summary goes to stdout when the records go to a file, to stderr when they go to stdout.
    """
    if records < 1:
        raise typer.BadParameter(f"must be >= 1, got {records}", param_hint="--records")
    for value, option in (
        (duplicate_rate, "--duplicate-rate"),
        (text_answer_rate, "--text-answer-rate"),
        (multi_turn_rate, "--multi-turn-rate"),
        (string_arguments_rate, "--string-arguments-rate"),
    ):
        _rate(value, option)
    _rate(malformed_rate, "--malformed-rate", below_one=True)
    if not workload_id.strip():
        raise typer.BadParameter("must not be empty", param_hint="--workload-id")
    if not client_id.strip():
        raise typer.BadParameter("must not be empty", param_hint="--client-id")
    try:
        config = SynthConfig(
            records=records,
            seed=seed,
            workload_id=workload_id,
            client_id=client_id,
            duplicate_rate=duplicate_rate,
            text_answer_rate=text_answer_rate,
            malformed_rate=malformed_rate,
            multi_turn_rate=multi_turn_rate,
            string_arguments_rate=string_arguments_rate,
        )
    except ConfigError as exc:  # pragma: no cover - the checks above come first
        raise typer.BadParameter(str(exc)) from None

    if out is None:
        stream = sys.stdout.buffer
        summary = write_jsonl(config, stream)
        stream.flush()
        target = "stdout"
    else:
        if not out.parent.exists():
            raise typer.BadParameter(f"folder {out.parent} does not exist", param_hint="--out")
        summary = write_jsonl(config, out)
        target = str(out)

    to_stderr = out is None
    if as_json:
        data = orjson.dumps({"out": target, **summary.to_dict()}, option=orjson.OPT_INDENT_2).decode() + "\n"
        (sys.stderr if to_stderr else sys.stdout).write(data)
        (sys.stderr if to_stderr else sys.stdout).flush()
    else:
        Console(stderr=to_stderr).print(_summary_table(summary, target))
