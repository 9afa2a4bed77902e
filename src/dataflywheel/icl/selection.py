"""In-context-learning (ICL) dataset construction: few-shot examples injected into the system message.

The ICL eval measures how far prompt engineering alone gets: each eval record gets a few training
records, formatted as "if the conversation looks like this ... then you'll respond with ...", prepended
to its system message. The algorithms follow NVIDIA's Data Flywheel Blueprint
(``src/lib/flywheel/icl_selection.py``), with these quirks fixed:

* **Exact token budgets.** The blueprint estimates tokens with tiktoken ``cl100k_base`` plus a 20 %
  buffer; here every count is the configured tokenizer's (:mod:`dataflywheel.icl.tokens`), and
  after injection the whole prompt is counted again, dropping examples until it really fits.
* **No repeated system prompt.** The blueprint's examples include the example record's system
  message, so a 200+ token system prompt is repeated in every example (on top of the eval record's
  own). :func:`format_example` leaves system messages out, and tool-call ids (random strings) too.
* **Fitting skips, it does not stop.** The blueprint's round-robin stops at the first example that
  does not fit, so one long example blocks all the shorter ones after it; :func:`fit_examples` skips it.
* **min_examples is honoured.** The blueprint reads it and never uses it; here records that get fewer
  examples are counted in the :class:`ICLReport` and warned about.
* **No silent embedding failure.** An embedding outage raises instead of yielding an ICL dataset
  without examples; an eval record never gets itself (or an identical query) as an example; duplicate
  queries in the pool are embedded and offered once.
* **Memory-bounded uniform selection.** Only the shortest candidates (by a character-count proxy) are
  fetched and tokenized, instead of formatting and counting the whole training set.

Record access goes through a ``fetch`` callable (ids to records), so the pool can be a list of small
:class:`PoolItem` descriptors while the records stay in the log store.
"""

from __future__ import annotations

import copy
import heapq
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

from dataflywheel.curation.workload import (
    WorkloadType,
    message_text,
    response_message,
    response_tool_calls,
    user_query,
)
from dataflywheel.icl.embedders import Embedder, make_embedder, top_k_cosine
from dataflywheel.icl.tokens import TokenCounter
from dataflywheel.records.toolcalls import parse_arguments
from dataflywheel.settings import ExampleSelection, ICLSettings

log = logging.getLogger(__name__)

DEFAULT_SYSTEM_MESSAGE = (
    "You are a helpful assistant that can answer questions and help with tasks.\n"
    "Here are some examples of how you should respond to different types of requests:"
)
"""The blueprint's prefix of the injected examples (kept verbatim so ICL results stay comparable)."""

GENERIC_GROUP = "generic_examples"
EXAMPLE_SEPARATOR = "\n\n"
UNIFORM_PRESELECT_FACTOR = 4
"""Uniform selection tokenizes the ``4 * slots`` shortest candidates (by characters) of each tool."""
SEMANTIC_TOOL_CANDIDATES_FACTOR = 5
"""Tool calling searches ``max_examples * 5`` neighbours, as the blueprint does, for tool coverage."""
SAMPLE_IDS = 20

_SYSTEM_ROLES = frozenset({"system", "developer"})

Fetch = Callable[[Sequence[str]], Mapping[str, dict[str, Any]]]
"""Returns the records of the given ids (missing ids are simply absent from the mapping)."""


@dataclass(frozen=True)
class Example:
    """A formatted example ready to inject; ``tokens`` is its exact count with the ICL tokenizer."""

    record_id: str
    tool: str
    text: str
    tokens: int


class PoolItem(NamedTuple):
    """A candidate example described without its record (which stays in the store until chosen).

    ``size`` is ``len(format_example(record))``, computed by the caller: a cheap proxy used to
    pre-select the shortest candidates before exact token counting. ``query`` is the last user
    message (None: the record cannot be found by semantic search).
    """

    record_id: str
    tool: str
    size: int
    query: str | None


# Formatting --------------------------------------------------------------------------------------------


