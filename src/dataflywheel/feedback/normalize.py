"""A student model's raw output turned into one canonical OpenAI assistant message, or rejected with a reason.

The feedback loop runs a small model over logged prompts and keeps its good answers as training data. Its
outputs are messy (the blueprint's 1B model wrote all of these), and :func:`normalize_output` reads them:

1. canonical ``<tool_call>{"name": .., "arguments": {..}}</tool_call>`` blocks, with or without text
   around them (what :class:`dataflywheel.models.codec.ToolCallCodec` renders): ``ok``;
2. XML-like tags named after a tool: ``<ToProductAdvisor query=".." user_id=".."/>``,
   ``<ToProductAdvisor><query>..</query></ToProductAdvisor>``: repaired (``xml_tag_call``);
3. ``<function>Name{json}``, ``<function=Name>{json}</function>``, ``functions.Name({json})``: repaired;
4. tool definitions pasted back (``{"type": "function", "function": {"name": .., "parameters": ..}}``) with the
   argument values under ``"arguments"`` or filled into ``"properties"``: repaired (``schema_echo``) when
   exactly one pasted definition carries values, else rejected (``schema_echo``);
5. broken JSON (single quotes, trailing commas, unquoted keys, Python literals, unescaped inner quotes,
   missing closing brackets): repaired; a value cut off by the end of the output is rejected (``truncated``);
6. an OpenAI message whose real ``tool_calls`` carry bad ``arguments`` (an object instead of a string,
   JSON encoded twice, single quotes, text after the JSON): repaired;
7. plain text: ``ok`` unless ``tool_choice`` requires a call (rejected ``no_tool_call``).

Outputs are read by :func:`dataflywheel.models.toolparse.read_tool_calls` (pasted definitions included),
which reports what it found as coded findings; :mod:`.policy` decides on those codes alone what is a repair
and what rejects the output (the wording of a finding is never read), and reads a message's ``tool_calls``
with the same reader's argument reading; :mod:`.verdict` makes the checks. Every call's arguments are checked
against its tool's schema (:mod:`.schema`): errors reject (``schema_error``), safe coercions are repairs,
unknown keys are warnings (kept, never renamed). Tool names must be the request's: a name differing only in
case is a repair (``tool_name_case``); anything else is rejected (``unknown_tool``), never mapped to a
"closest" tool. Identical calls are deduplicated (a repair). Rejections are conservative on purpose: the
accepted outputs become training data, so an output whose meaning is in doubt (text that looks like a call
but cannot be read, a cut-off value) is rejected rather than guessed.

Repairs and warnings are strings ``"<code>: <detail>"`` whose codes are :class:`RepairCode` and
:class:`WarningCode` values (:func:`entry_code` reads one back). Everything here is pure and never raises.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dataflywheel.feedback.codes import NormalizeStatus, RejectReason, RepairCode, WarningCode
from dataflywheel.feedback.policy import State, read
from dataflywheel.feedback.verdict import Normalized, entry_code, rejected, verdict
from dataflywheel.models.toolparse.findings import excerpt
from dataflywheel.models.types import ToolChoice
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.records.tools import ToolIndex

__all__ = [
    "NormalizeItem",
    "NormalizeReport",
    "NormalizeStatus",
    "Normalized",
    "RawOutput",
    "RejectReason",
    "RepairCode",
    "WarningCode",
    "entry_code",
    "normalize_many",
    "normalize_output",
]

RawOutput = str | dict[str, Any] | None
"""A model's output: its text, or an OpenAI assistant message (a whole chat completion is accepted too; a
dict with none of a message's keys is read as the JSON text it encodes)."""
NormalizeItem = tuple[Any, list[dict[str, Any]] | None] | tuple[Any, list[dict[str, Any]] | None, ToolChoice]
"""One input of :func:`normalize_many`: ``(raw, tools)`` or ``(raw, tools, tool_choice)``."""


