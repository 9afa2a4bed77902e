"""Small hand-made records for unit tests."""

from __future__ import annotations

from typing import Any

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} tool",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
        },
    }
    for name in ("Alpha", "Beta", "Gamma")
]


def tool_record(
    user: str,
    tool: str | None = "Alpha",
    args: Any = None,
    *,
    ts: int = 1_700_000_000,
    workload_id: str = "w",
    client_id: str = "c",
    system: str = "You route requests.",
    text: str = "plain answer",
) -> dict[str, Any]:
    """A log record whose answer calls ``tool`` (or answers ``text`` when tool is None)."""
    if tool is None:
        message: dict[str, Any] = {"role": "assistant", "content": text}
    else:
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": tool, "arguments": {"query": user[:20]} if args is None else args},
                }
            ],
        }
    return {
        "timestamp": ts,
        "workload_id": workload_id,
        "client_id": client_id,
        "request": {
            "model": "big",
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "tools": TOOLS,
        },
        "response": {"choices": [{"index": 0, "message": message}]},
    }
