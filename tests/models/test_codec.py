"""ToolCallCodec with SmolLM2's real tokenizer: prompts, answers, prefill, parsing, and train/serve parity."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from dataflywheel.models.codec import CHATML_TEMPLATE, RenderedPrompt, ToolCallCodec, render_tools_block
from dataflywheel.models.types import ChatRequest
from dataflywheel.records.toolcalls import to_wire_messages


def _tool(name: str, *params: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"Routes to {name}.",
            "parameters": {
                "type": "object",
                "properties": {p: {"type": "string", "description": f"the {p}"} for p in params},
                "required": list(params),
            },
        },
    }


TOOLS = [
    _tool("HandleOtherTalk", "message"),
    _tool("ToProductQAAssistant", "query"),
    _tool("ToOrderStatusAssistant", "query", "user_id"),
    _tool("ToReturnProcessing", "query", "user_id"),
]
SYSTEM = "You are a helpful customer support assistant for NVIDIA Gear Store.\nThe current user id is : 4165\n"


def _call(name: str, args: dict[str, Any], call_id: str = "call_1") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


def _calls_of(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for call in message.get("tool_calls") or []:
        args = call["function"]["arguments"]
        out.append((call["function"]["name"], json.loads(args) if isinstance(args, str) else args))
    return out


CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Where is my order #12?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [_call("ToOrderStatusAssistant", {"query": "Where is order #12?", "user_id": "4165"})],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"order": 12, "status": "shipped"}'},
    {"role": "assistant", "content": "Your order #12 shipped yesterday."},
    {"role": "user", "content": "Great. I also want to return the socks, and what's the jacket's warranty?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            _call("ToReturnProcessing", {"query": "Return the socks", "user_id": "4165"}, "call_2"),
            _call("ToProductQAAssistant", {"query": "Jacket warranty — «details»"}, "call_3"),
        ],
    },
]


@pytest.fixture(scope="module")
def codec(tiny_model_dir: str) -> ToolCallCodec:
    return ToolCallCodec.for_model_dir(tiny_model_dir)


@pytest.fixture(scope="module")
def ids(tiny_tokenizer: Any) -> Any:
    def encode(text: str) -> list[int]:
        return list(tiny_tokenizer(text, add_special_tokens=False)["input_ids"])

    return encode


def _fresh_tokenizer(tiny_model_dir: str, template: str | None) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = template
    return tokenizer


# ------------------------------------------------------------------------------------------ basics


def test_smollm2_template_ignores_tools_so_the_codec_falls_back(codec: ToolCallCodec) -> None:
    assert codec.native_tools is False
    assert codec.end_of_turn == "<|im_end|>"
    assert codec.stop_strings == ["<|im_end|>"]
    assert "</tool_call>" not in codec.stop_strings


def test_fallback_prompt_shape(codec: ToolCallCodec) -> None:
    prompt = codec.render_prompt(CONVERSATION[:2], TOOLS)
    assert prompt.prefill == ""
    assert prompt.text.startswith("<|im_start|>system\n" + render_tools_block(TOOLS) + "\n\n" + SYSTEM)
    assert prompt.text.endswith("<|im_start|>user\nWhere is my order #12?<|im_end|>\n<|im_start|>assistant\n")
    text = prompt.text
    assert text.index("<tools>") < text.index("ToReturnProcessing") < text.index(SYSTEM) < text.index("order #12")
    assert text.count("<|im_start|>system") == 1
    assert "SmolLM" not in text  # the template's default system prompt is replaced, not added


def test_tools_without_system_message_get_their_own_system_turn(codec: ToolCallCodec) -> None:
    text = codec.render_prompt([{"role": "user", "content": "hi"}], TOOLS).text
    assert text == (
        "<|im_start|>system\n" + codec.tools_block(TOOLS) + "<|im_end|>\n"
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_no_tools_is_the_plain_template(codec: ToolCallCodec, tiny_tokenizer: Any) -> None:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "hi"}]
    expected = tiny_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert codec.render_prompt(messages).text == expected
    assert codec.render_prompt(messages, TOOLS, tool_choice="none") == RenderedPrompt(expected, "")


def test_tools_block_is_byte_identical_for_identical_tools(codec: ToolCallCodec) -> None:
    reordered = [
        {"function": {"parameters": t["function"]["parameters"], "description": t["function"]["description"],
                      "name": t["function"]["name"]}, "type": "function"}
        for t in TOOLS
    ]  # fmt: skip
    flat = [t["function"] for t in TOOLS]
    assert codec.tools_block(reordered) == codec.tools_block(TOOLS) == codec.tools_block(flat)
    first_line = codec.tools_block(TOOLS).split("<tools>\n")[1].splitlines()[0]
    assert first_line.startswith('{"type": "function", "function": {"name": "HandleOtherTalk", "description"')


def test_real_records_share_the_system_and_tools_prefix(codec: ToolCallCodec, aiva_sample: Path) -> None:
    records = [json.loads(line) for line in aiva_sample.read_text().splitlines() if line.strip()]
    prompts = [codec.render_prompt(r["request"]["messages"], r["request"]["tools"]).text for r in records]
    heads = {p[: p.index("<|im_start|>user")] for p, r in zip(prompts, records, strict=True)
             if r["request"]["messages"][0]["content"].endswith("4165\n")}  # fmt: skip
    assert len(heads) == 1  # byte-identical system turn (tools + system prompt) for the same system prompt
    block = "<|im_start|>system\n" + codec.tools_block(records[0]["request"]["tools"])
    assert all(p.startswith(block) for p in prompts)  # the tools block comes first in every record
    head = heads.pop()
    assert len(head) / sum(len(p) for p in prompts) * len(prompts) > 0.8  # most of each prompt is shared


# ------------------------------------------------------------------------------------------ answers and parsing

ANSWERS = [
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [_call("ToReturnProcessing", {"query": "q", "user_id": "4165"})],
    },
    CONVERSATION[-1],
    {"role": "assistant", "content": None, "tool_calls": [_call("HandleOtherTalk", {"message": 'say "hi" {}'})]},
    {"role": "assistant", "content": "Let me check.", "tool_calls": [_call("ToProductQAAssistant", {"query": "x"})]},
    {"role": "assistant", "content": "Hello! How can I help you today?"},
    {"role": "assistant", "content": None, "tool_calls": [_call("Unknown", {"n": [1, 2.5, None, True]})]},
]


@pytest.mark.parametrize("answer", ANSWERS)
def test_render_answer_parse_round_trip(codec: ToolCallCodec, answer: dict[str, Any]) -> None:
    text = codec.render_answer(answer)
    assert text.endswith("<|im_end|>")
    message = codec.parse(text, TOOLS)
    assert message["role"] == "assistant"
    assert _calls_of(message) == _calls_of(answer)
    assert message["content"] == (answer.get("content") or None)
    if answer.get("tool_calls"):
        for call in message["tool_calls"]:
            assert call["type"] == "function" and call["id"].startswith("call_")
            assert isinstance(call["function"]["arguments"], str)
    else:
        assert "tool_calls" not in message


def test_render_answer_is_canonical(codec: ToolCallCodec) -> None:
    assert codec.render_answer(CONVERSATION[-1]) == (
        '<tool_call>\n{"name": "ToReturnProcessing", "arguments": {"query": "Return the socks", "user_id": "4165"}}'
        '\n</tool_call>\n<tool_call>\n{"name": "ToProductQAAssistant", "arguments": '
        '{"query": "Jacket warranty — «details»"}}\n</tool_call><|im_end|>'
    )
    wire = to_wire_messages([CONVERSATION[-1]])[0]  # arguments as JSON strings
    assert codec.render_answer(wire) == codec.render_answer(CONVERSATION[-1])


def test_parse_ids_are_deterministic_and_distinct(codec: ToolCallCodec) -> None:
    text = codec.render_answer({"role": "assistant", "tool_calls": [_call("HandleOtherTalk", {"message": "a"})] * 2})
    first, second = codec.parse(text), codec.parse(text)
    assert first == second
    ids = [c["id"] for c in first["tool_calls"]]
    assert len(set(ids)) == 2


def test_parse_strips_end_of_turn_and_what_follows(codec: ToolCallCodec) -> None:
    message = codec.parse("Hi there<|im_end|>\n<|im_start|>user\nmore")
    assert message == {"role": "assistant", "content": "Hi there"}
    assert codec.parse("") == {"role": "assistant", "content": None}


def test_parse_detailed_reports_repairs(codec: ToolCallCodec) -> None:
    got = codec.parse_detailed('<ToReturnProcessing query="late" user_id="4165"/>', TOOLS)
    assert _calls_of(got.message) == [("ToReturnProcessing", {"query": "late", "user_id": "4165"})]
    got = codec.parse_detailed('<tool_call>\n{"name": "Foo", "arguments": {"a": "trunc', TOOLS)
    assert _calls_of(got.message) == [("Foo", {"a": "trunc"})]
    assert "unknown tool 'Foo'" in got.problems and "truncated JSON closed" in got.problems


# ------------------------------------------------------------------------------------------ tool_choice / prefill


def test_tool_choice_prefills(codec: ToolCallCodec) -> None:
    messages = CONVERSATION[:2]
    base = codec.render_prompt(messages, TOOLS)
    required = codec.render_prompt(messages, TOOLS, tool_choice="required")
    assert required.prefill == '<tool_call>\n{"name": "'
    assert required.text == base.text + required.prefill
    named = codec.render_prompt(
        messages, TOOLS, tool_choice={"type": "function", "function": {"name": "ToReturnProcessing"}}
    )
    # no trailing space: SmolLM2 tokenizes ` {"` as one token, so a prompt ending in " " would never match
    # what the model was trained on
    assert named.prefill == '<tool_call>\n{"name": "ToReturnProcessing", "arguments":'
    assert named.text == base.text + named.prefill
    assert codec.render_prompt(messages, TOOLS, tool_choice="auto") == base
    assert codec.render_prompt(messages, None, tool_choice="required").prefill == ""
    none = codec.render_prompt(messages, TOOLS, tool_choice="none")
    assert "<tools>" not in none.text and none.prefill == ""


@pytest.mark.parametrize("tool_choice", ["required", {"type": "function", "function": {"name": "ToReturnProcessing"}}])
def test_prefill_continues_exactly_like_training(codec: ToolCallCodec, ids: Any, tool_choice: Any) -> None:
    """A prefilled prompt is a token prefix of the trained prompt + answer, and the generated rest parses back."""
    messages, answer = CONVERSATION[:2], ANSWERS[0]
    served = codec.render_prompt(messages, TOOLS, tool_choice=tool_choice)
    trained = codec.render_prompt(messages, TOOLS).text + codec.render_answer(answer)
    assert trained.startswith(served.text)
    served_ids, trained_ids = ids(served.text), ids(trained)
    assert trained_ids[: len(served_ids)] == served_ids
    generated = trained[len(served.text) :]
    message = codec.parse(generated, TOOLS, prefill=served.prefill)
    assert _calls_of(message) == _calls_of(answer)


# ------------------------------------------------------------------------------------------ history


def test_history_tool_calls_and_tool_responses(codec: ToolCallCodec) -> None:
    messages = [
        *CONVERSATION[:2],
        {"role": "assistant", "content": None, "tool_calls": [_call("A", {"x": 1}), _call("B", {"y": 2}, "c2")]},
        {"role": "tool", "tool_call_id": "call_1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": {"two": 2}},
    ]
    text = codec.render_prompt(messages, TOOLS).text
    assert (
        '<|im_start|>assistant\n<tool_call>\n{"name": "A", "arguments": {"x": 1}}\n</tool_call>\n'
        '<tool_call>\n{"name": "B", "arguments": {"y": 2}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\none\n</tool_response>\n"
        '<tool_response>\n{"two": 2}\n</tool_response><|im_end|>\n<|im_start|>assistant\n'
    ) in text
    assert "<|im_start|>tool" not in text


def test_json_string_arguments_render_like_objects(codec: ToolCallCodec) -> None:
    wire = to_wire_messages(CONVERSATION)
    assert isinstance(wire[2]["tool_calls"][0]["function"]["arguments"], str)
    assert codec.render_prompt(wire, TOOLS) == codec.render_prompt(CONVERSATION, TOOLS)


# ------------------------------------------------------------------------------------------ GOLDEN parity


def test_golden_train_serve_parity(codec: ToolCallCodec, ids: Any) -> None:
    """The prompt a model is trained on and the prompt it is served are the same tokens, for every assistant
    turn of a multi-turn tool-calling conversation; the trained completion never re-tokenizes the prompt."""
    assistant_turns = [i for i, m in enumerate(CONVERSATION) if m["role"] == "assistant"]
    assert len(assistant_turns) == 3
    previous: list[int] = []
    for i in assistant_turns:
        row = {"messages": copy.deepcopy(CONVERSATION[: i + 1]), "tools": TOOLS}  # curated: arguments are objects
        prompt, completion = codec.training_example(row)
        request = ChatRequest(messages=to_wire_messages(CONVERSATION[:i]), tools=copy.deepcopy(TOOLS))  # wire form
        served = codec.render_prompt(request.messages, request.tools, request.tool_choice)
        assert served.prefill == ""
        assert ids(prompt) == ids(served.text)
        assert prompt == served.text
        prompt_ids, full_ids = ids(prompt), ids(prompt + completion)
        assert full_ids[: len(prompt_ids)] == prompt_ids
        assert full_ids[-1] == codec.tokenizer.convert_tokens_to_ids("<|im_end|>")
        assert prompt_ids[: len(previous)] == previous  # earlier turns are rendered as they were trained
        previous = full_ids
        message = codec.parse(completion, TOOLS)
        assert _calls_of(message) == _calls_of(CONVERSATION[i])


def test_training_example_rejects_rows_without_an_answer(codec: ToolCallCodec) -> None:
    with pytest.raises(ValueError):
        codec.training_example({"messages": CONVERSATION[:2]})
    with pytest.raises(ValueError):
        codec.training_example({"messages": []})


# ------------------------------------------------------------------------------------------ other templates

# A template that renders tools itself (Qwen2.5-like), and one whose calls are bare JSON (Llama-3.1-like).
QWEN_LIKE = (
    "{%- if tools %}<|im_start|>system\n{% if messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}"
    "# Tools\n<tools>{% for tool in tools %}\n{{ tool | tojson }}{% endfor %}\n</tools><|im_end|>\n"
    "{%- elif messages[0].role == 'system' %}<|im_start|>system\n{{ messages[0].content }}<|im_end|>\n{% endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'system' %}"
    "{%- elif message.role == 'assistant' %}<|im_start|>assistant\n{{ message.content }}"
    "{%- for tc in message.tool_calls or [] %}{% if not loop.first or message.content %}\n{% endif %}"
    '<tool_call>\n{"name": "{{ tc.function.name }}", "arguments": {{ tc.function.arguments | tojson }}}\n</tool_call>'
    "{%- endfor %}<|im_end|>\n"
    "{%- elif message.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ message.content }}\n</tool_response>"
    "<|im_end|>\n"
    "{%- else %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endif %}"
    "{%- endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
JSON_CALLS = (
    "{% if tools %}<|im_start|>system\nTools: {{ tools | tojson }}<|im_end|>\n{% endif %}"
    "{% for message in messages %}<|im_start|>{{ message.role }}\n"
    "{% if message.tool_calls %}{% for tc in message.tool_calls %}"
    '{"name": "{{ tc.function.name }}", "parameters": {{ tc.function.arguments | tojson }}}'
    "{% endfor %}{% else %}{{ message.content }}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_native_template_renders_tools_itself(tiny_model_dir: str, ids: Any) -> None:
    codec = ToolCallCodec(_fresh_tokenizer(tiny_model_dir, QWEN_LIKE))
    assert codec.native_tools is True
    prompt = codec.render_prompt(CONVERSATION[:2], TOOLS)
    assert prompt.text.startswith("<|im_start|>system\n" + SYSTEM)
    assert '# Tools\n<tools>{"type": "function", "function": {"name": "HandleOtherTalk"' in prompt.text
    assert "You may call one or more functions" not in prompt.text  # the codec's own block is not added
    answer = codec.render_answer(CONVERSATION[-1])
    assert answer.startswith('<tool_call>\n{"name": "ToReturnProcessing", "arguments": {"query"')
    assert answer.endswith("</tool_call><|im_end|>")
    assert _calls_of(codec.parse(answer, TOOLS)) == _calls_of(CONVERSATION[-1])
    assert codec.prefill("required") == '<tool_call>\n{"name": "'
    assert codec.prefill({"type": "function", "function": {"name": "X"}}) == '<tool_call>\n{"name": "X", "arguments":'
    for i in (2, 4, 6):
        prompt_text, completion = codec.training_example({"messages": CONVERSATION[: i + 1], "tools": TOOLS})
        served = codec.render_prompt(to_wire_messages(CONVERSATION[:i]), TOOLS).text
        assert ids(prompt_text) == ids(served)
        full = codec.tokenizer.apply_chat_template(CONVERSATION[: i + 1], tools=TOOLS, tokenize=False)
        assert full.startswith(prompt_text + completion)  # the answer is what the template itself renders


def test_native_json_call_format(tiny_model_dir: str) -> None:
    codec = ToolCallCodec(_fresh_tokenizer(tiny_model_dir, JSON_CALLS))
    assert codec.native_tools is True
    answer = codec.render_answer(ANSWERS[0])
    assert answer == '{"name": "ToReturnProcessing", "parameters": {"query": "q", "user_id": "4165"}}<|im_end|>'
    assert codec.prefill("required") == '{"name": "'
    assert codec.prefill({"type": "function", "function": {"name": "HandleOtherTalk"}}) == (
        '{"name": "HandleOtherTalk", "parameters":'
    )
    assert _calls_of(codec.parse(answer, TOOLS)) == _calls_of(ANSWERS[0])
    prefill = codec.prefill("required")
    assert _calls_of(codec.parse(answer[len(prefill) :], TOOLS, prefill=prefill)) == _calls_of(ANSWERS[0])


def test_tokenizer_without_a_template_gets_chatml(tiny_model_dir: str) -> None:
    codec = ToolCallCodec(_fresh_tokenizer(tiny_model_dir, None))
    assert codec.native_tools is False and codec.end_of_turn == "<|im_end|>"
    text = codec.render_prompt([{"role": "user", "content": "hi"}]).text
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert "<|im_start|>" in CHATML_TEMPLATE
