from __future__ import annotations

from dataflywheel.records.chat import (
    MESSAGE_ROLES,
    ChatCompletion,
    ChatCompletionRequest,
    Message,
    ToolCall,
    WorkloadType,
)
from dataflywheel.records.jsonvalue import json_equal
from dataflywheel.records.tools import ToolSpec
from dataflywheel.settings import WorkloadTypeSetting

REQUEST = {
    "model": "m",
    "messages": [{"role": "user", "content": "hi", "x-extra": 1}],
    "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}],
    "temperature": 0.2,
}
RESPONSE = {
    "id": "r1",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}],
            },
            "finish_reason": "tool_calls",
        }
    ],
}


def test_request_round_trip_keeps_unknown_fields() -> None:
    request = ChatCompletionRequest.from_wire(REQUEST)
    assert request.model == "m" and request.extra == {"temperature": 0.2}
    assert request.messages[0].extra == {"x-extra": 1}
    assert request.tools == (ToolSpec("f", {"type": "object"}, "d"),)
    assert request.tool_index.names == ("f",)
    assert request.to_wire() == REQUEST


def test_response_round_trip_and_decoded_arguments() -> None:
    response = ChatCompletion.from_wire(RESPONSE)
    message = response.message
    assert message is not None and message.label == "f"
    call = message.tool_calls[0]
    assert call.arguments == {"a": 1} and call.arguments_text == '{"a": 1}'
    assert response.to_wire() == RESPONSE


def test_tool_call_arguments_text_and_undecodable() -> None:
    assert ToolCall("f", {"a": 1}).arguments_text == '{"a":1}'
    assert ToolCall("f", None).arguments == {}
    assert ToolCall("f", "not json").arguments is None
    assert ToolCall("f", {"a": 1}).to_wire(string_arguments=True)["function"]["arguments"] == '{"a":1}'


def test_message_text_and_no_tool_label() -> None:
    message = Message.from_wire({"role": "assistant", "content": [{"type": "text", "text": "a"}]})
    assert message.text == "a" and message.label == "no_tool"


def test_one_role_set_and_one_workload_vocabulary() -> None:
    assert "function" in MESSAGE_ROLES and "tool" in MESSAGE_ROLES
    assert WorkloadTypeSetting is WorkloadType
    assert WorkloadType("auto") is WorkloadType.AUTO and WorkloadType("tool_calling") is WorkloadType.TOOL_CALLING


def test_json_equal() -> None:
    assert json_equal({"a": [1, 2.0]}, {"a": [1.0, 2]})
    assert not json_equal(True, 1) and not json_equal({"a": 1}, {"a": 1, "b": 2}) and not json_equal("1", 1)
