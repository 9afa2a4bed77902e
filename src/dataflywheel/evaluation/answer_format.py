"""The answer format a judge prompt asks for: declared once in the prompt file, written into the prompt from
that declaration, and read back by one strict parser.

A prompt file declares its format in an ``=== answer ===`` block, one field a line, in answer order::

    RATING: integer 1-10
    EXPLANATION: text one or two sentences

Field kinds: ``integer LOW-HIGH``, ``choice A|B`` and ``text DESCRIPTION`` (free text; it may run over
several lines). ``{answer_format}`` in the prompt's system block becomes the instruction to reply with
exactly these lines, each value a placeholder in angle brackets (``RATING: <an integer from 1 to 10>``), so
that the format shown to the judge and the parser never disagree, and so that a judge that echoes the
format back never reads as a rating.

:meth:`AnswerFormat.parse` accepts a reply only when it is these lines, in this order, each once: blank
lines and white space around lines and around the colon are ignored, and a field name may be in any case;
nothing else is forgiven. Text before the first line or after the last value, a value with anything around
it (``7/10``, ``**1**``, ``1 or 0``), a field given twice, a placeholder or a format line echoed back, and an
empty reply are parse failures, each with the reason. The blueprint read the first digit of the reply
anywhere in it, so "Similarity (out of 10): 7" scored 10 and an echo of "RATING: 1 if correct, 0 if not"
passed as correct.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["AnswerField", "AnswerFormat", "AnswerFormatError", "FieldKind", "ParsedAnswer"]

_INTEGER = re.compile(r"0|[1-9]\d{0,5}")
_SPEC_LINE = re.compile(r"(?P<key>[A-Za-z][A-Za-z_ ]*[A-Za-z])\s*:\s*(?P<kind>integer|choice|text)\b\s*(?P<arg>.*)")
_RANGE = re.compile(r"(-?\d+)\s*-\s*(-?\d+)")


class AnswerFormatError(ValueError):
    """An ``=== answer ===`` block that cannot be read (the message names the line)."""


class FieldKind(StrEnum):
    INTEGER = "integer"
    CHOICE = "choice"
    TEXT = "text"


@dataclass(frozen=True)
class AnswerField:
    key: str
    """As written in the prompt (``RATING``)."""
    kind: FieldKind
    low: int = 0
    high: int = 0
    choices: tuple[str, ...] = ()
    description: str = ""

    @property
    def placeholder(self) -> str:
        if self.kind == FieldKind.INTEGER:
            if self.high == self.low + 1:
                return f"<{self.low} or {self.high}>"
            return f"<an integer from {self.low} to {self.high}>"
        if self.kind == FieldKind.CHOICE:
            head, last = self.choices[:-1], self.choices[-1]
            return f"<{', '.join(head)} or {last}>" if head else f"<{last}>"
        return f"<{self.description or 'text'}>"

    @property
    def line(self) -> str:
        """The field's line as the prompt shows it."""
        return f"{self.key}: {self.placeholder}"

    def read(self, value: str) -> tuple[int | str | None, str | None]:
        """(value, None), or (None, why it is not a value of this field)."""
        if value.startswith("<") and value.endswith(">"):
            return None, f"{self.key} echoes the format's placeholder {value[:60]!r}"
        if self.kind == FieldKind.INTEGER:
            if _INTEGER.fullmatch(value) and self.low <= int(value) <= self.high:
                return int(value), None
            return None, f"{self.key} must be one integer from {self.low} to {self.high}, got {value[:60]!r}"
        if self.kind == FieldKind.CHOICE:
            for choice in self.choices:
                if value.upper() == choice.upper():
                    return choice, None
            return None, f"{self.key} must be one of {' / '.join(self.choices)}, got {value[:60]!r}"
        if not value:
            return None, f"{self.key} is empty"
        return value, None


