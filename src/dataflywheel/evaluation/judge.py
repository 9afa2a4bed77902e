"""LLM-as-judge: ask any OpenAI-compatible chat model to rate a candidate's answer against the reference.

Two judgements, each a versioned prompt file in ``evaluation/prompts/`` that also declares the reply's
exact format (:mod:`dataflywheel.evaluation.answer_format`):

* ``similarity`` (generic workloads): ``RATING:`` an integer 1-10, also reported normalized to 0-1 as
  ``(score - 1) / 9``;
* ``tool_calling_correctness``: ``RATING:`` 0 or 1 (exact names, exact identifiers, semantic match of free
  text).

Both replies end with an ``EXPLANATION:`` line. A reply that is not exactly in the prompt's format is a
*parse failure*: counted, kept with the raw reply and the reason, never scored (the blueprint read the first
digit anywhere in the reply). Optional repeat-and-vote asks ``repeats`` times (sampling) and takes the
majority (rating) or the median (similarity) of the parsable replies. Verdicts are cached by (judge model,
prompt version, conversation, reference, prediction), so a re-run or a resumed eval does not pay twice. The
judge's token use is accounted separately from the candidate's.
"""

from __future__ import annotations

import hashlib
import sqlite3
import statistics
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from dataflywheel.errors import FlywheelError
from dataflywheel.evaluation.answer_format import AnswerFormat, AnswerFormatError
from dataflywheel.models.types import Usage
from dataflywheel.records.chat import WireMessage
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.settings import JudgeSettings, secret_from_env

if TYPE_CHECKING:
    from dataflywheel.models.client import OpenAIClient

JudgeKind = Literal["similarity", "tool_calling_correctness"]
JudgeChat = Callable[[list[WireMessage], float], Awaitable[tuple[str, Usage]]]
"""``await chat(messages, temperature) -> (reply text, usage)``: any OpenAI-compatible chat model."""

PROMPT_VERSION = "v2"
"""The version of the judge prompts in use (v2: an exact answer format, parsed strictly)."""

_BLOCKS = ("system", "answer", "user")


class JudgeError(FlywheelError):
    """The judge could not be asked (unreachable, misconfigured)."""


class JudgeUnavailableError(JudgeError):
    """The judge did not answer its check while ``judge.required`` is true: a job fails before any training
    or deployment, ``flywheel eval`` stops (with ``required`` false the judge is skipped instead)."""


@dataclass(frozen=True)
class JudgePrompt:
    kind: str
    version: str
    system: str
    """With the answer format's instruction written in."""
    user: str
    answer: AnswerFormat
    """The exact reply format; :meth:`AnswerFormat.parse` reads every reply."""

    def render(self, **fields: str) -> list[WireMessage]:
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.user.format(**fields)},
        ]


def parse_prompt_file(kind: str, version: str, text: str) -> JudgePrompt:
    """A prompt file's ``=== system ===``, ``=== answer ===`` and ``=== user ===`` blocks as a prompt; the
    system block's ``{answer_format}`` becomes the answer format's instruction. JudgeError names what is
    missing."""
    name = f"{kind}.{version}.txt"
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        header = line.strip()
        if header.startswith("=== ") and header.endswith(" ===") and header[4:-4] in _BLOCKS:
            current = blocks.setdefault(header[4:-4], [])
        elif current is not None:
            current.append(line)
    system, spec, user = ("\n".join(blocks.get(b, [])).strip() for b in _BLOCKS)
    if not system or not user or not spec:
        raise JudgeError(
            f"judge prompt {name} needs a '=== system ===', an '=== answer ===' and a '=== user ===' block"
        )
    if "{answer_format}" not in system:
        raise JudgeError(f"judge prompt {name}: its system block must show the reply format ({{answer_format}})")
    try:
        answer = AnswerFormat.from_spec(spec)
    except AnswerFormatError as exc:
        raise JudgeError(f"judge prompt {name}: {exc}") from None
    return JudgePrompt(kind, version, system.replace("{answer_format}", answer.render()), user, answer)


