"""Tool-call arguments checked against the tool's JSON schema (its ``parameters`` object).

A focused validator for the schemas tool definitions really use, not a general JSON Schema implementation:

* ``type``: ``string``, ``integer``, ``number``, ``boolean``, ``object``, ``array``, ``null``, or a list of
  them (``integer`` accepts ``3.0``; ``True`` is never a number);
* ``enum`` and ``const``;
* ``properties`` / ``required`` / ``additionalProperties`` of objects and ``items`` of arrays, recursively;
* ``anyOf`` / ``oneOf``: the first branch without errors wins (``oneOf`` is not checked for exclusivity).

Other keywords (``$ref``, ``pattern``, ``minimum``, ...) are ignored. Arguments the schema does not know are
reported and kept as they are, never renamed or dropped: an error under ``additionalProperties: false``,
else a warning (when the object lists its ``properties``).

Only lossless coercions are made, each reported as a repair: a numeric string for an ``integer`` or
``number`` (``"3"`` -> ``3``), ``"true"`` / ``"false"`` for a ``boolean``, an integral float for an
``integer`` (``3.0`` -> ``3``) and an integer for a ``string`` (``4165`` -> ``"4165"``, the usual user-id
slip). Messages name the argument path, e.g. ``arguments.order.id: expected integer, got string 'abc'``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Final

from dataflywheel.records.jsonvalue import json_equal, json_type_name

__all__ = ["SchemaCheck", "check_arguments"]

_ROOT: Final = "arguments"
_TYPES: Final = frozenset({"string", "integer", "number", "boolean", "object", "array", "null"})
_INTEGER_RE = re.compile(r"[+-]?\d+")
_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_MAX_DEPTH = 32
_EXCERPT = 40


@dataclass(frozen=True)
class SchemaCheck:
    """What checking a call's arguments against its tool's schema found."""

    errors: list[str] = field(default_factory=list)
    """Violations; the call is unusable when there is any."""
    warnings: list[str] = field(default_factory=list)
    """Things worth knowing that change nothing (arguments the schema does not list)."""
    repairs: list[str] = field(default_factory=list)
    """Coercions made in :attr:`arguments`, one message each."""
    arguments: dict[str, Any] = field(default_factory=dict)
    """The arguments after the coercions (a new dict; the input is never modified)."""

    @property
    def ok(self) -> bool:
        """Whether the arguments satisfy the schema (possibly after repairs)."""
        return not self.errors


def check_arguments(arguments: dict[str, Any], schema: dict[str, Any] | None) -> SchemaCheck:
    """Check (and safely coerce) ``arguments`` against ``schema``, a tool's ``parameters`` object.

    ``None`` or an empty schema accepts any object. Pure: ``arguments`` is left untouched. Never raises.
    """
    checker = _Checker()
    if not isinstance(arguments, dict):
        return SchemaCheck(errors=[f"{_ROOT}: expected object, got {_describe(arguments)}"], arguments={})
    if not isinstance(schema, dict) or not schema:
        return SchemaCheck(arguments=dict(arguments))
    value = checker.check(arguments, schema, _ROOT, 0)
    return SchemaCheck(
        errors=checker.errors,
        warnings=checker.warnings,
        repairs=checker.repairs,
        arguments=value if isinstance(value, dict) else dict(arguments),
    )


def _type_of(value: Any) -> str:
    """The JSON schema type name of a Python value: JSON's (:func:`json_type_name`), ``integer`` for an int."""
    if isinstance(value, int) and not isinstance(value, bool):
        return "integer"
    return json_type_name(value)


def _describe(value: Any) -> str:
    kind = _type_of(value)
    if kind in ("object", "array"):
        return kind
    text = repr(value)
    if len(text) > _EXCERPT:
        text = text[:_EXCERPT] + "..."
    return f"{kind} {text}"


def _matches(value: Any, kind: str) -> bool:
    actual = _type_of(value)
    if actual == kind:
        return True
    if kind == "number":
        return actual == "integer" or (actual == "number" and math.isfinite(value))
    return kind == "integer" and actual == "number" and math.isfinite(value) and float(value).is_integer()


def _coerce(value: Any, kind: str) -> tuple[bool, Any]:
    """(True, the coerced value) when ``value`` can losslessly become a ``kind``, else (False, None)."""
    if isinstance(value, str):
        text = value.strip()
        if kind == "integer" and _INTEGER_RE.fullmatch(text):
            return True, int(text)
        if kind == "number" and _NUMBER_RE.fullmatch(text):
            number = float(text)
            if math.isfinite(number):
                return True, int(text) if _INTEGER_RE.fullmatch(text) else number
        if kind == "boolean" and text.lower() in ("true", "false"):
            return True, text.lower() == "true"
        return False, None
    if kind == "integer" and isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return True, int(value)
    if kind == "string" and isinstance(value, int) and not isinstance(value, bool):
        return True, str(value)
    return False, None