@dataclass(frozen=True)
class ParsedAnswer:
    """A reply read against a format: every field's value, or the reason it is not an answer."""

    values: Mapping[str, int | str] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class AnswerFormat:
    fields: tuple[AnswerField, ...]

    @classmethod
    def from_spec(cls, spec: str) -> AnswerFormat:
        """The format of an ``=== answer ===`` block (see the module's docstring)."""
        fields: list[AnswerField] = []
        for number, raw in enumerate(spec.splitlines(), start=1):
            line = raw.strip()
            if not line:
                continue
            match = _SPEC_LINE.fullmatch(line)
            if match is None:
                raise AnswerFormatError(f"answer line {number}: expected 'KEY: integer|choice|text ...', got {line!r}")
            key, kind, arg = match["key"], FieldKind(match["kind"]), match["arg"].strip()
            if any(f.key.upper() == key.upper() for f in fields):
                raise AnswerFormatError(f"answer line {number}: {key} is declared twice")
            if kind == FieldKind.INTEGER:
                bounds = _RANGE.fullmatch(arg)
                if bounds is None or int(bounds[1]) > int(bounds[2]):
                    raise AnswerFormatError(f"answer line {number}: integer needs LOW-HIGH, got {arg!r}")
                fields.append(AnswerField(key, kind, low=int(bounds[1]), high=int(bounds[2])))
            elif kind == FieldKind.CHOICE:
                choices = tuple(c.strip() for c in arg.split("|") if c.strip())
                if len(choices) < 2:
                    raise AnswerFormatError(f"answer line {number}: choice needs A|B, got {arg!r}")
                fields.append(AnswerField(key, kind, choices=choices))
            else:
                fields.append(AnswerField(key, kind, description=arg))
        if not fields:
            raise AnswerFormatError("the answer block declares no field")
        if fields[0].kind == FieldKind.TEXT:
            raise AnswerFormatError(f"the first answer field ({fields[0].key}) must be an integer or a choice")
        return cls(tuple(fields))

    @property
    def verdict(self) -> AnswerField:
        """The field that carries the judgement (the first one)."""
        return self.fields[0]

    def render(self) -> str:
        """The instruction written into the prompt in place of ``{answer_format}``."""
        lines = "\n".join(f.line for f in self.fields)
        count = "this line" if len(self.fields) == 1 else f"these {len(self.fields)} lines, in this order,"
        return (
            f"Reply with exactly {count} and nothing else (no text before or after, no markdown),\n"
            f"replacing each <...> with your answer:\n{lines}"
        )

    def parse(self, reply: str | None) -> ParsedAnswer:
        """``reply`` read strictly against this format (pure; see the module's docstring for the rules)."""
        lines = [line.strip() for line in (reply or "").splitlines() if line.strip()]
        if not lines:
            return ParsedAnswer(error="empty reply")
        echoed = {_squash(f.line): f.line for f in self.fields}
        for line in lines:
            if _squash(line) in echoed:
                return ParsedAnswer(error=f"echoes the format line {echoed[_squash(line)]!r}")
        keyed = [self._key_of(line) for line in lines]
        for f in self.fields:
            times = sum(1 for k in keyed if k is f)
            if times > 1:
                return ParsedAnswer(error=f"{f.key} is given {times} times (ambiguous)")
        values: dict[str, int | str] = {}
        position = 0
        for index, f in enumerate(self.fields):
            if position >= len(lines):
                return ParsedAnswer(error=f"no {f.key} line")
            if keyed[position] is not f:
                where = "the reply does not start with" if position == 0 else "expected"
                return ParsedAnswer(error=f"{where} the {f.key} line, found {lines[position][:80]!r}")
            value = lines[position].split(":", 1)[1].strip()
            position += 1
            if f.kind == FieldKind.TEXT:
                # Free text runs to the next field's line (or to the end): judges wrap long explanations.
                upcoming = self.fields[index + 1] if index + 1 < len(self.fields) else None
                while position < len(lines) and (upcoming is None or keyed[position] is not upcoming):
                    value = f"{value}\n{lines[position]}"
                    position += 1
            read, problem = f.read(value.strip())
            if problem is not None or read is None:
                return ParsedAnswer(error=problem)
            values[f.key] = read
        if position < len(lines):
            return ParsedAnswer(error=f"text after the {self.fields[-1].key} line: {lines[position][:80]!r}")
        return ParsedAnswer(values=values)

    def _key_of(self, line: str) -> AnswerField | None:
        name, colon, _ = line.partition(":")
        if not colon:
            return None
        return next((f for f in self.fields if f.key.upper() == name.strip().upper()), None)


def _squash(text: str) -> str:
    return " ".join(text.split()).casefold()
