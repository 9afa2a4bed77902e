"""The codec's chat template (what vLLM is started with) renders exactly the codec's prompts: the same text
through the tokenizer's ``apply_chat_template``, which is how vLLM renders a chat request; and the client
reads a server's text answers the way our server does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dataflywheel.models.chat_template import TOOL_CHOICE_KWARG, codec_chat_template
from dataflywheel.models.client import chat_payload, read_text_answer
from dataflywheel.models.codec import ToolCallCodec, fallback_prefill
from dataflywheel.models.types import ChatRequest, ChatResult, ToolChoice, Usage
from dataflywheel.records.toolcalls import parse_arguments
from dataflywheel.synth.generator import SynthConfig, generate

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            # keys out of order, nested objects unsorted, non-ASCII: the template must order them as the codec
            "parameters": {
                "type": "object",
                "required": ["query", "user_id"],
                "properties": {"user_id": {"type": "string"}, "query": {"type": "string", "description": "Größe"}},
            },
            "name": "ToReturnProcessing",
            "description": "Returns and refunds — “quoted”",
            "strict": True,
        },
    },
    {"type": "function", "function": {"name": "ToProductAdvice", "description": "advice", "parameters": {}}},
]

CONVERSATIONS: list[list[dict[str, Any]]] = [
    [{"role": "system", "content": "You are Northwind's assistant."}, {"role": "user", "content": "My tent is bent"}],
    [{"role": "user", "content": "no system prompt here"}],
    [{"role": "developer", "content": "dev prompt"}, {"role": "user", "content": "hi"}],
    [{"role": "system", "content": ""}, {"role": "user", "content": "empty system"}],
    [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "ToReturnProcessing", "arguments": '{"b": 1, "a": "é"}'},
                },
                {"id": "c2", "type": "function", "function": {"name": "ToProductAdvice", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        {"role": "tool", "tool_call_id": "c2", "content": '{"r": 2}'},
        {"role": "assistant", "content": "Anything else?"},
        {"role": "user", "content": "yes"},
    ],
    [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": "let me look",
            "tool_calls": [
                {"id": "c3", "type": "function", "function": {"name": "ToProductAdvice", "arguments": {"x": [1, 2]}}}
            ],
        },
        {"role": "tool", "tool_call_id": "c3", "content": "done"},
    ],
]

CHOICES: list[ToolChoice] = [
    None,
    "auto",
    "none",
    "required",
    {"type": "function", "function": {"name": "ToReturnProcessing"}},
    {"type": "function", "function": {"name": 'Tricky"Name'}},
]


@pytest.fixture(scope="module")
def codec(tiny_tokenizer: Any) -> ToolCallCodec:
    return ToolCallCodec(tiny_tokenizer)


def server_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages as vLLM hands them to the template: sent in wire form (arguments as JSON strings), then
    arguments holding a JSON object parsed back into it."""
    payload = chat_payload(ChatRequest(messages=messages), "m")
    out: list[dict[str, Any]] = json.loads(json.dumps(payload["messages"]))
    for msg in out:
        for call in msg.get("tool_calls") or []:
            call["function"]["arguments"] = parse_arguments(call["function"]["arguments"])
    return out


def render(codec: ToolCallCodec, template: str, messages: list[dict[str, Any]], tools: Any, choice: ToolChoice) -> str:
    kwargs: dict[str, Any] = {TOOL_CHOICE_KWARG: choice} if tools else {}
    text = codec.tokenizer.apply_chat_template(
        server_messages(messages),
        tools=tools,
        chat_template=template,
        tokenize=False,
        add_generation_prompt=True,
        **kwargs,
    )
    assert isinstance(text, str)
    return text


