"""Seeded, deterministic customer-service traffic in log form, for demos, tests and benchmarks.

The logged application is the routing assistant of an invented outdoor-gear store, Northwind Outfitters
(see :mod:`dataflywheel.synth.catalog`): a big "teacher" model reads a system prompt, the customer's message
and four routing tools, and answers with exactly one tool call. Each record is one such call::

    {"timestamp": 1746001234, "workload_id": "primary_assistant", "client_id": "northwind-1",
     "request": {"model": "meta/llama-3.3-70b-instruct", "messages": [system, user], "tools": [...]},
     "response": {"id": "chatcmpl-...", "object": "chat.completion", "created": 1746001234, "model": "...",
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "",
                               "tool_calls": [{"id": "call_...", "type": "function",
                                               "function": {"name": "ToReturnsDesk",
                                                            "arguments": {"query": "...", "user_id": "4165"}}}]},
                               "finish_reason": "tool_calls"}],
                  "usage": {...}}}

Knobs of :class:`SynthConfig` add the mess real logs have: repeated questions, plain-text answers,
earlier turns, OpenAI's string-encoded arguments, and (in :func:`write_jsonl` only) broken lines.

The same config always gives the same bytes: everything is drawn from ``random.Random(seed)`` over
tuples in a fixed order, and timestamps come from the config, never from the clock.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import IO, Any

import orjson

from dataflywheel.errors import ConfigError
from dataflywheel.records.chat import WireMessage, WireRecord, WireResponse, WireTool, WireToolCall
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.synth import catalog as cat
from dataflywheel.synth.catalog import ORDERS, PRODUCT, RETURNS, SMALL_TALK, TOOL_NAMES

__all__ = [
    "MALFORMED_KINDS",
    "NO_TOOL",
    "TOOL_NAMES",
    "SynthConfig",
    "SynthSummary",
    "generate",
    "system_prompt",
    "tools",
    "write_jsonl",
]

NO_TOOL = "no_tool"
"""Class of a record whose teacher answer is plain text (same label as :mod:`dataflywheel.curation`)."""

MALFORMED_KINDS: tuple[str, ...] = ("truncated", "garbage", "missing_request")
"""Kinds of broken lines :func:`write_jsonl` writes: cut-off JSON, non-JSON text, a record without request."""

_MAIN_USER_SHARE = 0.98
_TYPO_RATE = 0.08
_ORDER_REF_RATE = 0.3
_FOLLOW_UP_PREFIX_RATE = 0.4
_ECHO_SMALL_TALK_RATE = 0.5
_RESERVOIR = 4096
_WRITE_BATCH = 512

_TOOLS_JSON = orjson.dumps(cat.TOOLS)
_TOOLS_CHARS = len(_TOOLS_JSON)


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. Every rate is a share in [0, 1] (``malformed_rate`` in [0, 1))."""

    records: int = 1000
    """Number of valid records (malformed lines come on top of them)."""
    seed: int = 0
    workload_id: str = "primary_assistant"
    client_id: str = "northwind-1"
    class_weights: Mapping[str, float] | None = None
    """Tool name -> relative weight of that class; None means :data:`catalog.DEFAULT_CLASS_WEIGHTS`."""
    duplicate_rate: float = 0.0
    """Share of records that repeat an earlier record's user text and answer, at a new timestamp."""
    text_answer_rate: float = 0.0
    """Share of records where the teacher answers in plain text, with no tool call."""
    malformed_rate: float = 0.0
    """Share of the output lines of :func:`write_jsonl` that are broken (see :data:`MALFORMED_KINDS`)."""
    multi_turn_rate: float = 0.0
    """Share of records whose request holds an earlier exchange: user, assistant tool call (arguments as a
    JSON string, as OpenAI logs them), tool result, then the new user turn."""
    string_arguments_rate: float = 0.0
    """Share of records whose response tool call carries its arguments as a JSON string (OpenAI form)."""
    user_ids: Sequence[str] = ("4165", "125", "9522")
    """Logged-in customers; the first one sends 98% of the traffic, the others share the rest."""
    start_timestamp: int = 1_746_000_000
    time_span_s: int = 30 * 86400
    """Timestamps rise through ``[start_timestamp, start_timestamp + time_span_s)``."""
    teacher_model: str = "meta/llama-3.3-70b-instruct"

    def __post_init__(self) -> None:
        if isinstance(self.records, bool) or not isinstance(self.records, int) or self.records < 1:
            raise ConfigError(f"must be an integer >= 1, got {self.records!r}", "synth.records")
        for name in ("duplicate_rate", "text_answer_rate", "multi_turn_rate", "string_arguments_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"must be in [0, 1], got {value!r}", f"synth.{name}")
        if not 0.0 <= self.malformed_rate < 1.0:
            raise ConfigError(
                f"must be in [0, 1) (1 would leave no valid line), got {self.malformed_rate!r}",
                "synth.malformed_rate",
            )
        for name in ("workload_id", "client_id", "teacher_model"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError("must be a non-empty string", f"synth.{name}")
        if isinstance(self.user_ids, str) or not self.user_ids:
            raise ConfigError("must be a non-empty list of user ids", "synth.user_ids")
        if any(not isinstance(u, str) or not u for u in self.user_ids):
            raise ConfigError("every user id must be a non-empty string", "synth.user_ids")
        if self.time_span_s < 1:
            raise ConfigError(f"must be >= 1, got {self.time_span_s!r}", "synth.time_span_s")
        if self.class_weights is not None:
            unknown = [k for k in self.class_weights if k not in TOOL_NAMES]
            if unknown:
                raise ConfigError(
                    f"unknown tool {unknown[0]!r}; expected one of {list(TOOL_NAMES)}", "synth.class_weights"
                )
            if any(w < 0 for w in self.class_weights.values()) or sum(self.class_weights.values()) <= 0:
                raise ConfigError("weights must be >= 0 with a positive sum", "synth.class_weights")

    def weights(self) -> dict[str, float]:
        """Normalized class weights (shares summing to 1), in :data:`TOOL_NAMES` order."""
        raw = self.class_weights if self.class_weights is not None else cat.DEFAULT_CLASS_WEIGHTS
        total = sum(float(raw.get(name, 0.0)) for name in TOOL_NAMES)
        return {name: float(raw.get(name, 0.0)) / total for name in TOOL_NAMES}


@dataclass
class SynthSummary:
    """What :func:`write_jsonl` wrote."""

    records: int = 0
    """Valid records."""
    lines: int = 0
    """All lines, valid and malformed."""
    per_class: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*TOOL_NAMES, NO_TOOL), 0))
    """Valid records by class: the response's tool name, or ``no_tool`` for text answers."""
    duplicates: int = 0
    text_answers: int = 0
    multi_turn: int = 0
    string_arguments: int = 0
    malformed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MALFORMED_KINDS, 0))
    bytes_written: int = 0

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())

    def to_dict(self) -> JsonObject:
        return {
            "records": self.records,
            "lines": self.lines,
            "per_class": dict(self.per_class),
            "duplicates": self.duplicates,
            "text_answers": self.text_answers,
            "multi_turn": self.multi_turn,
            "string_arguments": self.string_arguments,
            "malformed": dict(self.malformed),
            "malformed_total": self.malformed_total,
            "bytes_written": self.bytes_written,
        }


