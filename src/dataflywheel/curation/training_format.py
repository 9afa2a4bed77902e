"""Training rows in OpenAI fine-tuning form: ``{"messages": [...], "tools": [...]}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dataflywheel.records.chat import TrainingRow, WireMessage, response_message


def to_training_row(record: Mapping[str, Any]) -> TrainingRow:
    """The conversation of a log record with its answer appended, ready for supervised fine-tuning.

    Pure: the record is not modified (the blueprint's version mutates it). Assistant contents that are
    null become ``""``. An answer that makes tool calls has content ``""`` (what the teacher said beside a
    call is not trained); a text answer keeps its text, also in tool-calling workloads, where it is the
    ``no_tool`` class. Tool-call arguments stay JSON objects. ``tools`` is set whenever the request offered
    tools, in any workload: the model is trained on the prompt it will be served (the blueprint drops them
    from generic workloads' rows).
    """
    request = record["request"]
    messages = [_clean(m) for m in request["messages"]]
    answer = response_message(record) or {}
    content, calls, name = answer.get("content"), answer.get("tool_calls"), answer.get("name")
    out_answer: WireMessage = {"role": "assistant", "content": "" if calls or content is None else content}
    if calls:
        out_answer["tool_calls"] = calls
    if name is not None:
        out_answer["name"] = name
    messages.append(out_answer)
    row: TrainingRow = {"messages": messages}
    if request.get("tools"):
        row["tools"] = request["tools"]
    return row


def _clean(message: WireMessage) -> WireMessage:
    if message.get("role") == "assistant" and message.get("content") is None:
        return {**message, "content": ""}
    return message
