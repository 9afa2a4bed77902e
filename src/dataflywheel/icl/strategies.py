"""Choosing a record's examples from the pool: :func:`select_uniform` (the shortest examples spread over the
tools) and :func:`select_semantic` (the pool's nearest neighbours of the record's query, with tool coverage
for tool calling: :func:`relevance_coverage`). Only the chosen candidates are fetched and tokenized.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Mapping, Sequence

from dataflywheel.curation.workload import WorkloadType, user_query
from dataflywheel.icl.embedders import Embedder, top_k_cosine
from dataflywheel.icl.examples import GENERIC_GROUP, Example, Fetch, PoolItem, format_example, uniform_bins
from dataflywheel.icl.tokens import TokenCounter
from dataflywheel.records.jsonvalue import JsonObject

log = logging.getLogger(__name__)

UNIFORM_PRESELECT_FACTOR = 4
"""Uniform selection tokenizes the ``4 * slots`` shortest candidates (by characters) of each tool."""
SEMANTIC_TOOL_CANDIDATES_FACTOR = 5
"""Tool calling searches ``max_examples * 5`` neighbours, as the blueprint does, for tool coverage."""


def _group_by_tool(pool: Sequence[PoolItem]) -> dict[str, list[PoolItem]]:
    groups: dict[str, list[PoolItem]] = {}
    for item in pool:
        groups.setdefault(item.tool, []).append(item)
    return groups


def _materialize(items: Sequence[PoolItem], fetch: Fetch, counter: TokenCounter) -> dict[str, Example]:
    """Fetch, format and count the given items (each id once); ids the store lacks are left out."""
    unique: dict[str, PoolItem] = {}
    for item in items:
        unique.setdefault(item.record_id, item)
    if not unique:
        return {}
    records = fetch(list(unique))
    found = [(item, records[rid]) for rid, item in unique.items() if rid in records]
    missing = len(unique) - len(found)
    if missing:
        log.warning("ICL: %d example record(s) could not be fetched and were skipped", missing)
    texts = [format_example(rec) for _, rec in found]
    counts = counter.count_many(texts)
    return {
        item.record_id: Example(item.record_id, item.tool, text, tokens)
        for (item, _), text, tokens in zip(found, texts, counts, strict=True)
    }


def _fewest_tokens(items: Sequence[PoolItem], slots: int, materialized: Mapping[str, Example]) -> list[Example]:
    examples = [materialized[i.record_id] for i in items if i.record_id in materialized]
    examples.sort(key=lambda e: (e.tokens, e.record_id))
    return examples[:slots]


def _shortest(items: Sequence[PoolItem], n: int) -> list[PoolItem]:
    return heapq.nsmallest(n, items, key=lambda i: (i.size, i.record_id))


def select_uniform(
    pool: Sequence[PoolItem],
    fetch: Fetch,
    *,
    max_examples: int,
    workload_type: WorkloadType,
    counter: TokenCounter,
) -> dict[str, list[Example]]:
    """The blueprint's uniform_distribution: the same, shortest examples for every eval record.

    Tool calling: each tool (class, ``no_tool`` included) gets ``uniform_bins(max_examples, n_tools)``
    slots, assigned over the tool names sorted so the split does not depend on log order; each tool
    keeps the examples with the fewest tokens. Generic: the ``max_examples`` shortest overall, under
    ``"generic_examples"``. Groups come in order of first appearance in the pool, each sorted by tokens.

    Only the ``4 * slots`` shortest candidates by ``PoolItem.size`` are fetched and tokenized: the
    character count ranks examples nearly as token counts do, and this bounds the work to a few
    records per tool however large the training set is.
    """
    if max_examples <= 0 or not pool:
        return {}
    groups = _group_by_tool(pool)
    if workload_type is WorkloadType.TOOL_CALLING:
        bins = dict(zip(sorted(groups), uniform_bins(max_examples, len(groups)), strict=True))
        shortlist = {
            tool: _shortest(items, UNIFORM_PRESELECT_FACTOR * bins[tool])
            for tool, items in groups.items()
            if bins[tool] > 0
        }
        materialized = _materialize([i for s in shortlist.values() for i in s], fetch, counter)
        result = {tool: _fewest_tokens(items, bins[tool], materialized) for tool, items in shortlist.items()}
        return {tool: examples for tool, examples in result.items() if examples}
    shortlist_all = _shortest(pool, UNIFORM_PRESELECT_FACTOR * max_examples)
    materialized = _materialize(shortlist_all, fetch, counter)
    chosen = _fewest_tokens(shortlist_all, max_examples, materialized)
    return {GENERIC_GROUP: chosen} if chosen else {}


def _query_key(text: str) -> str:
    """Queries equal up to case and whitespace are the same query."""
    return " ".join(text.split()).casefold()


def relevance_coverage(candidates: Sequence[PoolItem], max_examples: int, relevance_ratio: float) -> list[PoolItem]:
    """The blueprint's relevance-coverage choice among candidates sorted by similarity, best first.

    The first ``int(max_examples * relevance_ratio)`` candidates are taken for relevance. The other
    slots go first to the best candidate of each tool not yet covered (most similar tool first), then
    to the best unused candidates. The result keeps similarity order within each phase.
    """
    relevance_size = min(int(max_examples * relevance_ratio), max_examples)
    coverage_size = max_examples - relevance_size
    selected = list(candidates[:relevance_size])
    remaining = list(candidates[relevance_size:])
    covered = {c.tool for c in selected}
    uncovered = {c.tool for c in remaining} - covered
    if not uncovered:
        return selected + remaining[:coverage_size]
    added: list[PoolItem] = []
    taken: set[int] = set()
    for pos, cand in enumerate(remaining):
        if len(added) >= coverage_size:
            break
        if cand.tool in uncovered and cand.tool not in covered:
            added.append(cand)
            taken.add(pos)
            covered.add(cand.tool)
    for pos, cand in enumerate(remaining):
        if len(added) >= coverage_size:
            break
        if pos not in taken:
            added.append(cand)
    return selected + added


def select_semantic(
    eval_records: Sequence[tuple[str, JsonObject]],
    pool: Sequence[PoolItem],
    fetch: Fetch,
    *,
    max_examples: int,
    relevance_ratio: float,
    workload_type: WorkloadType,
    counter: TokenCounter,
    embedder: Embedder,
) -> list[dict[str, list[Example]]]:
    """The blueprint's semantic_similarity: per eval record, the pool records with the most similar
    last user query, grouped by tool (or under ``"generic_examples"``).

    Tool calling searches ``max_examples * 5`` neighbours and applies :func:`relevance_coverage`;
    generic takes the ``max_examples`` nearest. Pool items without a query are not searchable; an eval
    record without a query gets no examples; a candidate with the eval record's id or the same query
    (up to case and whitespace) is never used. Only the chosen records are fetched.

    Examples stay in similarity order, not sorted by tokens (the blueprint's docstring claims a token
    sort its code never does): the most similar example is the most useful one, so it should be the
    first to claim the budget; :func:`fit_examples` skips, rather than stops at, one that is too long.
    """
    empty: list[dict[str, list[Example]]] = [{} for _ in eval_records]
    if max_examples <= 0:
        return empty
    # One representative per distinct query: duplicates would fill the slots with the same example.
    reps: dict[str, PoolItem] = {}
    for item in pool:
        if item.query:
            reps.setdefault(_query_key(item.query), item)
    if not reps:
        return empty
    corpus_items = list(reps.values())
    eval_queries = [user_query(rec) for _, rec in eval_records]
    eval_keys = [_query_key(q) if q else None for q in eval_queries]
    distinct_eval: dict[str, str] = {}
    for q, key in zip(eval_queries, eval_keys, strict=True):
        if q and key is not None:
            distinct_eval.setdefault(key, q)

    corpus_vectors = embedder.embed([i.query or "" for i in corpus_items])
    if not distinct_eval:
        return empty
    eval_vectors = embedder.embed(list(distinct_eval.values()))

    tool_calling = workload_type is WorkloadType.TOOL_CALLING
    k = max_examples * SEMANTIC_TOOL_CANDIDATES_FACTOR if tool_calling else max_examples
    # One more neighbour than needed: the eval record's own query may be in the pool.
    hits, _ = top_k_cosine(eval_vectors, corpus_vectors, k + 1)
    row_of = {key: row for row, key in enumerate(distinct_eval)}

    choices: list[list[PoolItem]] = []
    for (rid, _), key in zip(eval_records, eval_keys, strict=True):
        if key is None:
            choices.append([])
            continue
        candidates = [
            corpus_items[j]
            for j in hits[row_of[key]]
            if corpus_items[j].record_id != rid and _query_key(corpus_items[j].query or "") != key
        ][:k]
        if tool_calling:
            choices.append(relevance_coverage(candidates, max_examples, relevance_ratio))
        else:
            choices.append(candidates[:max_examples])

    materialized = _materialize([i for chosen in choices for i in chosen], fetch, counter)
    results: list[dict[str, list[Example]]] = []
    for chosen in choices:
        groups: dict[str, list[Example]] = {}
        for item in chosen:
            ex = materialized.get(item.record_id)
            if ex is not None:
                groups.setdefault(ex.tool if tool_calling else GENERIC_GROUP, []).append(ex)
        results.append(groups)
    return results
