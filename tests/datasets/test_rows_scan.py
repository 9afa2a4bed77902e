from __future__ import annotations

import copy
from pathlib import Path

import orjson
import pytest

from dataflywheel.curation.inspect import NONE, InspectConfig, Rejected, Usable, inspect_records
from dataflywheel.curation.training_format import to_training_row
from dataflywheel.datasets.rows import RowBuffer
from dataflywheel.datasets.scan import scan_batches
from dataflywheel.datasets.sources import JsonlSource
from dataflywheel.records.toolcalls import normalize_record_tool_calls
from dataflywheel.settings import DataSplitSettings
from dataflywheel.synth.generator import SynthConfig, generate, write_jsonl
from tests.factories import tool_record

CONFIG = InspectConfig.of(DataSplitSettings())


def _buffer_rows(records: list[dict], rows: RowBuffer) -> list[int]:
    batch = inspect_records(records, CONFIG)
    ids = [rows.intern(p) for p in batch.shared]
    out = []
    for item in batch.records:
        assert isinstance(item, Usable)
        out.append(
            rows.append(
                ids[item.system] if item.system != NONE else NONE,
                item.body,
                ids[item.tools] if item.tools != NONE else NONE,
            )
        )
    return out


@pytest.mark.parametrize("budget", [256 << 20, 0])
def test_rows_round_trip_exactly_in_memory_and_spilled(tmp_path: Path, budget: int) -> None:
    records = list(generate(SynthConfig(records=300, seed=2, multi_turn_rate=0.2, text_answer_rate=0.1)))
    no_system = tool_record("no system prompt")
    no_system["request"]["messages"] = no_system["request"]["messages"][1:]
    del no_system["request"]["tools"]
    records.append(no_system)
    normalized = [normalize_record_tool_calls(copy.deepcopy(r)) for r in records]  # string args -> objects
    expected = [orjson.dumps(to_training_row(r), option=orjson.OPT_SORT_KEYS) for r in normalized]
    rows = RowBuffer(tmp_path, memory_budget=budget)
    import dataflywheel.datasets.rows as rows_mod

    old_chunk = rows_mod._CHUNK
    rows_mod._CHUNK = 4096  # many chunks, so spilling really happens
    try:
        handles = _buffer_rows(records, rows)
    finally:
        rows_mod._CHUNK = old_chunk
    assert [rows.get(h) for h in handles] == expected
    if budget == 0:
        assert rows.spilled_bytes > 0
    else:
        # the system prompt and tools are stored once: far less than the serialized rows
        assert rows.memory_bytes < sum(map(len, expected)) / 3
    rows.close()


def test_inspection_rejects_with_reasons() -> None:
    broken = tool_record("x", args="{not json")
    batch = inspect_records([broken, "not a record", tool_record("ok")], CONFIG)
    assert isinstance(batch.records[0], Rejected) and batch.records[0].stage == "quality"
    assert isinstance(batch.records[1], Rejected) and batch.records[1].stage == "invalid_format"
    assert isinstance(batch.records[2], Usable) and batch.records[2].label == "Alpha"


def test_parallel_scan_equals_in_process_scan_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write_jsonl(SynthConfig(records=400, seed=9, malformed_rate=0.05), path)
    text = path.read_bytes().replace(b"\n", b"\n\n", 7)  # blank lines shift line numbers
    path.write_bytes(text)
    source = JsonlSource(path)
    serial = list(scan_batches(source, CONFIG, workers=0))
    parallel = list(scan_batches(source, CONFIG, workers=2, span_bytes=50_000))  # spans cut lines
    flat = lambda batches: [  # noqa: E731
        (ref, _comparable(item, b.shared)) for refs, b in batches for ref, item in zip(refs, b.records, strict=True)
    ]
    assert flat(parallel) == flat(serial)
    assert len(flat(serial)) == 400 + sum(1 for line in text.splitlines() if line.strip()) - 400
    # refs point at the right lines
    lines = text.split(b"\n")
    for ref, _ in flat(parallel)[:50]:
        line_no, offset = map(int, ref.split(":"))
        assert text[offset:].split(b"\n", 1)[0] == lines[line_no - 1]


def _comparable(item: object, shared: list[bytes]) -> object:
    if isinstance(item, Usable):
        return item._replace(
            system=shared[item.system] if item.system != NONE else None,
            tools=shared[item.tools] if item.tools != NONE else None,
        )
    return item


def test_closing_a_parallel_scan_early_stops_the_workers(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write_jsonl(SynthConfig(records=600, seed=1), path)
    scan = scan_batches(JsonlSource(path), CONFIG, workers=2, span_bytes=20_000)
    refs, _ = next(scan)
    assert refs[0].startswith("1:")
    scan.close()  # terminates the pool; must not hang
