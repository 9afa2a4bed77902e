"""The recognizer of calls written as bare JSON: ``{"name": .., "arguments" | "parameters": ..}`` (also OpenAI's
``{"type": "function", "function": {..}}`` and a list of calls), in prose, in code fences, after
``<|python_tag|>``. Broken JSON is read leniently (:mod:`dataflywheel.models.lenient_json`); an object
without arguments is a call only for an offered tool (``{"name": "Bob", "age": 3}`` is data).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from dataflywheel.models.lenient_json import MAX_DEPTH
from dataflywheel.models.toolparse.findings import CallForm
from dataflywheel.models.toolparse.scan import Scan

__all__ = ["BareJson"]

MAX_RAW_DEPTH = 256
_JSON_START_RE = re.compile(r"\{(?=\s*[\"'A-Za-z_$])|\[(?=\s*\{)")


class BareJson:
    """A call-shaped JSON value wherever one may start: ``{`` before a key, ``[`` before an object."""

    def starts(self, scan: Scan) -> Iterable[tuple[int, re.Match[str] | None]]:
        deep = _deep_openers(scan.text)
        return [(m.start(), None) for m in _JSON_START_RE.finditer(scan.text) if m.start() not in deep]

    def read(self, scan: Scan, pos: int, match: re.Match[str] | None) -> None:
        if scan.exhausted():
            return
        read = scan.json_at(pos, scan.limits_after(pos))
        if read is None:
            return
        calls = scan.payload_calls(read.value, need_args=True)
        if calls is not None and scan.add(pos, read.end, calls, CallForm.JSON, scan.notes(read)):
            scan.take(pos, read.end)


def _deep_openers(text: str) -> set[int]:
    """The brackets from which reading would fail or cost too much, found in one pass: those whose contents
    nest deeper than the lenient reader goes (double-quoted strings skipped), and, whatever the quotes, those
    followed by more than ``MAX_RAW_DEPTH`` unclosed brackets. Trying every bracket of such text is
    quadratic; a real call never nests like that."""
    deep: set[int] = set()
    stack: list[int] = []
    peaks: list[int] = []
    raw_stack: list[int] = []
    raw_peaks: list[int] = []
    in_string = False
    escaped = False
    for i, c in enumerate(text):
        if c in "{[":
            raw_stack.append(i)
            raw_peaks.append(len(raw_stack))
        elif c in "}]" and raw_stack:
            _close_opener(raw_stack, raw_peaks, deep, MAX_RAW_DEPTH)
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "{[":
            stack.append(i)
            peaks.append(len(stack))
        elif c in "}]" and stack:
            _close_opener(stack, peaks, deep, MAX_DEPTH)
    while stack:
        _close_opener(stack, peaks, deep, MAX_DEPTH)
    while raw_stack:
        _close_opener(raw_stack, raw_peaks, deep, MAX_RAW_DEPTH)
    return deep


def _close_opener(stack: list[int], peaks: list[int], deep: set[int], limit: int) -> None:
    opener, peak = stack.pop(), peaks.pop()
    if peak - len(stack) > limit:
        deep.add(opener)
    if peaks:
        peaks[-1] = max(peaks[-1], peak)
