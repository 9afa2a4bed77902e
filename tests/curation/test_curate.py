from __future__ import annotations

import copy

from dataflywheel.curation.curate import curate_records
from dataflywheel.curation.training_format import to_training_row
from dataflywheel.curation.workload import WorkloadType, detect_workload_type, tool_name
from dataflywheel.settings import DataSplitSettings, DedupMode, WorkloadTypeSetting
from tests.factories import tool_record

CFG = DataSplitSettings(min_total_records=1, eval_size=1)


def test_invalid_format_is_counted_with_reason() -> None:
    bad = tool_record("x")
    bad["response"]["choices"] = []
    many_props = tool_record("y")
    many_props["request"]["tools"] = [
        {
            "type": "function",
            "function": {
                "name": "T",
                "parameters": {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(9)}},
            },
        }
    ]
    kept, stats = curate_records([bad, many_props, tool_record("z")], CFG)
    assert len(kept) == 1 and stats.invalid_format == 2
    reasons = " ".join(stats.reasons)
    assert "must be a non-empty list" in reasons and "max_tool_properties (8)" in reasons
    relaxed = CFG.model_copy(update={"max_tool_properties": None})
    assert len(curate_records([many_props], relaxed)[0]) == 1


def test_quality_filter_drops_broken_arguments_and_wrong_type() -> None:
    broken = tool_record("a", args='{"query": ')
    empty = tool_record("b", args="")
    wrong_type = tool_record("c")
    wrong_type["response"]["choices"][0]["message"]["tool_calls"][0]["type"] = "retrieval"
    kept, stats = curate_records([broken, empty, wrong_type, tool_record("d")], CFG)
    assert [r["request"]["messages"][1]["content"] for r in kept] == ["d"]
    assert stats.removed_quality == 3


def test_unparsed_arguments_kept_when_parsing_disabled() -> None:
    cfg = CFG.model_copy(update={"parse_function_arguments": False})
    kept, _ = curate_records([tool_record("a", args="not json")], cfg)
    assert len(kept) == 1


def test_text_answers_are_kept_as_no_tool_by_default() -> None:
    records = [tool_record("a"), tool_record("b", tool=None)]
    kept, stats = curate_records(records, CFG)
    assert [tool_name(r) for r in kept] == ["Alpha", "no_tool"]
    assert stats.workload_type is WorkloadType.TOOL_CALLING


def test_text_answers_dropped_when_configured_even_before_the_first_tool_call() -> None:
    cfg = CFG.model_copy(update={"keep_text_answers": False})
    records = [tool_record("t1", tool=None), tool_record("t1", tool="Beta"), tool_record("t2", tool=None)]
    kept, stats = curate_records(records, cfg)
    # the text answer seen first is dropped once the workload shows it calls tools, and it does not
    # shadow the later tool-calling record with the same user text
    assert [tool_name(r) for r in kept] == ["Beta"]
    assert stats.removed_quality == 2 and stats.deduplicated == 0


def test_generic_workload_keeps_text_answers() -> None:
    cfg = CFG.model_copy(update={"keep_text_answers": False})
    kept, stats = curate_records([tool_record("a", tool=None), tool_record("b", tool=None)], cfg)
    assert len(kept) == 2 and stats.workload_type is WorkloadType.GENERIC


def test_forced_workload_type() -> None:
    cfg = CFG.model_copy(update={"keep_text_answers": False, "workload_type": WorkloadTypeSetting.TOOL_CALLING})
    kept, _ = curate_records([tool_record("a", tool=None)], cfg)
    assert kept == []


def test_dedup_keeps_first_occurrence_by_user_turns() -> None:
    first = tool_record("same", tool="Alpha", ts=2)
    later = tool_record("same", tool="Beta", ts=1, system="other system")
    kept, stats = curate_records([first, later, tool_record("different")], CFG)
    assert [tool_name(r) for r in kept] == ["Alpha", "Alpha"]
    assert stats.deduplicated == 1
    assert any("duplicate" in k for k in stats.reasons)