def tools() -> list[WireTool]:
    """The request's tools list (a fresh copy)."""
    tools_list: list[WireTool] = orjson.loads(_TOOLS_JSON)
    return tools_list


def system_prompt(user_id: str) -> str:
    """The routing assistant's system prompt for a logged-in customer."""
    return cat.SYSTEM_PROMPT.replace("{user_id}", user_id)


# --------------------------------------------------------------------------------------------- slots

_Product = tuple[str, str, tuple[str, ...]]
_SIZED_PRODUCTS: tuple[_Product, ...] = tuple(p for p in cat.PRODUCTS if cat.KINDS[p[1]].sizes)
_OTHERS: dict[str, tuple[str, ...]] = {
    p[0]: tuple(q[0] for q in cat.PRODUCTS if q[1] == p[1] and q[0] != p[0]) for p in cat.PRODUCTS
}
_SIMPLE_SLOTS: dict[str, tuple[str, ...]] = {
    "when": cat.WHEN,
    "when_long": cat.WHEN_LONG,
    "deadline": cat.DEADLINE,
    "place": cat.PLACES,
    "trip": cat.TRIPS,
    "companion": cat.COMPANIONS,
    "season": cat.SEASONS,
    "trip_when": cat.TRIP_WHEN,
    "city": cat.CITIES,
    "country": cat.COUNTRIES,
    "payment": cat.PAYMENTS,
    "purpose": cat.PURPOSES,
    "reason_fit": cat.FIT_REASONS,
    **cat.SMALL_TALK_SLOTS,
}
_UNSIZED_REASONS = cat.RETURN_REASONS[2:]
_PAIRED_SLOTS = {"attr_u": 0, "attr_q": 1, "issue_u": 0, "issue_q": 1, "reason_u": 0, "reason_q": 1}


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _price(rng: random.Random, low: int, high: int) -> str:
    return f"${rng.randrange(low, high)}.{rng.choice(('00', '49', '95', '99'))}"