def normalize_output(
    raw: RawOutput,
    tools: list[dict[str, Any]] | None,
    *,
    tool_choice: ToolChoice = None,
    parallel_tool_calls: bool = True,
) -> Normalized:
    """Read one model output against the request's ``tools`` (OpenAI form) and ``tool_choice``.

    ``raw`` is the generated text or an OpenAI assistant message (``content`` and/or ``tool_calls``; a chat
    completion with ``choices`` is unwrapped). With ``parallel_tool_calls=False`` more than one distinct call
    is rejected. See the module docstring for what is accepted, repaired and rejected. Pure; never raises.
    """
    try:
        return _normalize(raw, tools, tool_choice, parallel_tool_calls)
    except Exception as exc:  # last line of defence: one odd output must not stop a batch
        return Normalized(
            NormalizeStatus.REJECTED, None, reason=RejectReason.UNPARSEABLE, detail=f"internal error: {exc!r}"[:200]
        )


def normalize_many(
    items: Iterable[NormalizeItem], *, tool_choice: ToolChoice = None, parallel_tool_calls: bool = True
) -> list[Normalized]:
    """:func:`normalize_output` over ``(raw, tools)`` or ``(raw, tools, tool_choice)`` items, in order;
    ``tool_choice`` is the default for items that have none."""
    out: list[Normalized] = []
    for item in items:
        choice = item[2] if len(item) > 2 else tool_choice
        out.append(normalize_output(item[0], item[1], tool_choice=choice, parallel_tool_calls=parallel_tool_calls))
    return out


@dataclass
class NormalizeReport:
    """Counts over many verdicts, for the pipeline's report: per status, per reject reason, per repair and
    warning code (each counted once per output), with up to ``max_samples`` samples per reject reason."""

    max_samples: int = 3
    total: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    repairs: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[dict[str, str | None]]] = field(default_factory=dict)
    """Reject reason -> ``[{"detail": .., "raw": <excerpt of the output, when given>}]``."""

    @classmethod
    def of(
        cls, results: Iterable[Normalized], raws: Iterable[Any] | None = None, *, max_samples: int = 3
    ) -> NormalizeReport:
        """The report of ``results`` (``raws``, when given, are the outputs in the same order, for samples)."""
        report = cls(max_samples=max_samples)
        raw_iter = iter(raws) if raws is not None else None
        for result in results:
            report.add(result, next(raw_iter, None) if raw_iter is not None else None)
        return report

    def add(self, result: Normalized, raw: Any = None) -> None:
        """Count one verdict (``raw``: its output, kept as an excerpt in the samples of rejections)."""
        self.total += 1
        self.statuses[result.status.value] += 1
        self.repairs.update(result.repair_codes)
        self.warnings.update({entry_code(w) for w in result.warnings})
        if result.reason is None:
            return
        self.reasons[result.reason.value] += 1
        kept = self.samples.setdefault(result.reason.value, [])
        if len(kept) < self.max_samples:
            shown = None
            if raw is not None:
                text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)
                shown = excerpt(text, 200)
            kept.append({"detail": result.detail, "raw": shown})

    def share(self, status: NormalizeStatus | str) -> float:
        """The share of outputs with ``status`` (0.0 when empty)."""
        return self.statuses[str(status)] / self.total if self.total else 0.0

    def to_dict(self) -> JsonObject:
        """A JSON-ready summary (every status listed, counters sorted by count)."""
        return {
            "total": self.total,
            "statuses": {s.value: self.statuses[s.value] for s in NormalizeStatus},
            "reasons": dict(self.reasons.most_common()),
            "repairs": dict(self.repairs.most_common()),
            "warnings": dict(self.warnings.most_common()),
            "samples": {k: [{**x} for x in v] for k, v in self.samples.items()},
        }


def _normalize(raw: Any, tools: list[dict[str, Any]] | None, tool_choice: ToolChoice, parallel: bool) -> Normalized:
    state = State(ToolIndex.of(tools))
    read(raw, state)
    if state.reject is not None:
        return rejected(state)
    return verdict(state, tool_choice, parallel)
