"""Wire arguments read strictly: an object, or a JSON string holding one."""

from __future__ import annotations

from dataflywheel.records.toolcalls import arguments_object


def test_arguments_object_is_strict() -> None:
    assert arguments_object({"a": 1}) == {"a": 1}
    assert arguments_object('{"a": 1}') == {"a": 1}
    assert arguments_object(None) == {} and arguments_object("  ") == {}
    assert arguments_object("{'a': 1}") is None  # lenient reading is the tool-call reader's job
    assert arguments_object("[1]") is None and arguments_object(3) is None
