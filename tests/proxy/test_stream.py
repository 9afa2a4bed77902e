"""Re-assembly of streamed answers into one ChatCompletion, and SSE parsing."""

from __future__ import annotations

import orjson
import pytest

from dataflywheel.proxy.stream import StreamError, assemble, assemble_sse, sse_data
from dataflywheel.serving.standin import stream_chunks


def completion(message: dict[str, object], finish: str = "stop") -> dict[str, object]:
    return {
        "id": "chatcmpl-1",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }


def sse(chunks: list[dict[str, object]], sep: bytes = b"\n\n") -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + sep for c in chunks) + b"data: [DONE]" + sep


def test_text_deltas_are_concatenated_with_the_usage_chunk() -> None:
    done = assemble_sse(sse(stream_chunks(completion({"role": "assistant", "content": "Hello there!"}), True)))
    assert done["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "Hello there!"}, "finish_reason": "stop"}
    ]
    assert done["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert (done["id"], done["model"], done["object"]) == ("chatcmpl-1", "m", "chat.completion")  # type: ignore[typeddict-item]


def test_tool_call_deltas_are_merged_per_call_index() -> None:
    calls = [
        {"id": "call_a", "type": "function", "function": {"name": "ToOrderStatus", "arguments": '{"query": "x"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "ToReturnProcessing", "arguments": '{"n": 12}'}},
    ]
    chunks = stream_chunks(completion({"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls"))
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("tool_calls")) == 6  # split
    done = assemble(chunks)
    message = done["choices"][0]["message"]
    assert message["tool_calls"] == calls
    assert done["choices"][0]["finish_reason"] == "tool_calls"
    assert "usage" not in done


def test_interleaved_calls_and_a_name_sent_in_pieces() -> None:
    def delta(d: dict[str, object]) -> dict[str, object]:
        return {"id": "x", "choices": [{"index": 0, "delta": d, "finish_reason": None}]}

    chunks = [
        delta(
            {"role": "assistant", "tool_calls": [{"index": 1, "id": "c1", "function": {"name": "Lo", "arguments": ""}}]}
        ),
        delta({"tool_calls": [{"index": 0, "id": "c0", "function": {"name": "A", "arguments": "{}"}}]}),
        delta({"tool_calls": [{"index": 1, "function": {"name": "okup", "arguments": '{"a"'}}]}),
        delta({"tool_calls": [{"index": 1, "function": {"arguments": ": 1}"}}]}),
    ]
    calls = assemble(chunks)["choices"][0]["message"]["tool_calls"]
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("c0", "A", "{}"),
        ("c1", "Lookup", '{"a": 1}'),
    ]


def test_sse_with_crlf_comments_and_multiline_data() -> None:
    raw = b': keep-alive\r\n\r\ndata: {"a":\r\ndata: 1}\r\n\r\nevent: x\r\ndata: [DONE]\r\n\r\n'
    assert list(sse_data(raw)) == [b'{"a":\n1}']


def test_an_empty_or_broken_stream_is_an_error() -> None:
    with pytest.raises(StreamError, match=r"no chat\.completion\.chunk"):
        assemble_sse(b"data: [DONE]\n\n")
    with pytest.raises(StreamError, match="not JSON"):
        assemble_sse(b"data: {oops\n\n")
