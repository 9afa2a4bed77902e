"""The local engine: batching, padding, stops, sampling, LoRA adapters and shared-prefix reuse.

The registry's tiny random Llama has tiny weights and tied embeddings: greedily it repeats its last input
token whatever the context, which would make "same output" checks vacuous. The tests use a "lively" copy
with larger random weights (still 2 layers, SmolLM2's tokenizer), whose outputs depend on the whole prompt.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from dataflywheel.errors import ConfigError
from dataflywheel.models.engine import (
    GeneratedText,
    GenerationInputError,
    LocalEngine,
    UnknownAdapterError,
    cpu_has_fast_bf16,
    resolve_device,
    resolve_dtype,
)
from dataflywheel.models.registry import ModelLoadError
from dataflywheel.models.types import ChatRequest, SamplingParams

SYSTEM = (
    "<|im_start|>system\nYou are the routing assistant of Northwind Outfitters. Call exactly one tool: "
    "ToProductAdvisor for product questions, ToOrderTracking for orders, ToReturnsDesk for returns and "
    "HandleSmallTalk for anything else. Restate the request as a short, self-contained query.<|im_end|>\n"
)
QUESTIONS = [
    "Where is my order?",
    "Can I return the Alder Grid fleece I bought last week, it is too small and the zipper broke?",
    "hi",
    "Does the Ridgeline 2 tent fit two adults and their packs, and how much does it weigh with the poles?",
    "My refund has not arrived yet.",
]


def chat_prompt(question: str) -> str:
    return f"{SYSTEM}<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


PROMPTS = [chat_prompt(q) for q in QUESTIONS]
GREEDY = SamplingParams(max_tokens=12)


def make_engine(model_dir: str, **kwargs: Any) -> LocalEngine:
    """CPU, float32 (exact comparisons), one torch thread (tiny model; several threads spin against each other
    on a small shared CPU)."""
    return LocalEngine(model_dir, device="cpu", dtype="float32", threads=1, **kwargs)


@pytest.fixture(scope="session")
def lively_dir(tiny_model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """tiny-random-llama with its 2-D weights redrawn at std 0.3 (seed 0), saved with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 2:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    target = tmp_path_factory.mktemp("lively-llama")
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(target)
    return str(target)


@pytest.fixture(scope="session")
def lora_dirs(lively_dir: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two LoRA adapters with random (non-zero) weights, so each changes the outputs differently."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = {}
    for seed, name in enumerate(("alpha", "beta")):
        torch.manual_seed(100 + seed)
        model = AutoModelForCausalLM.from_pretrained(lively_dir)
        config = LoraConfig(
            r=4, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], init_lora_weights=False
        )
        peft_model = get_peft_model(model, config)
        folder = tmp_path_factory.mktemp(f"lora-{name}")
        peft_model.save_pretrained(folder)
        out[name] = str(folder)
    return out


@pytest.fixture(scope="session")
def engine(lively_dir: str) -> LocalEngine:
    """A shared engine without adapters (tests that change its settings restore them)."""
    return make_engine(lively_dir, max_batch_size=8)


@pytest.fixture(scope="session")
def adapter_engine(lively_dir: str, lora_dirs: dict[str, str]) -> LocalEngine:
    return make_engine(lively_dir, adapters=lora_dirs)


def texts(results: list[GeneratedText]) -> list[str]:
    return [r.text for r in results]


def one_at_a_time(engine: LocalEngine, prompts: list[str], sampling: SamplingParams, **kw: Any) -> list[str]:
    return [engine.generate_text([p], sampling, **kw)[0].text for p in prompts]


class NoPrefixReuse:
    def __init__(self, engine: LocalEngine) -> None:
        self.engine = engine

    def __enter__(self) -> None:
        self.saved = self.engine.prefix_reuse
        self.engine.prefix_reuse = False

    def __exit__(self, *exc: object) -> None:
        self.engine.prefix_reuse = self.saved


