"""The recognizer of call syntax: ``functions.Name({..})`` for any name; ``Name({..})``, ``Name(arg="..")``,
``Name('..')`` (a one-parameter tool), ``Name={..}`` and ``Name {..}`` for an offered tool's name.

Arguments in parentheses are read as JSON when they are one object, else as Python literals (never
evaluated: :mod:`ast` literals only, plus JSON's ``true`` / ``false`` / ``null``).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable
from typing import Any, Final

from dataflywheel.models.lenient_json import JSON_WORDS, MAX_DEPTH
from dataflywheel.models.toolparse.findings import CallForm, Finding, FindingCode
from dataflywheel.models.toolparse.scan import Scan
from dataflywheel.records.jsonvalue import JsonObject

__all__ = ["CALL_RE", "CallSyntax", "call_args"]

CALL_RE: Final = re.compile(
    r"(?<![\w.])(?:(?P<prefix>functions\.|function\s*=\s*)(?P<any>[A-Za-z_]\w*)|(?P<known>[A-Za-z_]\w*))"
)


class _NotLiteral(Exception):
    """An expression that is not a literal."""


class CallSyntax:
    """``Name(...)`` and its variants (see the module docstring)."""

    def starts(self, scan: Scan) -> Iterable[tuple[int, re.Match[str] | None]]:
        offered = scan.tools.specs
        return [(m.start(), m) for m in CALL_RE.finditer(scan.text) if m.group("prefix") or m.group("known") in offered]

    def read(self, scan: Scan, pos: int, match: re.Match[str] | None) -> None:
        assert match is not None
        if scan.exhausted():
            return
        name = match.group("any") or match.group("known")
        got = call_args(scan, match.end(), name)
        if got is None:
            return
        args, end, notes = got
        scan.take(match.start(), end)
        scan.add(match.start(), end, [(name, args)], CallForm.CALL, notes)


def call_args(scan: Scan, pos: int, name: str) -> tuple[Any, int, list[Finding]] | None:
    """The arguments after a tool name: ``({...})``, ``(k=v, ...)``, ``={...}`` or ``{...}``. Returns the raw
    arguments, where they end, and the notes made reading them."""
    text = scan.text
    pos = scan.skip_ws(pos)
    if pos < len(text) and text[pos] == "=":
        pos = scan.skip_ws(pos + 1)
        if pos >= len(text) or text[pos] != "{":
            return None
    if pos >= len(text):
        return None
    if text[pos] == "{":
        read = scan.json_at(pos, scan.limits_after(pos))
        if read is None or not isinstance(read.value, dict):
            return None
        return read.value, read.end, scan.notes(read)
    if text[pos] != "(":
        return None
    inner_start = scan.skip_ws(pos + 1)
    if inner_start < len(text) and text[inner_start] == "{":
        read = scan.json_at(inner_start, scan.limits_after(inner_start))
        if read is not None and isinstance(read.value, dict):
            stop = scan.skip_ws(read.end)
            if stop < len(text) and text[stop] == ")":
                return read.value, stop + 1, scan.notes(read)
            if stop >= len(text):
                return read.value, stop, [*scan.notes(read), _truncated(stop)]
    close, cost = _matching_paren(text, pos)
    scan.budget -= cost
    inner = text[pos + 1 : close if close is not None else len(text)]
    attempts = [inner] if close is not None else [inner, inner + '"', inner + "'"]
    for attempt in attempts:
        args = _kwargs(scan, name, attempt)
        if args is not None:
            if close is not None:
                return args, close + 1, []
            return args, len(text), [_truncated(len(text))]
    return None


def _truncated(at: int) -> Finding:
    return Finding(FindingCode.TRUNCATED, "truncated call closed", (at, at))


def _kwargs(scan: Scan, name: str, inner: str) -> JsonObject | None:
    """Python call arguments as a dict: ``k=v`` pairs, one dict literal, or one value for a one-parameter
    tool; None when they are not literals."""
    try:
        call = ast.parse(f"_f({inner})", mode="eval").body
        if not isinstance(call, ast.Call) or any(kw.arg is None for kw in call.keywords) or len(call.args) > 1:
            return None
        args: JsonObject = {}
        if call.args:
            value = _py_literal(call.args[0])
            if isinstance(value, dict):
                args.update(value)
            else:
                params = scan.tools.properties(name)
                if len(params) != 1:
                    return None
                args[params[0]] = value
        for kw in call.keywords:
            args[str(kw.arg)] = _py_literal(kw.value)
    except (_NotLiteral, SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return args


def _py_literal(node: ast.AST, depth: int = 0) -> Any:
    """A Python literal (plus JSON's true/false/null) from an AST node; raises _NotLiteral on anything else."""
    if depth > MAX_DEPTH:
        raise _NotLiteral
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool | type(None)):
        return node.value
    if isinstance(node, ast.Dict):
        out: JsonObject = {}
        for k, v in zip(node.keys, node.values, strict=True):
            if k is None:
                raise _NotLiteral
            key = _py_literal(k, depth + 1)
            out[key if isinstance(key, str) else json.dumps(key)] = _py_literal(v, depth + 1)
        return out
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return [_py_literal(e, depth + 1) for e in node.elts]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _py_literal(node.operand, depth + 1)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
        raise _NotLiteral
    if isinstance(node, ast.Name) and node.id in JSON_WORDS:
        return JSON_WORDS[node.id]
    raise _NotLiteral


def _matching_paren(text: str, pos: int) -> tuple[int | None, int]:
    """The index of the ``)`` closing the ``(`` at ``pos`` (quotes and nesting respected), or None; and the
    number of characters looked at."""
    depth = 0
    quote: str | None = None
    i = pos
    n = len(text)
    while i < n:
        c = text[i]
        if quote is not None:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return (i if c == ")" else None), i - pos + 1
        i += 1
    return None, n - pos