class _Slots(dict[str, str]):
    """Template slots filled on first use, so a record draws only what its templates need."""

    def __init__(self, rng: random.Random, product: _Product) -> None:
        super().__init__()
        self.rng = rng
        self.product = product

    def __missing__(self, key: str) -> str:
        rng = self.rng
        name, kind_key, colors = self.product
        kind = cat.KINDS[kind_key]
        value: str
        if key in _SIMPLE_SLOTS:
            value = rng.choice(_SIMPLE_SLOTS[key])
        elif key == "name":
            value = name
        elif key == "kind":
            value = kind.noun
        elif key == "kinds":
            value = kind.noun if kind.noun.endswith("s") else kind.noun + "s"
        elif key == "color":
            value = rng.choice(colors)
        elif key == "other":
            value = rng.choice(_OTHERS[name])
        elif key in _PAIRED_SLOTS:
            stem = key[:-2]
            if stem == "attr":
                pairs = kind.attrs
            elif stem == "issue":
                pairs = kind.issues
            else:
                pairs = cat.RETURN_REASONS if kind.sizes else _UNSIZED_REASONS
            pair = rng.choice(pairs)
            self[stem + "_u"], self[stem + "_q"] = pair
            value = pair[_PAIRED_SLOTS[key]]
        elif key == "item":
            value = self._mention(rng, name, kind)
        elif key == "size":
            value = rng.choice(kind.sizes) if kind.sizes else "medium"
        elif key == "size2":
            size = self["size"]
            others = [s for s in kind.sizes if s != size] or [size]
            value = rng.choice(others)
        elif key == "order_no":
            value = f"NW{rng.randrange(100_000, 1_000_000)}"
        elif key == "amount":
            value = _price(rng, 60, 600)
        elif key == "amount2":
            value = _price(rng, 20, 59)
        elif key == "days":
            value = str(rng.randrange(4, 22))
        elif key in ("qty", "n"):
            value = str(rng.randrange(2, 7))
        elif key in ("a", "b"):
            value = str(rng.randrange(3, 99))
        elif key[:1].isupper():
            value = _cap(self[key[0].lower() + key[1:]])
        else:
            raise KeyError(key)
        self[key] = value
        return value

    def _mention(self, rng: random.Random, name: str, kind: cat.Kind) -> str:
        r = rng.random()
        if r < 0.45:
            return f"{name} {kind.noun}"
        if r < 0.65:
            return f"{self['color']} {name} {kind.noun}"
        if r < 0.8:
            return f"{name} {kind.noun} in {self['color']}"
        if r < 0.9 or not kind.sizes:
            return name
        return f"{name} {kind.noun} (size {self['size']})"


