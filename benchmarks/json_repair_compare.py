"""Our lenient JSON reader against the ``json-repair`` package on the JSON of the messy-output corpus.

    python -m venv /tmp/jr && /tmp/jr/bin/pip install json-repair     # not a project dependency
    PYTHONPATH=src:/tmp/jr/lib/python3.11/site-packages python benchmarks/json_repair_compare.py

The payloads: the JSON part of each output with known right calls in the normalizer's and the parser's
hand-written corpora and in the normalizer benchmark's synthetic student outputs (800 records): wrappers
(``<tool_call>`` and ``<function>`` tags, code fences, ``<|python_tag|>``) removed, from the first bracket
on, or a message's ``arguments`` string (outputs that hold one call, or a JSON list of calls; call syntax, XML
tags and pasted tool definitions are not JSON forms and are left out). Then each of those cut off at 1/4, 1/2
and 3/4 of its length, as a model stopped by ``max_tokens`` leaves it. Per reader:

* recovered: the value read holds exactly the right calls (the right arguments, for an arguments payload);
  for a cut-off payload: the reader says the value was cut off (json-repair has no such notion: counted when
  it logged anything at all);
* reported / coded / spanned: for a payload that is not valid JSON, whether the reader said it changed
  something at all, with a code from a fixed vocabulary (that a program can decide on), and where (a span);
* false success: a value returned for text that holds no JSON.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataflywheel.models.lenient_json import read_json
from dataflywheel.models.toolparse.arguments import NO_ARGS, call_shape
from dataflywheel.models.tools import strip_functions_prefix

_WRAPPER = r"(?:</?tool_?calls?>|<function[^>]*>|</function>|```[\w+\-]*|<\|python_tag\|>|<\|eom_id\|>)"
_LEADING_RE = re.compile(rf"\A(?:\s*{_WRAPPER})+", re.IGNORECASE)
_TRAILING_RE = re.compile(rf"(?:{_WRAPPER}\s*)+\Z", re.IGNORECASE)
_START_RE = re.compile(r"\{|\[\s*\{")
_NAMED_TAG_RE = re.compile(r"<function\s*=|<function\s+name", re.IGNORECASE)
_JUNK = ("refund please", "I would call the returns desk", "hello world", "Sure, one moment.")
Calls = list[tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class Payload:
    id: str
    text: str
    calls: Calls | None
    """The right calls; None for a cut-off payload."""
    args_only: bool = False


@dataclass(frozen=True)
class Outcome:
    value: Any
    ok: bool
    """Whether the reader returned a value (json-repair always does)."""
    reported: bool
    coded: bool
    spanned: bool
    truncated: bool


def ours(text: str) -> Outcome:
    """From the first character; else (text before the JSON) from the first bracket, as our callers do."""
    read = read_json(text, len(text) - len(text.lstrip()))
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if read is None and starts:
        read = read_json(text, min(starts))
    if read is None:
        return Outcome(None, False, False, False, False, False)
    fixed = bool(read.fixes)
    return Outcome(read.value, True, fixed, fixed, fixed, read.truncated)


def theirs(text: str) -> Outcome:
    import json_repair

    value, logs = json_repair.repair_json(text, return_objects=True, logging=True)
    return Outcome(value, True, bool(logs), False, False, bool(logs))


def _args(value: Any) -> Any:
    if value is NO_ARGS or value is None:
        return {}
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return _loose(dict(value) if isinstance(value, dict) else value)


def _loose(value: Any) -> Any:
    """Scalars as text: the corpus's right calls are after schema coercion (``4165`` -> ``"4165"``)."""
    if isinstance(value, dict):
        return {str(k): _loose(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_loose(v) for v in value]
    return str(value)


def _calls(value: Any) -> Calls | None:
    out: Calls = []
    for item in value if isinstance(value, list) else [value]:
        shape = call_shape(item)
        if shape is None:
            return None
        out.append((strip_functions_prefix(shape[0]).lower(), _args(shape[1])))
    return out


def recovered(payload: Payload, got: Outcome) -> bool:
    if payload.calls is None:
        return got.truncated
    if not got.ok:
        return False
    if payload.args_only:
        return bool(_args(got.value) == _loose(payload.calls[0][1]))
    return _calls(got.value) == [(strip_functions_prefix(n).lower(), _loose(a)) for n, a in payload.calls]


def _payload(name: str, raw: Any, calls: Calls) -> Payload | None:
    if "echo" in name or "schema" in name or "pasted" in name:
        return None  # a tool definition, not a call: neither reader is meant to make a call of it
    if isinstance(raw, dict):
        tool_calls = raw.get("tool_calls")
        first = tool_calls[0] if isinstance(tool_calls, list) and tool_calls else None
        fn = first.get("function") if isinstance(first, dict) else None
        text = fn.get("arguments") if isinstance(fn, dict) else None
        ok = isinstance(text, str) and len(calls) == 1 and "nested" not in name
        return Payload(name, text, calls, args_only=True) if ok and isinstance(text, str) else None
    if not isinstance(raw, str):
        return None
    body = _LEADING_RE.sub("", raw)
    start = _START_RE.search(body)
    if start is None:
        return None
    text, before = _TRAILING_RE.sub("", body[start.start() :]).strip(), body[: start.start()].strip()
    named = re.fullmatch(r"[A-Za-z_][\w.\-]*", before) is not None or _NAMED_TAG_RE.match(raw) is not None
    args_only = len(calls) == 1 and named
    if before and not args_only and not re.search(r"[.!?:]\Z", before):
        return None  # call syntax or a tag
    if len(calls) > 1 and not text.startswith("["):
        return None  # several blocks: one value each, not one value
    return Payload(name, text, calls, args_only)


def payloads() -> list[Payload]:
    from tests.feedback import test_normalize as norm
    from tests.feedback.verdict_corpus import benchmark_outputs
    from tests.models import test_toolparse as parse

    sources: list[tuple[str, Any, Calls]] = []
    sources += [(f"case/{c.id}", c.raw, c.calls) for c in norm.CASES if c.calls]
    sources += [(f"parse/{c.id}", c.text, c.calls) for c in parse.CASES if c.calls]
    sources += [(f"bench/{i}/{o.form}", o.raw, o.expected) for i, o in enumerate(benchmark_outputs()) if o.expected]
    out = [p for name, raw, calls in sources if (p := _payload(name, raw, calls)) is not None]
    cuts = [
        Payload(f"{p.id}/cut{k}", p.text[: len(p.text) * k // 4], None)
        for p in out
        if not p.args_only
        for k in (1, 2, 3)
    ]
    return out + cuts


def main() -> None:
    readers: dict[str, Callable[[str], Outcome]] = {"ours": ours, "json-repair": theirs}
    table: dict[str, Counter[str]] = {name: Counter() for name in readers}
    missed: dict[str, list[str]] = {name: [] for name in readers}
    for payload in payloads():
        try:
            json.loads(payload.text)
            kind = "valid JSON"
        except ValueError:
            kind = "broken JSON" if payload.calls is not None else "cut off"
        for name, reader in readers.items():
            got, counts = reader(payload.text), table[name]
            counts[f"{kind}: payloads"] += 1
            ok = recovered(payload, got)
            counts[f"{kind}: recovered"] += ok
            if not ok and kind != "cut off":
                missed[name].append(payload.id)
            if kind != "valid JSON":
                counts[f"{kind}: reported"] += got.reported
                counts[f"{kind}: coded"] += got.coded
                counts[f"{kind}: spanned"] += got.spanned
    for junk in _JUNK:
        for name, reader in readers.items():
            table[name]["no JSON: payloads"] += 1
            table[name]["no JSON: false success"] += reader(junk).ok
    keys = list(dict.fromkeys(k for c in table.values() for k in c))
    print(f"{'':32}" + "".join(f"{name:>14}" for name in readers))
    for key in keys:
        print(f"{key:32}" + "".join(f"{table[name][key]:>14}" for name in readers))
    for name, ids in missed.items():
        print(f"{name} missed {len(ids)}: {', '.join(ids[:12])}")


if __name__ == "__main__":
    main()