class _Checker:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.repairs: list[str] = []

    def check(self, value: Any, schema: Any, path: str, depth: int) -> Any:
        """``value`` checked against ``schema`` (findings recorded); returns it, coerced where allowed."""
        if not isinstance(schema, dict) or depth > _MAX_DEPTH:
            return value
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                value = self.branches(value, branches, path, depth)
        kinds = self.kinds(schema)
        if kinds:
            checked = self.check_type(value, kinds, path)
            if checked is _INVALID:
                return value
            value = checked
        if "const" in schema and not json_equal(value, schema["const"]):
            self.errors.append(f"{path}: expected {schema['const']!r}, got {_describe(value)}")
            return value
        enum = schema.get("enum")
        if isinstance(enum, list) and enum and not any(json_equal(value, option) for option in enum):
            allowed = ", ".join(repr(o) for o in enum[:10]) + (", ..." if len(enum) > 10 else "")
            self.errors.append(f"{path}: {_describe(value)} is not one of {allowed}")
            return value
        if isinstance(value, dict):
            return self.check_object(value, schema, path, depth)
        if isinstance(value, list):
            return self.check_array(value, schema, path, depth)
        return value

    @staticmethod
    def kinds(schema: dict[str, Any]) -> list[str]:
        declared = schema.get("type")
        listed = declared if isinstance(declared, list) else [declared]
        return [k for k in listed if isinstance(k, str) and k in _TYPES]

    def check_type(self, value: Any, kinds: list[str], path: str) -> Any:
        if any(_matches(value, kind) for kind in kinds):
            if isinstance(value, float) and "number" not in kinds:  # it matched "integer"
                self.repairs.append(f"{path}: number {value!r} coerced to integer {int(value)}")
                return int(value)
            return value
        for kind in kinds:
            ok, coerced = _coerce(value, kind)
            if ok:
                self.repairs.append(f"{path}: {_describe(value)} coerced to {kind} {coerced!r}")
                return coerced
        expected = " or ".join(kinds)
        self.errors.append(f"{path}: expected {expected}, got {_describe(value)}")
        return _INVALID

    def branches(self, value: Any, branches: list[Any], path: str, depth: int) -> Any:
        """The value as the first branch that accepts it sees it (its findings kept); an error if none does."""
        for branch in branches:
            trial = _Checker()
            checked = trial.check(value, branch, path, depth + 1)
            if not trial.errors:
                self.warnings.extend(trial.warnings)
                self.repairs.extend(trial.repairs)
                return checked
        self.errors.append(f"{path}: {_describe(value)} matches none of the {len(branches)} allowed schemas")
        return value

    def check_object(self, value: dict[str, Any], schema: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        props = schema.get("properties")
        props = props if isinstance(props, dict) else None
        required = schema.get("required")
        out: dict[str, Any] = {}
        if isinstance(required, list):
            for key in required:
                if isinstance(key, str) and key not in value:
                    self.errors.append(f"{_join(path, key)}: required argument missing")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = _join(path, str(key))
            if props is not None and key in props:
                out[key] = self.check(item, props[key], sub, depth + 1)
            elif isinstance(extra, dict):
                out[key] = self.check(item, extra, sub, depth + 1)
            else:
                out[key] = item
                if extra is False:
                    self.errors.append(f"{sub}: unknown argument (the schema allows no others)")
                elif props is not None:
                    self.warnings.append(f"{sub}: unknown argument (not in the schema), kept as is")
        return out

    def check_array(self, value: list[Any], schema: dict[str, Any], path: str, depth: int) -> list[Any]:
        items = schema.get("items")
        if isinstance(items, dict):
            return [self.check(item, items, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
        if isinstance(items, list):
            return [
                self.check(item, items[i], f"{path}[{i}]", depth + 1) if i < len(items) else item
                for i, item in enumerate(value)
            ]
        return list(value)


class _Invalid:
    """A value of the wrong type that could not be coerced (already reported)."""


_INVALID: Final = _Invalid()


def _join(path: str, key: str) -> str:
    """``path.key``, quoting keys that would read ambiguously in a dotted path."""
    if key and re.fullmatch(r"[\w\-]+", key):
        return f"{path}.{key}"
    return f"{path}[{key!r}]"
