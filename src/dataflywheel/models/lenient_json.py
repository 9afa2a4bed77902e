"""A forgiving JSON reader that says what it repaired, and where.

Small models write almost-JSON. :func:`read_json` reads a JSON value starting at a position of a text: strictly
when it can (:class:`json.JSONDecoder`, control characters allowed in strings), else leniently, tolerating

* single-quoted strings and keys (``{'a': 'b'}``), and quotes left unescaped inside a string (``"my "big"
  tent"``: a quote ends a string only when a delimiter follows it);
* Python literals ``True`` / ``False`` / ``None`` (besides JSON's ``true`` / ``false`` / ``null``, and
  ``NaN`` / ``Infinity``);
* unquoted keys (``{query: "x"}``);
* trailing commas (``[1, 2,]``), stray or doubled ones (``{, "a": 1,, "b": 2}``) and missing ones between
  items (``[{"a": 1} {"b": 2}]``);
* a text that ends early: an open string, array or object is closed where the text (or ``end``) stops, and a
  member whose value had not begun is dropped (``{"a": 1, "b": `` reads as ``{"a": 1}``).

Every repair is a :class:`JsonFix`: a :class:`JsonRepair` code and the span of the text it concerns, in the
order met (a zero-width span marks an insertion: a missing comma, the end where the text was cut off). What
cannot be read (a bare word, a value nested deeper than :data:`MAX_DEPTH`) gives None. Nothing raises.

Why our own reader rather than the ``json-repair`` package (PyPI; 0.64.6 compared on the JSON of the
messy-output corpus with ``benchmarks/json_repair_compare.py``, 2026-11): both read all 501 valid payloads;
of 98 invalid ones ours recovers the right calls in 98, json-repair in 94 (it keeps a stray quote in
``'it's fine'`` and invents values for cut-off members: ``{"a": 1, "b": `` gives ``"b": ""``). What decides
is reporting: ours names every repair with a code and a span (71 of 71 payloads that needed one); json-repair
logs free text with a short context, no code and no offsets, for 27 of those 71 only (nothing for single
quotes, trailing commas, a missing comma, ``True``), and has no notion of a value cut off (it completes it),
nor of failure (text without JSON gives ``""``). The tool-call reader needs the codes (whether an output may
become training data), the spans, and where a value ends inside a longer text (json-repair reads the whole
string).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from dataflywheel.records.jsonvalue import JsonObject

__all__ = ["JSON_WORDS", "MAX_DEPTH", "JsonFix", "JsonRead", "JsonRepair", "read_json", "read_json_with_cost"]


class JsonRepair(StrEnum):
    """What the lenient reader changed to read a value."""

    SINGLE_QUOTES = "single_quotes"
    """A string or key in single quotes."""
    PYTHON_LITERALS = "python_literals"
    """``True`` / ``False`` / ``None`` read as ``true`` / ``false`` / ``null``."""
    STRAY_COMMA = "stray_comma"
    """A comma where an item was expected (doubled, or right after the opening bracket): dropped."""
    TRAILING_COMMA = "trailing_comma"
    """A comma before the closing bracket: dropped."""
    MISSING_COMMA = "missing_comma"
    """Two items without a comma between them (the span is empty, where the comma goes)."""
    UNQUOTED_KEYS = "unquoted_keys"
    """An object key without quotes."""
    UNESCAPED_QUOTES = "unescaped_quotes"
    """A quote inside a string, not escaped, taken as part of the string."""
    TRUNCATED = "truncated"
    """The text ended inside the value: what was open is closed (the span is empty, at the end)."""

    @property
    def message(self) -> str:
        """The repair in words (the tool-call parser's problem text)."""
        return _MESSAGES[self]


_MESSAGES: Final = {
    JsonRepair.SINGLE_QUOTES: "single-quoted JSON repaired",
    JsonRepair.PYTHON_LITERALS: "Python literals repaired",
    JsonRepair.STRAY_COMMA: "stray comma removed",
    JsonRepair.TRAILING_COMMA: "trailing comma removed",
    JsonRepair.MISSING_COMMA: "missing comma repaired",
    JsonRepair.UNQUOTED_KEYS: "unquoted keys repaired",
    JsonRepair.UNESCAPED_QUOTES: "unescaped quote repaired",
    JsonRepair.TRUNCATED: "truncated JSON closed",
}


@dataclass(frozen=True)
class JsonFix:
    """One repair: what, and which characters of the text (``start``, ``end``) it concerns."""

    repair: JsonRepair
    span: tuple[int, int]


@dataclass(frozen=True)
class JsonRead:
    """A value read from a text."""

    value: Any
    """The JSON value (dict, list, str, int, float, bool or None)."""
    end: int
    """Where the value ends in the text (the index after its last character)."""
    fixes: tuple[JsonFix, ...] = ()
    """The repairs made, in the order met; empty for valid JSON."""

    @property
    def truncated(self) -> bool:
        """Whether the text ended inside the value (something open was closed)."""
        return any(f.repair is JsonRepair.TRUNCATED for f in self.fixes)

    @property
    def repairs(self) -> list[JsonRepair]:
        """The distinct repair codes, in the order first met."""
        return list(dict.fromkeys(f.repair for f in self.fixes))


MAX_DEPTH: Final = 64
"""How deep the lenient reader follows nested arrays and objects."""
JSON_WORDS: Final[JsonObject] = {
    "true": True,
    "false": False,
    "null": None,
    "NaN": float("nan"),
    "Infinity": float("inf"),
}
"""The bare words a JSON text may hold, and their values."""

_PY_WORDS: Final[JsonObject] = {"True": True, "False": False, "None": None}
_NUMBER_RE = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_IDENT_RE = re.compile(r"[A-Za-z_$][\w$\-]*")
_SIMPLE_ESCAPES: Final = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "/": "/", "\\": "\\"}
_DECODER = json.JSONDecoder(strict=False)


