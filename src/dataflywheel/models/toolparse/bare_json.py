"""The recognizer of calls written as bare JSON: ``{"name": .., "arguments" | "parameters": ..}`` (also OpenAI's
``{"type": "function", "function": {..}}`` and a list of calls), in prose, in code fences, after
``<|python_tag|>``. Broken JSON is read leniently (:mod:`dataflywheel.models.lenient_json`); an object
without arguments is a call only for an offered tool (``{"name": "Bob", "age": 3}`` is data).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

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
    nested = _Brackets(MAX_DEPTH, deep)
    raw = _Brackets(MAX_RAW_DEPTH, deep)
    in_string = False
    escaped = False
    for i, c in enumerate(text):
        if c in _BRACKETS:
            raw.see(i, c)
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in _BRACKETS:
            nested.see(i, c)
    nested.close_all()
    raw.close_all()
    return deep


_BRACKETS = "{[}]"


@dataclass
class _Brackets:
    """The brackets open so far, each with the deepest nesting met since it opened; one that closes over more
    than ``limit`` levels goes into ``deep``."""

    limit: int
    deep: set[int]
    stack: list[int] = field(default_factory=list)
    peaks: list[int] = field(default_factory=list)

    def see(self, i: int, c: str) -> None:
        """Bracket ``c`` at position ``i``: an opening one is pushed, a closing one closes the innermost."""
        if c in "{[":
            self.stack.append(i)
            self.peaks.append(len(self.stack))
        elif self.stack:
            self.close()

    def close_all(self) -> None:
        while self.stack:
            self.close()

    def close(self) -> None:
        opener, peak = self.stack.pop(), self.peaks.pop()
        if peak - len(self.stack) > self.limit:
            self.deep.add(opener)
        if self.peaks:
            self.peaks[-1] = max(self.peaks[-1], peak)
