"""The lenient JSON reader: each repair named with its code and the span it concerns; valid JSON untouched."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataflywheel.models.lenient_json import JsonRepair, read_json

R = JsonRepair


@pytest.mark.parametrize(
    ("text", "value", "fixes"),
    [
        ("{'a': 'b'}", {"a": "b"}, [(R.SINGLE_QUOTES, "'a'"), (R.SINGLE_QUOTES, "'b'")]),
        ('{"a": True, "b": None}', {"a": True, "b": None}, [(R.PYTHON_LITERALS, "True"), (R.PYTHON_LITERALS, "None")]),
        ("[1,, 2]", [1, 2], [(R.STRAY_COMMA, ",")]),
        ("[1, 2,]", [1, 2], [(R.TRAILING_COMMA, ",")]),
        ('[{"a": 1} {"b": 2}]', [{"a": 1}, {"b": 2}], [(R.MISSING_COMMA, "")]),
        ('{query: "x"}', {"query": "x"}, [(R.UNQUOTED_KEYS, "query")]),
        ('{"q": "my "big" tent"}', {"q": 'my "big" tent'}, [(R.UNESCAPED_QUOTES, '"'), (R.UNESCAPED_QUOTES, '"')]),
        ('{"a": 1, "b": "cut', {"a": 1, "b": "cut"}, [(R.TRUNCATED, "")]),
        ('{"a": 1, "b": ', {"a": 1}, [(R.TRUNCATED, "")]),
    ],
)
def test_each_repair_is_named_with_the_text_it_concerns(
    text: str, value: Any, fixes: list[tuple[JsonRepair, str]]
) -> None:
    read = read_json(text)
    assert read is not None
    assert read.value == value
    assert [(f.repair, text[f.span[0] : f.span[1]]) for f in read.fixes] == fixes


def test_spans_point_at_the_right_places() -> None:
    read = read_json('[{"a": 1} {"b": 2}]')
    assert read is not None and read.fixes[0].span == (10, 10)  # where the comma goes
    cut = read_json('{"a": "x')
    assert cut is not None and cut.fixes[-1].span == (8, 8) and cut.truncated  # the end of the text
    quoted = read_json("{'it's': 1}")
    assert quoted is not None
    assert [f.repair for f in quoted.fixes] == [R.SINGLE_QUOTES, R.UNESCAPED_QUOTES]  # in the order met
    assert quoted.fixes[0].span == (1, 7)


def test_a_value_ends_where_it_ends_inside_a_longer_text() -> None:
    read = read_json('say {"a": 1} and more', 4)
    assert read is not None and (read.value, read.end, read.fixes) == ({"a": 1}, 12, ())
    limited = read_json('{"a": "x</tool_call> more', 0, 8)
    assert limited is not None and limited.value == {"a": "x"} and limited.truncated


@pytest.mark.parametrize("text", ["hello", "{]", "[" * 100 + "1,]" + "]" * 99, "", '{"a": 1 2}'])
def test_what_is_not_json_reads_as_none(text: str) -> None:
    assert read_json(text) is None


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10) | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=15,
)


@settings(max_examples=200, deadline=None)
@given(_json)
def test_valid_json_is_read_strictly_without_repairs(value: Any) -> None:
    text = json.dumps(value)
    read = read_json(text)
    assert read is not None and read.fixes == () and read.end == len(text)
    assert read.value == json.loads(text)


_FRAGMENTS = ["{", "}", "[", "]", '"', "'", ":", ",", "\\", "a", "1", "True", "null", " ", "\n", "-", ".", "e"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=2), max_size=30).map("".join), st.integers(0, 5))
def test_spans_lie_within_what_was_read(text: str, pos: int) -> None:
    pos = min(pos, len(text))
    read = read_json(text, pos)
    if read is None:
        return
    assert pos <= read.end <= len(text)
    for fix in read.fixes:
        assert pos <= fix.span[0] <= fix.span[1] <= read.end