def read_json(text: str, pos: int = 0, end: int | None = None) -> JsonRead | None:
    """The JSON value starting at ``pos`` of ``text`` (``end``, when given, acts as the end of the text):
    strict when possible, else lenient. None when nothing can be read there."""
    return read_json_with_cost(text, pos, end)[0]


def read_json_with_cost(text: str, pos: int = 0, end: int | None = None) -> tuple[JsonRead | None, int]:
    """:func:`read_json`, and how many characters the lenient reader went through (0 for a strict read): the
    cost a caller trying many positions of a long text keeps within a budget."""
    try:
        value, stop = _DECODER.raw_decode(text if end is None else text[:end], pos)
        return JsonRead(value, stop), 0
    except (ValueError, RecursionError):
        pass
    reader = _Lenient(text, pos, end)
    try:
        value = reader.parse()
    except (_Fail, RecursionError, ValueError, OverflowError):
        return None, reader.i - pos + 1
    fixes = list(reader.fixes)
    if reader.truncated:
        fixes.append(JsonFix(JsonRepair.TRUNCATED, (reader.i, reader.i)))
    return JsonRead(value, reader.i, tuple(fixes)), reader.i - pos + 1


class _Fail(Exception):
    """The lenient reader cannot read a value here."""


class _Missing:
    """A value cut off by the end of the text before it had begun."""


_MISSING: Final = _Missing()


class _Lenient:
    """One lenient read from ``pos``; ``fixes`` collects the repairs, ``truncated`` whether the text ran out."""

    def __init__(self, text: str, pos: int, end: int | None = None) -> None:
        self.s = text
        self.i = pos
        self.n = len(text) if end is None else min(end, len(text))
        self.fixes: list[JsonFix] = []
        self.truncated = False

    def fix(self, repair: JsonRepair, start: int, end: int) -> None:
        self.fixes.append(JsonFix(repair, (start, end)))

    def parse(self) -> Any:
        value = self.value(0)
        if value is _MISSING:
            raise _Fail
        return value

    def ws(self) -> None:
        s, n = self.s, self.n
        while self.i < n and s[self.i].isspace():
            self.i += 1

    def at_end(self) -> bool:
        """Skip white space; True when the input ends there (the value read so far is truncated)."""
        self.ws()
        if self.i >= self.n:
            self.truncated = True
            return True
        return False

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise _Fail
        if self.at_end():
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
        out: JsonObject = {}
        while self._next_item("}"):
            if self.s[self.i] in "\"'":
                key = self.string(is_key=True)
            else:
                m = _IDENT_RE.match(self.s, self.i, self.n)
                if m is None:
                    raise _Fail
                key = m.group()
                self.i = m.end()
                if self.i < self.n:
                    self.fix(JsonRepair.UNQUOTED_KEYS, m.start(), m.end())
            if self.truncated:
                return out
            if self.at_end():
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
        return out

    def arr(self, depth: int) -> Any:
        self.i += 1
        out: list[Any] = []
        while self._next_item("]"):
            value = self.value(depth + 1)
            if value is _MISSING:
                return out
            out.append(value)
            if self._after_item("]", "\"'{["):
                return out
        return out

    def _next_item(self, close: str) -> bool:
        """Before an object member or array item: skip white space and stray commas (each repaired). False
        when there is none: the container ends here (``close`` consumed) or the input does."""
        while True:
            if self.at_end():
                return False
            c = self.s[self.i]
            if c == close:
                self.i += 1
                return False
            if c != ",":
                return True
            self.fix(JsonRepair.STRAY_COMMA, self.i, self.i + 1)
            self.i += 1

    def _after_item(self, close: str, item_starts: str) -> bool:
        """After an object member or array item: consume the separator. True when the container ends here
        (closed, or the input is truncated); a missing comma before another item is repaired."""
        if self.truncated:
            return True
        if self.at_end():
            return True
        c = self.s[self.i]
        if c == ",":
            comma = self.i
            self.i += 1
            self.ws()
            if self.i < self.n and self.s[self.i] == close:
                self.fix(JsonRepair.TRAILING_COMMA, comma, comma + 1)
            return False
        if c == close:
            self.i += 1
            return True
        if c in item_starts:
            self.fix(JsonRepair.MISSING_COMMA, self.i, self.i)
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
        start = self.i
        quote = s[start]
        single = len(self.fixes)
        if quote == "'":  # its span is known at the end; its place in the order is here
            self.fix(JsonRepair.SINGLE_QUOTES, start, start)
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
                self.fix(JsonRepair.UNESCAPED_QUOTES, self.i, self.i + 1)
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
        if quote == "'":
            self.fixes[single] = JsonFix(JsonRepair.SINGLE_QUOTES, (start, self.i))
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
        if word in JSON_WORDS:
            return JSON_WORDS[word]
        if word in _PY_WORDS:
            self.fix(JsonRepair.PYTHON_LITERALS, m.start(), m.end())
            return _PY_WORDS[word]
        if self.i >= self.n and any(w.startswith(word) for w in (*JSON_WORDS, *_PY_WORDS)):
            self.truncated = True
            return _MISSING
        raise _Fail
