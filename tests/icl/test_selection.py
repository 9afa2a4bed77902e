"""ICL dataset construction: formatting, fitting, injection, uniform and semantic selection, budgets."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from dataflywheel.curation.workload import WorkloadType, tool_name, user_query
from dataflywheel.errors import EmbeddingError
from dataflywheel.icl.embedders import Embedder, LocalEmbedder, OpenAIEmbedder
from dataflywheel.icl.selection import (
    DEFAULT_SYSTEM_MESSAGE,
    GENERIC_GROUP,
    Example,
    PoolItem,
    build_icl_records,
    fit_examples,
    format_example,
    inject_examples,
    prompt_text,
    relevance_coverage,
    select_semantic,
    select_uniform,
    uniform_bins,
)
from dataflywheel.icl.tokens import BUILTIN_MINILM, TokenCounter, load_token_counter
from dataflywheel.settings import ExampleSelection, ICLSettings
from dataflywheel.synth.generator import SynthConfig, generate
from tests.helpers.embedding_server import EmbeddingServer

SYSTEM = "You are the assistant of a web shop. Delegate to the right tool."
TOOLS = [
    {"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": {}}}}
    for n in ("ToOrderStatus", "ToReturnProcessing", "ToProductQA", "HandleOtherTalk")
]


def make_record(
    query: str,
    tool: str | None = None,
    *,
    content: str = "",
    system: str | None = SYSTEM,
    ts: int = 0,
    tools: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system is not None else []
    messages.append({"role": "user", "content": query})
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool:
        message["tool_calls"] = [
            {
                "id": f"call_{ts}",
                "type": "function",
                "function": {"name": tool, "arguments": {"query": query}},
            }
        ]
    return {
        "timestamp": ts,
        "workload_id": "w",
        "client_id": "c",
        "request": {"messages": messages, "tools": TOOLS if tools is None else tools},
        "response": {"choices": [{"message": message}]},
    }


def pool_item(rid: str, record: dict[str, Any]) -> PoolItem:
    return PoolItem(rid, tool_name(record), len(format_example(record)), user_query(record))


class Store:
    """Records by id, remembering every fetch (to check that only chosen records are read)."""

    def __init__(self, records: Mapping[str, dict[str, Any]]) -> None:
        self.records = dict(records)
        self.fetched: list[list[str]] = []

    def __call__(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        self.fetched.append(list(ids))
        return {i: self.records[i] for i in ids if i in self.records}

    @property
    def fetched_ids(self) -> set[str]:
        return {i for batch in self.fetched for i in batch}


def system_content(record: dict[str, Any]) -> str:
    msg = record["request"]["messages"][0]
    assert msg["role"] == "system"
    return str(msg["content"])


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return load_token_counter(BUILTIN_MINILM)


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


@pytest.fixture(scope="module")
def aiva() -> list[tuple[str, dict[str, Any]]]:
    """40 realistic routing records (four tools) from our traffic generator, shaped like the AIVA sample."""
    records = generate(SynthConfig(records=40, seed=3))
    return [(f"aiva-{i:02d}", rec) for i, rec in enumerate(records)]


def ex(rid: str, tokens: int, tool: str = "t") -> Example:
    return Example(rid, tool, f"example {rid}", tokens)


# Formatting --------------------------------------------------------------------------------------------


def test_format_example_exact_and_without_system_prompt() -> None:
    rec = make_record("Where is my order?", "ToOrderStatus", ts=7)
    rec["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = '{"id": "ü1"}'
    text = format_example(rec)
    assert text == (
        "For example, if the conversation looks like this:\n"
        "user: Where is my order?\n\n"
        "\nThen you'll respond with:\n"
        "assistant: \n"
        "Tool calls:\n"
        + json.dumps(
            [{"type": "function", "function": {"name": "ToOrderStatus", "arguments": {"id": "ü1"}}}],
            indent=2,
            ensure_ascii=False,
        )
    )
    assert SYSTEM not in text and "call_7" not in text  # no system prompt, no random call ids


def test_format_example_text_answer_and_multi_turn() -> None:
    rec = make_record("thanks!", content="You're welcome.")
    rec["request"]["messages"][1:1] = [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": None},
    ]
    assert format_example(rec) == (
        "For example, if the conversation looks like this:\n"
        "user: hi\n\nassistant: \n\nuser: thanks!\n\n"
        "\nThen you'll respond with:\nassistant: You're welcome."
    )


def test_format_example_on_real_records(aiva: list[tuple[str, dict[str, Any]]]) -> None:
    for _, rec in aiva:
        text = format_example(rec)
        system = rec["request"]["messages"][0]["content"]
        assert system not in text and "The current user id is" not in text  # the system prompt is left out
        assert f"user: {user_query(rec)}" in text
        assert '"arguments": {' in text  # arguments as a JSON object, not an escaped string


# uniform_bins and fitting ------------------------------------------------------------------------------


def test_uniform_bins() -> None:
    assert uniform_bins(10, 3) == [4, 3, 3]
    assert uniform_bins(2, 5) == [1, 1, 0, 0, 0]
    assert uniform_bins(3, 1) == [3]
    assert uniform_bins(0, 2) == [0, 0]
    assert uniform_bins(3, 0) == []


def test_fit_round_robin_order() -> None:
    groups = {"t1": [ex("r1", 50), ex("r3", 60)], "t2": [ex("r2", 40), ex("r4", 70)]}
    assert [e.record_id for e in fit_examples(groups, 220)] == ["r1", "r2", "r3", "r4"]


@pytest.mark.parametrize(("budget", "expected"), [(0, 0), (50, 0), (100, 1), (300, 3)])
def test_fit_budget_counts(budget: int, expected: int) -> None:
    groups = {"t1": [ex("a", 80), ex("b", 120)], "t2": [ex("c", 90)]}
    assert len(fit_examples(groups, budget)) == expected


def test_fit_skips_an_example_that_does_not_fit() -> None:
    # The blueprint stopped at the 100-token example and injected nothing; the short ones fit.
    groups = {"t1": [ex("long", 100), ex("short1", 10)], "t2": [ex("short2", 20)]}
    assert [e.record_id for e in fit_examples(groups, 50)] == ["short2", "short1"]
    # Separators are charged per example.
    assert [e.record_id for e in fit_examples(groups, 31, separator_tokens=1)] == ["short2"]
    assert fit_examples({}, 100) == []


# Injection ---------------------------------------------------------------------------------------------


def test_inject_with_system_message_without_mutation() -> None:
    rec = make_record("Where is my order?", "ToOrderStatus")
    before = copy.deepcopy(rec)
    out = inject_examples(rec, [ex("a", 1), ex("b", 1)])
    assert rec == before  # the input is untouched
    assert system_content(out) == (DEFAULT_SYSTEM_MESSAGE + "\n\nexample a\n\nexample b\n\n" + SYSTEM)
    assert out["request"]["messages"][1:] == rec["request"]["messages"][1:]
    assert out["request"]["tools"] is rec["request"]["tools"]  # unchanged parts are shared, not copied
    assert out["response"] is rec["response"]


def test_inject_without_system_message() -> None:
    rec = make_record("hi", system=None, content="hello")
    before = copy.deepcopy(rec)
    out = inject_examples(rec, [ex("a", 1)])
    assert rec == before
    assert out["request"]["messages"][0] == {
        "role": "system",
        "content": DEFAULT_SYSTEM_MESSAGE + "\n\nexample a",
    }
    assert out["request"]["messages"][1:] == rec["request"]["messages"]
    assert inject_examples(rec, []) == rec


def test_inject_into_content_parts() -> None:
    rec = make_record("hi")
    rec["request"]["messages"][0]["content"] = [{"type": "text", "text": SYSTEM}]
    before = copy.deepcopy(rec)
    out = inject_examples(rec, [ex("a", 1)])
    assert rec == before
    parts = out["request"]["messages"][0]["content"]
    assert parts[0]["text"].startswith(DEFAULT_SYSTEM_MESSAGE) and parts[1] == {
        "type": "text",
        "text": SYSTEM,
    }


# Uniform selection -------------------------------------------------------------------------------------


def _split(aiva: list[tuple[str, dict[str, Any]]]) -> tuple[list[tuple[str, dict[str, Any]]], Store]:
    eval_records = aiva[:5]
    train = dict(aiva[5:])
    return eval_records, Store(train)


@pytest.mark.parametrize("max_examples", [1, 3])
def test_uniform_injects_exactly_max_examples(
    aiva: list[tuple[str, dict[str, Any]]], counter: TokenCounter, max_examples: int
) -> None:
    eval_records, store = _split(aiva)
    pool = [pool_item(rid, rec) for rid, rec in store.records.items()]
    settings = ICLSettings(max_examples=max_examples, min_examples=1)
    out, report = build_icl_records(
        eval_records, pool, store, settings=settings, workload_type=WorkloadType.TOOL_CALLING, counter=counter
    )
    assert len(out) == len(eval_records)
    for (_, original), new in zip(eval_records, out, strict=True):
        content = system_content(new)
        assert content.count("For example") == max_examples
        assert content.endswith(system_content(original))
    # One example per tool bin: bins go to the tool names in sorted order.
    tools = sorted({p.tool for p in pool})
    assert len(tools) == 4
    expected = {t: len(eval_records) for t in tools[:max_examples]}
    assert report.examples_per_tool == expected
    assert report.examples_per_record_min == report.examples_per_record_max == max_examples
    assert report.records_below_min_examples == 0 and report.records_without_budget == 0
    assert report.selection == "uniform_distribution"


def test_uniform_keeps_fewest_tokens_per_tool(aiva: list[tuple[str, dict[str, Any]]], counter: TokenCounter) -> None:
    _, store = _split(aiva)
    pool = [pool_item(rid, rec) for rid, rec in store.records.items()]
    groups = select_uniform(pool, store, max_examples=8, workload_type=WorkloadType.TOOL_CALLING, counter=counter)
    assert list(groups) == list(dict.fromkeys(p.tool for p in pool))  # order of first appearance
    for tool, examples in groups.items():
        assert len(examples) == 2  # uniform_bins(8, 4)
        all_tokens = sorted(counter.count(format_example(store.records[p.record_id])) for p in pool if p.tool == tool)
        assert [e.tokens for e in examples] == all_tokens[:2]
        assert all(e.tool == tool and e.text.startswith("For example") for e in examples)
    # Pre-selection: at most 4 * 2 candidates per tool were fetched.
    assert len(store.fetched) == 1 and len(store.fetched[0]) <= 8 * 4


def test_uniform_generic(counter: TokenCounter) -> None:
    records = {f"g{i}": make_record("q" + " word" * i, content="a" * (i + 1), tools=[]) for i in range(10)}
    store = Store(records)
    pool = [pool_item(rid, rec) for rid, rec in records.items()]
    groups = select_uniform(pool, store, max_examples=3, workload_type=WorkloadType.GENERIC, counter=counter)
    assert list(groups) == [GENERIC_GROUP]
    assert [e.record_id for e in groups[GENERIC_GROUP]] == ["g0", "g1", "g2"]
    assert store.fetched_ids <= {f"g{i}" for i in range(10)} and len(store.fetched_ids) == 10
    assert select_uniform(pool, store, max_examples=0, workload_type=WorkloadType.GENERIC, counter=counter) == {}


# Semantic selection ------------------------------------------------------------------------------------

TRAIN_QUERIES = {
    "ToOrderStatus": [
        "Where is my order? It still hasn't arrived.",
        "Can you track my package for order 1234?",
        "When will my recent purchase be delivered?",
    ],
    "ToReturnProcessing": [
        "I want to return the socks I bought last week.",
        "How do I get a refund for a damaged jacket?",
        "Please start a return for my broken headphones.",
    ],
    "ToProductQA": [
        "Does the RTX hoodie come in size XL?",
        "What is the warranty on the Jetson developer kit?",
    ],
    "HandleOtherTalk": [
        "Tell me a joke about cats.",
        "What's the weather like in Paris today?",
    ],
}


@pytest.fixture
def semantic_store() -> tuple[Store, list[PoolItem]]:
    records: dict[str, dict[str, Any]] = {}
    n = 0
    for tool, queries in TRAIN_QUERIES.items():
        for q in queries:
            records[f"tr{n}"] = make_record(q, tool, ts=n)
            n += 1
    return Store(records), [pool_item(rid, rec) for rid, rec in records.items()]


def _ids_by_query(store: Store) -> dict[str, str]:
    return {str(user_query(rec)): rid for rid, rec in store.records.items()}


def test_semantic_picks_relevant_examples(
    semantic_store: tuple[Store, list[PoolItem]], counter: TokenCounter, embedder: Embedder
) -> None:
    store, pool = semantic_store
    evals = [
        ("e0", make_record("My package has not been delivered yet, where is it?", "ToOrderStatus")),
        ("e1", make_record("I'd like my money back for these shoes, they don't fit.", "ToReturnProcessing")),
    ]
    results = select_semantic(
        evals,
        pool,
        store,
        max_examples=2,
        relevance_ratio=1.0,  # relevance only
        workload_type=WorkloadType.TOOL_CALLING,
        counter=counter,
        embedder=embedder,
    )
    assert list(results[0]) == ["ToOrderStatus"] and len(results[0]["ToOrderStatus"]) == 2
    assert list(results[1]) == ["ToReturnProcessing"] and len(results[1]["ToReturnProcessing"]) == 2
    # Only the chosen records were fetched.
    chosen = {e.record_id for r in results for g in r.values() for e in g}
    assert store.fetched_ids == chosen
    assert all(e.tokens == counter.count(e.text) for r in results for g in r.values() for e in g)


def test_semantic_covers_an_uncovered_tool(
    semantic_store: tuple[Store, list[PoolItem]], counter: TokenCounter, embedder: Embedder
) -> None:
    store, pool = semantic_store
    evals = [("e0", make_record("My package has not been delivered yet, where is it?", "ToOrderStatus"))]
    [groups] = select_semantic(
        evals,
        pool,
        store,
        max_examples=3,
        relevance_ratio=0.7,  # int(3 * 0.7) = 2 by relevance, 1 for coverage
        workload_type=WorkloadType.TOOL_CALLING,
        counter=counter,
        embedder=embedder,
    )
    assert len(groups["ToOrderStatus"]) == 2
    assert sum(len(g) for g in groups.values()) == 3
    assert len(groups) == 2  # the coverage slot went to another tool, not a third order example


def test_semantic_never_uses_the_record_itself_or_its_query(
    semantic_store: tuple[Store, list[PoolItem]], counter: TokenCounter, embedder: Embedder
) -> None:
    store, pool = semantic_store
    ids = _ids_by_query(store)
    own_query = TRAIN_QUERIES["ToOrderStatus"][0]
    own_id = ids[own_query]
    # A copy of the same query under another id (and with different spacing and case) must not leak.
    dup = make_record("  where is my ORDER?  It still hasn't arrived. ", "ToOrderStatus", ts=99)
    store.records["dup"] = dup
    pool = [*pool, pool_item("dup", dup)]
    evals = [(own_id, store.records[own_id])]
    [groups] = select_semantic(
        evals,
        pool,
        store,
        max_examples=3,
        relevance_ratio=1.0,
        workload_type=WorkloadType.TOOL_CALLING,
        counter=counter,
        embedder=embedder,
    )
    used = {e.record_id for g in groups.values() for e in g}
    assert own_id not in used and "dup" not in used
    assert len(used) == 3
    assert {ids[TRAIN_QUERIES["ToOrderStatus"][1]], ids[TRAIN_QUERIES["ToOrderStatus"][2]]} <= used


def test_semantic_generic_and_missing_query(counter: TokenCounter, embedder: Embedder) -> None:
    records = {
        "g0": make_record("How do I bake sourdough bread?", content="Use a starter.", tools=[]),
        "g1": make_record("What temperature for baking bread?", content="230 C.", tools=[]),
        "g2": make_record("Explain quantum entanglement.", content="Two particles...", tools=[]),
        "g3": make_record("", content="nothing asked", tools=[]),  # no user query: not searchable
    }
    store = Store(records)
    pool = [pool_item(rid, rec) for rid, rec in records.items()]
    assert pool[3].query is None
    evals = [
        ("e0", make_record("Tips for baking bread at home?", content="x", tools=[])),
        ("e1", make_record("", system=None, content="x", tools=[])),
    ]
    results = select_semantic(
        evals,
        pool,
        store,
        max_examples=2,
        relevance_ratio=0.7,
        workload_type=WorkloadType.GENERIC,
        counter=counter,
        embedder=embedder,
    )
    assert list(results[0]) == [GENERIC_GROUP]
    assert {e.record_id for e in results[0][GENERIC_GROUP]} == {"g0", "g1"}
    assert results[1] == {}


def _item(rid: str, tool: str) -> PoolItem:
    return PoolItem(rid, tool, 1, rid)


def test_relevance_coverage_rule() -> None:
    cands = [
        _item("1", "a"),
        _item("2", "a"),
        _item("3", "a"),
        _item("4", "b"),
        _item("5", "c"),
        _item("6", "b"),
    ]
    pick = lambda n, r: [c.record_id for c in relevance_coverage(cands, n, r)]  # noqa: E731
    assert pick(3, 0.7) == ["1", "2", "4"]  # 2 by relevance, then the best of the uncovered tool b
    assert pick(4, 0.5) == ["1", "2", "4", "5"]  # b and c covered before more a
    assert pick(5, 0.4) == ["1", "2", "4", "5", "3"]  # leftover slot: best unused
    assert pick(3, 1.0) == ["1", "2", "3"]  # coverage disabled
    only_a = cands[:3]
    assert [c.record_id for c in relevance_coverage(only_a, 3, 0.3)] == ["1", "2", "3"]


# build_icl_records: budgets, min_examples, reporting ---------------------------------------------------


def test_semantic_build_respects_exact_budget(
    semantic_store: tuple[Store, list[PoolItem]], counter: TokenCounter, embedder: Embedder
) -> None:
    store, pool = semantic_store
    evals = [(f"e{i}", make_record(q, "ToOrderStatus")) for i, q in enumerate(["where is my parcel", "refund"])]
    base = counter.count(prompt_text(evals[0][1]))
    prefix = counter.count(DEFAULT_SYSTEM_MESSAGE + "\n\n\n\n")
    sizes = [counter.count(format_example(r)) for r in store.records.values()]
    assert max(sizes) + 10 < 2 * min(sizes)
    # Room for exactly one example (any one, not two): the limit must hold exactly after injection.
    settings = ICLSettings(
        max_context_length=base + 40 + prefix + max(sizes) + 10,
        reserved_tokens=40,
        max_examples=3,
        min_examples=2,
        example_selection=ExampleSelection.SEMANTIC_SIMILARITY,
    )
    calls: list[int] = []

    def factory() -> Embedder:
        calls.append(1)
        return embedder

    out, report = build_icl_records(
        evals,
        pool,
        store,
        settings=settings,
        workload_type=WorkloadType.TOOL_CALLING,
        counter=counter,
        embedder_factory=factory,
    )
    assert calls == [1]
    limit = settings.max_context_length - settings.reserved_tokens
    for new in out:
        assert counter.count(prompt_text(new)) <= limit
    assert report.examples_per_record_min == report.examples_per_record_max == 1
    assert report.records_below_min_examples == 2
    assert report.below_min_examples_ids == ["e0", "e1"]
    assert any("min_examples" in w for w in report.warnings)
    assert report.embedding_seconds > 0
    d = report.to_dict()
    assert d["selection"] == "semantic_similarity" and d["records"] == 2


def test_record_without_budget_is_unchanged(aiva: list[tuple[str, dict[str, Any]]], counter: TokenCounter) -> None:
    eval_records, store = _split(aiva)
    pool = [pool_item(rid, rec) for rid, rec in store.records.items()]
    huge = make_record("tell me everything " * 800, "HandleOtherTalk")
    evals = [*eval_records[:2], ("huge", huge)]
    settings = ICLSettings(max_context_length=2048, reserved_tokens=512, max_examples=2, min_examples=0)
    out, report = build_icl_records(
        evals, pool, store, settings=settings, workload_type=WorkloadType.TOOL_CALLING, counter=counter
    )
    assert out[2] == huge and out[2] is not huge
    assert system_content(out[0]).count("For example") == 2
    assert report.records_without_budget == 1
    assert report.records_below_min_examples == 0  # min_examples 0: nothing to warn about
    assert report.examples_per_record_min == 0 and report.examples_per_record_max == 2
    assert report.example_tokens_mean > 0 and report.example_ids_sample


def test_empty_pool_leaves_records_unchanged(aiva: list[tuple[str, dict[str, Any]]], counter: TokenCounter) -> None:
    def factory() -> Embedder:
        raise AssertionError("no embedder is needed without a pool")

    evals = aiva[:3]
    before = copy.deepcopy(evals)
    for selection in ExampleSelection:
        out, report = build_icl_records(
            evals,
            [],
            Store({}),
            settings=ICLSettings(example_selection=selection),
            workload_type=WorkloadType.TOOL_CALLING,
            counter=counter,
            embedder_factory=factory,
        )
        assert out == [rec for _, rec in evals]
        assert report.records_below_min_examples == 3
        assert any("no training records" in w for w in report.warnings)
    assert evals == before
    out, report = build_icl_records(
        [], [], Store({}), settings=ICLSettings(), workload_type=WorkloadType.GENERIC, counter=counter
    )
    assert out == [] and report.records == 0


def test_embedding_failure_is_raised_not_swallowed(
    semantic_store: tuple[Store, list[PoolItem]], counter: TokenCounter
) -> None:
    store, pool = semantic_store
    with EmbeddingServer(embed=lambda texts: np.zeros((len(texts), 4)), fail_first=100) as srv:
        settings = ICLSettings(example_selection=ExampleSelection.SEMANTIC_SIMILARITY)
        with pytest.raises(EmbeddingError, match="500"):
            build_icl_records(
                [("e0", make_record("where is my order", "ToOrderStatus"))],
                pool,
                store,
                settings=settings,
                workload_type=WorkloadType.TOOL_CALLING,
                counter=counter,
                embedder_factory=lambda: OpenAIEmbedder(srv.base_url, "m", sleep=lambda _: None),
            )