@pytest.mark.parametrize("tools", [TOOLS, None], ids=["tools", "no-tools"])
@pytest.mark.parametrize("choice", CHOICES, ids=lambda c: json.dumps(c))
@pytest.mark.parametrize("conversation", range(len(CONVERSATIONS)))
def test_the_template_renders_the_codecs_prompt(
    codec: ToolCallCodec, tools: Any, choice: ToolChoice, conversation: int
) -> None:
    template = codec_chat_template(codec)
    assert template is not None
    messages = CONVERSATIONS[conversation]
    expected = codec.render_prompt(messages, tools, choice).text
    assert render(codec, template, messages, tools, choice) == expected


def test_the_template_renders_realistic_traffic_token_for_token(codec: ToolCallCodec) -> None:
    template = codec_chat_template(codec)
    assert template is not None
    records = list(generate(SynthConfig(records=60, seed=3, multi_turn_rate=0.3, string_arguments_rate=0.5)))
    for record in records:
        request = record["request"]
        messages, tools = request["messages"], request.get("tools")
        expected = codec.render_prompt(messages, tools, request.get("tool_choice")).text
        got = render(codec, template, messages, tools, request.get("tool_choice"))
        assert got == expected
        assert (
            codec.tokenizer(got, add_special_tokens=False)["input_ids"]
            == codec.tokenizer(expected, add_special_tokens=False)["input_ids"]
        )


def test_a_tokenizer_that_renders_tools_itself_keeps_its_own_template(tiny_model_dir: str) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if tools %}{% for t in tools %}{{ t['function']['name'] }}\n{% endfor %}{% endif %}"
    )
    assert codec_chat_template(ToolCallCodec(tokenizer)) is None


def test_the_client_asks_for_text_and_sends_tool_choice_to_the_template() -> None:
    request = ChatRequest(messages=[{"role": "user", "content": "x"}], tools=TOOLS, tool_choice="required")
    body = chat_payload(request, "m", tool_calls_as_text=True)
    assert body["tool_choice"] == "none" and body["chat_template_kwargs"] == {TOOL_CHOICE_KWARG: "required"}
    assert "constrain_tool_names" not in body
    plain = chat_payload(request, "m")
    assert plain["tool_choice"] == "required" and "chat_template_kwargs" not in plain
    no_tools = chat_payload(ChatRequest(messages=[{"role": "user", "content": "x"}]), "m", tool_calls_as_text=True)
    assert "tool_choice" not in no_tools and "chat_template_kwargs" not in no_tools


def text_result(content: str, finish: Any = "stop") -> ChatResult:
    return ChatResult(
        message={"role": "assistant", "content": content}, finish_reason=finish, usage=Usage(900, 20), raw_text=content
    )


def test_text_answers_are_parsed_as_our_server_parses_them(codec: ToolCallCodec) -> None:
    named: ToolChoice = {"type": "function", "function": {"name": "ToReturnProcessing"}}
    for choice, generated in [
        (
            None,
            '<tool_call>\n{"name": "ToReturnProcessing", "arguments": {"query": "bent", "user_id": "7"}}\n</tool_call>',
        ),
        ("required", 'ToProductAdvice", "arguments": {}}\n</tool_call>'),
        (named, ' {"query": "poles", "user_id": "1"}}\n</tool_call>'),
        ("auto", "Sure, I can help with that."),
        (None, '<tool_call>\n{"name": "ToReturnProcessing", "arguments": {"query": "x", "user_id": '),  # cut
    ]:
        request = ChatRequest(messages=[{"role": "user", "content": "x"}], tools=TOOLS, tool_choice=choice)
        assert fallback_prefill(choice) == codec.prefill(choice)
        result = read_text_answer(text_result(generated, "length" if generated.endswith(" ") else "stop"), request)
        expected = codec.parse(generated, TOOLS, prefill=codec.prefill(choice))
        assert result.message == expected
        assert result.raw_text == codec.prefill(choice) + generated
        assert result.finish_reason == (
            "tool_calls" if expected.get("tool_calls") else "length" if generated.endswith(" ") else "stop"
        )
        assert result.usage == Usage(900, 20)
