"""Dataset builds read every backend the same way: identical logs give byte-identical dataset files."""

from __future__ import annotations

from pathlib import Path

from dataflywheel.datasets.build import build_datasets
from dataflywheel.datasets.sources import StoreSource
from dataflywheel.logstore import LogQuery, LogStore
from dataflywheel.logstore.sqlite import SQLiteLogStore
from dataflywheel.records.model import parse_record
from dataflywheel.settings import Settings, load_settings, with_overrides
from dataflywheel.synth.generator import SynthConfig, generate

FILES = ("eval.jsonl", "icl.jsonl", "train.jsonl", "val.jsonl")
CONFIG = SynthConfig(
    records=300, seed=5, text_answer_rate=0.05, string_arguments_rate=0.3, multi_turn_rate=0.1, duplicate_rate=0.05
)
IDS = {"workload_id": CONFIG.workload_id, "client_id": CONFIG.client_id}


def _settings(home: Path) -> Settings:
    return with_overrides(load_settings(home=home), data_split={"eval_size": 30, "min_total_records": 10})


def test_every_backend_builds_the_same_bytes_as_sqlite(store: LogStore, tmp_path: Path) -> None:
    store.add(parse_record(r) for r in generate(CONFIG))
    with SQLiteLogStore(tmp_path / "reference.db") as reference:
        reference.add(parse_record(r) for r in generate(CONFIG))
        expected = build_datasets(StoreSource(reference, LogQuery(**IDS)), _settings(tmp_path / "ref"), **IDS)

    built = build_datasets(StoreSource(store, LogQuery(**IDS)), _settings(tmp_path / "home"), **IDS)

    assert built.counts == expected.counts and built.counts["train"] > 0
    assert built.manifest["curation"]["deduplicated"] > 0
    for name in FILES:
        assert (built.path / name).read_bytes() == (expected.path / name).read_bytes(), name
