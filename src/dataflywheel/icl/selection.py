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

This module builds the whole ICL dataset (:func:`build_icl_records`); formatting, fitting and injecting one
record's examples is in :mod:`.examples`, choosing them (uniform, semantic) in :mod:`.strategies`. Their
names are importable from here as well.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from dataflywheel.curation.workload import WorkloadType
from dataflywheel.icl.embedders import Embedder, TimedEmbedder, make_embedder
from dataflywheel.icl.examples import (
    DEFAULT_SYSTEM_MESSAGE,
    EXAMPLE_SEPARATOR,
    GENERIC_GROUP,
    Example,
    Fetch,
    PoolItem,
    fit_examples,
    format_example,
    inject_examples,
    prompt_text,
    uniform_bins,
)
from dataflywheel.icl.strategies import (
    SEMANTIC_TOOL_CANDIDATES_FACTOR,
    UNIFORM_PRESELECT_FACTOR,
    relevance_coverage,
    select_semantic,
    select_uniform,
)
from dataflywheel.icl.tokens import TokenCounter
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.settings import ExampleSelection, ICLSettings

__all__ = [
    "DEFAULT_SYSTEM_MESSAGE",
    "EXAMPLE_SEPARATOR",
    "GENERIC_GROUP",
    "SEMANTIC_TOOL_CANDIDATES_FACTOR",
    "UNIFORM_PRESELECT_FACTOR",
    "Example",
    "Fetch",
    "ICLReport",
    "PoolItem",
    "build_icl_records",
    "fit_examples",
    "format_example",
    "inject_examples",
    "prompt_text",
    "relevance_coverage",
    "select_semantic",
    "select_uniform",
    "uniform_bins",
]

log = logging.getLogger(__name__)

SAMPLE_IDS = 20


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

    def to_dict(self) -> JsonObject:
        return asdict(self)


def _fits(record: Mapping[str, Any], counter: TokenCounter, limit: int) -> bool:
    return counter.count(prompt_text(record)) <= limit


def build_icl_records(
    eval_records: Sequence[tuple[str, JsonObject]],
    pool: Sequence[PoolItem],
    fetch: Fetch,
    *,
    settings: ICLSettings,
    workload_type: WorkloadType,
    counter: TokenCounter,
    embedder_factory: Callable[[], Embedder] | None = None,
) -> tuple[list[JsonObject], ICLReport]:
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
        timed = TimedEmbedder(embedder)
        try:
            per_record = select_semantic(
                eval_records,
                pool,
                fetch,
                max_examples=settings.max_examples,
                relevance_ratio=settings.relevance_ratio,
                workload_type=workload_type,
                counter=counter,
                embedder=timed,
            )
            report.embedding_seconds = timed.seconds
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
    plans: list[tuple[str, JsonObject, list[Example], JsonObject]] = []
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

    out: list[JsonObject] = []
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
