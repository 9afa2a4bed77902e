"""The recognizer of tool definitions pasted back into an output, read only when asked for.

Small models echo the request's tool definitions (``{"type": "function", "function": {"name": ..,
"parameters": ..}}``, one, a list, or ``{"tools": [...]}``), sometimes with the argument values under
``"arguments"`` or filled into ``"properties"``. Exactly one pasted definition with values is a call; the
others are removed from the text. Values in several, or definitions mixed with other objects in one list,
are ambiguous: nothing is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

from dataflywheel.models.lenient_json import read_json
from dataflywheel.models.toolparse.arguments import values_in_schema
from dataflywheel.models.toolparse.findings import CallForm, Finding, FindingCode, ParsedCall
from dataflywheel.records.jsonvalue import JsonObject

__all__ = ["Pasted", "find_pasted"]

_MAX_READS: Final = 64
_OPEN_RE = re.compile(r"[{\[]")

Definition = tuple[str, JsonObject | None, str]
"""(tool name, the argument values or None, where they were)."""


@dataclass
class Pasted:
    """The pasted definitions of a text."""

    masked: str
    """The text with the definitions blanked out (same length, so spans still hold)."""
    calls: list[ParsedCall] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    without: list[str] = field(default_factory=list)
    """The names of the definitions pasted without values, each once."""
    without_span: tuple[int, int] | None = None
    failed: bool = False
    """Ambiguous: the finding says why, nothing was read."""


def find_pasted(text: str) -> Pasted:
    """The pasted tool definitions in ``text`` (see the module docstring)."""
    if "properties" not in text and "description" not in text:
        return Pasted(text)
    found: list[tuple[int, int, list[Definition]]] = []
    frontier = reads = 0
    for m in _OPEN_RE.finditer(text):
        if m.start() < frontier:
            continue
        reads += 1
        if reads > _MAX_READS:
            break
        read = read_json(text, m.start())
        if read is None:
            continue
        defs = _definitions(read.value)
        if defs is None:
            if not read.truncated:
                frontier = read.end
            continue
        if any(d is None for d in defs):
            detail = "pasted tool definitions mixed with other objects in one list"
            return Pasted(
                text, findings=[Finding(FindingCode.PASTED_MIXED, detail, (m.start(), read.end))], failed=True
            )
        found.append((m.start(), read.end, [d for d in defs if d is not None]))
        frontier = read.end
    if not found:
        return Pasted(text)
    with_values = [(start, end, d) for start, end, defs in found for d in defs if d[1] is not None]
    if len(with_values) > 1:
        names = ", ".join(d[0] for _, _, d in with_values)
        detail = f"argument values in several pasted tool definitions: {names}"
        span = (with_values[0][0], with_values[-1][1])
        return Pasted(text, findings=[Finding(FindingCode.PASTED_AMBIGUOUS, detail, span)], failed=True)
    out = Pasted(text)
    for start, end, (name, values, how) in with_values:
        assert values is not None
        detail = f"arguments of {name} taken from a pasted tool definition ({how})"
        out.findings.append(Finding(FindingCode.PASTED_DEFINITION, detail, (start, end)))
        out.calls.append(ParsedCall(name, values, text[start:end], CallForm.PASTED_DEFINITION, (start, end)))
    chars = list(text)
    for start, end, _ in found:
        chars[start:end] = " " * (end - start)
    out.masked = "".join(chars)
    blocks = [(start, end) for start, end, defs in found if any(d[1] is None for d in defs)]
    out.without = list(dict.fromkeys(d[0] for _, _, defs in found for d in defs if d[1] is None))
    out.without_span = (blocks[0][0], blocks[-1][1]) if blocks else None
    return out


def _definitions(value: Any) -> list[Definition | None] | None:
    """The tool definitions ``value`` holds (an object, a list, ``{"tools": [...]}``), None (in the list) for
    an object that is not one; None when it holds none."""
    if isinstance(value, dict) and isinstance(value.get("tools"), list):
        value = value["tools"]
    items = value if isinstance(value, list) else [value]
    defs = [_definition(item) for item in items]
    if not any(d is not None for d in defs):
        return None
    return [d for d, item in zip(defs, items, strict=True) if d is not None or isinstance(item, dict)]


def _definition(item: Any) -> Definition | None:
    """(name, argument values or None, where they were) of a pasted tool definition; None if not one."""
    if not isinstance(item, dict):
        return None
    fn = item.get("function")
    inner = fn if isinstance(fn, dict) and isinstance(fn.get("name"), str) else item
    name = inner.get("name")
    if not isinstance(name, str) or not name.strip():
        return None
    params = inner.get("parameters")
    props = params.get("properties") if isinstance(params, dict) else None
    if isinstance(params, dict) and not (
        params.get("type") == "object" or "description" in inner or item.get("type") == "function"
    ):
        props = None  # arguments that happen to have a "properties" key, not a schema
    outer_args = inner is not item and "arguments" in item
    if not isinstance(props, dict) and not outer_args:
        return None
    for holder in (item, inner):
        if "arguments" in holder:
            explicit = holder["arguments"]
            if isinstance(explicit, str):
                read = read_json(explicit.strip(), 0) if explicit.strip() else None
                explicit = read.value if read is not None else None
            return name.strip(), explicit if isinstance(explicit, dict) else None, '"arguments"'
    filled = values_in_schema(props) if isinstance(props, dict) else {}
    return name.strip(), filled or None, 'values in "properties"'
