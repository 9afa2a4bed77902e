"""A request's tools, indexed: names in order, schemas, and which offered tool a written name means."""

from __future__ import annotations

from dataflywheel.models.tools import NameMatch, ToolIndex, strip_functions_prefix, tool_names

SCHEMA = {"type": "object", "properties": {"query": {"type": "string"}, "user_id": {"type": "string"}}}


def test_the_index_reads_both_forms_and_keeps_the_first_of_a_name() -> None:
    index = ToolIndex.of(
        [
            {"type": "function", "function": {"name": "ToDesk", "parameters": SCHEMA}},
            {"name": "Flat"},
            {"type": "function", "function": {"name": "ToDesk", "parameters": {}}},
            {"function": {"description": "no name"}},
            "junk",
        ]
    )
    assert index.names == ("ToDesk", "Flat")
    assert index.schema("ToDesk") == SCHEMA and index.schema("Flat") is None and index.schema("Nope") is None
    assert index.properties("ToDesk") == ("query", "user_id")
    assert "Flat" in index and "flat" not in index and index.offered


def test_none_is_not_offered_but_an_empty_list_is() -> None:
    assert not ToolIndex.of(None).offered and ToolIndex.of([]).offered
    assert not ToolIndex.of([]) and tool_names(None) == []


def test_a_name_resolves_exactly_or_by_case_only_never_to_a_close_one() -> None:
    index = ToolIndex.of([{"name": "ToDesk"}, {"name": "Other"}, {"name": "AB"}, {"name": "ab"}])
    assert index.resolve("ToDesk") == NameMatch("ToDesk")
    assert index.resolve("todesk") == NameMatch("ToDesk", case_only=True)
    assert index.resolve("ToDesks") == NameMatch(None)
    assert index.resolve("Ab") == NameMatch(None)  # two tools differ from it in case only
    assert strip_functions_prefix("functions.ToDesk") == "ToDesk"
