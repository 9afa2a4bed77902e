"""Tool calls out of whatever a small model wrote: a pure, tokenizer-free, never-raising parser.

The canonical format (what :mod:`.codec` renders for training and asks for in prompts) is one block per call::

    <tool_call>
    {"name": "ToReturnProcessing", "arguments": {"query": "Where is my refund?", "user_id": "4165"}}
    </tool_call>

Small models drift from it in many ways, and the blueprint's feedback loop saw most of them from a 1B model.
:func:`parse_tool_calls` accepts, besides the canonical blocks (also unclosed, several in a row):

* bare JSON objects ``{"name": .., "arguments" | "parameters": ..}`` (also OpenAI's ``{"type": "function",
  "function": {...}}``) and JSON lists of them, inside code fences or not, after ``<|python_tag|>``;
* ``<function>Name{json}</function>``, ``<function=Name>{json}</function>`` and ``<function name="Name">``;
* XML-like tags named after a given tool: ``<ToolName arg="..."/>``, ``<ToolName arg="...">``,
  ``<ToolName>{json}</ToolName>``, ``<ToolName><arg>..</arg></ToolName>``;
* call syntax ``functions.Name({...})``, and ``Name({...})`` / ``Name(arg="...")`` / ``Name={...}`` for given
  tool names;
* broken JSON: truncated (open strings and brackets are closed), single-quoted or Python literals
  (``True``/``None``), trailing or missing commas, unquoted keys, unescaped inner quotes, arguments given as a
  JSON string, arguments wrapped in a JSON schema.

Everything repaired or ignored is named in :attr:`ParsedOutput.problems`; unknown tool names are kept (and
reported): the caller decides. Arguments always end as a dict; a call whose arguments are not an object is
dropped and reported. The function never raises.
"""

from __future__ import annotations

import ast
import html
import json
import re
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["ParsedCall", "ParsedOutput", "format_tool_call", "parse_tool_calls", "tool_names"]


@dataclass(frozen=True)
class ParsedCall:
    """One tool call found in a model's output."""

    name: str
    arguments: dict[str, Any]
    raw: str
    """The text the call was read from (for a JSON list: the whole list)."""
    format: str = "tool_call"
    """How it was written: ``tool_call``, ``json``, ``function_tag``, ``xml`` or ``call``."""


@dataclass(frozen=True)
class ParsedOutput:
    """What a model's output says: the text left over, the calls, and what had to be repaired or ignored."""

    content: str | None
    """The text left after removing the calls (stripped); None when nothing is left."""
    calls: list[ParsedCall] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def format_tool_call(name: str, arguments: dict[str, Any]) -> str:
    """The canonical block of one call (no trailing newline)."""
    payload = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"<tool_call>\n{payload}\n</tool_call>"


def tool_names(tools: list[dict[str, Any]] | None) -> list[str]:
    """The function names of an OpenAI ``tools`` list (also accepts the flat ``{"name": ..}`` form)."""
    names: list[str] = []
    for tool in tools or []:
        if not isinstance(tool, dict):
            continue
        fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
        name = fn.get("name") if isinstance(fn, dict) else None
        if isinstance(name, str) and name and name not in names:
            names.append(name)
    return names