# ------------------------------------------------------------------------------------------ exchanges


@dataclass(frozen=True, slots=True)
class _Turn:
    """An earlier exchange of a multi-turn request."""

    user_text: str
    tool: str
    arguments_json: str
    call_id: str
    result: str


@dataclass(frozen=True, slots=True)
class _Exchange:
    """Everything about one record except its timestamp and ids (what a duplicate repeats)."""

    user_id: str
    user_text: str
    label: str
    arguments: dict[str, str] | None
    text: str
    history: _Turn | None


_INTENTS: dict[str, tuple[cat.Intent, ...]] = {
    PRODUCT: cat.PRODUCT_INTENTS,
    ORDERS: cat.ORDER_INTENTS,
    RETURNS: cat.RETURN_INTENTS,
}
_MOOD_CUM: dict[str, list[float]] = {k: list(accumulate(v)) for k, v in cat.MOOD_WEIGHTS.items()}
_GENERIC_DETAILS = (
    "I looked on the website first but couldn't find it.",
    "I want to sort this out before my next trip.",
    "It's for {trip} in {place}.",
)


def _typo(rng: random.Random, text: str) -> str:
    """One small, human-looking slip."""
    op = rng.randrange(4)
    if op == 0:
        return text.lower()
    if op == 1 and "'" in text:
        return text.replace("'", "")
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    if not candidates:
        return text.lower()
    i = rng.choice(candidates)
    w = words[i]
    j = rng.randrange(1, len(w) - 2)
    if op == 2:
        words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    else:
        words[i] = w[:j] + w[j + 1 :]
    return " ".join(words)


