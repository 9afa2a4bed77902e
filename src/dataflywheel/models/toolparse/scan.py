"""One left-to-right scan of a model's output, shared by the recognizers of each form of call.

At each place where some form of call may begin (a tag, a tool name, a bracket) the recognizer of that form
tries; the earliest successful read wins and hides what it covers, so a tag or a call written inside a JSON
string is never read on its own. :class:`Scan` holds what the recognizers share: the text, the request's
tools, the calls and findings so far, and the helpers every form needs (reading JSON within limits,
closing a block, turning what was read into calls).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from dataflywheel.models.lenient_json import JsonRead, read_json_with_cost
from dataflywheel.models.toolparse.arguments import NO_ARGS, FlatArgs, call_shape, ends_cleanly, read_arguments
from dataflywheel.models.toolparse.findings import (
    FORM_FINDINGS,
    CallForm,
    Finding,
    FindingCode,
    ParsedCall,
    excerpt,
    quoted_excerpt,
)
from dataflywheel.records.tools import FUNCTIONS_PREFIX, ToolIndex, strip_functions_prefix

__all__ = ["Found", "Recognizer", "Scan"]

BUDGET_BASE: Final = 100_000
BUDGET_PER_CHAR: Final = 10
FENCE_OPEN_RE: Final = re.compile(r"```[\w+\-]*[ \t]*\n?")
FENCE_CLOSE_RE: Final = re.compile(r"\s*```")
_BARE_NAME_RE = re.compile(r"[A-Za-z_][\w.\-]*\Z")
_LEFTOVER_RE = re.compile(r"</?tool_?calls?>|</function>|\[[\s,]*\]", re.IGNORECASE)
_EMPTY_FENCE_RE = re.compile(r"```[\w+\-]*[ \t]*(?:\n\s*)?```|```[\w+\-]*\s*\Z")
_BLANK_LINES_RE = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_FENCED_RE = re.compile(r"<[^<>]*>\s*```")
_FENCE_BEFORE_RE = re.compile(r"```[\w+\-]*\s*\Z")


class Recognizer(Protocol):
    """The reader of one form of call: where it may begin, and how to read it there."""

    def starts(self, scan: Scan) -> Iterable[tuple[int, re.Match[str] | None]]:
        """The places (and the match that found each, if any) where a call of this form may begin."""
        ...

    def read(self, scan: Scan, pos: int, match: re.Match[str] | None) -> None:
        """Try to read a call at ``pos``: on success, :meth:`Scan.take` its text and :meth:`Scan.add` it."""
        ...


@dataclass(frozen=True)
class Found:
    """A call read, with the name as written."""

    call: ParsedCall
    written: str
    prefixed: bool


class Scan:
    """The state of one read of ``text``."""

    def __init__(self, text: str, tools: ToolIndex) -> None:
        self.text = text
        self.tools = tools
        self.spans: list[tuple[int, int]] = []
        self.frontier = 0
        self.budget = BUDGET_BASE + BUDGET_PER_CHAR * len(text)
        """Characters the readers of bare JSON and call syntax may still go through (see :meth:`exhausted`)."""
        self.found: list[Found] = []
        self.findings: list[Finding] = []
        self.stopped = False

    # ---- running

    def run(self, recognizers: Sequence[Recognizer]) -> None:
        """Every recognizer's starts, in text order (at one place, the earlier recognizer first)."""
        events: list[tuple[int, int, re.Match[str] | None]] = []
        for rank, recognizer in enumerate(recognizers):
            events += [(pos, rank, m) for pos, m in recognizer.starts(self)]
        events.sort(key=lambda e: (e[0], e[1]))
        for pos, rank, match in events:
            if pos < self.frontier:
                continue
            recognizers[rank].read(self, pos, match)

    def finish(self) -> list[Finding]:
        """The findings about each call as a whole, once all are read: its form, a ``functions.`` prefix, a cut
        off end (when the text was cut off somewhere), code fences around it."""
        text = self.text
        truncated = any(f.code is FindingCode.TRUNCATED for f in self.findings)
        out: list[Finding] = []
        for found in self.found:
            call = found.call
            start = call.span[0]
            form = FORM_FINDINGS.get(call.format)
            if form is not None:
                out.append(Finding(form, excerpt(call.raw), call.span))
            if call.format is not CallForm.CALL and (found.prefixed or found.written.startswith(FUNCTIONS_PREFIX)):
                bare = strip_functions_prefix(found.written)
                out.append(Finding(FindingCode.NAME_PREFIX, f"{FUNCTIONS_PREFIX + bare!r} read as {bare!r}", call.span))
            if truncated and not ends_cleanly(call.raw):
                cut = f"the output ends inside a value: {excerpt(call.raw[-60:])}"
                out.append(Finding(FindingCode.CUT_OFF, cut, call.span))
            if _FENCED_RE.match(call.raw) or _FENCE_BEFORE_RE.search(text, max(0, start - 24), start):
                out.append(Finding(FindingCode.FENCED_CALL, "code fences around the call removed", call.span))
        return out

    def content(self) -> str | None:
        """The text outside the calls read, tidied (closing tags, empty fences and blank runs removed)."""
        pieces: list[str] = []
        pos = 0
        for a, b in self.spans:
            pieces.append(self.text[pos:a])
            pos = b
        pieces.append(self.text[pos:])
        text = "".join(pieces)
        if self.spans:
            text = _LEFTOVER_RE.sub("", text)
            text = _EMPTY_FENCE_RE.sub("", text)
            text = _BLANK_LINES_RE.sub("\n\n", text)
        text = text.strip()
        return text or None

    # ---- bookkeeping

    def finding(self, code: FindingCode, detail: str, span: tuple[int, int]) -> None:
        self.findings.append(Finding(code, detail, span))

    def ignored(self, what: str, text: str, start: int, end: int) -> None:
        """Stray text (``text``, at ``start:end``) dropped from a call's block or tag."""
        self.finding(FindingCode.IGNORED_TEXT, f"ignored text {what}: {quoted_excerpt(text)}", (start, end))

    def take(self, start: int, end: int) -> None:
        """Mark ``text[start:end]`` as read: nothing starting inside it is tried any more."""
        self.spans.append((start, end))
        self.frontier = max(self.frontier, end)

    def skip_ws(self, pos: int) -> int:
        text = self.text
        while pos < len(text) and text[pos].isspace():
            pos += 1
        return pos

    def skip_fence(self, pos: int) -> int:
        fence = FENCE_OPEN_RE.match(self.text, pos)
        return self.skip_ws(fence.end()) if fence else pos

    def exhausted(self) -> bool:
        """Whether searching for calls outside tags has cost too much already (pathological text)."""
        if self.budget > 0:
            return False
        if not self.stopped:
            self.stopped = True
            detail = "search for calls stopped early: text too long or too deeply nested"
            self.finding(FindingCode.SEARCH_STOPPED, detail, (0, len(self.text)))
        return True

    # ---- turning what was read into calls

    def resolve_name(self, name: str, span: tuple[int, int]) -> str:
        """The offered tool ``name`` means (its case corrected), or ``name`` itself, reported unknown."""
        name = strip_functions_prefix(name)
        if not self.tools.offered or name in self.tools:
            return name
        match = self.tools.resolve(name)
        if match.name is not None:
            self.finding(FindingCode.TOOL_NAME_CASE, f"tool name {name!r} corrected to {match.name!r}", span)
            return match.name
        self.finding(FindingCode.UNKNOWN_TOOL, f"unknown tool {name!r}", span)
        return name

    def add(
        self,
        start: int,
        end: int,
        calls: list[tuple[str, Any]],
        form: CallForm,
        notes: list[Finding],
        *,
        prefixed: bool = False,
    ) -> bool:
        """Record the calls read from ``text[start:end]`` (name, raw arguments) and, when any has usable
        arguments, the ``notes`` made reading them; False when none has. ``prefixed``: the names were written
        after ``functions.`` in call syntax."""
        raw = self.text[start:end]
        span = (start, end)
        added = False
        for name, raw_args in calls:
            got = read_arguments(raw_args, name, self.tools, span=span)
            self.findings.extend(got.findings)
            if got.value is None:
                continue
            call = ParsedCall(self.resolve_name(name, span), got.value, raw, form, span)
            self.found.append(Found(call, name, prefixed))
            added = True
        if added:
            self.findings.extend(notes)
        return added

    def payload_calls(self, value: Any, *, need_args: bool) -> list[tuple[str, Any]] | None:
        """The calls a JSON value holds (an object or a list of objects), or None when it is not call-shaped.
        ``need_args``: outside a call block, an object without arguments is a call only for an offered tool
        (``{"name": "Bob", "age": 3}`` is data)."""
        items = value if isinstance(value, list) else [value]
        calls: list[tuple[str, Any]] = []
        for item in items:
            shape = call_shape(item)
            if shape is None:
                return None
            name, args = shape
            implicit = args is NO_ARGS or isinstance(args, FlatArgs)
            if need_args and (not _BARE_NAME_RE.match(name) or (implicit and name not in self.tools)):
                return None
            calls.append(shape)
        return calls or None

    # ---- JSON within limits

    def json_at(self, pos: int, limits: list[int]) -> JsonRead | None:
        """The JSON value at ``pos``. When it only reads to the end of the text by closing what was left open,
        each of ``limits`` (a closing tag, a fence) is tried first as the end instead."""
        full, cost = read_json_with_cost(self.text, pos)
        self.budget -= cost
        if full is not None and not full.truncated:
            return full
        for limit in sorted({lim for lim in limits if lim > pos}):
            limited, cost = read_json_with_cost(self.text, pos, limit)
            self.budget -= cost
            if limited is not None:
                return limited
        return full

    def notes(self, read: JsonRead) -> list[Finding]:
        """The findings of the repairs made reading ``read``."""
        return [Finding.of_fix(fix) for fix in read.fixes]

    def limits_after(self, pos: int) -> list[int]:
        """Where a value starting at ``pos`` outside tags most likely ends if it is cut off: before a fence,
        a closing tag or a tag on the next line."""
        out = []
        for needle in ("```", "</", "\n<"):
            at = self.text.find(needle, pos)
            if at != -1:
                out.append(at)
        return out

    def close_block(self, stop: int, close_re: re.Pattern[str], limit: int, what: str) -> int | None:
        """Where a block ends after its payload (which ends at ``stop``): after its closing tag, reporting
        text left between; None when the tag is missing before ``limit``."""
        text = self.text
        fence = FENCE_CLOSE_RE.match(text, stop)
        if fence:
            stop = fence.end()
        close = close_re.search(text, stop, max(limit, stop))
        if close is None:
            return None
        junk = text[stop : close.start()]
        if junk.strip():
            self.ignored(f"in <{what}> block", junk.strip(), stop, close.start())
        return close.end()
