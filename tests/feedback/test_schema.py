"""The focused JSON-schema check of tool-call arguments: errors, warnings, safe coercions, paths."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflywheel.feedback.schema import SchemaCheck, check_arguments
from dataflywheel.synth.catalog import TOOLS

ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {"type": "string"},
        "order": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "status": {"type": "string", "enum": ["open", "shipped", "returned"]},
                "lines": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
                        "required": ["sku"],
                        "additionalProperties": False,
                    },
                },
            },
            "required": ["id"],
        },
        "express": {"type": "boolean"},
        "price": {"type": "number"},
        "note": {"type": ["string", "null"]},
    },
    "required": ["query"],
}


def _params(name: str) -> dict[str, Any]:
    return next(t["function"]["parameters"] for t in TOOLS if t["function"]["name"] == name)


def test_valid_arguments_pass_untouched() -> None:
    args = {"query": "where is it", "user_id": "4165"}
    check = check_arguments(args, _params("ToOrderTracking"))
    assert check == SchemaCheck(errors=[], warnings=[], repairs=[], arguments=args)
    assert check.ok


def test_missing_required_is_an_error_naming_the_path() -> None:
    check = check_arguments({"query": "x"}, _params("ToReturnsDesk"))
    assert check.errors == ["arguments.user_id: required argument missing"]
    assert not check.ok


def test_nested_type_error_names_the_full_path() -> None:
    check = check_arguments({"query": "q", "order": {"id": "abc"}}, ORDER_SCHEMA)
    assert check.errors == ["arguments.order.id: expected integer, got string 'abc'"]


def test_array_items_are_checked_with_their_index() -> None:
    args = {"query": "q", "order": {"id": 1, "lines": [{"sku": "a"}, {"qty": 2}, {"sku": [3]}]}}
    check = check_arguments(args, ORDER_SCHEMA)
    assert check.errors == [
        "arguments.order.lines[1].sku: required argument missing",
        "arguments.order.lines[2].sku: expected string, got array",
    ]


def test_enum_is_enforced() -> None:
    check = check_arguments({"query": "q", "order": {"id": 1, "status": "lost"}}, ORDER_SCHEMA)
    assert check.errors == ["arguments.order.status: string 'lost' is not one of 'open', 'shipped', 'returned'"]


def test_enum_distinguishes_true_from_one() -> None:
    schema = {"type": "object", "properties": {"level": {"enum": [1, 2]}}}
    assert check_arguments({"level": 1.0}, schema).ok
    assert not check_arguments({"level": True}, schema).ok


def test_const() -> None:
    schema = {"type": "object", "properties": {"kind": {"const": "refund"}}}
    assert check_arguments({"kind": "refund"}, schema).ok
    assert check_arguments({"kind": "swap"}, schema).errors == ["arguments.kind: expected 'refund', got string 'swap'"]


def test_type_lists_and_null() -> None:
    assert check_arguments({"query": "q", "note": None}, ORDER_SCHEMA).ok
    check = check_arguments({"query": None}, ORDER_SCHEMA)
    assert check.errors == ["arguments.query: expected string, got null None"]


def test_bool_is_not_a_number_and_int_is_a_number() -> None:
    assert check_arguments({"query": "q", "price": 3}, ORDER_SCHEMA).ok
    check = check_arguments({"query": "q", "price": True}, ORDER_SCHEMA)
    assert check.errors == ["arguments.price: expected number, got boolean True"]


@pytest.mark.parametrize(
    ("field", "given", "expected", "repair"),
    [
        ("price", "3", 3, "arguments.price: string '3' coerced to number 3"),
        ("price", " 2.5 ", 2.5, "arguments.price: string ' 2.5 ' coerced to number 2.5"),
        ("express", "true", True, "arguments.express: string 'true' coerced to boolean True"),
        ("express", "False", False, "arguments.express: string 'False' coerced to boolean False"),
        ("query", 4165, "4165", "arguments.query: integer 4165 coerced to string '4165'"),
    ],
)
def test_safe_coercions_are_repairs(field: str, given: Any, expected: Any, repair: str) -> None:
    check = check_arguments({"query": "q", field: given}, ORDER_SCHEMA)
    assert check.ok
    assert check.arguments[field] == expected
    assert type(check.arguments[field]) is type(expected)
    assert check.repairs == [repair]


def test_nested_coercions() -> None:
    args = {"query": "q", "order": {"id": "42", "lines": [{"sku": "a", "qty": "3"}]}}
    check = check_arguments(args, ORDER_SCHEMA)
    assert check.ok
    assert check.arguments["order"] == {"id": 42, "lines": [{"sku": "a", "qty": 3}]}
    assert check.repairs == [
        "arguments.order.id: string '42' coerced to integer 42",
        "arguments.order.lines[0].qty: string '3' coerced to integer 3",
    ]


def test_integral_float_becomes_an_integer() -> None:
    check = check_arguments({"query": "q", "order": {"id": 7.0}}, ORDER_SCHEMA)
    assert check.arguments["order"]["id"] == 7 and isinstance(check.arguments["order"]["id"], int)
    assert check.repairs == ["arguments.order.id: number 7.0 coerced to integer 7"]


@pytest.mark.parametrize("value", ["3.5", "three", "", "1e400", "nan", True, [1], {"a": 1}, 2.5])
def test_unsafe_values_are_not_coerced_to_integer(value: Any) -> None:
    check = check_arguments({"query": "q", "order": {"id": value}}, ORDER_SCHEMA)
    assert len(check.errors) == 1 and check.errors[0].startswith("arguments.order.id: expected integer")
    assert check.arguments["order"]["id"] == value  # reported, not replaced


def test_unknown_keys_are_warnings_and_kept() -> None:
    check = check_arguments({"query": "q", "user_id": "4165", "Message": "hi"}, _params("ToProductAdvisor"))
    assert check.ok
    assert check.arguments == {"query": "q", "user_id": "4165", "Message": "hi"}
    assert check.warnings == [
        "arguments.user_id: unknown argument (not in the schema), kept as is",
        "arguments.Message: unknown argument (not in the schema), kept as is",
    ]


def test_unknown_keys_are_errors_without_additional_properties() -> None:
    args = {"query": "q", "order": {"id": 1, "lines": [{"sku": "a", "colour": "red"}]}}
    check = check_arguments(args, ORDER_SCHEMA)
    assert check.errors == ["arguments.order.lines[0].colour: unknown argument (the schema allows no others)"]


def test_additional_properties_schema_checks_extra_values() -> None:
    schema = {"type": "object", "properties": {}, "additionalProperties": {"type": "integer"}}
    check = check_arguments({"a": "1", "b": "x"}, schema)
    assert check.arguments == {"a": 1, "b": "x"}
    assert check.errors == ["arguments.b: expected integer, got string 'x'"]
    assert check.warnings == []


def test_any_of_takes_the_first_matching_branch() -> None:
    schema = {"type": "object", "properties": {"ref": {"anyOf": [{"type": "integer"}, {"type": "string"}]}}}
    assert check_arguments({"ref": "A-12"}, schema).ok
    assert check_arguments({"ref": "12"}, schema).arguments == {"ref": 12}
    check = check_arguments({"ref": [1]}, schema)
    assert check.errors == ["arguments.ref: array matches none of the 2 allowed schemas"]


def test_odd_keys_are_quoted_in_paths() -> None:
    schema = {"type": "object", "properties": {"a b": {"type": "string"}}, "required": ["a b"]}
    assert check_arguments({}, schema).errors == ["arguments['a b']: required argument missing"]


@pytest.mark.parametrize("schema", [None, {}, {"type": "object"}, {"weird": True}, "not a schema"])
def test_no_or_empty_schema_accepts_anything(schema: Any) -> None:
    check = check_arguments({"anything": [1, {"x": None}]}, schema)
    assert check.ok and check.warnings == [] and check.arguments == {"anything": [1, {"x": None}]}


def test_non_object_arguments_are_an_error() -> None:
    check = check_arguments(["a"], {"type": "object"})  # type: ignore[arg-type]
    assert check.errors == ["arguments: expected object, got array"]


def test_unsupported_type_names_and_keywords_are_ignored() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "uuid", "pattern": "^a", "$ref": "#/x"}}}
    assert check_arguments({"x": "b"}, schema).ok


def test_the_input_is_never_modified() -> None:
    args = {"query": "q", "order": {"id": "42", "lines": [{"sku": "a", "qty": "3"}]}}
    before = copy.deepcopy(args)
    check_arguments(args, ORDER_SCHEMA)
    assert args == before


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["query", "order", "express", "price", "note", "x"]), _json, max_size=5))
def test_never_raises_and_keeps_every_key(args: dict[str, Any]) -> None:
    check = check_arguments(args, ORDER_SCHEMA)
    assert set(check.arguments) == set(args)
    assert all(isinstance(m, str) and m.startswith("arguments") for m in check.errors + check.warnings)
