"""Training rows in OpenAI fine-tuning form: ``{"messages": [...], "tools": [...]}``."""

from __future__ import annotations

from typing import Any

from dataflywheel.curation.workload import response_message

_ANSWER_KEYS = ("role", "content", "tool_calls", "name")


def to_training_row(record: dict[str, Any]) -> dict[str, Any]:
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
    answer = response_message(record) or {"role": "assistant", "content": ""}
    out_answer = {k: answer[k] for k in _ANSWER_KEYS if k in answer and answer[k] is not None}
    out_answer["role"] = "assistant"
    if out_answer.get("tool_calls"):
        out_answer["content"] = ""
    else:
        out_answer.pop("tool_calls", None)
        out_answer.setdefault("content", "")
    messages.append(out_answer)
    row: dict[str, Any] = {"messages": messages}
    if request.get("tools"):
        row["tools"] = request["tools"]
    return row


def _clean(message: dict[str, Any]) -> dict[str, Any]:
    if message.get("role") == "assistant" and message.get("content") is None:
        return {**message, "content": ""}
    return message
