"""ICL examples: a training record formatted as an example ("if the conversation looks like this ... then
you'll respond with ..."), fitted into a token budget and injected into an eval record's system message.

:func:`format_example` leaves system messages out (a long system prompt would be repeated in every example)
and tool-call ids (random strings) too; :func:`fit_examples` skips an example that does not fit instead of
stopping at it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from dataflywheel.curation.workload import message_text, response_message, response_tool_calls
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.records.toolcalls import parse_arguments

DEFAULT_SYSTEM_MESSAGE = (
    "You are a helpful assistant that can answer questions and help with tasks.\n"
    "Here are some examples of how you should respond to different types of requests:"
)
"""The blueprint's prefix of the injected examples (kept verbatim so ICL results stay comparable)."""

GENERIC_GROUP = "generic_examples"
EXAMPLE_SEPARATOR = "\n\n"

_SYSTEM_ROLES = frozenset({"system", "developer"})

Fetch = Callable[[Sequence[str]], Mapping[str, JsonObject]]
"""Returns the records of the given ids (missing ids are simply absent from the mapping)."""


@dataclass(frozen=True)
class Example:
    """A formatted example ready to inject; ``tokens`` is its exact count with the ICL tokenizer."""

    record_id: str
    tool: str
    text: str
    tokens: int


class PoolItem(NamedTuple):
    """A candidate example described without its record (which stays in the store until chosen).

    ``size`` is ``len(format_example(record))``, computed by the caller: a cheap proxy used to
    pre-select the shortest candidates before exact token counting. ``query`` is the last user
    message (None: the record cannot be found by semantic search).
    """

    record_id: str
    tool: str
    size: int
    query: str | None


def _request_messages(record: Mapping[str, Any]) -> list[JsonObject]:
    request = record.get("request")
    messages = request.get("messages") if isinstance(request, dict) else None
    if not isinstance(messages, list):
        return []
    return [m for m in messages if isinstance(m, dict)]


def _clean_tool_calls(calls: Sequence[Any]) -> list[JsonObject]:
    """Tool calls as the model should produce them: type + function name + arguments (as an object).

    Call ids are dropped: they are random strings that cost tokens and teach nothing.
    """
    out: list[JsonObject] = []
    for call in calls:
        if not isinstance(call, dict):
            continue
        fn = call.get("function")
        if not isinstance(fn, dict):
            fn = {}
        out.append(
            {
                "type": call.get("type") or "function",
                "function": {"name": fn.get("name"), "arguments": parse_arguments(fn.get("arguments"))},
            }
        )
    return out


def _dumps(value: Any, indent: int | None = None) -> str:
    # ensure_ascii=False: a non-ASCII character costs one or two tokens, its \uXXXX escape six or more.
    return json.dumps(value, indent=indent, ensure_ascii=False)


def format_example(record: Mapping[str, Any]) -> str:
    """One few-shot example: the record's conversation (system messages left out) and its answer.

    ::

        For example, if the conversation looks like this:
        user: ...

        Then you'll respond with:
        assistant: ...
        Tool calls:
        [ ... ]
    """
    request_part = "".join(
        f"{m.get('role', 'user')}: {message_text(m.get('content'))}\n\n"
        for m in _request_messages(record)
        if m.get("role") not in _SYSTEM_ROLES
    )
    msg = response_message(dict(record)) or {}
    response_part = f"assistant: {message_text(msg.get('content'))}"
    calls = response_tool_calls(dict(record))
    if calls:
        response_part += "\nTool calls:\n" + _dumps(_clean_tool_calls(calls), indent=2)
    return (
        "For example, if the conversation looks like this:\n"
        + request_part
        + "\nThen you'll respond with:\n"
        + response_part
    )


def prompt_text(record: Mapping[str, Any]) -> str:
    """The text of what the model reads for a record: every request message (with any tool calls) and
    the JSON of the tool definitions. Counted to know how much room is left for examples."""
    parts: list[str] = []
    for m in _request_messages(record):
        parts.append(f"{m.get('role', '')}: {message_text(m.get('content'))}")
        calls = m.get("tool_calls")
        if isinstance(calls, list) and calls:
            parts.append(_dumps(_clean_tool_calls(calls)))
    request = record.get("request")
    tools = request.get("tools") if isinstance(request, dict) else None
    if tools:
        parts.append(_dumps(tools))
    return "\n\n".join(parts)


def uniform_bins(n: int, k: int) -> list[int]:
    """``n`` slots split over ``k`` bins as evenly as possible, the first ``n % k`` bins one larger.

    ``uniform_bins(10, 3) == [4, 3, 3]``; ``uniform_bins(2, 5) == [1, 1, 0, 0, 0]``.
    """
    if k <= 0:
        return []
    base, extra = divmod(max(n, 0), k)
    return [base + (1 if i < extra else 0) for i in range(k)]


def fit_examples(
    groups: Mapping[str, Sequence[Example]], available: int, *, separator_tokens: int = 0
) -> list[Example]:
    """Examples taken round-robin over the groups (in their order) while they fit in ``available``.

    An example that does not fit is skipped and the next ones are still tried (the blueprint stopped
    at the first one, so one long example blocked every shorter one after it). ``separator_tokens``
    is charged per example for the separator that joins it to the others.
    """
    if available <= 0:
        return []
    queues = [list(g) for g in groups.values()]
    rounds = max((len(q) for q in queues), default=0)
    chosen: list[Example] = []
    used = 0
    for i in range(rounds):
        for queue in queues:
            if i >= len(queue):
                continue
            cost = queue[i].tokens + separator_tokens
            if used + cost <= available:
                chosen.append(queue[i])
                used += cost
    return chosen


def inject_examples(record: Mapping[str, Any], examples: Sequence[Example]) -> JsonObject:
    """A new record whose system message starts with the examples; ``record`` is never modified.

    Only what changes is copied: the record, its request, the message list and the system message
    are new objects; everything else is shared with the input. With a system message its content
    becomes ``prefix + examples + original``; without one, a system message ``prefix + examples`` is
    inserted first. With no examples the record is returned as a shallow copy, unchanged.
    """
    out = dict(record)
    if not examples:
        return out
    block = DEFAULT_SYSTEM_MESSAGE + EXAMPLE_SEPARATOR + EXAMPLE_SEPARATOR.join(e.text for e in examples)
    request = dict(record.get("request") or {})
    messages = list(request.get("messages") or [])
    for i, msg in enumerate(messages):
        if isinstance(msg, dict) and msg.get("role") == "system":
            new_msg = dict(msg)
            content = msg.get("content")
            if isinstance(content, list):
                new_msg["content"] = [
                    {"type": "text", "text": block + EXAMPLE_SEPARATOR},
                    *copy.deepcopy(content),
                ]
            elif content:
                new_msg["content"] = block + EXAMPLE_SEPARATOR + message_text(content)
            else:
                new_msg["content"] = block
            messages[i] = new_msg
            break
    else:
        messages.insert(0, {"role": "system", "content": block})
    request["messages"] = messages
    out["request"] = request
    return out
