"""A dataset build's manifest records the traffic it read (for the cost model's monthly projection)."""

from __future__ import annotations

from pathlib import Path

from dataflywheel.datasets.build import build_datasets
from dataflywheel.datasets.sources import JsonlSource
from dataflywheel.decision.cost import observed_traffic
from dataflywheel.settings import load_settings
from dataflywheel.synth.generator import SynthConfig, generate, write_jsonl


def test_the_manifest_counts_every_record_read_and_its_time_span(tmp_path: Path) -> None:
    config = SynthConfig(records=120, seed=3, duplicate_rate=0.1, text_answer_rate=0.05, time_span_s=12 * 86_400)
    write_jsonl(config, tmp_path / "t.jsonl")
    stamps = [r["timestamp"] for r in generate(config)]
    settings = load_settings(home=tmp_path / "home", curation_workers=0)
    settings = settings.model_copy(
        update={"data_split": settings.data_split.model_copy(update={"eval_size": 20, "min_total_records": 10})}
    )
    build = build_datasets(
        JsonlSource(tmp_path / "t.jsonl"), settings, workload_id=config.workload_id, client_id=config.client_id
    )
    traffic = build.manifest["traffic"]
    assert build.manifest["curation"]["deduplicated"] > 0  # duplicates are traffic too
    assert traffic == {"records": 120, "first_timestamp": min(stamps), "last_timestamp": max(stamps)}
    per_day = observed_traffic(traffic["records"], traffic["first_timestamp"], traffic["last_timestamp"])
    span_days = (max(stamps) - min(stamps)) / 86_400
    assert per_day.records_per_day is not None and abs(per_day.records_per_day - 119 / span_days) < 1e-9
    # Over ~12 days, 120 records: about 10 a day.
    assert 9 < per_day.records_per_day < 11.5