def parse_tool_calls(text: str, tools: list[dict[str, Any]] | None = None) -> ParsedOutput:
    """Find the tool calls in ``text``; see the module docstring for every accepted form. Never raises."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    try:
        return _Parser(text, tools).run()
    except Exception as exc:  # last line of defence: a parser bug must not break serving or evaluation
        stripped = text.strip()
        return ParsedOutput(
            content=stripped or None, calls=[], problems=[f"internal parser error: {type(exc).__name__}"]
        )


# ---------------------------------------------------------------------------------------------- lenient JSON


class _Fail(Exception):
    """The lenient parser cannot read a value here."""


class _Missing:
    """A value cut off by the end of the text before it had begun."""


_MISSING: Final = _Missing()
_NUMBER_RE = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_IDENT_RE = re.compile(r"[A-Za-z_$][\w$\-]*")
_WORDS: Final[dict[str, Any]] = {
    "true": True,
    "false": False,
    "null": None,
    "NaN": float("nan"),
    "Infinity": float("inf"),
}
_PY_WORDS: Final[dict[str, Any]] = {"True": True, "False": False, "None": None}
_SIMPLE_ESCAPES: Final = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "/": "/", "\\": "\\"}
_MAX_DEPTH = 64
_MAX_RAW_DEPTH = 256
_BUDGET_BASE = 100_000
_BUDGET_PER_CHAR = 10
_DECODER = json.JSONDecoder(strict=False)
_TRUNCATED = "truncated JSON closed"


class _Lenient:
    """A forgiving JSON reader: Python literals, single quotes, unquoted keys, trailing and missing commas,
    unescaped inner quotes, and a text that ends early (whatever was open is closed)."""

    def __init__(self, text: str, pos: int, end: int | None = None) -> None:
        self.s = text
        self.i = pos
        self.n = len(text) if end is None else min(end, len(text))
        self.notes: list[str] = []
        self.truncated = False

    def note(self, what: str) -> None:
        if what not in self.notes:
            self.notes.append(what)

    def parse(self) -> Any:
        value = self.value(0)
        if value is _MISSING:
            raise _Fail
        return value

    def ws(self) -> None:
        s, n = self.s, self.n
        while self.i < n and s[self.i].isspace():
            self.i += 1

    def eof(self) -> bool:
        if self.i >= self.n:
            self.truncated = True
            return True
        return False

    def value(self, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise _Fail
        self.ws()
        if self.eof():
            return _MISSING
        c = self.s[self.i]
        if c == "{":
            return self.obj(depth)
        if c == "[":
            return self.arr(depth)
        if c in "\"'":
            return self.string()
        if c == "-" or c == "." or c.isdigit():
            return self.number()
        return self.word()

    def obj(self, depth: int) -> Any:
        self.i += 1
        out: dict[str, Any] = {}
        while True:
            self.ws()
            if self.eof():
                return out
            c = self.s[self.i]
            if c == "}":
                self.i += 1
                return out
            if c == ",":
                self.note("stray comma removed")
                self.i += 1
                continue
            if c in "\"'":
                key = self.string(is_key=True)
            else:
                m = _IDENT_RE.match(self.s, self.i, self.n)
                if m is None:
                    raise _Fail
                key = m.group()
                self.i = m.end()
                if self.i < self.n:
                    self.note("unquoted keys repaired")
            if self.truncated:
                return out
            self.ws()
            if self.eof():
                return out
            if self.s[self.i] != ":":
                raise _Fail
            self.i += 1
            value = self.value(depth + 1)
            if value is _MISSING:
                return out
            out[key] = value
            if self._after_item("}", "\"'"):
                return out

    def arr(self, depth: int) -> Any:
        self.i += 1
        out: list[Any] = []
        while True:
            self.ws()
            if self.eof():
                return out
            c = self.s[self.i]
            if c == "]":
                self.i += 1
                return out
            if c == ",":
                self.note("stray comma removed")
                self.i += 1
                continue
            value = self.value(depth + 1)
            if value is _MISSING:
                return out
            out.append(value)
            if self._after_item("]", "\"'{["):
                return out

    def _after_item(self, close: str, item_starts: str) -> bool:
        """After an object member or array item: consume the separator. True when the container ends here
        (closed, or the input is truncated); a missing comma before another item is repaired."""
        if self.truncated:
            return True
        self.ws()
        if self.eof():
            return True
        c = self.s[self.i]
        if c == ",":
            self.i += 1
            self.ws()
            if self.i < self.n and self.s[self.i] == close:
                self.note("trailing comma removed")
            return False
        if c == close:
            self.i += 1
            return True
        if c in item_starts:
            self.note("missing comma repaired")
            return False
        raise _Fail

    def _closes(self, j: int, is_key: bool) -> bool:
        """Whether a quote at ``j`` really ends the string: only a delimiter (or the end) may follow it."""
        s, n = self.s, self.n
        j += 1
        while j < n and s[j] in " \t\r\n":
            j += 1
        if j >= n:
            return True
        return s[j] in (":" if is_key else ",}]:")

    def string(self, is_key: bool = False) -> str:
        s, n = self.s, self.n
        quote = s[self.i]
        if quote == "'":
            self.note("single-quoted JSON repaired")
        self.i += 1
        buf: list[str] = []
        surrogates = False
        while True:
            if self.i >= n:
                self.truncated = True
                break
            ch = s[self.i]
            if ch == quote:
                if self._closes(self.i, is_key):
                    self.i += 1
                    break
                self.note("unescaped quote repaired")
                buf.append(ch)
                self.i += 1
                continue
            if ch != "\\":
                buf.append(ch)
                self.i += 1
                continue
            self.i += 1
            if self.i >= n:
                self.truncated = True
                break
            e = s[self.i]
            if e in _SIMPLE_ESCAPES:
                buf.append(_SIMPLE_ESCAPES[e])
                self.i += 1
            elif e in "\"'":
                buf.append(e)
                self.i += 1
            elif e in "ux":
                width = 4 if e == "u" else 2
                digits = s[self.i + 1 : min(self.i + 1 + width, n)]
                if len(digits) == width and all(d in "0123456789abcdefABCDEF" for d in digits):
                    code = int(digits, 16)
                    surrogates = surrogates or 0xD800 <= code <= 0xDFFF
                    buf.append(chr(code))
                    self.i += 1 + width
                elif self.i + 1 + width > n:
                    self.truncated = True
                    self.i = n
                    break
                else:
                    buf.append("\\" + e)
                    self.i += 1
            else:
                buf.append("\\" + e)
                self.i += 1
        out = "".join(buf)
        if surrogates:
            out = out.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
        return out

    def number(self) -> Any:
        m = _NUMBER_RE.match(self.s, self.i, self.n)
        if m is None:
            if self.s[self.i] == "-" and self.i + 1 >= self.n:
                self.i = self.n
                self.truncated = True
                return _MISSING
            raise _Fail
        self.i = m.end()
        text = m.group()
        if any(c in text for c in ".eE"):
            return float(text)
        return int(text)

    def word(self) -> Any:
        m = _IDENT_RE.match(self.s, self.i, self.n)
        if m is None:
            raise _Fail
        word = m.group()
        self.i = m.end()
        if word in _WORDS:
            return _WORDS[word]
        if word in _PY_WORDS:
            self.note("Python literals repaired")
            return _PY_WORDS[word]
        if self.i >= self.n and any(w.startswith(word) for w in (*_WORDS, *_PY_WORDS)):
            self.truncated = True
            return _MISSING
        raise _Fail


def _parse_json_at(text: str, pos: int, end: int | None = None) -> tuple[Any, int, list[str]] | None:
    """The JSON value starting at ``pos``: strict when possible, else lenient (``end`` acts as the end of
    the text). Returns the value, where it ends, and the repairs made; None when nothing can be read."""
    return _read_json(text, pos, end)[0]


def _read_json(text: str, pos: int, end: int | None = None) -> tuple[tuple[Any, int, list[str]] | None, int]:
    """:func:`_parse_json_at` and how many characters the lenient reader went through (its cost)."""
    try:
        if end is None:
            value, stop = _DECODER.raw_decode(text, pos)
        else:
            value, stop = _DECODER.raw_decode(text[:end], pos)
        return (value, stop, []), 0
    except (ValueError, RecursionError):
        pass
    reader = _Lenient(text, pos, end)
    try:
        value = reader.parse()
    except (_Fail, RecursionError, ValueError, OverflowError):
        return None, reader.i - pos + 1
    notes = list(reader.notes)
    if reader.truncated:
        notes.append(_TRUNCATED)
    return (value, reader.i, notes), reader.i - pos + 1


def _py_literal(node: ast.AST, depth: int = 0) -> Any:
    """A Python literal (plus JSON's true/false/null) from an AST node; raises _Fail on anything else."""
    if depth > _MAX_DEPTH:
        raise _Fail
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool | type(None)):
        return node.value
    if isinstance(node, ast.Dict):
        out: dict[str, Any] = {}
        for k, v in zip(node.keys, node.values, strict=True):
            if k is None:
                raise _Fail
            key = _py_literal(k, depth + 1)
            out[key if isinstance(key, str) else json.dumps(key)] = _py_literal(v, depth + 1)
        return out
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return [_py_literal(e, depth + 1) for e in node.elts]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _py_literal(node.operand, depth + 1)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
        raise _Fail
    if isinstance(node, ast.Name) and node.id in _WORDS:
        return _WORDS[node.id]
    raise _Fail