# ---- batching and padding ----------------------------------------------------------------------------
def test_single_prompt_matches_transformers_generate(engine: LocalEngine) -> None:
    """Our decode loop, unbatched, gives what ``model.generate`` gives greedily."""
    import torch

    tokenizer = engine.tokenizer
    for prompt in (PROMPTS[0], "hello there, friend"):
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = engine._base.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False, eos_token_id=None
            )
        expected = tokenizer.decode(out[0, ids.shape[1] :].tolist())
        with NoPrefixReuse(engine):
            got = engine.generate_text([prompt], GREEDY)[0]
        assert got.text == expected
        assert got.prompt_tokens == ids.shape[1]


def test_batched_equals_one_at_a_time(engine: LocalEngine) -> None:
    prompts = [*PROMPTS, "short", "a much longer plain prompt " * 6]
    with NoPrefixReuse(engine):
        single = one_at_a_time(engine, prompts, GREEDY)
        batched = texts(engine.generate_text(prompts, GREEDY))
    assert batched == single
    assert len(set(single)) > 1, "outputs should depend on the prompt"


def test_left_padding_of_very_different_lengths(engine: LocalEngine) -> None:
    """A 1-token prompt batched with a long one: padding is masked out and positions start at 0."""
    prompts = ["hi", PROMPTS[1] * 3, "ok"]
    with NoPrefixReuse(engine):
        single = one_at_a_time(engine, prompts, GREEDY)
        batched = engine.generate_text(prompts, GREEDY)
    assert texts(batched) == single
    assert batched[0].prompt_tokens == len(engine.tokenizer("hi", add_special_tokens=False)["input_ids"])


def test_max_batch_size_splits_and_keeps_order(lively_dir: str, engine: LocalEngine) -> None:
    small = make_engine(lively_dir, max_batch_size=2, prefix_reuse=False)
    with NoPrefixReuse(engine):
        assert texts(small.generate_text(PROMPTS, GREEDY)) == texts(engine.generate_text(PROMPTS, GREEDY))
    assert small.generate_text([], GREEDY) == []


def test_per_prompt_sampling_params_in_one_batch(engine: LocalEngine) -> None:
    params = [SamplingParams(max_tokens=n) for n in (3, 9, 1, 6, 12)]
    results = engine.generate_text(PROMPTS, params)
    assert [r.completion_tokens for r in results] == [3, 9, 1, 6, 12]
    assert all(r.finish_reason == "length" for r in results)
    full = texts(engine.generate_text(PROMPTS, GREEDY))
    for result, reference in zip(results, full, strict=True):
        assert reference.startswith(result.text)
    with pytest.raises(ValueError, match="sampling"):
        engine.generate_text(PROMPTS, params[:2])


# ---- finish reasons and stops ------------------------------------------------------------------------
def test_max_tokens_gives_length(engine: LocalEngine) -> None:
    result = engine.generate_text([PROMPTS[0]], SamplingParams(max_tokens=5))[0]
    assert result.finish_reason == "length"
    assert result.completion_tokens == 5
    assert result.text


def test_stop_string_trims_and_finishes(engine: LocalEngine) -> None:
    full = engine.generate_text([PROMPTS[3]], SamplingParams(max_tokens=20))[0].text
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    assert stop.strip(), full
    result = engine.generate_text([PROMPTS[3]], SamplingParams(max_tokens=20, stop=["zzz-never", stop]))[0]
    assert result.finish_reason == "stop"
    assert result.text == full[: full.index(stop)]
    assert result.completion_tokens < 20
    # A stop string that never appears changes nothing.
    same = engine.generate_text([PROMPTS[3]], SamplingParams(max_tokens=20, stop=["zzz-never"]))[0]
    assert (same.text, same.finish_reason) == (full, "length")


