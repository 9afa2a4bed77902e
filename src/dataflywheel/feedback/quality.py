"""The quality filter of the feedback loop: programmatic checks plus an LLM judge, and the rule that
decides which normalized answers are written back.

The judge is any OpenAI-compatible chat model asked with a versioned prompt (``prompts/answer_quality.v2.txt``)
for exactly two lines, ``VERDICT: PASS|FAIL`` and ``REASON:``, read by the same strict parser as the
evaluation judge's (:mod:`dataflywheel.evaluation.answer_format`). A reply not in that format is a parse
failure: the record fails (it is never written back on a guess), and the raw reply and why it could not be
read are kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

import orjson

from dataflywheel.evaluation.judge import JudgeChat, JudgePrompt, parse_prompt_file
from dataflywheel.feedback.normalize import Normalized, NormalizeStatus
from dataflywheel.records.chat import response_message
from dataflywheel.records.jsonvalue import JsonObject

__all__ = ["PassRule", "QualityVerdict", "ask_judge", "load_quality_prompt", "parse_verdict", "teacher_agreement"]

QUALITY_PROMPT_VERSION = "v2"


@dataclass(frozen=True)
class PassRule:
    """What an answer needs to be written back."""

    allow_repaired: bool = True
    """Answers the normalizer had to repair may pass (they are written in canonical form)."""
    require_judge: bool = True
    """With a judge configured, its PASS is needed."""
    require_teacher_agreement: bool = True
    """The answer must call the same tools as the logged (teacher's) answer, when there is one (a text reply
    where the teacher routed the request is not a training example for routing)."""


@dataclass(frozen=True)
class QualityVerdict:
    passed: bool
    reasons: tuple[str, ...]
    """Why it failed (empty when it passed)."""
    schema_valid: bool
    teacher_agrees: bool | None
    judge: str | None
    """PASS, FAIL, or None (no judge / no parsable reply)."""
    judge_reason: str | None = None
    judge_reply: str | None = None

    def to_dict(self) -> JsonObject:
        return asdict(self)


def load_quality_prompt(version: str = QUALITY_PROMPT_VERSION) -> JudgePrompt:
    name = f"answer_quality.{version}.txt"
    text = resources.files("dataflywheel.feedback").joinpath("prompts", name).read_text(encoding="utf-8")
    return parse_prompt_file("answer_quality", version, text)


def parse_verdict(prompt: JudgePrompt, reply: str) -> tuple[str | None, str | None]:
    """(PASS or FAIL, the judge's reason) of a reply in ``prompt``'s answer format, or (None, why the reply
    could not be read)."""
    parsed = prompt.answer.parse(reply)
    if not parsed.ok:
        return None, f"unparsable reply: {parsed.error}"
    key = prompt.answer.verdict.key
    reason = next((str(value) for name, value in parsed.values.items() if name != key), None)
    return str(parsed.values[key]), reason


def _names(message: Mapping[str, Any] | None) -> list[str]:
    names = []
    for call in (message or {}).get("tool_calls") or []:
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict) and fn.get("name"):
            names.append(str(fn["name"]))
    return names


def teacher_agreement(record: dict[str, Any], normalized: Normalized) -> bool | None:
    """Whether the answer calls the same tools as the logged answer (None when the log has no answer)."""
    teacher = response_message(record)
    if teacher is None:
        return None
    return sorted(_names(teacher)) == sorted(_names(normalized.message))


async def ask_judge(
    chat: JudgeChat, prompt: JudgePrompt, record: dict[str, Any], normalized: Normalized
) -> tuple[str | None, str | None, str]:
    """(verdict, reason, raw reply) of the judge on one normalized answer."""
    messages = record.get("request", {}).get("messages") or []
    system = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") in ("system", "developer"))
    conversation = "\n".join(
        f"{m.get('role')}: {m.get('content') or ''}" for m in messages if m.get("role") not in ("system", "developer")
    )
    fields = {
        "system": system,
        "conversation": conversation,
        "tools": orjson.dumps(record.get("request", {}).get("tools") or [], option=orjson.OPT_INDENT_2).decode(),
        "answer": orjson.dumps(normalized.message, option=orjson.OPT_INDENT_2).decode(),
    }
    reply, _ = await chat(prompt.render(**fields), 0.0)
    verdict, reason = parse_verdict(prompt, reply)
    return verdict, reason, reply


def decide(
    normalized: Normalized,
    teacher_agrees: bool | None,
    judge: tuple[str | None, str | None, str] | None,
    rule: PassRule,
) -> QualityVerdict:
    """Apply ``rule`` (pure)."""
    reasons = []
    schema_valid = normalized.status != NormalizeStatus.REJECTED
    if not schema_valid:
        reasons.append(f"normalize: {normalized.reason}")
    elif normalized.status == NormalizeStatus.REPAIRED and not rule.allow_repaired:
        reasons.append("normalize: repaired answers are not allowed")
    if rule.require_teacher_agreement and teacher_agrees is False:
        reasons.append("teacher: calls other tools than the logged answer")
    verdict = reason = reply = None
    if judge is not None:
        verdict, reason, reply = judge
        if rule.require_judge and verdict != "PASS":
            reasons.append(f"judge: {verdict or 'no verdict in the reply'}" + (f" ({reason})" if reason else ""))
    return QualityVerdict(
        passed=not reasons,
        reasons=tuple(reasons),
        schema_valid=schema_valid,
        teacher_agrees=teacher_agrees,
        judge=verdict,
        judge_reason=reason,
        judge_reply=reply,
    )
