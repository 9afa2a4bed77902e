"""Programmatic tool-calling metrics: how close a candidate's answer is to the big model's logged answer.

Every metric scores one sample (a prediction message against the reference message) in [0, 1], or None
where it is undefined for that sample (then it is left out of the mean, and the count says so).

Definitions (the reference is the teacher's logged answer, the prediction the candidate's):

``function_name_accuracy``
    Reference calls tools: 1 when the prediction makes the same number of calls with the same names in
    the same order, else 0. Reference answers in text (class ``no_tool``): 1 when the prediction makes
    no call, else 0. (The blueprint compares the first call only; a wrong extra call counts here.)
``function_name_and_args_accuracy``
    As above, and every call's arguments equal the reference's as parsed JSON (deep equality; a JSON
    string and the object it encodes are the same). Exact match: near 0 when the teacher paraphrases.
``required_arguments_accuracy``
    Names match, every argument the tool's schema requires (all the reference's keys when the schema is
    unknown) is present, and every *identifier* argument (a string of at most 32 characters with no
    space, a number or a boolean in the reference) is exactly equal. Free text may differ.
``argument_similarity``
    Names match: mean over the reference's arguments of a per-argument similarity, exact (0/1) for
    identifiers and non-strings, token F1 (lower-cased words) for free text; a missing argument scores 0.
    Names differ: 0. Shows how close paraphrased ``query`` arguments are when exact match says nothing.
``call_precision`` / ``call_recall``
    Over the multiset of called names: matched / predicted calls, and matched / reference calls. Precision
    is None when the prediction makes no call; recall is None when the reference makes none.

Defined behaviour for awkward predictions, each also flagged in ``SampleScore.flags``:
no call made (``no_call``), a call where the reference answered in text (``unexpected_call``), a different
number of calls (``call_count_mismatch``), a name the request did not offer (``unknown_tool``), arguments
that are not a JSON object (``unparsable_arguments``: those arguments count as ``{}``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dataflywheel.records.jsonvalue import JsonObject, json_equal
from dataflywheel.records.toolcalls import arguments_object
from dataflywheel.records.tools import ToolIndex

METRICS = (
    "function_name_accuracy",
    "function_name_and_args_accuracy",
    "required_arguments_accuracy",
    "argument_similarity",
    "call_precision",
    "call_recall",
)
SUMMARY_METRICS = (*METRICS, "embedding_similarity")
"""The metrics an eval summary aggregates, overall and per class: the per-sample ones above and, for text
answers, the embedding similarity the runner adds when it has an embedder."""

_WORD = re.compile(r"\w+", re.UNICODE)
_IDENTIFIER_MAX = 32


@dataclass(frozen=True)
class Call:
    name: str
    arguments: JsonObject
    parsable: bool = True


@dataclass
class SampleScore:
    scores: dict[str, float | None]
    flags: list[str] = field(default_factory=list)


def calls_of(message: Mapping[str, Any] | None) -> list[Call]:
    """The tool calls of an OpenAI assistant message, arguments parsed (string or object)."""
    if not message:
        return []
    out = []
    for call in message.get("tool_calls") or []:
        fn = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(fn, Mapping):
            continue
        name = fn.get("name")
        args = arguments_object(fn.get("arguments"))
        out.append(Call(name=str(name) if name is not None else "", arguments=args or {}, parsable=args is not None))
    return out


def is_identifier(value: Any) -> bool:
    """Arguments compared exactly: numbers, booleans, null, and short strings without spaces (ids, codes)."""
    if isinstance(value, str):
        return len(value) <= _IDENTIFIER_MAX and not any(c.isspace() for c in value.strip())
    return not isinstance(value, list | dict)


def token_f1(reference: str, prediction: str) -> float:
    """F1 of the lower-cased word multisets (1.0 for two empty strings)."""
    ref = Counter(w.lower() for w in _WORD.findall(reference))
    pred = Counter(w.lower() for w in _WORD.findall(prediction))
    if not ref and not pred:
        return 1.0
    common = sum((ref & pred).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(pred.values()), common / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def argument_score(reference: Any, prediction: Any) -> float:
    if is_identifier(reference) or not isinstance(reference, str):
        return 1.0 if json_equal(reference, prediction) else 0.0
    if not isinstance(prediction, str):
        return 0.0
    return token_f1(reference, prediction)


def score_sample(
    reference: Mapping[str, Any] | None,
    prediction: Mapping[str, Any] | None,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> SampleScore:
    """Score one prediction message against the reference message (see the module docstring)."""
    ref_calls, pred_calls = calls_of(reference), calls_of(prediction)
    index = ToolIndex.of(tools)
    flags: list[str] = []
    if any(not c.parsable for c in pred_calls):
        flags.append("unparsable_arguments")
    if index and any(c.name not in index for c in pred_calls):
        flags.append("unknown_tool")

    if not ref_calls:  # the teacher answered in text: the right move is not to call a tool
        correct = 1.0 if not pred_calls else 0.0
        if pred_calls:
            flags.append("unexpected_call")
        return SampleScore(
            {
                "function_name_accuracy": correct,
                "function_name_and_args_accuracy": correct,
                "required_arguments_accuracy": correct,
                "argument_similarity": correct,
                "call_precision": 0.0 if pred_calls else None,
                "call_recall": None,
            },
            flags,
        )

    if not pred_calls:
        flags.append("no_call")
    elif len(pred_calls) != len(ref_calls):
        flags.append("call_count_mismatch")
    names_match = [c.name for c in ref_calls] == [c.name for c in pred_calls]
    args_exact = names_match and all(
        p.parsable and json_equal(r.arguments, p.arguments) for r, p in zip(ref_calls, pred_calls, strict=True)
    )
    required_ok = names_match and all(
        _required_ok(r, p, index.schema(r.name)) for r, p in zip(ref_calls, pred_calls, strict=True)
    )
    similarity = (
        sum(_call_similarity(r, p) for r, p in zip(ref_calls, pred_calls, strict=True)) / len(ref_calls)
        if names_match
        else 0.0
    )
    matched = sum((Counter(c.name for c in ref_calls) & Counter(c.name for c in pred_calls)).values())
    return SampleScore(
        {
            "function_name_accuracy": 1.0 if names_match else 0.0,
            "function_name_and_args_accuracy": 1.0 if args_exact else 0.0,
            "required_arguments_accuracy": 1.0 if required_ok else 0.0,
            "argument_similarity": similarity,
            "call_precision": matched / len(pred_calls) if pred_calls else None,
            "call_recall": matched / len(ref_calls),
        },
        flags,
    )


def _required_ok(ref: Call, pred: Call, schema: Mapping[str, Any] | None) -> bool:
    required = schema.get("required") if schema else None
    keys = list(required) if isinstance(required, list) else list(ref.arguments)
    if any(k not in pred.arguments for k in keys):
        return False
    return all(
        json_equal(value, pred.arguments.get(key))
        for key, value in ref.arguments.items()
        if is_identifier(value) and key in keys
    )


def _call_similarity(ref: Call, pred: Call) -> float:
    if not ref.arguments:
        return 1.0 if not pred.arguments else 0.5
    return sum(
        argument_score(value, pred.arguments[key]) if key in pred.arguments else 0.0
        for key, value in ref.arguments.items()
    ) / len(ref.arguments)
