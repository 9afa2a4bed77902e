"""The tool-call reader: every recognizer over one output, and what they found, as one :class:`ParsedOutput`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final

from dataflywheel.models.toolparse.arguments import is_plain
from dataflywheel.models.toolparse.bare_json import BareJson
from dataflywheel.models.toolparse.callsyntax import CallSyntax
from dataflywheel.models.toolparse.findings import (
    CallForm,
    Finding,
    FindingCode,
    ParsedCall,
    ParsedOutput,
)
from dataflywheel.models.toolparse.pasted import find_pasted
from dataflywheel.models.toolparse.scan import Recognizer, Scan
from dataflywheel.models.toolparse.tags import FunctionTags, Markers, ToolCallBlocks
from dataflywheel.models.toolparse.xml import ToolTags
from dataflywheel.records.tools import ToolIndex

__all__ = ["RECOGNIZERS", "read_tool_calls"]

RECOGNIZERS: Final[tuple[Recognizer, ...]] = (
    Markers(),
    ToolCallBlocks(),
    FunctionTags(),
    ToolTags(),
    CallSyntax(),
    BareJson(),
)
"""One recognizer per form, in the order they are tried where several may begin at one place."""

_CANONICAL_RE = re.compile(r"\s*(<tool_call>\s*(\{.*?\})\s*</tool_call>)\s*", re.DOTALL)
_STRICT = json.JSONDecoder(strict=False)
_BLANK_RUN_RE = re.compile(r"[ \t]{2,}")


def read_tool_calls(
    text: str,
    tools: ToolIndex | Iterable[Any] | None = None,
    *,
    pasted_definitions: bool = False,
    recognizers: Sequence[Recognizer] = RECOGNIZERS,
) -> ParsedOutput:
    """The calls in ``text``, the text left, and the findings (see :mod:`dataflywheel.models.toolparse`).

    ``tools``: the request's tools (a list or a :class:`ToolIndex`); None means unknown (no name is then
    corrected or reported unknown, and no tag is read as a tool's). ``pasted_definitions``: also read tool
    definitions pasted back (:mod:`.pasted`). ``recognizers``: the forms to read (all by default).
    Never raises: a failure is an ``INTERNAL_ERROR`` finding.
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    try:
        return _read(text, ToolIndex.of(tools), pasted_definitions, recognizers)
    except Exception as exc:  # last line of defence: a reader bug must not break serving or evaluation
        finding = Finding(FindingCode.INTERNAL_ERROR, f"internal parser error: {type(exc).__name__}", (0, len(text)))
        return ParsedOutput.of(text.strip() or None, [], [finding])


def _read(text: str, tools: ToolIndex, pasted_definitions: bool, recognizers: Sequence[Recognizer]) -> ParsedOutput:
    if recognizers is RECOGNIZERS:
        fast = _canonical_only(text, tools)
        if fast is not None:
            return ParsedOutput.of(None, fast, [])
    pasted = find_pasted(text) if pasted_definitions else None
    if pasted is not None and pasted.failed:
        return ParsedOutput.of(text.strip() or None, [], pasted.findings)
    scan = Scan(pasted.masked if pasted is not None else text, tools)
    scan.run(recognizers)
    read = [found.call for found in scan.found]
    findings = [*(pasted.findings if pasted is not None else []), *scan.findings, *scan.finish()]
    content = scan.content()
    if pasted is None:
        return ParsedOutput.of(content, read, findings)
    calls = sorted([*pasted.calls, *read], key=lambda c: c.span[0])
    if pasted.without and pasted.without_span is not None:
        names = ", ".join(pasted.without)
        if calls:
            detail = f"pasted tool definitions removed from the text: {names}"
        else:
            detail = f"tool definitions pasted without argument values: {names}"
        findings.append(Finding(FindingCode.PASTED_WITHOUT_VALUES, detail, pasted.without_span))
    if content is not None and (pasted.calls or pasted.without):
        content = _BLANK_RUN_RE.sub(" ", content).strip() or None
    return ParsedOutput.of(content, calls, findings)


def _canonical_only(text: str, tools: ToolIndex) -> list[ParsedCall] | None:
    """The calls of a text made only of canonical blocks, each strict JSON ``{"name", "arguments": {..}}``
    naming an offered tool, with arguments taken as they are; None for anything else. A shortcut that reads
    exactly what the recognizers would, without their machinery (most outputs of a trained model)."""
    calls: list[ParsedCall] = []
    pos = 0
    for m in _CANONICAL_RE.finditer(text):
        if m.start() != pos:
            return None
        try:
            value = _STRICT.decode(m.group(2))
        except ValueError:
            return None
        if not isinstance(value, dict) or len(value) != 2:
            return None
        name, args = value.get("name"), value.get("arguments")
        if not isinstance(name, str) or name not in tools or not isinstance(args, dict):
            return None
        if not is_plain(args, name, tools):
            return None
        span = (m.start(1), m.end(1))
        calls.append(ParsedCall(name, args, m.group(1), CallForm.TOOL_CALL, span))
        pos = m.end()
    return calls if calls and pos == len(text) else None
