"""JSON values compared as JSON: the one equality every package uses (metrics, schema checks, feedback)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

from typing_extensions import TypeAliasType

__all__ = ["JsonObject", "JsonValue", "attributes", "json_equal", "json_type_name"]

# TypeAliasType (PEP 695 on 3.11) so that pydantic models can hold it too.
JsonValue = TypeAliasType("JsonValue", "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None")
"""Any JSON value, as ``json.loads`` returns it: for data whose shape really is open (tool arguments,
JSON schemas, settings blobs, stored result documents)."""

JsonObject: TypeAlias = dict[str, JsonValue]
"""A JSON object (``json.loads`` of ``{...}``)."""


def json_equal(a: Any, b: Any) -> bool:
    """Deep equality of JSON values: ``3`` equals ``3.0``, but ``true`` does not equal ``1``; objects compare
    by key set and values, arrays element by element."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)


def json_type_name(value: object) -> str:
    """JSON's name for the type of a Python value (``bool`` before ``int``: True is not a number); a value JSON
    cannot hold gets its Python type's name."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def attributes(obj: object, *names: str) -> JsonObject:
    """``{name: obj.name}`` for each of ``names``, in that order: the plain members of an object's JSON form."""
    return {name: getattr(obj, name) for name in names}