def test_eos_finishes_with_stop(engine: LocalEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """When a row emits an end-of-sequence token it ends there (EOS counted, not in the text); the other
    rows of the batch go on."""
    import torch

    ids = engine.tokenizer(PROMPTS[2], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        first = int(engine._base(torch.tensor([ids])).logits[0, -1].argmax())
    other = engine.generate_text([PROMPTS[0]], SamplingParams(max_tokens=6))[0].text
    monkeypatch.setattr(engine, "_eos_ids", frozenset({first}))
    ended, going = engine.generate_text([PROMPTS[2], PROMPTS[0]], SamplingParams(max_tokens=6))
    assert (ended.text, ended.finish_reason, ended.completion_tokens) == ("", "stop", 1)
    assert other.startswith(going.text)
    assert going.completion_tokens > 1


def test_max_tokens_zero_context_limit_and_bad_prompts(engine: LocalEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    result = engine.generate_text([PROMPTS[0]], SamplingParams(max_tokens=0))[0]
    assert (result.text, result.completion_tokens, result.finish_reason) == ("", 0, "length")
    n = len(engine.tokenizer(PROMPTS[0], add_special_tokens=False)["input_ids"])
    monkeypatch.setattr(engine, "_max_positions", n + 3)
    result = engine.generate_text([PROMPTS[0]], SamplingParams(max_tokens=10))[0]
    assert (result.completion_tokens, result.finish_reason) == (3, "length")
    with pytest.raises(GenerationInputError, match="context"):
        engine.generate_text([PROMPTS[0] + PROMPTS[0]], GREEDY)
    with pytest.raises(GenerationInputError, match="empty"):
        engine.generate_text([""], GREEDY)


# ---- sampling ----------------------------------------------------------------------------------------
def test_seeded_sampling_is_reproducible(engine: LocalEngine) -> None:
    def sample(seed: int | None, prompts: list[str] = PROMPTS[:3]) -> list[str]:
        params = SamplingParams(max_tokens=12, temperature=1.0, top_p=0.95, seed=seed)
        return texts(engine.generate_text(prompts, params))

    first = sample(7)
    assert sample(7) == first
    assert sample(8) != first
    greedy = texts(engine.generate_text(PROMPTS[:3], GREEDY))
    assert first != greedy
    # A seeded row does not depend on what else is in the batch.
    assert sample(7, PROMPTS[:1]) == first[:1]


def test_tiny_top_p_is_greedy(engine: LocalEngine) -> None:
    params = SamplingParams(max_tokens=12, temperature=0.8, top_p=1e-9)
    assert texts(engine.generate_text(PROMPTS, params)) == texts(engine.generate_text(PROMPTS, GREEDY))


# ---- prefix reuse ------------------------------------------------------------------------------------
def test_prefix_reuse_gives_the_same_greedy_outputs(lively_dir: str) -> None:
    engine = make_engine(lively_dir, min_prefix_tokens=16)
    prompts = [*PROMPTS, "unrelated short prompt"]
    with NoPrefixReuse(engine):
        reference = texts(engine.generate_text(prompts, GREEDY))
        single = one_at_a_time(engine, prompts, GREEDY)
    assert engine.prefix_cache_stats == {"entries": 0, "hits": 0, "misses": 0}

    assert texts(engine.generate_text(prompts, GREEDY)) == reference
    stats = engine.prefix_cache_stats
    assert stats["misses"] == 1 and stats["entries"] == 1  # the shared system prompt, computed once
    # The next call reuses the cached prefix.
    assert texts(engine.generate_text(prompts, GREEDY)) == reference
    assert engine.prefix_cache_stats["hits"] >= 1
    # One at a time: each request reuses the system prompt cached by earlier ones.
    assert one_at_a_time(engine, prompts, GREEDY) == single == reference
    assert engine.prefix_cache_stats["hits"] >= 5


def test_batches_group_rows_by_shared_prefix(engine: LocalEngine) -> None:
    from dataflywheel.models.engine import _Row

    shared = list(range(100, 200))
    rows = [
        *[_Row(i, [*shared, 7, i], GREEDY, 5) for i in range(5)],  # five prompts sharing 101 tokens
        *[_Row(10 + i, [300 + i, *range(150)], GREEDY, 5) for i in range(3)],  # three sharing nothing
    ]
    engine.max_batch_size = 4
    try:
        batches = [sorted(r.index for r in batch) for batch in engine._batches(rows)]
        with NoPrefixReuse(engine):
            by_length = [len(batch) for batch in engine._batches(rows)]
    finally:
        engine.max_batch_size = 8
    assert batches == [[0, 1, 2, 3], [4], [10, 11, 12]]
    assert by_length == [4, 4]


def test_prefix_reuse_one_at_a_time_from_cold(lively_dir: str) -> None:
    engine = make_engine(lively_dir, min_prefix_tokens=16, prefix_cache_size=2)
    with NoPrefixReuse(engine):
        reference = one_at_a_time(engine, PROMPTS, GREEDY)
    assert one_at_a_time(engine, PROMPTS, GREEDY) == reference
    stats = engine.prefix_cache_stats
    assert stats["misses"] == 1  # the first prompt; all later ones share its system prompt
    assert stats["entries"] <= 2


def test_prefix_reuse_with_long_shared_prefix_and_stops(lively_dir: str) -> None:
    """A ~300-token shared prefix, uneven suffixes, per-row stops: reuse changes nothing."""
    engine = make_engine(lively_dir, max_batch_size=3)
    system = SYSTEM * 4
    prompts = [f"{system}<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n" for q in QUESTIONS]
    params = [SamplingParams(max_tokens=n) for n in (10, 4, 10, 7, 10)]
    with NoPrefixReuse(engine):
        reference = engine.generate_text(prompts, params)
    reused = engine.generate_text(prompts, params)
    assert reused == reference
    assert engine.prefix_cache_stats["misses"] + engine.prefix_cache_stats["hits"] >= 2  # two sub-batches


def test_every_prefix_scheme_gives_the_same_outputs(lively_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cascade attention with a packed prefill (the default), cascade with a padded prefill, and the prefix
    copied into every row all match generation without prefix reuse, greedy and seeded."""
    import dataflywheel.models.engine as engine_module

    engine = make_engine(lively_dir, min_prefix_tokens=16)
    assert engine.cascade_attention, "the tiny Llama uses sdpa through the attention interface"
    prompts = [*PROMPTS, PROMPTS[0]]  # a duplicate: a suffix of one token
    params = [
        *[SamplingParams(max_tokens=n, stop=["zzz"]) for n in (12, 5, 12, 9, 12)],
        SamplingParams(max_tokens=12, temperature=0.9, seed=3),
    ]
    with NoPrefixReuse(engine):
        reference = engine.generate_text(prompts, params)

    def run() -> list[GeneratedText]:
        engine.clear_prefix_cache()
        return engine.generate_text(prompts, params)

    assert run() == reference  # cascade, packed
    monkeypatch.setattr(engine_module, "_MAX_PACKED_MASK", 0)
    assert run() == reference  # cascade, padded
    engine.cascade_attention = False
    assert run() == reference  # prefix expanded into each row
    assert engine.prefix_cache_stats["misses"] == 3


# ---- adapters ----------------------------------------------------------------------------------------
def test_adapters_change_outputs_like_single_adapter_models(
    adapter_engine: LocalEngine, lively_dir: str, lora_dirs: dict[str, str], engine: LocalEngine
) -> None:
    assert set(adapter_engine.adapters) == {"alpha", "beta"}
    base = texts(adapter_engine.generate_text(PROMPTS, GREEDY))
    alpha = texts(adapter_engine.generate_text(PROMPTS, GREEDY, adapter="alpha"))
    beta = texts(adapter_engine.generate_text(PROMPTS, GREEDY, adapter="beta"))
    assert base != alpha and base != beta and alpha != beta
    # The same as a model without adapters / with just that one adapter.
    assert base == texts(engine.generate_text(PROMPTS, GREEDY))
    for name, expected in (("alpha", alpha), ("beta", beta)):
        single = make_engine(lively_dir, adapters={name: lora_dirs[name]})
        assert texts(single.generate_text(PROMPTS, GREEDY, adapter=name)) == expected
    # Switching back and forth is stateless.
    assert texts(adapter_engine.generate_text(PROMPTS, GREEDY, adapter="alpha")) == alpha
    assert texts(adapter_engine.generate_text(PROMPTS, GREEDY)) == base


def test_prefix_cache_is_per_adapter(adapter_engine: LocalEngine) -> None:
    adapter_engine.min_prefix_tokens = 16
    try:
        with NoPrefixReuse(adapter_engine):
            expected = {a: texts(adapter_engine.generate_text(PROMPTS, GREEDY, adapter=a)) for a in (None, "beta")}
        adapter_engine.clear_prefix_cache()
        for adapter in (None, "beta", None, "beta"):
            assert texts(adapter_engine.generate_text(PROMPTS, GREEDY, adapter=adapter)) == expected[adapter]
    finally:
        adapter_engine.min_prefix_tokens = 64


def test_unknown_adapter(adapter_engine: LocalEngine, tmp_path: Path) -> None:
    with pytest.raises(UnknownAdapterError, match="gamma"):
        adapter_engine.generate_text(PROMPTS[:1], GREEDY, adapter="gamma")
    with pytest.raises(UnknownAdapterError, match="gamma"):
        adapter_engine.chat([ChatRequest(messages=[{"role": "user", "content": "hi"}], adapter="gamma")])
    with pytest.raises(UnknownAdapterError):
        adapter_engine.unload_adapter("gamma")
    with pytest.raises(ModelLoadError, match=r"adapter_config\.json"):
        adapter_engine.load_adapter("gamma", tmp_path)


def test_load_and_unload_adapters(lively_dir: str, lora_dirs: dict[str, str], engine: LocalEngine) -> None:
    local = make_engine(lively_dir)
    base = texts(local.generate_text(PROMPTS, GREEDY))
    local.load_adapter("a", lora_dirs["alpha"])
    local.load_adapter("b", lora_dirs["beta"])
    alpha = texts(local.generate_text(PROMPTS, GREEDY, adapter="a"))
    local.unload_adapter("a")
    assert set(local.adapters) == {"b"}
    with pytest.raises(UnknownAdapterError):
        local.generate_text(PROMPTS, GREEDY, adapter="a")
    assert texts(local.generate_text(PROMPTS, GREEDY)) == base
    local.unload_adapter("b")
    assert local.adapters == {}
    assert texts(local.generate_text(PROMPTS, GREEDY)) == base
    # Loading again after the last one went (the model is wrapped anew), and replacing a name.
    local.load_adapter("a", lora_dirs["beta"])
    local.load_adapter("a", lora_dirs["alpha"])
    assert texts(local.generate_text(PROMPTS, GREEDY, adapter="a")) == alpha


# ---- chat --------------------------------------------------------------------------------------------
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "ToOrderTracking",
            "description": "Order questions.",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
        },
    }
]


def requests_for(adapters: list[str | None]) -> list[ChatRequest]:
    return [
        ChatRequest(
            messages=[{"role": "system", "content": "Route."}, {"role": "user", "content": QUESTIONS[i % 5]}],
            tools=TOOLS,
            sampling=SamplingParams(max_tokens=8),
            adapter=adapter,
        )
        for i, adapter in enumerate(adapters)
    ]


def test_chat_mixed_adapters_match_separate_calls(adapter_engine: LocalEngine) -> None:
    mixed = requests_for(["alpha", None, "beta", "alpha", None])
    results = adapter_engine.chat(mixed)
    assert len(results) == 5
    codec = adapter_engine.codec
    for request, result in zip(mixed, results, strict=True):
        rendered = codec.render_prompt(request.messages, tools=request.tools)
        alone = adapter_engine.generate_text(
            [rendered.text],
            SamplingParams(max_tokens=8, stop=codec.stop_strings),
            adapter=request.adapter,
        )[0]
        assert result.raw_text == rendered.prefill + alone.text
        assert result.usage.prompt_tokens == alone.prompt_tokens
        assert result.usage.completion_tokens == alone.completion_tokens
        assert result.message["role"] == "assistant"
        assert result.latency_s > 0
        assert result.finish_reason in ("stop", "length", "tool_calls")
    assert len({r.raw_text for r in results}) > 1


class FakeCodec:
    """Reads ``<call>`` anywhere in the output as a tool call; forces a prefill."""

    def __init__(self) -> None:
        self.stop_strings = ["<END>"]

    def render_prompt(self, messages: list[dict[str, Any]], tools: Any = None, tool_choice: Any = None) -> Any:
        from dataflywheel.models.codec import RenderedPrompt

        prefill = "<call>" if tool_choice == "required" else ""
        return RenderedPrompt(text=chat_prompt(messages[-1]["content"]) + prefill, prefill=prefill)

    def parse(self, generated_text: str, tools: Any = None, prefill: str = "") -> dict[str, Any]:
        text = prefill + generated_text
        if "<call>" in text:
            call = {"id": "call_1", "type": "function", "function": {"name": "ToOrderTracking", "arguments": "{}"}}
            return {"role": "assistant", "content": None, "tool_calls": [call]}
        return {"role": "assistant", "content": text}


def test_chat_finish_reasons_and_usage(lively_dir: str) -> None:
    local = make_engine(lively_dir)
    local.codec = FakeCodec()
    requests = [
        ChatRequest(
            messages=[{"role": "user", "content": "Where is my order?"}], sampling=SamplingParams(max_tokens=4)
        ),
        ChatRequest(
            messages=[{"role": "user", "content": "Where is my order?"}],
            tool_choice="required",
            sampling=SamplingParams(max_tokens=4),
        ),
    ]
    plain, forced = local.chat(requests)
    assert plain.finish_reason == "length" and plain.message["content"] == plain.raw_text
    assert plain.usage.completion_tokens == 4 and plain.usage.total_tokens == plain.usage.prompt_tokens + 4
    assert forced.finish_reason == "tool_calls"
    assert forced.raw_text.startswith("<call>")
    assert forced.message["tool_calls"][0]["function"]["name"] == "ToOrderTracking"
    assert local.chat([]) == []


# ---- setup, threads ----------------------------------------------------------------------------------
def test_device_and_dtype_resolution() -> None:
    import torch

    cpu = resolve_device("cpu")
    assert resolve_dtype("auto", cpu) == (torch.bfloat16 if cpu_has_fast_bf16() else torch.float32)
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    assert resolve_dtype("float32", cpu) == torch.float32
    with pytest.raises(ConfigError, match="dtype"):
        resolve_dtype("int3", cpu)
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ConfigError, match="CUDA"):
            resolve_device("cuda")


def test_from_name_and_bad_arguments(tiny_model_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from dataflywheel.settings import load_settings

    # The engine sets torch's (process-wide) thread count: put it back afterwards.
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    settings = load_settings(home=Path(tiny_model_dir).parent.parent)  # where the registry built it
    engine = LocalEngine.from_name("tiny-random-llama", settings, device="cpu", threads=1, max_batch_size=4)
    assert Path(engine.model_dir) == Path(tiny_model_dir)
    assert engine.max_batch_size == 4 and engine.threads == 1
    assert engine.generate_text(["hello"], SamplingParams(max_tokens=3))[0].completion_tokens == 3
    with pytest.raises(ConfigError):
        LocalEngine(engine.model_dir, max_batch_size=0)
    with pytest.raises(ModelLoadError):
        LocalEngine(str(Path(settings.home) / "missing"))


def test_concurrent_callers_get_their_own_results(engine: LocalEngine) -> None:
    expected = {i: engine.generate_text([p], GREEDY)[0].text for i, p in enumerate(PROMPTS)}
    got: dict[int, str] = {}

    def worker(i: int) -> None:
        got[i] = engine.generate_text([PROMPTS[i]], GREEDY)[0].text

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == expected


# ---- a real model --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_smollm2_batching_and_prefix_reuse_match_one_at_a_time(settings: Any) -> None:
    pytest.importorskip("gguf")
    from dataflywheel.models.registry import SMOLLM2

    engine = LocalEngine.from_name(SMOLLM2, settings, device="cpu", dtype="float32")
    codec = engine.codec
    system = {
        "role": "system",
        "content": "You are the customer support assistant of Northwind Outfitters. Route every request "
        "to the right specialist by calling exactly one tool.",
    }
    tools = [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": description,
                "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
            },
        }
        for name, description in (
            ("ToOrderTracking", "Questions about existing orders: status, tracking, delivery."),
            ("ToReturnsDesk", "Returns, exchanges and refunds of bought items."),
            ("ToProductAdvisor", "Questions about products, sizes and store policies."),
        )
    ]
    prompts = [codec.render_prompt([system, {"role": "user", "content": q}], tools=tools).text for q in QUESTIONS[:4]]
    sampling = SamplingParams(max_tokens=16)
    engine.prefix_reuse = False
    reference = texts(engine.generate_text(prompts, sampling))
    assert one_at_a_time(engine, prompts, sampling) == reference
    engine.prefix_reuse = True
    assert texts(engine.generate_text(prompts, sampling)) == reference
    assert engine.prefix_cache_stats["misses"] == 1
    assert one_at_a_time(engine, prompts, sampling) == reference
    assert engine.prefix_cache_stats["hits"] >= 4