class _Builder:
    """Draws exchanges for one config."""

    def __init__(self, config: SynthConfig) -> None:
        self.config = config
        weights = config.weights()
        self.class_names = [n for n in TOOL_NAMES if weights[n] > 0]
        self.class_cum = list(accumulate(weights[n] for n in self.class_names))
        self.user_ids = tuple(config.user_ids)

    def user_id(self, rng: random.Random) -> str:
        ids = self.user_ids
        if len(ids) == 1 or rng.random() < _MAIN_USER_SHARE:
            return ids[0]
        return rng.choice(ids[1:])

    def klass(self, rng: random.Random) -> str:
        return rng.choices(self.class_names, cum_weights=self.class_cum)[0]

    def exchange(self, rng: random.Random, *, text_rate: float, multi_rate: float) -> _Exchange:
        cfg_cls = self.klass(rng)
        uid = self.user_id(rng)
        history = self.turn(rng, uid) if multi_rate > 0 and rng.random() < multi_rate else None
        text_answer = text_rate > 0 and rng.random() < text_rate
        user_text, args, _ = self.request(rng, cfg_cls, uid)
        if history is not None and rng.random() < _FOLLOW_UP_PREFIX_RATE:
            user_text = f"{rng.choice(cat.FOLLOW_UP_PREFIXES).strip()} {user_text}"
        if text_answer:
            return _Exchange(uid, user_text, NO_TOOL, None, rng.choice(cat.TEXT_ANSWERS[cfg_cls]), history)
        return _Exchange(uid, user_text, cfg_cls, args, "", history)

    def turn(self, rng: random.Random, uid: str) -> _Turn:
        cls = self.klass(rng)
        user_text, args, slots = self.request(rng, cls, uid)
        call_id = f"call_{rng.getrandbits(96):024x}"
        return _Turn(user_text, cls, json.dumps(args), call_id, self.tool_result(rng, cls, slots))

    def tool_result(self, rng: random.Random, cls: str, slots: _Slots | None) -> str:
        result: JsonObject
        if cls == SMALL_TALK or slots is None:
            result = {"status": "delivered"}
        elif cls == PRODUCT:
            result = {"answer": rng.choice(cat.PRODUCT_ANSWERS).format_map(slots)}
        elif cls == ORDERS:
            result = {
                "order_id": slots["order_no"],
                "status": rng.choice(cat.ORDER_STATUSES),
                "carrier": rng.choice(cat.CARRIERS),
                "tracking_number": f"1Z{rng.getrandbits(48):012X}",
                "items": [{"name": f"{slots['name']} {slots['kind']}", "quantity": 1}],
            }
        else:
            result = {
                "return_id": f"RMA-{rng.randrange(10_000, 100_000)}",
                "status": rng.choice(cat.RETURN_STATUSES),
                "item": f"{slots['name']} {slots['kind']}",
                "refund": rng.choice(("pending", "issued", "not started")),
            }
        return json.dumps(result)

    def request(self, rng: random.Random, cls: str, uid: str) -> tuple[str, dict[str, str], _Slots | None]:
        """A customer message of class ``cls`` and the teacher's tool arguments for it."""
        if cls == SMALL_TALK:
            return self._small_talk(rng)
        intent = rng.choice(_INTENTS[cls])
        product = rng.choice(_SIZED_PRODUCTS if intent.needs == "sized" else cat.PRODUCTS)
        slots = _Slots(rng, product)
        short: str | None
        if intent.needs == "policy":
            i = rng.randrange(len(intent.cores))
            core, short = intent.cores[i], intent.shorts[i] if i < len(intent.shorts) else None
            slots["policy_q"] = cat.POLICY_QUERIES[i].format_map(slots)
        else:
            core, short = rng.choice(intent.cores), rng.choice(intent.shorts)
        order_ref = cls != PRODUCT and rng.random() < _ORDER_REF_RATE
        details = intent.details or _GENERIC_DETAILS
        text = self._compose(rng, cls, core, short, details, slots, order_ref)
        query = rng.choice(intent.queries).format_map(slots)
        if order_ref:
            query = f"{query} (order {slots['order_no']})"
        if query == text:
            query = f"Customer asks: {query}"
        if cls == PRODUCT:
            return text, {"query": query}, slots
        return text, {"query": query, "user_id": uid}, slots

    def _small_talk(self, rng: random.Random) -> tuple[str, dict[str, str], _Slots | None]:
        topic = rng.choice(cat.SMALL_TALK_TOPICS)
        slots = _Slots(rng, rng.choice(cat.PRODUCTS))
        text = self._compose(
            rng,
            SMALL_TALK,
            rng.choice(topic.cores),
            rng.choice(topic.shorts),
            cat.SMALL_TALK_DETAILS,
            slots,
            False,
        )
        if rng.random() < _ECHO_SMALL_TALK_RATE:
            message = text
        else:
            parts = (
                rng.choice(cat.REDIRECT_ACKS),
                rng.choice(cat.REDIRECT_LIMITS).replace("{topic}", topic.topic),
                rng.choice(cat.REDIRECT_OFFERS),
            )
            message = " ".join(p for p in parts if p)
        return text, {"message": message}, None

    def _compose(
        self,
        rng: random.Random,
        cls: str,
        core: str,
        short: str | None,
        details: Sequence[str],
        slots: _Slots,
        order_ref: bool,
    ) -> str:
        mood = rng.choices(cat.MOODS, cum_weights=_MOOD_CUM[cls])[0]
        if mood == "terse" and short is not None:
            text = short.format_map(slots)
            if order_ref:
                text = f"{text} #{slots['order_no']}"
            r = rng.random()
            if r < 0.35:
                text = text.lower()
            elif r < 0.5:
                text = text.rstrip("?")
            return f"{rng.choice(cat.TERSE_PREFIXES)}{text}{rng.choice(cat.TERSE_SUFFIXES)}"
        ref = rng.choice(cat.ORDER_REFS).format_map(slots) if order_ref else ""
        body = _cap(core.format_map(slots))
        parts: list[str]
        if mood == "polite":
            opener = rng.choice(cat.POLITE_OPENERS)
            if opener.endswith(",") and not body.startswith(("I ", "I'")):
                body = body[:1].lower() + body[1:]
            parts = [opener, body, ref]
            if rng.random() < 0.6:
                parts.append(rng.choice(details).format_map(slots))
            if rng.random() < 0.85:
                parts.append(rng.choice(cat.POLITE_CLOSERS))
        elif mood == "frustrated":
            extras = cat.SMALL_TALK_DETAILS if cls == SMALL_TALK else cat.FRUSTRATED_EXTRAS
            parts = [rng.choice(cat.FRUSTRATED_OPENERS), body, ref, rng.choice(extras)]
            if rng.random() < 0.4:
                parts.append(rng.choice(extras))
            parts.append(rng.choice(cat.FRUSTRATED_CLOSERS))
        elif mood == "rambling":
            parts = [rng.choice(cat.BACKSTORIES).format_map(slots)]
            if rng.random() < 0.3:
                parts.insert(0, rng.choice(cat.POLITE_OPENERS))
            parts += [body, ref]
            if rng.random() < 0.75:
                parts.append(rng.choice(details).format_map(slots))
            parts.append(rng.choice(cat.TANGENTS).format_map(slots))
            if rng.random() < 0.6:
                parts.append(rng.choice(cat.POLITE_CLOSERS))
        else:  # terse without a short form
            parts = [body, ref]
        text = " ".join(p for p in parts if p)
        if rng.random() < _TYPO_RATE:
            text = _typo(rng, text)
        return text