def test_full_dedup_distinguishes_system_prompts() -> None:
    cfg = CFG.model_copy(update={"dedup": DedupMode.FULL})
    a = tool_record("same", system="one")
    b = tool_record("same", system="two")
    kept, stats = curate_records([a, b, copy.deepcopy(a)], cfg)
    assert len(kept) == 2 and stats.deduplicated == 1


def test_limit_stops_at_newest_records() -> None:
    cfg = CFG.model_copy(update={"limit": 2})
    kept, stats = curate_records([tool_record(str(i)) for i in range(5)], cfg)
    assert [r["request"]["messages"][1]["content"] for r in kept] == ["0", "1"]
    assert stats.limit_reached and stats.total_records == 2


def test_detect_workload_type() -> None:
    assert detect_workload_type([tool_record("a", tool=None), tool_record("b")]) is WorkloadType.TOOL_CALLING
    assert detect_workload_type([tool_record("a", tool=None)]) is WorkloadType.GENERIC


def test_training_row_is_pure_and_in_fine_tuning_form() -> None:
    rec = tool_record("hello", args={"query": "hi"})
    rec["response"]["choices"][0]["message"]["content"] = "I'll route this."
    before = copy.deepcopy(rec)
    row = to_training_row(rec)
    assert rec == before
    assert row["tools"] == rec["request"]["tools"]
    answer = row["messages"][-1]
    assert answer == {
        "role": "assistant",
        "content": "",
        "tool_calls": rec["response"]["choices"][0]["message"]["tool_calls"],
    }
    assert answer["tool_calls"][0]["function"]["arguments"] == {"query": "hi"}


def test_training_row_keeps_text_answers_text() -> None:
    row = to_training_row(tool_record("q", tool=None, text="No tool needed."))
    assert row["messages"][-1] == {"role": "assistant", "content": "No tool needed."}
    assert row["tools"]  # the prompt offered tools: the model trains on the prompt it is served
    no_tools = tool_record("q", tool=None)
    del no_tools["request"]["tools"]
    assert "tools" not in to_training_row(no_tools)


def test_traffic_counts_every_well_formed_record_read_with_its_time_span() -> None:
    """Duplicates and quality rejections are calls of the big model too; broken records and records past the
    limit are not counted; ISO timestamps are read as epoch seconds."""
    t0 = 1_746_000_000
    unformed = tool_record("broken", ts=t0 + 900)
    unformed["response"]["choices"] = []
    iso = tool_record("iso time", ts=0)
    iso["timestamp"] = "2025-04-30T08:01:40Z"  # t0 + 100
    records = [
        tool_record("newest", ts=t0 + 500),
        unformed,  # invalid format: not counted, its time neither
        tool_record("newest", ts=t0 + 400),  # a duplicate: counted
        tool_record("bad args", args='{"query": ', ts=t0 + 300),  # quality rejection: counted
        iso,
        tool_record("last kept", ts=t0 + 50),
        tool_record("past the limit", ts=t0),  # the read stops before it
    ]
    _, stats = curate_records(records, CFG.model_copy(update={"limit": 3}))
    assert stats.total_records == 6 and stats.deduplicated == 1 and stats.removed_quality == 1
    assert stats.traffic() == {"records": 5, "first_timestamp": t0 + 50, "last_timestamp": t0 + 500}
    _, none = curate_records([tool_record("x", ts=0)], CFG)
    assert none.traffic() == {"records": 0, "first_timestamp": None, "last_timestamp": None}


def test_records_a_promoted_candidate_answered_are_not_training_data() -> None:
    teacher = tool_record("a", "lookup", {"x": 1})
    teacher["proxy"] = {"answered_by": "candidate", "response_from": "teacher"}  # shadow/canary compare
    candidate = tool_record("b", "lookup", {"x": 2})
    candidate["proxy"] = {"answered_by": "candidate", "response_from": "candidate"}  # full routing
    kept, stats = curate_records([teacher, candidate], DataSplitSettings())
    assert [r["request"]["messages"][-1]["content"] for r in kept] == ["a"]
    assert stats.removed_quality == 1
    assert stats.reasons == {"quality: answered by a promoted candidate, not the logged model": 1}