# -------------------------------------------------------------------------------------------------- parser

_NO_ARGS: Final = object()
_NAME_KEYS = ("name", "function", "tool", "tool_name", "function_name")
_ARG_KEYS = ("arguments", "parameters", "args", "tool_input", "input", "params")
_SCHEMA_KEYS = frozenset(
    {"type", "description", "enum", "items", "properties", "required", "default", "title", "format", "examples"}
)
_BARE_NAME_RE = re.compile(r"[A-Za-z_][\w.\-]*\Z")
_TOOL_CALL_OPEN_RE = re.compile(r"<tool_?calls?>", re.IGNORECASE)
_TOOL_CALL_CLOSE_RE = re.compile(r"</tool_?calls?>", re.IGNORECASE)
_MARKER_RE = re.compile(r"<\|python_tag\|>|<\|eom_id\|>")
_FENCE_OPEN_RE = re.compile(r"```[\w+\-]*[ \t]*\n?")
_FENCE_CLOSE_RE = re.compile(r"\s*```")
_FUNCTION_TAG_RE = re.compile(
    r"<function\s*=\s*[\"']?(?P<eq>[\w.\-]+)[\"']?\s*>"
    r"|<function\s+name\s*=\s*[\"'](?P<attr>[\w.\-]+)[\"']\s*>"
    r"|<function>\s*(?P<inline>[A-Za-z_][\w.\-]*)(?=\s*[{(])"
    r"|<function>",
    re.IGNORECASE,
)
_FUNCTION_CLOSE_RE = re.compile(r"\s*</function>", re.IGNORECASE)
_CALL_RE = re.compile(
    r"(?<![\w.])(?:(?P<prefix>functions\.|function\s*=\s*)(?P<any>[A-Za-z_]\w*)|(?P<known>[A-Za-z_]\w*))"
)
_ATTR_RE = re.compile(r"\s+([\w.\-:]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'<>/=]+))")
_ATTR_OPEN_RE = re.compile(r"\s+([\w.\-:]+)\s*=\s*[\"'](.*)\Z", re.DOTALL)
_CHILD_RE = re.compile(r"<([\w.\-]+)>(.*?)</\1>", re.DOTALL)
_LEFTOVER_RE = re.compile(r"</?tool_?calls?>|</function>|\[[\s,]*\]", re.IGNORECASE)
_EMPTY_FENCE_RE = re.compile(r"```[\w+\-]*[ \t]*(?:\n\s*)?```|```[\w+\-]*\s*\Z")
_BLANK_LINES_RE = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