# ------------------------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class _Meta:
    label: str
    duplicate: bool
    multi_turn: bool
    string_arguments: bool


def _render(
    ex: _Exchange,
    ts: int,
    rng: random.Random,
    config: SynthConfig,
    tools_value: Any,
    string_arguments: bool,
) -> WireRecord:
    system = system_prompt(ex.user_id)
    messages: list[WireMessage] = [{"role": "system", "content": system}]
    chars = len(system) + len(ex.user_text) + _TOOLS_CHARS
    if ex.history is not None:
        h = ex.history
        messages += [
            {"role": "user", "content": h.user_text},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": h.call_id, "type": "function", "function": {"name": h.tool, "arguments": h.arguments_json}}
                ],
            },
            {"role": "tool", "tool_call_id": h.call_id, "content": h.result},
        ]
        chars += len(h.user_text) + len(h.arguments_json) + len(h.result)
    messages.append({"role": "user", "content": ex.user_text})
    message: WireMessage
    if ex.arguments is None:
        message = {"role": "assistant", "content": ex.text}
        finish = "stop"
        completion = len(ex.text) // 4 + 1
    else:
        arguments: dict[str, str] | str = json.dumps(ex.arguments) if string_arguments else dict(ex.arguments)
        call: WireToolCall = {
            "id": f"call_{rng.getrandbits(96):024x}",
            "type": "function",
            "function": {"name": ex.label, "arguments": arguments},
        }
        message = {"role": "assistant", "content": "", "tool_calls": [call]}
        finish = "tool_calls"
        completion = sum(len(v) for v in ex.arguments.values()) // 4 + 12
    prompt = chars // 4 + 7 * len(messages)
    response: _Completion = {
        "id": f"chatcmpl-{rng.getrandbits(96):024x}",
        "object": "chat.completion",
        "created": ts,
        "model": config.teacher_model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }
    return {
        "timestamp": ts,
        "workload_id": config.workload_id,
        "client_id": config.client_id,
        "request": {"model": config.teacher_model, "messages": messages, "tools": tools_value},
        "response": response,
    }


class _Completion(WireResponse, total=False):
    """The response as OpenAI sends it, with the keys the log record model does not read."""

    object: str
    created: int


