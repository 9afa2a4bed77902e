"""The recognizer of XML-like tags named after an offered tool (only those: ``<b>`` is text).

``<Tool arg=".." other='..'/>``, ``<Tool arg="..">`` (never closed), ``<Tool>{json}</Tool>``,
``<Tool><arg>..</arg></Tool>`` and ``<Tool>text</Tool>`` for a one-parameter tool. Attribute values and child
texts are HTML-unescaped; a tag cut off inside an attribute value is closed there.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any

from dataflywheel.models.toolparse.arguments import NO_ARGS, FlatArgs, call_shape
from dataflywheel.models.toolparse.findings import CallForm, Finding, FindingCode
from dataflywheel.models.toolparse.scan import Scan
from dataflywheel.records.jsonvalue import JsonObject

__all__ = ["ToolTags"]

_ATTR_RE = re.compile(r"\s+([\w.\-:]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'<>/=]+))")
_ATTR_OPEN_RE = re.compile(r"\s+([\w.\-:]+)\s*=\s*[\"'](.*)\Z", re.DOTALL)
_CHILD_RE = re.compile(r"<([\w.\-]+)>(.*?)</\1>", re.DOTALL)


class ToolTags:
    """``<ToolName ...>`` for the request's tool names."""

    def starts(self, scan: Scan) -> Iterable[tuple[int, re.Match[str] | None]]:
        if not scan.tools:
            return []
        alternatives = "|".join(re.escape(n) for n in sorted(scan.tools.names, key=len, reverse=True))
        tag_re = re.compile(rf"<(?P<name>{alternatives})(?=[\s/>]|\Z)")
        return [(m.start(), m) for m in tag_re.finditer(scan.text)]

    def read(self, scan: Scan, pos: int, match: re.Match[str] | None) -> None:
        assert match is not None
        m, text = match, scan.text
        name = m.group("name")
        attrs: JsonObject = {}
        notes: list[Finding] = []
        at = m.end()
        while (a := _ATTR_RE.match(text, at)) is not None:
            value = next((g for g in a.groups()[1:] if g is not None), "")
            attrs[a.group(1)] = html.unescape(value)
            at = a.end()
        rest = scan.skip_ws(at)
        self_closing = False
        cut = Finding(FindingCode.TRUNCATED, "truncated tag closed", (len(text), len(text)))
        if text.startswith("/>", rest):
            self_closing, tag_end = True, rest + 2
        elif text.startswith(">", rest):
            tag_end = rest + 1
        elif rest >= len(text):
            notes.append(cut)
            self_closing, tag_end = True, len(text)
        else:
            open_value = _ATTR_OPEN_RE.match(text, at)
            gt = text.find(">", rest)
            if open_value is not None and ">" not in open_value.group(2):
                attrs[open_value.group(1)] = html.unescape(open_value.group(2))
                notes.append(cut)
                self_closing, tag_end = True, len(text)
            elif gt != -1:
                scan.ignored(f"in <{name}> tag", text[rest:gt], rest, gt)
                self_closing, tag_end = text[gt - 1] == "/", gt + 1
            else:
                return
        end = tag_end
        args: Any = attrs
        if not self_closing:
            close = text.find(f"</{name}>", tag_end)
            body_start = scan.skip_ws(tag_end)
            if close != -1:
                got = self.body(scan, name, attrs, tag_end, body_start, close)
                if got is None:
                    return
                args, body_notes = got
                notes.extend(body_notes)
                end = close + len(name) + 3
            elif body_start < len(text) and text[body_start] == "{":
                read = scan.json_at(body_start, scan.limits_after(body_start))
                if read is not None and isinstance(read.value, dict):
                    args = {**attrs, **read.value}
                    notes.extend(scan.notes(read))
                    end = read.end
            elif not attrs:
                detail = f"<{name}> tag without arguments"
                scan.finding(FindingCode.EMPTY_ARGUMENTS, detail, (m.start(), tag_end))
        scan.take(m.start(), end)
        scan.add(m.start(), end, [(name, args)], CallForm.XML, notes)

    def body(
        self, scan: Scan, name: str, attrs: JsonObject, tag_end: int, body_start: int, close: int
    ) -> tuple[Any, list[Finding]] | None:
        """The arguments a paired tag's body holds (with the attributes): JSON (also the whole call again),
        child tags, or the text for a one-parameter tool."""
        body = scan.text[tag_end:close]
        stripped = body.strip()
        if not stripped:
            return attrs, []
        if stripped[0] in "{[":
            read = scan.json_at(body_start, [close])
            if read is None or not isinstance(read.value, dict):
                return None
            inner: Any = read.value
            shape = call_shape(inner)
            if (
                shape is not None
                and shape[0] == name
                and shape[1] is not NO_ARGS
                and not isinstance(shape[1], FlatArgs)
            ):
                inner = shape[1]
            if isinstance(inner, dict):
                return {**attrs, **inner}, scan.notes(read)
            return inner, scan.notes(read)
        children = {k: html.unescape(v.strip()) for k, v in _CHILD_RE.findall(body)}
        if children:
            return {**attrs, **children}, []
        params = scan.tools.properties(name)
        if not attrs and len(params) == 1:
            detail = f"text inside <{name}> used as argument {params[0]!r}"
            scan.finding(FindingCode.XML_TEXT_BODY, detail, (body_start, close))
            return {params[0]: html.unescape(stripped)}, []
        scan.ignored(f"inside <{name}>", stripped, body_start, close)
        return attrs, []
