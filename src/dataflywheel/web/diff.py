"""Where the candidate's answer differs from the logged model's: call by call, argument by argument, and word
by word in text (pure: two OpenAI assistant messages in, marked pieces out)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from dataflywheel.evaluation.metrics import calls_of, is_identifier
from dataflywheel.records.chat import message_text

__all__ = ["AnswerDiff", "ArgDiff", "CallDiff", "Change", "Segment", "answer_diff", "word_diff"]

_TOKEN = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)


class Change(StrEnum):
    SAME = "same"
    DIFFERENT = "different"
    MISSING = "missing"
    """In the logged answer, not in the candidate's."""
    EXTRA = "extra"
    """In the candidate's answer only."""


@dataclass(frozen=True)
class Segment:
    text: str
    changed: bool


@dataclass(frozen=True)
class ArgDiff:
    key: str
    change: Change
    reference: list[Segment]
    """The logged value (JSON for non-strings), its changed words marked; empty when missing."""
    prediction: list[Segment]


@dataclass(frozen=True)
class CallDiff:
    reference_name: str | None
    """None: the logged answer has no call at this position."""
    prediction_name: str | None
    name_change: Change
    arguments: list[ArgDiff]
    parsable: bool = True
    """False: the candidate's arguments were not a JSON object."""


@dataclass(frozen=True)
class AnswerDiff:
    calls: list[CallDiff]
    reference_text: list[Segment]
    prediction_text: list[Segment]

    @property
    def differs(self) -> bool:
        return (
            any(c.name_change is not Change.SAME for c in self.calls)
            or any(a.change is not Change.SAME for c in self.calls for a in c.arguments)
            or any(s.changed for s in (*self.reference_text, *self.prediction_text))
        )


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def word_diff(reference: str, prediction: str) -> tuple[list[Segment], list[Segment]]:
    """Both texts cut into runs of same and changed words (whitespace kept)."""
    a, b = _tokens(reference), _tokens(prediction)
    left: list[Segment] = []
    right: list[Segment] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if i2 > i1:
            left.append(Segment("".join(a[i1:i2]), op != "equal"))
        if j2 > j1:
            right.append(Segment("".join(b[j1:j2]), op != "equal"))
    return _merge(left), _merge(right)


def _merge(segments: list[Segment]) -> list[Segment]:
    """Adjacent runs of one kind joined; a run of only whitespace between two changes joins them (one
    marked phrase reads better than every word marked alone)."""
    marked = [
        Segment(s.text, True)
        if not s.changed
        and not s.text.strip()
        and 0 < i < len(segments) - 1
        and segments[i - 1].changed
        and segments[i + 1].changed
        else s
        for i, s in enumerate(segments)
    ]
    out: list[Segment] = []
    for s in marked:
        if out and out[-1].changed == s.changed:
            out[-1] = Segment(out[-1].text + s.text, s.changed)
        else:
            out.append(s)
    return out


def _show(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _arg_diff(key: str, ref: Mapping[str, Any], pred: Mapping[str, Any]) -> ArgDiff:
    if key not in pred:
        return ArgDiff(key, Change.MISSING, [Segment(_show(ref[key]), True)], [])
    if key not in ref:
        return ArgDiff(key, Change.EXTRA, [], [Segment(_show(pred[key]), True)])
    r, p = ref[key], pred[key]
    if type(r) is type(p) and r == p:
        return ArgDiff(key, Change.SAME, [Segment(_show(r), False)], [Segment(_show(p), False)])
    if isinstance(r, str) and isinstance(p, str) and not is_identifier(r):
        left, right = word_diff(r, p)  # free text: mark the words that differ
        return ArgDiff(key, Change.DIFFERENT, left, right)
    return ArgDiff(key, Change.DIFFERENT, [Segment(_show(r), True)], [Segment(_show(p), True)])


def answer_diff(reference: Mapping[str, Any] | None, prediction: Mapping[str, Any] | None) -> AnswerDiff:
    """The differences between the logged answer and the candidate's (either may be None: no answer)."""
    ref_calls, pred_calls = calls_of(reference), calls_of(prediction)
    calls: list[CallDiff] = []
    for i in range(max(len(ref_calls), len(pred_calls))):
        r = ref_calls[i] if i < len(ref_calls) else None
        p = pred_calls[i] if i < len(pred_calls) else None
        if r is None:
            change = Change.EXTRA
        elif p is None:
            change = Change.MISSING
        else:
            change = Change.SAME if r.name == p.name else Change.DIFFERENT
        ref_args = r.arguments if r else {}
        pred_args = p.arguments if p else {}
        keys = list(dict.fromkeys([*ref_args, *pred_args]))
        calls.append(
            CallDiff(
                reference_name=r.name if r else None,
                prediction_name=p.name if p else None,
                name_change=change,
                arguments=[_arg_diff(k, ref_args, pred_args) for k in keys] if r and p else _one_sided(r, p),
                parsable=p.parsable if p else True,
            )
        )
    ref_text = message_text((reference or {}).get("content"))
    pred_text = message_text((prediction or {}).get("content"))
    left, right = word_diff(ref_text, pred_text) if ref_text or pred_text else ([], [])
    return AnswerDiff(calls=calls, reference_text=left, prediction_text=right)


def _one_sided(ref: Any, pred: Any) -> list[ArgDiff]:
    """The arguments of a call only one side made: all missing, or all extra."""
    if ref is not None:
        return [ArgDiff(k, Change.MISSING, [Segment(_show(v), True)], []) for k, v in ref.arguments.items()]
    return [ArgDiff(k, Change.EXTRA, [], [Segment(_show(v), True)]) for k, v in pred.arguments.items()]