def _request_messages(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    request = record.get("request")
    messages = request.get("messages") if isinstance(request, dict) else None
    if not isinstance(messages, list):
        return []
    return [m for m in messages if isinstance(m, dict)]


def _clean_tool_calls(calls: Sequence[Any]) -> list[dict[str, Any]]:
    """Tool calls as the model should produce them: type + function name + arguments (as an object).

    Call ids are dropped: they are random strings that cost tokens and teach nothing.
    """
    out: list[dict[str, Any]] = []
    for call in calls:
        if not isinstance(call, dict):
            continue
        fn = call.get("function")
        if not isinstance(fn, dict):
            fn = {}
        out.append(
            {
                "type": call.get("type") or "function",
                "function": {"name": fn.get("name"), "arguments": parse_arguments(fn.get("arguments"))},
            }
        )
    return out


def _dumps(value: Any, indent: int | None = None) -> str:
    # ensure_ascii=False: a non-ASCII character costs one or two tokens, its \uXXXX escape six or more.
    return json.dumps(value, indent=indent, ensure_ascii=False)


def format_example(record: Mapping[str, Any]) -> str:
    """One few-shot example: the record's conversation (system messages left out) and its answer.

    ::

        For example, if the conversation looks like this:
        user: ...

        Then you'll respond with:
        assistant: ...
        Tool calls:
        [ ... ]
    """
    request_part = "".join(
        f"{m.get('role', 'user')}: {message_text(m.get('content'))}\n\n"
        for m in _request_messages(record)
        if m.get("role") not in _SYSTEM_ROLES
    )
    msg = response_message(dict(record)) or {}
    response_part = f"assistant: {message_text(msg.get('content'))}"
    calls = response_tool_calls(dict(record))
    if calls:
        response_part += "\nTool calls:\n" + _dumps(_clean_tool_calls(calls), indent=2)
    return (
        "For example, if the conversation looks like this:\n"
        + request_part
        + "\nThen you'll respond with:\n"
        + response_part
    )


def prompt_text(record: Mapping[str, Any]) -> str:
    """The text of what the model reads for a record: every request message (with any tool calls) and
    the JSON of the tool definitions. Counted to know how much room is left for examples."""
    parts: list[str] = []
    for m in _request_messages(record):
        parts.append(f"{m.get('role', '')}: {message_text(m.get('content'))}")
        calls = m.get("tool_calls")
        if isinstance(calls, list) and calls:
            parts.append(_dumps(_clean_tool_calls(calls)))
    request = record.get("request")
    tools = request.get("tools") if isinstance(request, dict) else None
    if tools:
        parts.append(_dumps(tools))
    return "\n\n".join(parts)


# Fitting and injection ---------------------------------------------------------------------------------


def uniform_bins(n: int, k: int) -> list[int]:
    """``n`` slots split over ``k`` bins as evenly as possible, the first ``n % k`` bins one larger.

    ``uniform_bins(10, 3) == [4, 3, 3]``; ``uniform_bins(2, 5) == [1, 1, 0, 0, 0]``.
    """
    if k <= 0:
        return []
    base, extra = divmod(max(n, 0), k)
    return [base + (1 if i < extra else 0) for i in range(k)]


def fit_examples(
    groups: Mapping[str, Sequence[Example]], available: int, *, separator_tokens: int = 0
) -> list[Example]:
    """Examples taken round-robin over the groups (in their order) while they fit in ``available``.

    An example that does not fit is skipped and the next ones are still tried (the blueprint stopped
    at the first one, so one long example blocked every shorter one after it). ``separator_tokens``
    is charged per example for the separator that joins it to the others.
    """
    if available <= 0:
        return []
    queues = [list(g) for g in groups.values()]
    rounds = max((len(q) for q in queues), default=0)
    chosen: list[Example] = []
    used = 0
    for i in range(rounds):
        for queue in queues:
            if i >= len(queue):
                continue
            cost = queue[i].tokens + separator_tokens
            if used + cost <= available:
                chosen.append(queue[i])
                used += cost
    return chosen


def inject_examples(record: Mapping[str, Any], examples: Sequence[Example]) -> dict[str, Any]:
    """A new record whose system message starts with the examples; ``record`` is never modified.

    Only what changes is copied: the record, its request, the message list and the system message
    are new objects; everything else is shared with the input. With a system message its content
    becomes ``prefix + examples + original``; without one, a system message ``prefix + examples`` is
    inserted first. With no examples the record is returned as a shallow copy, unchanged.
    """
    out = dict(record)
    if not examples:
        return out
    block = DEFAULT_SYSTEM_MESSAGE + EXAMPLE_SEPARATOR + EXAMPLE_SEPARATOR.join(e.text for e in examples)
    request = dict(record.get("request") or {})
    messages = list(request.get("messages") or [])
    for i, msg in enumerate(messages):
        if isinstance(msg, dict) and msg.get("role") == "system":
            new_msg = dict(msg)
            content = msg.get("content")
            if isinstance(content, list):
                new_msg["content"] = [
                    {"type": "text", "text": block + EXAMPLE_SEPARATOR},
                    *copy.deepcopy(content),
                ]
            elif content:
                new_msg["content"] = block + EXAMPLE_SEPARATOR + message_text(content)
            else:
                new_msg["content"] = block
            messages[i] = new_msg
            break
    else:
        messages.insert(0, {"role": "system", "content": block})
    request["messages"] = messages
    out["request"] = request
    return out


# Selection ---------------------------------------------------------------------------------------------


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


def _select_semantic(
    eval_records: Sequence[tuple[str, dict[str, Any]]],
    pool: Sequence[PoolItem],
    fetch: Fetch,
    *,
    max_examples: int,
    relevance_ratio: float,
    workload_type: WorkloadType,
    counter: TokenCounter,
    embedder: Embedder,
) -> tuple[list[dict[str, list[Example]]], float]:
    empty: list[dict[str, list[Example]]] = [{} for _ in eval_records]
    if max_examples <= 0:
        return empty, 0.0
    # One representative per distinct query: duplicates would fill the slots with the same example.
    reps: dict[str, PoolItem] = {}
    for item in pool:
        if item.query:
            reps.setdefault(_query_key(item.query), item)
    if not reps:
        return empty, 0.0
    corpus_items = list(reps.values())
    eval_queries = [user_query(rec) for _, rec in eval_records]
    eval_keys = [_query_key(q) if q else None for q in eval_queries]
    distinct_eval: dict[str, str] = {}
    for q, key in zip(eval_queries, eval_keys, strict=True):
        if q and key is not None:
            distinct_eval.setdefault(key, q)

    started = time.perf_counter()
    corpus_vectors = embedder.embed([i.query or "" for i in corpus_items])
    eval_vectors = embedder.embed(list(distinct_eval.values())) if distinct_eval else None
    seconds = time.perf_counter() - started
    if eval_vectors is None:
        return empty, seconds

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
    return results, seconds


def select_semantic(
    eval_records: Sequence[tuple[str, dict[str, Any]]],
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
    results, _ = _select_semantic(
        eval_records,
        pool,
        fetch,
        max_examples=max_examples,
        relevance_ratio=relevance_ratio,
        workload_type=workload_type,
        counter=counter,
        embedder=embedder,
    )
    return results


# The whole dataset -------------------------------------------------------------------------------------


@dataclass
class ICLReport:
    """What ICL construction did, for the run manifest and the logs."""

    selection: str
    records: int = 0
    pool_size: int = 0
    records_with_examples: int = 0
    examples_per_record_mean: float = 0.0
    examples_per_record_min: int = 0
    examples_per_record_max: int = 0
    example_tokens_mean: float = 0.0
    records_without_budget: int = 0
    records_below_min_examples: int = 0
    below_min_examples_ids: list[str] = field(default_factory=list)
    """The first 20 eval records that got fewer than ``icl.min_examples`` examples."""
    example_ids_sample: list[str] = field(default_factory=list)
    """The first 20 distinct training records used as examples."""
    embedding_seconds: float = 0.0
    examples_per_tool: dict[str, int] = field(default_factory=dict)
    """Injected examples per tool, summed over eval records."""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fits(record: Mapping[str, Any], counter: TokenCounter, limit: int) -> bool:
    return counter.count(prompt_text(record)) <= limit


def build_icl_records(
    eval_records: Sequence[tuple[str, dict[str, Any]]],
    pool: Sequence[PoolItem],
    fetch: Fetch,
    *,
    settings: ICLSettings,
    workload_type: WorkloadType,
    counter: TokenCounter,
    embedder_factory: Callable[[], Embedder] | None = None,
) -> tuple[list[dict[str, Any]], ICLReport]:
    """The ICL eval dataset: each eval record (``(record_id, record)``) with examples injected.

    Per record the budget is ``max_context_length - reserved_tokens - tokens(prompt)`` minus the
    injected prefix; a record with no budget left is kept unchanged (and counted). Examples are fitted
    round-robin (:func:`fit_examples`), injected, and the new prompt is counted again: examples are
    dropped from the end until it fits, so the limit holds exactly for the configured tokenizer.

    ``embedder_factory`` is only called for semantic selection with a non-empty pool (default:
    :func:`make_embedder` on ``settings.embedder``). Output records are new objects, in input order.
    """
    report = ICLReport(selection=str(settings.example_selection), records=len(eval_records))
    report.pool_size = len(pool)
    unchanged = [dict(rec) for _, rec in eval_records]

    if not eval_records:
        return [], report
    if settings.max_examples <= 0:
        report.warnings.append("icl.max_examples is 0: the ICL dataset equals the eval dataset")
        return unchanged, report
    if not pool:
        report.warnings.append("no training records to draw examples from: ICL records are unchanged")
        _count_below_min(report, [(rid, 0) for rid, _ in eval_records], settings.min_examples)
        return unchanged, report

    per_record: list[dict[str, list[Example]]]
    if settings.example_selection is ExampleSelection.SEMANTIC_SIMILARITY:
        embedder = (embedder_factory or (lambda: make_embedder(settings.embedder)))()
        try:
            per_record, report.embedding_seconds = _select_semantic(
                eval_records,
                pool,
                fetch,
                max_examples=settings.max_examples,
                relevance_ratio=settings.relevance_ratio,
                workload_type=workload_type,
                counter=counter,
                embedder=embedder,
            )
        finally:
            close = getattr(embedder, "close", None)  # an endpoint client holds connections
            if callable(close):
                close()
        if not any(p.query for p in pool):
            report.warnings.append("no training record has a user query: semantic selection found nothing")
    else:
        shared = select_uniform(
            pool, fetch, max_examples=settings.max_examples, workload_type=workload_type, counter=counter
        )
        per_record = [shared] * len(eval_records)
        if not shared:
            report.warnings.append("uniform selection found no usable example records")

    limit = settings.max_context_length - settings.reserved_tokens
    overhead = counter.count(DEFAULT_SYSTEM_MESSAGE + EXAMPLE_SEPARATOR + EXAMPLE_SEPARATOR)
    separator = counter.count(EXAMPLE_SEPARATOR)
    prompt_tokens = counter.count_many([prompt_text(rec) for _, rec in eval_records])

    # First fit every record to its budget, then check all injected prompts in one batch (the tokenizer
    # encodes a batch in parallel) and shrink only the few that the estimate let overflow.
    plans: list[tuple[str, dict[str, Any], list[Example], dict[str, Any]]] = []
    for (rid, record), groups, base in zip(eval_records, per_record, prompt_tokens, strict=True):
        available = limit - base - overhead
        if available <= 0:
            report.records_without_budget += 1
            plans.append((rid, record, [], dict(record)))
            continue
        chosen = fit_examples(groups, available, separator_tokens=separator)
        plans.append((rid, record, chosen, inject_examples(record, chosen)))
    checked = [i for i, plan in enumerate(plans) if plan[2]]
    sizes = counter.count_many([prompt_text(plans[i][3]) for i in checked])
    for i, size in zip(checked, sizes, strict=True):
        rid, record, chosen, new = plans[i]
        if size <= limit:
            continue
        while chosen and not _fits(new, counter, limit):
            chosen = chosen[:-1]
            new = inject_examples(record, chosen)
        plans[i] = (rid, record, chosen, new)

    out: list[dict[str, Any]] = []
    counts: list[tuple[str, int]] = []
    used_tokens: list[int] = []
    used_ids: dict[str, None] = {}
    for rid, _, chosen, new in plans:
        out.append(new)
        counts.append((rid, len(chosen)))
        for ex in chosen:
            used_tokens.append(ex.tokens)
            used_ids.setdefault(ex.record_id, None)
            report.examples_per_tool[ex.tool] = report.examples_per_tool.get(ex.tool, 0) + 1

    n_examples = [n for _, n in counts]
    report.records_with_examples = sum(1 for n in n_examples if n > 0)
    report.examples_per_record_mean = float(np.mean(n_examples))
    report.examples_per_record_min = min(n_examples)
    report.examples_per_record_max = max(n_examples)
    report.example_tokens_mean = float(np.mean(used_tokens)) if used_tokens else 0.0
    report.example_ids_sample = list(used_ids)[:SAMPLE_IDS]
    _count_below_min(report, counts, settings.min_examples)
    if report.records_without_budget:
        report.warnings.append(
            f"{report.records_without_budget} eval record(s) leave no room for examples within "
            f"max_context_length {settings.max_context_length} - reserved_tokens {settings.reserved_tokens}"
        )
    log.info(
        "ICL (%s): %d records, %.2f examples per record on average, %d without budget",
        report.selection,
        report.records,
        report.examples_per_record_mean,
        report.records_without_budget,
    )
    return out, report


def _count_below_min(report: ICLReport, counts: Sequence[tuple[str, int]], min_examples: int) -> None:
    below = [rid for rid, n in counts if n < min_examples]
    report.records_below_min_examples = len(below)
    report.below_min_examples_ids = below[:SAMPLE_IDS]
    if below:
        message = (
            f"{len(below)} of {len(counts)} eval record(s) got fewer than icl.min_examples="
            f"{min_examples} examples (first: {', '.join(below[:SAMPLE_IDS])})"
        )
        report.warnings.append(message)
        log.warning("ICL: %s", message)
