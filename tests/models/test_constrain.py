"""Tool names that cannot be invented: the constraint's token logic on SmolLM2's tokenizer, and the local engine
generating with it (the tiny random model writes garbage unless held)."""

from __future__ import annotations

import re
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from dataflywheel.models import engine as engine_module
from dataflywheel.models.codec import ToolCallCodec
from dataflywheel.models.constrain import TokenTexts, ToolNameConstraint, ToolNameRule, call_opening
from dataflywheel.models.engine import LocalEngine
from dataflywheel.models.types import ChatRequest, SamplingParams

NAMES = ["ToOrder", "ToOrderStatus", "HandleSmallTalk"]
AFTER_NAME = '", "arguments":'
NAME_FIELD_RE = re.compile(r'<tool_call>\s*\{\s*"name"\s*:\s*"([^"]*)("?)')


def tools_of(names: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": f"Tool {name}.",
                "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
            },
        }
        for name in names
    ]


@pytest.fixture(scope="module")
def texts(tiny_tokenizer: Any) -> TokenTexts:
    return TokenTexts.from_tokenizer(tiny_tokenizer)


@pytest.fixture(scope="module")
def rule(tiny_tokenizer: Any, texts: TokenTexts) -> ToolNameRule:
    opening = call_opening(ToolCallCodec(tiny_tokenizer).prefill)
    assert opening is not None
    return ToolNameRule(opening, NAMES, texts)


def may_follow(partial: str, token_text: str) -> bool:
    """Written out plainly: whether a token may come after ``partial`` in a name field."""
    text = partial + token_text
    for name in NAMES:
        if token_text and name.startswith(text):
            return True
        if text.startswith(name + '"'):
            after = text[len(name) :]
            if AFTER_NAME.startswith(after):
                return True
            if after.startswith(AFTER_NAME) and re.fullmatch(r"\s*(\{.*)?", after[len(AFTER_NAME) :], re.DOTALL):
                return True
    return False


# the constraint's logic --------------------------------------------------------------------------------


def test_the_opening_comes_from_the_codec_and_accepts_other_whitespace(tiny_tokenizer: Any) -> None:
    codec = ToolCallCodec(tiny_tokenizer)
    opening = call_opening(codec.prefill)
    assert opening is not None
    assert opening.text == codec.prefill("required")
    assert opening.after_name == AFTER_NAME
    for text in (codec.prefill("required"), '<tool_call>{"name":"', '<tool_call>\n\n{ "name" : "'):
        assert opening.complete.fullmatch(text)
    for text in ("x <tool_call", "<tool_call>\n", '<tool_call>\n{"name":', '<tool_call>{"name": '):
        assert opening.partial.search(text), text
    assert not opening.partial.search('<tool_call>\n{"name": "')  # complete, not partial
    assert not opening.partial.search("plain text")


def test_calls_without_a_tag_before_the_json_are_left_unconstrained() -> None:
    """A bare ``{"name": "`` opening also appears inside arguments: such codecs get no constraint."""
    assert call_opening(lambda choice: '{"name": "' if choice == "required" else "") is None
    assert call_opening(lambda choice: "<think>\n</think>\n<tool_call>\n{" if choice == "required" else "") is None


@pytest.mark.parametrize("partial", ["", "T", "To", "ToOrder", "ToOrderSt", "ToOrderStatus", "Handle"])
def test_allowed_tokens_in_a_name_are_exactly_those_that_keep_it_a_tool_name(
    rule: ToolNameRule, texts: TokenTexts, partial: str
) -> None:
    mask = rule.inside_name(partial)
    assert mask is not None and mask.allow
    expected = {i for i, text in enumerate(texts.texts) if may_follow(partial, text)}
    assert set(mask.ids) == expected


def test_allowed_tokens_examples(rule: ToolNameRule, texts: TokenTexts, tiny_tokenizer: Any) -> None:
    def allowed(partial: str) -> set[str]:
        mask = rule.inside_name(partial)
        assert mask is not None
        return {texts.texts[i] for i in mask.ids}

    start = allowed("")
    assert {"To", "T", "H", "Handle"} <= start
    assert not {"Order", '"', "get", " To"} & start
    done = allowed("ToOrder")  # a whole name, and the prefix of another
    assert {"S", '",', '"'} <= done
    assert not {'"]', '""', '")', "Order"} & done
    assert allowed("ToOrderStatus") & {"S", "Status"} == set()
    assert rule.inside_name("Nope") is None  # nothing to hold to: no mask


