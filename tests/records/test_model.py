from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from dataflywheel.errors import RecordError
from dataflywheel.records.model import (
    ID_MAX_LENGTH,
    MAX_JSON_DEPTH,
    TIMESTAMP_MAX,
    TIMESTAMP_MIN,
    parse_record,
    record_id,
)
from dataflywheel.records.toolcalls import to_wire_messages
from tests.factories import tool_record


def test_unknown_fields_are_kept() -> None:
    raw = tool_record("hi") | {"latency_ms": 12, "trace": {"id": "x"}}
    rec = parse_record(raw)
    assert rec.extra == {"latency_ms": 12, "trace": {"id": "x"}}
    assert rec.to_dict()["trace"] == {"id": "x"}


def test_string_and_object_arguments_normalize_to_the_same_record() -> None:
    as_object = tool_record("hi", args={"query": "q", "n": 1})
    as_string = copy.deepcopy(as_object)
    as_string["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = '{"query": "q", "n": 1}'
    a, b = parse_record(as_object), parse_record(as_string)
    assert a.response == b.response
    assert a.id == b.id


def test_unparsable_arguments_are_kept_as_strings() -> None:
    raw = tool_record("hi", args='{"query": "q"')
    rec = parse_record(raw)
    assert rec.response["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == '{"query": "q"'


def test_missing_type_becomes_function() -> None:
    raw = tool_record("hi")
    del raw["response"]["choices"][0]["message"]["tool_calls"][0]["type"]
    assert parse_record(raw).response["choices"][0]["message"]["tool_calls"][0]["type"] == "function"


def test_conversation_form_last_message_is_the_response() -> None:
    rec = parse_record(
        {
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "u"},
                {"role": "assistant", "content": "a"},
            ],
            "tools": [],
        },
        workload_id="w",
        client_id="c",
        default_timestamp=5,
    )
    assert [m["role"] for m in rec.request["messages"]] == ["system", "user"]
    assert rec.response["choices"][0]["message"]["content"] == "a"
    assert rec.timestamp == 5


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.pop("request"), "request"),
        (lambda r: r.pop("workload_id"), "workload_id"),
        (lambda r: r.update(client_id=""), "client_id"),
        (lambda r: r.update(timestamp="yesterday"), "timestamp"),
        (lambda r: r.update(timestamp=True), "timestamp"),
        (lambda r: r["request"].update(messages=[]), "request.messages"),
        (lambda r: r["request"]["messages"][1].update(role="robot"), "request.messages[1].role"),
        (lambda r: r["response"].update(choices=[]), "response.choices"),
        (lambda r: r["response"]["choices"][0].pop("message"), "response.choices[0]"),
        (lambda r: r["request"].update(tools="all"), "request.tools"),
    ],
)
def test_bad_records_name_the_field(mutate, field: str) -> None:  # type: ignore[no-untyped-def]
    raw = tool_record("hi")
    mutate(raw)
    with pytest.raises(RecordError) as err:
        parse_record(raw)
    assert err.value.field == field


def test_iso_timestamps_become_epoch_seconds() -> None:
    raw = tool_record("hi") | {"timestamp": "2025-05-01T00:00:00Z"}
    assert parse_record(raw).timestamp == 1746057600


def test_overrides_change_identity() -> None:
    raw = tool_record("hi")
    assert parse_record(raw).id != parse_record(raw, workload_id="other").id
    assert record_id(parse_record(raw).to_dict()) == parse_record(raw).id


def test_wire_form_has_string_arguments_and_leaves_input_alone() -> None:
    msgs = [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "A", "arguments": {"x": 1}}}],
        }
    ]
    wire = to_wire_messages(msgs)
    assert wire[0]["tool_calls"][0]["function"]["arguments"] == '{"x":1}'
    assert msgs[0]["tool_calls"][0]["function"]["arguments"] == {"x": 1}


def nested(levels: int) -> Any:
    value: Any = "deep"
    for _ in range(levels):
        value = {"x": value}
    return value


@pytest.mark.parametrize(
    ("timestamp", "says"),
    [
        ("1e308", "got 1e+308"),
        ("99999999999999999999999", "got 1e+23"),
        (1e308, "got 1e+308"),
        (-1e308, "got -1e+308"),
        (10**30, "got 1e+30"),
        (-1, "got -1"),
        (TIMESTAMP_MAX + 1, f"got {TIMESTAMP_MAX + 1}"),
        (1_746_138_417_000, "epoch milliseconds? divide by 1000"),
        ("0001-01-01T00:00:00", "'0001-01-01T00:00:00'"),
        ("1e400", "finite"),
        ("nan", "finite"),
    ],
)
def test_timestamps_out_of_the_plausible_range_are_refused(timestamp: object, says: str) -> None:
    raw = tool_record("hi") | {"timestamp": timestamp}
    with pytest.raises(RecordError) as err:
        parse_record(raw)
    assert err.value.field == "timestamp" and says in str(err.value), str(err.value)


@pytest.mark.parametrize("timestamp", [TIMESTAMP_MIN, TIMESTAMP_MAX, "9999-12-31T23:59:59Z", 1746138417.25])
def test_timestamps_at_the_ends_of_the_range_are_kept(timestamp: object) -> None:
    rec = parse_record(tool_record("hi") | {"timestamp": timestamp})
    assert TIMESTAMP_MIN <= rec.timestamp <= TIMESTAMP_MAX
    orjson.dumps(rec.to_dict())  # and it encodes


@pytest.mark.parametrize(
    ("mutate", "field", "says"),
    [
        (lambda r: r.update(workload_id="a\x00b"), "workload_id", "NUL character (\\u0000) at position 2"),
        (lambda r: r.update(client_id="\x00"), "client_id", "NUL"),
        (lambda r: r.update(client_id="c" * (ID_MAX_LENGTH + 1)), "client_id", "longer than 255"),
        (lambda r: r.update(trace=nested(MAX_JSON_DEPTH)), "trace.x.x.x.x", "nested deeper than 254 levels"),
        (lambda r: r["request"].update(n=2**64), "request.n", "64-bit"),
        (lambda r: r["request"].update(n=-(2**63) - 1), "request.n", "64-bit"),
        (lambda r: r["request"]["messages"][1].update(content="a\ud800"), "request.messages[1].content", "surrogate"),
    ],
)
def test_records_no_store_can_hold_are_refused_naming_the_field(mutate, field: str, says: str) -> None:  # type: ignore[no-untyped-def]
    raw = tool_record("hi")
    mutate(raw)
    with pytest.raises(RecordError) as err:
        parse_record(raw)
    assert err.value.field is not None and err.value.field.startswith(field), err.value.field
    assert says in str(err.value)


def test_the_deepest_nesting_allowed_is_kept() -> None:
    # The record is level 1 and its "trace" object level 2: MAX_JSON_DEPTH - 2 more levels inside fit.
    rec = parse_record(tool_record("hi") | {"trace": nested(MAX_JSON_DEPTH - 2)})
    assert orjson.loads(orjson.dumps(rec.to_dict()))["trace"] == nested(MAX_JSON_DEPTH - 2)
    assert rec.client_id == "c" and parse_record(tool_record("hi") | {"client_id": "c" * ID_MAX_LENGTH})
