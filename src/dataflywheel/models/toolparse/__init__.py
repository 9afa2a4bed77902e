"""Tool calls out of whatever a small model wrote: a pure, tokenizer-free, never-raising reader.

The canonical format (what :mod:`dataflywheel.models.codec` renders for training and asks for in prompts) is
one block per call::

    <tool_call>
    {"name": "ToReturnProcessing", "arguments": {"query": "Where is my refund?", "user_id": "4165"}}
    </tool_call>

Small models drift from it in many ways, and the blueprint's feedback loop saw most of them from a 1B model.
One recognizer per form of call reads them (as vLLM has one parser per format), in one left-to-right scan
(:mod:`.scan`):

* :mod:`.tags`: canonical blocks (also unclosed, several in a row, a JSON list or code fences inside), and
  ``<function>Name{json}</function>``, ``<function=Name>{json}</function>``, ``<function name="Name">``;
* :mod:`.bare_json`: bare JSON objects ``{"name": .., "arguments" | "parameters": ..}`` (also OpenAI's
  ``{"type": "function", "function": {...}}``) and JSON lists of them, inside code fences or not, after
  ``<|python_tag|>``;
* :mod:`.xml`: XML-like tags named after a given tool: ``<ToolName arg="..."/>``, ``<ToolName arg="...">``,
  ``<ToolName>{json}</ToolName>``, ``<ToolName><arg>..</arg></ToolName>``;
* :mod:`.callsyntax`: ``functions.Name({...})``, and ``Name({...})`` / ``Name(arg="...")`` / ``Name={...}`` for
  given tool names;
* :mod:`.pasted` (only when asked for): tool definitions pasted back, with the argument values in them.

Broken JSON is read by :mod:`dataflywheel.models.lenient_json` (truncated, single-quoted, Python literals,
trailing or missing commas, unquoted keys, unescaped inner quotes); arguments by :mod:`.arguments` (given as
a JSON string, encoded twice, wrapped in a JSON schema, holding the call again, absent).

Everything noticed is a :class:`Finding`: a :class:`FindingCode`, a ``detail`` for people and a ``span`` of
the text, in :attr:`ParsedOutput.findings`; consumers decide on codes, never on the wording. Unknown tool
names are kept (and reported): the caller decides. Arguments always end as a dict; a call whose arguments are
not an object is dropped and reported. Nothing raises.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from dataflywheel.models.toolparse.findings import CallForm, Finding, FindingCode, ParsedCall, ParsedOutput
from dataflywheel.models.toolparse.reader import RECOGNIZERS, read_tool_calls
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.records.tools import ToolIndex, tool_names

__all__ = [
    "RECOGNIZERS",
    "CallForm",
    "Finding",
    "FindingCode",
    "ParsedCall",
    "ParsedOutput",
    "ToolIndex",
    "format_tool_call",
    "parse_tool_calls",
    "read_tool_calls",
    "tool_names",
]


def format_tool_call(name: str, arguments: JsonObject) -> str:
    """The canonical block of one call (no trailing newline)."""
    payload = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"<tool_call>\n{payload}\n</tool_call>"


def parse_tool_calls(text: str, tools: Iterable[Any] | None = None) -> ParsedOutput:
    """Find the tool calls in ``text``; see the module docstring for every accepted form. Never raises."""
    return read_tool_calls(text, tools)