def test_the_constraint_follows_the_answer(rule: ToolNameRule, tiny_tokenizer: Any) -> None:
    row = ToolNameConstraint(rule, '<tool_call>\n{"name": "')
    assert row.state == "name"
    rest = 'ToOrderStatus", "arguments": {"query": "x"}}\n</tool_call>\n<tool_call>\n{"name": "Handle'
    states = []
    for token in tiny_tokenizer(rest, add_special_tokens=False)["input_ids"]:
        row.feed(token)
        states.append(row.state)
    assert "after_name" in states and "free" in states
    assert row.state == "name"  # the second call's name field
    mask = row.mask()
    assert mask is not None and {rule.texts.texts[i] for i in mask.ids} >= {"Small", "S"}
    assert ToolNameConstraint(rule).state == "free" and ToolNameConstraint(rule).mask() is None


def test_a_token_finishing_the_opening_cannot_start_a_wrong_name(rule: ToolNameRule, texts: TokenTexts) -> None:
    row = ToolNameConstraint(rule, 'Sure. <tool_call>\n{"name":')
    mask = row.mask()
    assert mask is not None and not mask.allow
    banned = set(mask.ids)
    assert {texts.texts[i] for i in banned} >= {' ""', ' ",'}
    tail = '<tool_call>\n{"name":'
    for i in texts.containing('"'):
        text = tail + texts.texts[i]
        m = rule.opening.complete.match(text)
        assert (i in banned) == (m is not None and not rule.fits(text[m.end() :]))
    row.feed(texts.exact(' "')[0])
    assert row.state == "name"


# the engine --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(tiny_model_dir: str) -> LocalEngine:
    return LocalEngine(tiny_model_dir, device="cpu", dtype="float32", threads=1, max_batch_size=8)


TOOL_SETS = [
    NAMES,
    ["get_weather", "get_weather_forecast", "search"],
    ["refund", "ToProductAdvisor", "lookup-order-v2"],
]


def required_requests(constrain: bool) -> list[ChatRequest]:
    requests = []
    for k, names in enumerate(TOOL_SETS):
        for j in range(4):
            sampling = SamplingParams(max_tokens=40, temperature=0.0 if j == 0 else 1.0, seed=10 * k + j)
            requests.append(
                ChatRequest(
                    messages=[{"role": "user", "content": f"request {j} for set {k}"}],
                    tools=tools_of(names),
                    tool_choice="required",
                    sampling=sampling,
                    constrain_tool_names=constrain,
                )
            )
    return requests


def written_names(raw_text: str) -> list[tuple[str, bool]]:
    return [(m.group(1), bool(m.group(2))) for m in NAME_FIELD_RE.finditer(raw_text)]


def test_constrained_names_are_always_the_requests_tools(engine: LocalEngine) -> None:
    requests = required_requests(constrain=True)
    results = engine.chat(requests)
    for request, result in zip(requests, results, strict=True):
        names = [t["function"]["name"] for t in request.tools or []]
        written = written_names(result.raw_text)
        assert written, result.raw_text
        for name, closed in written:
            assert closed and name in names, result.raw_text
        assert re.match(r'<tool_call>\n\{"name": "[^"]+", "arguments":\s*\{', result.raw_text), result.raw_text
        for call in result.message.get("tool_calls") or []:
            assert call["function"]["name"] in names

    # The same requests unconstrained: the random model invents names (so the check above can fail).
    free = engine.chat(required_requests(constrain=False))
    invented = [
        name
        for request, result in zip(requests, free, strict=True)
        for name, _ in written_names(result.raw_text)
        if name not in [t["function"]["name"] for t in request.tools or []]
    ]
    assert len(invented) >= len(requests) // 2


def test_requests_without_tools_take_the_unconstrained_path(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = [{"role": "user", "content": "hello there"}]
    plain = [
        ChatRequest(messages=messages, sampling=SamplingParams(max_tokens=10)),
        ChatRequest(messages=messages, sampling=SamplingParams(max_tokens=10, temperature=0.9, seed=3)),
        ChatRequest(
            messages=messages, tools=tools_of(NAMES), tool_choice="none", sampling=SamplingParams(max_tokens=10)
        ),
        ChatRequest(
            messages=messages,
            tools=tools_of(NAMES),
            tool_choice="required",
            sampling=SamplingParams(max_tokens=10),
            constrain_tool_names=False,
        ),
    ]
    # Constrained neighbours in the batch leave the other rows' tokens as they were.
    with_constrained = engine.chat([*plain, *required_requests(constrain=True)[:2]])
    with_unconstrained = engine.chat([*plain, *required_requests(constrain=False)[:2]])
    n = len(plain)
    assert [r.raw_text for r in with_constrained[:n]] == [r.raw_text for r in with_unconstrained[:n]]
    assert [r.raw_text for r in with_constrained[n:]] != [r.raw_text for r in with_unconstrained[n:]]

    expected = [r.raw_text for r in engine.chat(plain)]

    def no_constraint(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a constraint was created for a request that needs none")

    monkeypatch.setattr(engine_module, "ToolNameConstraint", no_constraint)
    assert [r.raw_text for r in engine.chat(plain)] == expected