def _records(config: SynthConfig, tools_factory: Callable[[], Any]) -> Iterator[tuple[WireRecord, _Meta]]:
    """Records and what the summary counts about them. ``tools_factory`` gives each record's tools value:
    a fresh list for :func:`generate`, one pre-serialized :class:`orjson.Fragment` for the writer."""
    rng = random.Random(config.seed)
    builder = _Builder(config)
    n, span = config.records, config.time_span_s
    step = max(1, span // n)
    reservoir: list[_Exchange] = []
    originals = 0
    for i in range(n):
        ts = config.start_timestamp + (i * span) // n + rng.randrange(step)
        duplicate = bool(reservoir) and config.duplicate_rate > 0 and rng.random() < config.duplicate_rate
        if duplicate:
            ex = reservoir[rng.randrange(len(reservoir))]
        else:
            ex = builder.exchange(rng, text_rate=config.text_answer_rate, multi_rate=config.multi_turn_rate)
            if config.duplicate_rate > 0:
                originals += 1
                if len(reservoir) < _RESERVOIR:
                    reservoir.append(ex)
                else:
                    j = rng.randrange(originals)
                    if j < _RESERVOIR:
                        reservoir[j] = ex
        string_args = (
            ex.arguments is not None
            and config.string_arguments_rate > 0
            and rng.random() < config.string_arguments_rate
        )
        record = _render(ex, ts, rng, config, tools_factory(), string_args)
        yield record, _Meta(ex.label, duplicate, ex.history is not None, string_args)


def generate(config: SynthConfig) -> Iterator[WireRecord]:
    """Stream ``config.records`` valid log records, each an independent dict (safe to mutate).

    Deterministic for a given config. Memory stays constant apart from the bounded pool of earlier
    exchanges that duplicates are drawn from (only when ``duplicate_rate > 0``).
    """
    for record, _ in _records(config, tools):
        yield record


def _malformed_line(
    kind: str, rng: random.Random, builder: _Builder, config: SynthConfig, ts: int, shared_tools: orjson.Fragment
) -> bytes:
    if kind == "garbage":
        return rng.choice(cat.GARBAGE_LINES).format(sec=rng.randrange(60), hex=f"{rng.getrandbits(64):016x}").encode()
    ex = builder.exchange(rng, text_rate=0.0, multi_rate=0.0)
    record = _render(ex, ts, rng, config, shared_tools, False)
    if kind == "missing_request":
        del record["request"]
        return orjson.dumps(record)
    data = orjson.dumps(record)
    cut = rng.randrange(len(data) // 5, len(data) * 4 // 5)
    return data[:cut].decode("utf-8", "ignore").encode()


def write_jsonl(config: SynthConfig, out: IO[bytes] | Path) -> SynthSummary:
    """Write the records of :func:`generate` as JSONL, with broken lines mixed in per ``malformed_rate``.

    The valid lines are exactly the records of ``generate(config)``, in order; the malformed lines are
    drawn from a separate random stream, so adding them changes nothing else. ``out`` is a binary stream
    or a path (created or overwritten). Returns the counts of what was written.
    """
    if isinstance(out, Path):
        with out.open("wb") as fh:
            return write_jsonl(config, fh)
    summary = SynthSummary()
    shared_tools = orjson.Fragment(_TOOLS_JSON)
    mrng = random.Random(f"dataflywheel.synth.malformed/{config.seed}")
    mbuilder = _Builder(config)
    mrate = config.malformed_rate
    batch: list[bytes] = []
    written = 0
    for record, meta in _records(config, lambda: shared_tools):
        while mrate > 0 and mrng.random() < mrate:
            kind = mrng.choice(MALFORMED_KINDS)
            batch.append(_malformed_line(kind, mrng, mbuilder, config, int(record["timestamp"]), shared_tools))
            summary.malformed[kind] += 1
        batch.append(orjson.dumps(record))
        summary.records += 1
        summary.per_class[meta.label] += 1
        summary.duplicates += meta.duplicate
        summary.text_answers += meta.label == NO_TOOL
        summary.multi_turn += meta.multi_turn
        summary.string_arguments += meta.string_arguments
        if len(batch) >= _WRITE_BATCH:
            written += _flush(out, batch)
    written += _flush(out, batch)
    summary.lines = summary.records + summary.malformed_total
    summary.bytes_written = written
    return summary


def _flush(out: IO[bytes], batch: list[bytes]) -> int:
    if not batch:
        return 0
    data = b"\n".join(batch) + b"\n"
    out.write(data)
    batch.clear()
    return len(data)
