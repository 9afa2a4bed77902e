"""Recognizers of calls in tags: ``<tool_call>`` blocks, ``<function>`` tags, and Llama's markers.

* :class:`ToolCallBlocks`: the canonical ``<tool_call>{json}</tool_call>`` (also ``<tool_calls>``, unclosed,
  several in a row, a JSON list or call syntax inside, code fences inside);
* :class:`FunctionTags`: ``<function>Name{json}</function>``, ``<function=Name>{json}</function>``,
  ``<function name="Name">``, ``<function>{"name": .., "arguments": ..}</function>``;
* :class:`Markers`: ``<|python_tag|>`` and ``<|eom_id|>``, dropped (the JSON after them is bare JSON).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar, Final

from dataflywheel.models.toolparse.arguments import NO_ARGS
from dataflywheel.models.toolparse.callsyntax import CALL_RE, call_args
from dataflywheel.models.toolparse.findings import CallForm, Finding, FindingCode, quoted_excerpt
from dataflywheel.models.toolparse.scan import Scan

__all__ = ["FunctionTags", "Markers", "ToolCallBlocks"]

TOOL_CALL_OPEN_RE: Final = re.compile(r"<tool_?calls?>", re.IGNORECASE)
_TOOL_CALL_CLOSE_RE = re.compile(r"</tool_?calls?>", re.IGNORECASE)
_MARKER_RE = re.compile(r"<\|python_tag\|>|<\|eom_id\|>")
_FUNCTION_TAG_RE = re.compile(
    r"<function\s*=\s*[\"']?(?P<eq>[\w.\-]+)[\"']?\s*>"
    r"|<function\s+name\s*=\s*[\"'](?P<attr>[\w.\-]+)[\"']\s*>"
    r"|<function>\s*(?P<inline>[A-Za-z_][\w.\-]*)(?=\s*[{(])"
    r"|<function>",
    re.IGNORECASE,
)
_FUNCTION_CLOSE_RE = re.compile(r"\s*</function>", re.IGNORECASE)

Payload = tuple[list[tuple[str, Any]], int, list[Finding], bool]
"""What a block holds: the calls (name, raw arguments), where they end, the notes made reading them, and
whether the names were written after ``functions.``."""


def block_payload(scan: Scan, pos: int, limits: list[int]) -> Payload | None:
    """The calls written at ``pos`` inside a tag: JSON (an object or a list) or call syntax."""
    text = scan.text
    if pos < len(text) and text[pos] in "{[":
        read = scan.json_at(pos, limits)
        if read is None:
            return None
        calls = scan.payload_calls(read.value, need_args=False)
        return None if calls is None else (calls, read.end, scan.notes(read), False)
    m = CALL_RE.match(text, pos)
    if m:
        name = m.group("any") or m.group("known") or ""
        got = call_args(scan, m.end(), name)
        if got is not None:
            prefixed = (m.group("prefix") or "").startswith("functions")
            return [(name, got[0])], got[1], got[2], prefixed
    return None


class _Tag:
    """A form that begins wherever ``open_re`` matches (the match is passed on to ``read``)."""

    open_re: ClassVar[re.Pattern[str]]

    def starts(self, scan: Scan) -> Iterable[tuple[int, re.Match[str] | None]]:
        return [(m.start(), m) for m in self.open_re.finditer(scan.text)]


class _ClosedTag(_Tag, ABC):
    """A tag whose contents end at ``close_re``, and at the latest where the next opening tag (or the text)
    does."""

    close_re: ClassVar[re.Pattern[str]]

    def read(self, scan: Scan, pos: int, match: re.Match[str] | None) -> None:
        assert match is not None
        limit = _next_start(self.open_re, scan.text, match.end())
        self.read_tag(scan, match, limit, self.close_re.search(scan.text, match.end(), limit))

    @abstractmethod
    def read_tag(self, scan: Scan, m: re.Match[str], limit: int, close: re.Match[str] | None) -> None:
        """Read the tag opened by ``m``: its contents may go up to ``limit``; ``close`` is its closing tag."""


class Markers(_Tag):
    """``<|python_tag|>`` / ``<|eom_id|>``: read as nothing, so the JSON after them is bare JSON."""

    open_re = _MARKER_RE

    def read(self, scan: Scan, pos: int, match: re.Match[str] | None) -> None:
        assert match is not None
        scan.take(match.start(), match.end())


class ToolCallBlocks(_ClosedTag):
    """``<tool_call>`` blocks. A block ends at its closing tag, else where its payload does (the next opening
    tag or the end of the text bounds it)."""

    open_re = TOOL_CALL_OPEN_RE
    close_re = _TOOL_CALL_CLOSE_RE

    def read_tag(self, scan: Scan, m: re.Match[str], limit: int, close: re.Match[str] | None) -> None:
        text = scan.text
        body = scan.skip_fence(scan.skip_ws(m.end()))
        found = block_payload(scan, body, [close.start() if close else limit])
        if found is None:
            end = close.end() if close else limit
            junk = text[m.end() : close.start() if close else limit].strip()
            if junk:
                detail = f"unreadable <tool_call> block ignored: {quoted_excerpt(junk)}"
                scan.finding(FindingCode.UNREADABLE_BLOCK, detail, (m.start(), end))
            scan.take(m.start(), end)
            return
        calls, stop, notes, prefixed = found
        if stop > limit:  # the payload swallowed the next opening tag: its closing tag is further on
            limit = _next_start(TOOL_CALL_OPEN_RE, text, stop)
        closed = scan.close_block(stop, _TOOL_CALL_CLOSE_RE, limit, "tool_call")
        if closed is None:
            scan.finding(FindingCode.UNCLOSED_TAG, "missing </tool_call> closing tag", (m.start(), stop))
        end = stop if closed is None else closed
        scan.take(m.start(), end)
        scan.add(m.start(), end, calls, CallForm.TOOL_CALL, notes, prefixed=prefixed)


class FunctionTags(_ClosedTag):
    """``<function ...>`` tags: the name in the tag (then JSON or call arguments), or a JSON call inside."""

    open_re = _FUNCTION_TAG_RE
    close_re = _FUNCTION_CLOSE_RE

    def read_tag(self, scan: Scan, m: re.Match[str], limit: int, close: re.Match[str] | None) -> None:
        text = scan.text
        limits = [close.start() if close else limit]
        name = m.group("eq") or m.group("attr") or m.group("inline")
        body = scan.skip_ws(m.end())
        prefixed = False
        if name is None:  # <function>{"name": .., "arguments": ..}</function>
            found = block_payload(scan, scan.skip_fence(body), limits)
            if found is None:
                return
            calls, stop, notes, prefixed = found
        else:
            paren = body < len(text) and text[body] == "("
            if paren:
                body = scan.skip_ws(body + 1)
            args: Any = NO_ARGS
            stop, notes = body, []
            if body < len(text) and text[body] in "{[":
                read = scan.json_at(body, limits)
                if read is None:
                    return
                args, stop, notes = read.value, read.end, scan.notes(read)
            if paren:
                after = scan.skip_ws(stop)
                if after < len(text) and text[after] == ")":
                    stop = after + 1
            calls = [(name, args)]
        end = scan.close_block(stop, _FUNCTION_CLOSE_RE, max(limit, stop), "function")
        end = stop if end is None else end
        scan.take(m.start(), end)
        scan.add(m.start(), end, calls, CallForm.FUNCTION_TAG, notes, prefixed=prefixed)


def _next_start(pattern: re.Pattern[str], text: str, pos: int) -> int:
    """Where ``pattern`` next matches from ``pos``, else the end of the text."""
    nxt = pattern.search(text, pos)
    return nxt.start() if nxt else len(text)