def _excerpt(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


class _Parser:
    """One left-to-right scan: at each place where some form of call may begin (a tag, a tool name, a
    bracket), the matching reader tries; the earliest successful read wins and hides what it covers, so a
    tag or a call written inside a JSON string is never read on its own."""

    def __init__(self, text: str, tools: list[dict[str, Any]] | None) -> None:
        self.text = text
        self.known = tool_names(tools)
        self.checked = tools is not None
        self.params: dict[str, list[str]] = {}
        for tool in tools or []:
            if not isinstance(tool, dict):
                continue
            fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                continue
            schema = fn.get("parameters")
            props = schema.get("properties") if isinstance(schema, dict) else None
            self.params[fn["name"]] = [k for k in props if isinstance(k, str)] if isinstance(props, dict) else []
        self.spans: list[tuple[int, int]] = []
        self.frontier = 0
        self.budget = _BUDGET_BASE + _BUDGET_PER_CHAR * len(text)
        """Characters the readers of bare JSON and call syntax may still go through (see :meth:`exhausted`)."""
        self.found: list[ParsedCall] = []
        self.problems: list[str] = []

    # ---- bookkeeping

    def problem(self, what: str) -> None:
        if what not in self.problems:
            self.problems.append(what)

    def take(self, start: int, end: int) -> None:
        self.spans.append((start, end))
        self.frontier = max(self.frontier, end)

    def skip_ws(self, pos: int) -> int:
        text = self.text
        while pos < len(text) and text[pos].isspace():
            pos += 1
        return pos

    def run(self) -> ParsedOutput:
        text = self.text
        events: list[tuple[int, int, re.Match[str] | None]] = []
        events += [(m.start(), 0, m) for m in _MARKER_RE.finditer(text)]
        events += [(m.start(), 1, m) for m in _TOOL_CALL_OPEN_RE.finditer(text)]
        events += [(m.start(), 2, m) for m in _FUNCTION_TAG_RE.finditer(text)]
        if self.known:
            alternatives = "|".join(re.escape(n) for n in sorted(self.known, key=len, reverse=True))
            xml_re = re.compile(rf"<(?P<name>{alternatives})(?=[\s/>]|\Z)")
            events += [(m.start(), 3, m) for m in xml_re.finditer(text)]
        for m in _CALL_RE.finditer(text):
            if m.group("prefix") or m.group("known") in self.known:
                events.append((m.start(), 4, m))
        deep = _deep_openers(text)
        events += [(i, 5, None) for i in _json_starts(text) if i not in deep]
        events.sort(key=lambda e: (e[0], e[1]))
        readers = (self.marker, self.tool_call, self.function_tag, self.xml_tag, self.call, self.bare_json)
        for pos, kind, match in events:
            if pos < self.frontier:
                continue
            readers[kind](pos, match)
        return ParsedOutput(content=self.content(), calls=self.found, problems=self.problems)

    def content(self) -> str | None:
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

    # ---- turning a found call into a ParsedCall

    def resolve_name(self, name: str) -> str:
        if name.startswith("functions."):
            name = name[len("functions.") :]
        if not self.checked or name in self.known:
            return name
        matches = [k for k in self.known if k.lower() == name.lower()]
        if len(matches) == 1:
            self.problem(f"tool name {name!r} corrected to {matches[0]!r}")
            return matches[0]
        self.problem(f"unknown tool {name!r}")
        return name

    def arguments(self, name: str, raw: Any) -> dict[str, Any] | None:
        """``raw`` as an arguments dict, or None (reported) when it cannot be one."""
        if raw is _NO_ARGS:
            self.problem(f"no arguments for {name!r}: used {{}}")
            return {}
        if isinstance(raw, _FlatArgs):
            self.problem(f"arguments of {name!r} given beside its name")
            return dict(raw)
        if raw is None:
            self.problem(f"null arguments for {name!r} replaced by {{}}")
            return {}
        if isinstance(raw, str):
            stripped = raw.strip()
            if not stripped:
                self.problem(f"empty arguments string for {name!r} replaced by {{}}")
                return {}
            parsed = _parse_json_at(stripped, 0)
            if parsed is None or not isinstance(parsed[0], dict) or stripped[parsed[1] :].strip():
                self.problem(f"arguments of {name!r} are not a JSON object: call skipped")
                return None
            self.problem("arguments given as a JSON string")
            for note in parsed[2]:
                self.problem(note)
            raw = parsed[0]
        if not isinstance(raw, dict):
            self.problem(f"arguments of {name!r} are not an object ({type(raw).__name__}): call skipped")
            return None
        if raw.get("type") == "object" and isinstance(raw.get("properties"), dict):
            values = {k: v for k, v in raw["properties"].items() if not _schema_like(v)}
            if not values:
                self.problem(f"JSON schema of {name!r} is not a call: ignored")
                return None
            self.problem(f"arguments of {name!r} unwrapped from a JSON schema")
            return values
        return {str(k): v for k, v in raw.items()}

    def add(self, start: int, end: int, calls: list[tuple[str, Any]], fmt: str, notes: list[str]) -> bool:
        """Record the calls read from ``text[start:end]``; False when none of them has usable arguments."""
        raw = self.text[start:end]
        added = False
        for name, raw_args in calls:
            args = self.arguments(name, raw_args)
            if args is None:
                continue
            self.found.append(ParsedCall(self.resolve_name(name), args, raw, fmt))
            added = True
        if added:
            for note in notes:
                self.problem(note)
        return added

    # ---- JSON payloads

    def payload_calls(self, value: Any, *, need_args: bool) -> list[tuple[str, Any]] | None:
        """The calls a JSON value holds (an object or a list of objects), or None when it is not call-shaped."""
        items = value if isinstance(value, list) else [value]
        calls: list[tuple[str, Any]] = []
        for item in items:
            shape = _call_shape(item)
            if shape is None:
                return None
            name, args = shape
            implicit = args is _NO_ARGS or isinstance(args, _FlatArgs)
            if need_args and (not _BARE_NAME_RE.match(name) or (implicit and name not in self.known)):
                return None
            calls.append(shape)
        return calls or None

    def json_at(self, pos: int, limits: list[int]) -> tuple[Any, int, list[str]] | None:
        """The JSON value at ``pos``. When it only reads to the end of the text by closing what was left open,
        each of ``limits`` (a closing tag, a fence) is tried first as the end instead."""
        full, cost = _read_json(self.text, pos)
        self.budget -= cost
        if full is not None and _TRUNCATED not in full[2]:
            return full
        for limit in sorted({lim for lim in limits if lim > pos}):
            limited, cost = _read_json(self.text, pos, limit)
            self.budget -= cost
            if limited is not None:
                return limited
        return full

    def exhausted(self) -> bool:
        """Whether searching for calls outside tags has cost too much already (pathological text)."""
        if self.budget > 0:
            return False
        self.problem("search for calls stopped early: text too long or too deeply nested")
        return True

    def limits_after(self, pos: int) -> list[int]:
        out = []
        for needle in ("```", "</", "\n<"):
            at = self.text.find(needle, pos)
            if at != -1:
                out.append(at)
        return out

    def block_payload(self, pos: int, limits: list[int]) -> tuple[list[tuple[str, Any]], int, list[str]] | None:
        """The calls written at ``pos`` inside a tag: JSON (an object or a list) or call syntax."""
        text = self.text
        if pos < len(text) and text[pos] in "{[":
            parsed = self.json_at(pos, limits)
            if parsed is None:
                return None
            calls = self.payload_calls(parsed[0], need_args=False)
            return None if calls is None else (calls, parsed[1], parsed[2])
        m = _CALL_RE.match(text, pos)
        if m:
            name = m.group("any") or m.group("known") or ""
            got = self.call_args(m.end(), name)
            if got is not None:
                return [(name, got[0])], got[1], got[2]
        return None

    def close_block(self, stop: int, close_re: re.Pattern[str], limit: int, what: str) -> int | None:
        """Where a block ends after its payload (which ends at ``stop``): after its closing tag, reporting
        text left between; None when the tag is missing before ``limit``."""
        text = self.text
        fence = _FENCE_CLOSE_RE.match(text, stop)
        if fence:
            stop = fence.end()
        close = close_re.search(text, stop, max(limit, stop))
        if close is None:
            return None
        junk = text[stop : close.start()].strip()
        if junk:
            self.problem(f"ignored text in <{what}> block: {_excerpt(junk)}")
        return close.end()

    def skip_fence(self, pos: int) -> int:
        fence = _FENCE_OPEN_RE.match(self.text, pos)
        return self.skip_ws(fence.end()) if fence else pos

    # ---- readers, one per kind of place

    def marker(self, pos: int, m: re.Match[str] | None) -> None:
        assert m is not None
        self.take(m.start(), m.end())

    def tool_call(self, pos: int, m: re.Match[str] | None) -> None:
        assert m is not None
        text = self.text
        nxt = _TOOL_CALL_OPEN_RE.search(text, m.end())
        limit = nxt.start() if nxt else len(text)
        close = _TOOL_CALL_CLOSE_RE.search(text, m.end(), limit)
        body = self.skip_fence(self.skip_ws(m.end()))
        found = self.block_payload(body, [close.start() if close else limit])
        if found is None:
            end = close.end() if close else limit
            junk = text[m.end() : close.start() if close else limit].strip()
            if junk:
                self.problem(f"unreadable <tool_call> block ignored: {_excerpt(junk)}")
            self.take(m.start(), end)
            return
        calls, stop, notes = found
        if stop > limit:  # the payload swallowed the next opening tag: its closing tag is further on
            nxt = _TOOL_CALL_OPEN_RE.search(text, stop)
            limit = nxt.start() if nxt else len(text)
        closed = self.close_block(stop, _TOOL_CALL_CLOSE_RE, limit, "tool_call")
        if closed is None:
            self.problem("missing </tool_call> closing tag")
        end = stop if closed is None else closed
        self.take(m.start(), end)
        self.add(m.start(), end, calls, "tool_call", notes)

    def function_tag(self, pos: int, m: re.Match[str] | None) -> None:
        assert m is not None
        text = self.text
        nxt = _FUNCTION_TAG_RE.search(text, m.end())
        limit = nxt.start() if nxt else len(text)
        close = _FUNCTION_CLOSE_RE.search(text, m.end(), limit)
        limits = [close.start() if close else limit]
        name = m.group("eq") or m.group("attr") or m.group("inline")
        body = self.skip_ws(m.end())
        if name is None:  # <function>{"name": .., "arguments": ..}</function>
            found = self.block_payload(self.skip_fence(body), limits)
            if found is None:
                return
            calls, stop, notes = found
        else:
            paren = body < len(text) and text[body] == "("
            if paren:
                body = self.skip_ws(body + 1)
            args: Any = _NO_ARGS
            stop, notes = body, []
            if body < len(text) and text[body] in "{[":
                parsed = self.json_at(body, limits)
                if parsed is None:
                    return
                args, stop, notes = parsed
            if paren:
                after = self.skip_ws(stop)
                if after < len(text) and text[after] == ")":
                    stop = after + 1
            calls = [(name, args)]
        end = self.close_block(stop, _FUNCTION_CLOSE_RE, max(limit, stop), "function")
        end = stop if end is None else end
        self.take(m.start(), end)
        self.add(m.start(), end, calls, "function_tag", notes)

    def xml_tag(self, pos: int, m: re.Match[str] | None) -> None:
        assert m is not None
        text = self.text
        name = m.group("name")
        attrs: dict[str, Any] = {}
        notes: list[str] = []
        at = m.end()
        while (a := _ATTR_RE.match(text, at)) is not None:
            value = next((g for g in a.groups()[1:] if g is not None), "")
            attrs[a.group(1)] = html.unescape(value)
            at = a.end()
        rest = self.skip_ws(at)
        self_closing = False
        if text.startswith("/>", rest):
            self_closing, tag_end = True, rest + 2
        elif text.startswith(">", rest):
            tag_end = rest + 1
        elif rest >= len(text):
            notes.append("truncated tag closed")
            self_closing, tag_end = True, len(text)
        else:
            cut = _ATTR_OPEN_RE.match(text, at)
            gt = text.find(">", rest)
            if cut is not None and ">" not in cut.group(2):
                attrs[cut.group(1)] = html.unescape(cut.group(2))
                notes.append("truncated tag closed")
                self_closing, tag_end = True, len(text)
            elif gt != -1:
                self.problem(f"ignored text in <{name}> tag: {_excerpt(text[rest:gt])}")
                self_closing, tag_end = text[gt - 1] == "/", gt + 1
            else:
                return
        end = tag_end
        args: Any = attrs
        if not self_closing:
            close = text.find(f"</{name}>", tag_end)
            body_start = self.skip_ws(tag_end)
            if close != -1:
                got = self.xml_body(name, text[tag_end:close], attrs, body_start, close)
                if got is None:
                    return
                args, body_notes = got
                notes.extend(body_notes)
                end = close + len(name) + 3
            elif body_start < len(text) and text[body_start] == "{":
                parsed = self.json_at(body_start, self.limits_after(body_start))
                if parsed is not None and isinstance(parsed[0], dict):
                    args = {**attrs, **parsed[0]}
                    notes.extend(parsed[2])
                    end = parsed[1]
            elif not attrs:
                self.problem(f"<{name}> tag without arguments")
        self.take(m.start(), end)
        self.add(m.start(), end, [(name, args)], "xml", notes)

    def xml_body(
        self, name: str, body: str, attrs: dict[str, Any], body_start: int, close: int
    ) -> tuple[Any, list[str]] | None:
        stripped = body.strip()
        if not stripped:
            return attrs, []
        if stripped[0] in "{[":
            parsed = self.json_at(body_start, [close])
            if parsed is None or not isinstance(parsed[0], dict):
                return None
            inner: Any = parsed[0]
            shape = _call_shape(inner)
            if (
                shape is not None
                and shape[0] == name
                and shape[1] is not _NO_ARGS
                and not isinstance(shape[1], _FlatArgs)
            ):
                inner = shape[1]
            if isinstance(inner, dict):
                return {**attrs, **inner}, parsed[2]
            return inner, parsed[2]
        children = {k: html.unescape(v.strip()) for k, v in _CHILD_RE.findall(body)}
        if children:
            return {**attrs, **children}, []
        params = self.params.get(name, [])
        if not attrs and len(params) == 1:
            self.problem(f"text inside <{name}> used as argument {params[0]!r}")
            return {params[0]: html.unescape(stripped)}, []
        self.problem(f"ignored text inside <{name}>: {_excerpt(stripped)}")
        return attrs, []

    def call(self, pos: int, m: re.Match[str] | None) -> None:
        assert m is not None
        if self.exhausted():
            return
        name = m.group("any") or m.group("known")
        got = self.call_args(m.end(), name)
        if got is None:
            return
        args, end, notes = got
        self.take(m.start(), end)
        self.add(m.start(), end, [(name, args)], "call", notes)

    def call_args(self, pos: int, name: str) -> tuple[Any, int, list[str]] | None:
        """The arguments after a tool name: ``({...})``, ``(k=v, ...)``, ``={...}`` or ``{...}``. Returns the
        raw arguments, where they end, and the repairs made."""
        text = self.text
        pos = self.skip_ws(pos)
        if pos < len(text) and text[pos] == "=":
            pos = self.skip_ws(pos + 1)
            if pos >= len(text) or text[pos] != "{":
                return None
        if pos >= len(text):
            return None
        if text[pos] == "{":
            parsed = self.json_at(pos, self.limits_after(pos))
            if parsed is None or not isinstance(parsed[0], dict):
                return None
            return parsed
        if text[pos] != "(":
            return None
        inner_start = self.skip_ws(pos + 1)
        if inner_start < len(text) and text[inner_start] == "{":
            parsed = self.json_at(inner_start, self.limits_after(inner_start))
            if parsed is not None and isinstance(parsed[0], dict):
                stop = self.skip_ws(parsed[1])
                if stop < len(text) and text[stop] == ")":
                    return parsed[0], stop + 1, parsed[2]
                if stop >= len(text):
                    return parsed[0], stop, [*parsed[2], "truncated call closed"]
        close, cost = _matching_paren(text, pos)
        self.budget -= cost
        inner = text[pos + 1 : close if close is not None else len(text)]
        attempts = [inner] if close is not None else [inner, inner + '"', inner + "'"]
        for attempt in attempts:
            args = self.kwargs(name, attempt)
            if args is not None:
                if close is not None:
                    return args, close + 1, []
                return args, len(text), ["truncated call closed"]
        return None

    def kwargs(self, name: str, inner: str) -> dict[str, Any] | None:
        """Python call arguments as a dict: ``k=v`` pairs, one dict literal, or one value for a one-parameter
        tool; None when they are not literals."""
        try:
            call = ast.parse(f"_f({inner})", mode="eval").body
            if not isinstance(call, ast.Call) or any(kw.arg is None for kw in call.keywords) or len(call.args) > 1:
                return None
            args: dict[str, Any] = {}
            if call.args:
                value = _py_literal(call.args[0])
                if isinstance(value, dict):
                    args.update(value)
                else:
                    params = self.params.get(name, [])
                    if len(params) != 1:
                        return None
                    args[params[0]] = value
            for kw in call.keywords:
                args[str(kw.arg)] = _py_literal(kw.value)
        except (_Fail, SyntaxError, ValueError, RecursionError, MemoryError):
            return None
        return args

    def bare_json(self, pos: int, m: re.Match[str] | None) -> None:
        if self.exhausted():
            return
        parsed = self.json_at(pos, self.limits_after(pos))
        if parsed is None:
            return
        value, end, notes = parsed
        calls = self.payload_calls(value, need_args=True)
        if calls is not None and self.add(pos, end, calls, "json", notes):
            self.take(pos, end)


_JSON_START_RE = re.compile(r"\{(?=\s*[\"'A-Za-z_$])|\[(?=\s*\{)")


def _json_starts(text: str) -> list[int]:
    """Where a call-shaped JSON value may start: ``{`` before a key, ``[`` before an object."""
    return [m.start() for m in _JSON_START_RE.finditer(text)]


def _deep_openers(text: str) -> set[int]:
    """The brackets from which reading would fail or cost too much, found in one pass: those whose contents
    nest deeper than the lenient reader goes (double-quoted strings skipped), and, whatever the quotes, those
    followed by more than ``_MAX_RAW_DEPTH`` unclosed brackets. Trying every bracket of such text is
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
            _close_opener(raw_stack, raw_peaks, deep, _MAX_RAW_DEPTH)
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
            _close_opener(stack, peaks, deep, _MAX_DEPTH)
    while stack:
        _close_opener(stack, peaks, deep, _MAX_DEPTH)
    while raw_stack:
        _close_opener(raw_stack, raw_peaks, deep, _MAX_RAW_DEPTH)
    return deep


def _close_opener(stack: list[int], peaks: list[int], deep: set[int], limit: int) -> None:
    opener, peak = stack.pop(), peaks.pop()
    if peak - len(stack) > limit:
        deep.add(opener)
    if peaks:
        peaks[-1] = max(peaks[-1], peak)


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


def _call_shape(obj: Any) -> tuple[str, Any] | None:
    """(name, raw arguments) of a call-shaped object, else None. Raw arguments are ``_NO_ARGS`` when absent."""
    if not isinstance(obj, dict):
        return None
    inner = obj
    fn = obj.get("function")
    if isinstance(fn, dict) and isinstance(fn.get("name"), str):
        inner = fn
    name: str | None = None
    name_key = ""
    for key in _NAME_KEYS:
        value = inner.get(key)
        if isinstance(value, str) and value.strip():
            name, name_key = value.strip(), key
            break
    if name is None:
        return None
    for key in _ARG_KEYS:
        if key in inner:
            return name, inner[key]
    rest = {k: v for k, v in inner.items() if k not in (name_key, "type", "id", "description")}
    return name, _FlatArgs(rest) if rest else _NO_ARGS


class _FlatArgs(dict[str, Any]):
    """Arguments written beside the name (``{"name": "X", "query": ".."}``) instead of under ``arguments``."""


def _schema_like(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and set(value) <= _SCHEMA_KEYS