def load_prompt(kind: JudgeKind, version: str = PROMPT_VERSION) -> JudgePrompt:
    """The prompt template ``prompts/<kind>.<version>.txt``."""
    name = f"{kind}.{version}.txt"
    try:
        text = resources.files("dataflywheel.evaluation").joinpath("prompts", name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JudgeError(f"no judge prompt {name}") from None
    return parse_prompt_file(kind, version, text)


@dataclass
class JudgeVerdict:
    score: float | None
    """Normalized to 0-1; None when no reply could be parsed."""
    raw_score: int | None
    replies: list[str]
    parse_failures: int
    """Replies not in the prompt's answer format (never scored)."""
    judge_model: str
    prompt_version: str
    cached: bool = False
    usage: Usage = field(default_factory=Usage)
    parse_errors: list[str | None] = field(default_factory=list)
    """One per reply: None when it was in the prompt's answer format, else why it is not an answer."""

    def to_dict(self) -> JsonObject:
        out: JsonObject = asdict(self)
        out["usage"] = {"prompt_tokens": self.usage.prompt_tokens, "completion_tokens": self.usage.completion_tokens}
        return out

    @classmethod
    def from_dict(cls, data: JsonObject) -> JudgeVerdict:
        """A verdict as :meth:`to_dict` stored it (the judge cache)."""
        usage = data.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        replies = data.get("replies")
        errors = data.get("parse_errors")
        score, raw = data.get("score"), data.get("raw_score")
        return cls(
            score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
            raw_score=raw if isinstance(raw, int) and not isinstance(raw, bool) else None,
            replies=[str(r) for r in replies] if isinstance(replies, list) else [],
            parse_failures=_count(data.get("parse_failures")),
            judge_model=str(data.get("judge_model") or ""),
            prompt_version=str(data.get("prompt_version") or ""),
            cached=data.get("cached") is True,
            usage=Usage(_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))),
            parse_errors=[e if isinstance(e, str) else None for e in errors] if isinstance(errors, list) else [],
        )


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class JudgeCache:
    """Verdicts by key in one SQLite file (thread-safe; safe to share between runs)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, verdict BLOB NOT NULL)")
        self._lock = threading.Lock()

    def get(self, key: str) -> JsonObject | None:
        with self._lock:
            row = self._conn.execute("SELECT verdict FROM verdicts WHERE key = ?", (key,)).fetchone()
        if not row:
            return None
        verdict = orjson.loads(row[0])
        return verdict if isinstance(verdict, dict) else None

    def put(self, key: str, verdict: JsonObject) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO verdicts (key, verdict) VALUES (?, ?)", (key, orjson.dumps(verdict))
            )

    def close(self) -> None:
        self._conn.close()


class Judge:
    def __init__(
        self,
        chat: JudgeChat,
        *,
        model: str,
        kind: JudgeKind,
        prompt_version: str = PROMPT_VERSION,
        repeats: int = 1,
        cache: JudgeCache | None = None,
    ) -> None:
        if repeats < 1:
            raise JudgeError(f"judge repeats must be at least 1, got {repeats}")
        self.chat, self.model, self.kind = chat, model, kind
        self.prompt = load_prompt(kind, prompt_version)
        self.repeats = repeats
        self.cache = cache

    def _fields(
        self, conversation: Sequence[Mapping[str, object]], reference: Any, prediction: Any, tools: Any
    ) -> dict[str, str]:
        def text(value: Any) -> str:
            if isinstance(value, str):
                return value
            return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()

        task = "\n".join(f"{m.get('role')}: {m.get('content') or ''}" for m in conversation)
        return {"task": task, "reference": text(reference), "prediction": text(prediction), "tools": text(tools or [])}

    def cache_key(self, fields: dict[str, str]) -> str:
        payload = orjson.dumps([self.model, self.kind, self.prompt.version, self.repeats, fields])
        return hashlib.sha256(payload).hexdigest()

    async def judge(
        self,
        conversation: Sequence[Mapping[str, object]],
        reference: Any,
        prediction: Any,
        tools: Any = None,
    ) -> JudgeVerdict:
        """Rate ``prediction`` against ``reference`` (for tool calling: the tool-call lists)."""
        fields = self._fields(conversation, reference, prediction, tools)
        key = self.cache_key(fields)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            return replace(JudgeVerdict.from_dict(hit), cached=True)
        messages = self.prompt.render(**fields)
        temperature = 0.0 if self.repeats == 1 else 0.7
        replies, usage = [], Usage()
        for _ in range(self.repeats):
            reply, used = await self.chat(messages, temperature)
            replies.append(reply)
            usage += used
        parsed = [self.prompt.answer.parse(r) for r in replies]
        verdict_key = self.prompt.answer.verdict.key
        scores = [int(p.values[verdict_key]) for p in parsed if p.ok]
        raw = _vote(scores, self.kind)
        score = None if raw is None else ((raw - 1) / 9 if self.kind == "similarity" else float(raw))
        verdict = JudgeVerdict(
            score=score,
            raw_score=raw,
            replies=replies,
            parse_failures=len(replies) - len(scores),
            judge_model=self.model,
            prompt_version=self.prompt.version,
            usage=usage,
            parse_errors=[p.error for p in parsed],
        )
        if self.cache is not None and raw is not None:  # failures are retried next time, not cached
            self.cache.put(key, verdict.to_dict() | {"cached": False})
        return verdict


def _vote(scores: list[int], kind: JudgeKind) -> int | None:
    if not scores:
        return None
    if kind == "similarity":
        return round(statistics.median(scores))
    counts = Counter(scores).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return 0  # a tie between correct and incorrect is not a pass
    return counts[0][0]


def judge_client(judge: JudgeSettings, **options: Any) -> OpenAIClient:
    """The client of the judge the ``judge`` settings describe (``options``: the client's timeout, retries...);
    its API key is read from ``judge.api_key_env``."""
    from dataflywheel.models.client import OpenAIClient

    if not judge.base_url or not judge.model:
        raise JudgeError("judge.base_url and judge.model are required to ask the judge")
    api_key = secret_from_env(judge.api_key_env, setting="judge.api_key_env")
    return OpenAIClient(judge.base_url, api_key=api_key, **options)


def client_judge_chat(client: OpenAIClient, model: str, max_tokens: int = 256) -> JudgeChat:
    """A :data:`JudgeChat` asking ``model`` through an :class:`~dataflywheel.models.client.OpenAIClient`."""
    from dataflywheel.models.types import ChatRequest, SamplingParams

    async def chat(messages: list[WireMessage], temperature: float) -> tuple[str, Usage]:
        request = ChatRequest(
            messages=messages, sampling=SamplingParams(max_tokens=max_tokens, temperature=temperature)
        )
        result = await client.chat(request, model)
        return str(result.message.get("content") or ""), result.usage

    return chat


async def check_judge(chat: JudgeChat) -> str | None:
    """None when the judge answers a trivial request, else why not (the job goes on without judge metrics;
    the blueprint called sys.exit here)."""
    try:
        reply, _ = await chat([{"role": "user", "content": "Reply with the number 1."}], 0.0)
    except Exception as exc:  # unreachable, unauthorized, misconfigured: all mean "no judge"
        return f"judge unavailable: {type(exc).__name__}: {exc}"[:500]
    if not reply.strip():
        return "judge unavailable: it answered an empty reply"
    return None
