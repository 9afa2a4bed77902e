"""The training loss of one micro-batch: plain, or with the batch's shared prompt prefix computed once.

Every training example is ``prompt + completion`` (token ids); the loss is the summed cross-entropy of the
completion tokens only (the prompt is context, not a target). Optionally the tokens that carry the answer's
decision (the tool call's opening through the tool's name; a text answer's first token) weigh
``decision_weight`` times: in a routing answer they are ~5 of ~40 completion tokens, so with equal weights
most of the gradient goes into paraphrasing free-text arguments rather than into choosing the tool.

Two ways to compute it, equal up to float rounding (a test checks the loss and the LoRA gradients):

* **plain**: every example runs as its own row, left-padded to the longest, so all completions end at the
  last positions. Only the positions that predict a completion token are projected onto the vocabulary, as
  one ``[targets, hidden]`` matrix (the vocabulary projection of a long prompt is the single largest tensor
  of a step; HF's Trainer computes it for every position, and a batched projection's backward pass copies
  the head's weight once per row: 1.2 s of a 9 s step for SmolLM2-135M, 8 rows).
* **shared prefix**: in a routing workload ~88% of every prompt (system prompt + tool schemas, which the
  codec renders first) is the same token sequence in every example. The prefix runs once (batch 1, with
  gradients), its keys/values are expanded (a view, not a copy) to every row, and only each row's suffix
  (the rest of its prompt, then its completion) runs, laid out ``[prefix | padding | suffix]`` with the
  padding masked and the suffix's positions continuing from the prefix. The gradient flowing back into the
  expanded keys/values sums over rows into the one prefix computation, exactly as the plain computation's
  per-row prefixes would. Forward and backward over the prefix shrink from ``batch x prefix`` tokens to
  ``prefix`` tokens. With ``prefix_gradients=False`` the prefix runs forward only: the loss is the same, and
  only the rows' own tokens carry gradient into the adapter (a cheaper, approximate step).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from dataflywheel.training.frozen import FrozenLayers

IGNORE = -100


@dataclass(frozen=True)
class Example:
    """One tokenized training row."""

    index: int
    """Position of the row in its dataset file (0-based)."""
    prompt: tuple[int, ...]
    completion: tuple[int, ...]
    head: int = 0
    """Leading completion tokens that carry the answer's decision: a tool call's opening through the tool's
    name, or a text answer's first token (weighted by ``decision_weight`` in the loss)."""

    @property
    def tokens(self) -> int:
        return len(self.prompt) + len(self.completion)


@dataclass
class BatchLoss:
    """The summed completion-token loss of a micro-batch (a graph to call ``backward`` on)."""

    loss_sum: torch.Tensor
    target_tokens: int
    """Completion tokens the loss covers."""
    target_weight: float
    """Sum of the targets' weights (``target_tokens`` when no decision weight): what a step divides by."""
    computed_tokens: int
    """Tokens the forward pass ran over (padding included; the shared prefix counted once)."""
    prefix_tokens: int
    """Length of the shared prefix run once (0: plain computation)."""


def shared_prefix_len(examples: Sequence[Example]) -> int:
    """Leading prompt tokens every example of ``examples`` has in common, leaving at least one prompt token
    in each suffix (the logit that predicts the first completion token comes from the suffix)."""
    if not examples:
        return 0
    first = examples[0].prompt
    limit = min(len(e.prompt) for e in examples) - 1
    n = 0
    while n < limit and all(e.prompt[n] == first[n] for e in examples):
        n += 1
    return max(n, 0)


def cache_kwarg(decoder: Any) -> str:
    import inspect

    params = inspect.signature(decoder.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def layer_kv(cache: Any, start: int = 0, stop: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(keys, values) of a ``DynamicCache``'s layers ``[start, stop)``."""
    layers: list[Any] = list(cache.layers)[start:stop]
    return [(layer.keys, layer.values) for layer in layers]


def expanded_cache(kv: Sequence[tuple[torch.Tensor, torch.Tensor]], batch: int) -> Any:
    """A ``DynamicCache`` holding batch-1 keys/values ``kv`` expanded (views, not copies) to ``batch`` rows:
    the backward pass sums the rows' gradients into the one prefix computation."""
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=[(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in kv])


def _completion_loss(
    head: Any, hidden: torch.Tensor, rows: Sequence[Example], decision_weight: float, *, computed: int, prefix: int
) -> BatchLoss:
    """The :class:`BatchLoss` of ``rows`` from the decoder's final hidden states (completions right-aligned)."""
    keep = max(len(r.completion) for r in rows) + 1
    labels = _labels(rows, keep, hidden.device)
    return BatchLoss(
        loss_sum=_loss_sum(head, hidden, labels, rows, decision_weight),
        target_tokens=sum(len(r.completion) for r in rows),
        target_weight=target_weight(rows, decision_weight),
        computed_tokens=computed,
        prefix_tokens=prefix,
    )


def _labels(rows: Sequence[Example], keep: int, device: torch.device) -> torch.Tensor:
    """Targets of the last ``keep`` logits of each left-padded row: logit ``k`` predicts the token after it,
    so completion token ``j`` of a row with ``c`` completion tokens is the target of ``k = keep - c + j - 1``."""
    import torch

    labels = torch.full((len(rows), keep), IGNORE, dtype=torch.long)
    for i, row in enumerate(rows):
        c = len(row.completion)
        labels[i, keep - 1 - c : keep - 1] = torch.tensor(row.completion, dtype=torch.long)
    return labels.to(device)


def _weights(rows: Sequence[Example], keep: int, decision_weight: float, device: torch.device) -> torch.Tensor:
    """Per-target weights laid out as :func:`_labels`: ``decision_weight`` on each row's head tokens, else 1."""
    import torch

    weights = torch.ones((len(rows), keep), dtype=torch.float32)
    for i, row in enumerate(rows):
        c = len(row.completion)
        start = keep - 1 - c
        weights[i, start : start + min(row.head, c)] = decision_weight
    return weights.to(device)


def target_weight(rows: Sequence[Example], decision_weight: float = 1.0) -> float:
    """What the loss of ``rows`` is divided by: completion tokens, head tokens counted ``decision_weight``."""
    return float(sum(len(r.completion) + (decision_weight - 1.0) * min(r.head, len(r.completion)) for r in rows))


def _split_model(model: Any) -> tuple[Any, Any]:
    """(decoder, output head) of a causal LM, through a PEFT wrapper: the decoder returns the final hidden
    states, the head projects them onto the vocabulary."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


def _loss_sum(
    head: Any, hidden: torch.Tensor, labels: torch.Tensor, rows: Sequence[Example], decision_weight: float
) -> torch.Tensor:
    """Summed (weighted) cross-entropy of the targets in ``labels`` (laid out over the last ``keep`` positions
    of ``hidden``). Only the target positions are projected onto the vocabulary, as one 2-D matrix product:
    the padding of short completions costs nothing, and the backward pass through the (frozen) head is one
    ``[targets, vocab] x [vocab, hidden]`` product instead of a batched one that copies the head's weight
    once per row."""
    import torch.nn.functional as F

    keep = labels.shape[1]
    chosen = labels != IGNORE
    states = hidden[:, -keep:, :][chosen]  # [targets, hidden]
    logits = head(states).float()
    targets = labels[chosen]
    if decision_weight == 1.0:
        return F.cross_entropy(logits, targets, reduction="sum")
    losses = F.cross_entropy(logits, targets, reduction="none")
    weights = _weights(rows, keep, decision_weight, labels.device)[chosen]
    return (losses * weights).sum()


def batch_loss(
    model: Any,
    rows: Sequence[Example],
    *,
    pad_id: int,
    device: torch.device,
    min_prefix_tokens: int | None = 32,
    decision_weight: float = 1.0,
    prefix_gradients: bool = True,
) -> BatchLoss:
    """The summed completion loss of ``rows``; with ``min_prefix_tokens`` set and at least that many shared
    leading prompt tokens (and 2+ rows), the shared-prefix computation, else the plain one. Each row's
    ``head`` tokens count ``decision_weight`` times."""
    prefix = shared_prefix_len(rows) if min_prefix_tokens is not None and len(rows) > 1 else 0
    if min_prefix_tokens is not None and prefix >= min_prefix_tokens:
        return _shared_prefix_loss(
            model,
            rows,
            prefix,
            pad_id=pad_id,
            device=device,
            decision_weight=decision_weight,
            prefix_gradients=prefix_gradients,
        )
    return _plain_loss(model, rows, pad_id=pad_id, device=device, decision_weight=decision_weight)


def left_padded(
    seqs: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids, mask, positions) of left-padded rows; positions count a row's own tokens from 0."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
            mask[i, width - len(s) :] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), positions.to(device)


def _plain_loss(
    model: Any, rows: Sequence[Example], *, pad_id: int, device: torch.device, decision_weight: float
) -> BatchLoss:
    ids, mask, positions = left_padded([r.prompt + r.completion for r in rows], pad_id, device)
    decoder, head = _split_model(model)
    out = decoder(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False)
    return _completion_loss(head, out.last_hidden_state, rows, decision_weight, computed=int(ids.numel()), prefix=0)


def _shared_prefix_loss(
    model: Any,
    rows: Sequence[Example],
    prefix: int,
    *,
    pad_id: int,
    device: torch.device,
    decision_weight: float,
    prefix_gradients: bool = True,
) -> BatchLoss:
    import torch
    from transformers import DynamicCache

    decoder, head = _split_model(model)
    kwarg = cache_kwarg(decoder)
    prefix_ids = torch.tensor([list(rows[0].prompt[:prefix])], dtype=torch.long, device=device)
    prefix_cache = DynamicCache()
    with torch.set_grad_enabled(prefix_gradients and torch.is_grad_enabled()):
        decoder(input_ids=prefix_ids, use_cache=True, **{kwarg: prefix_cache})
    batch = len(rows)
    prefix_kv = layer_kv(prefix_cache)
    suffixes = [r.prompt[prefix:] + r.completion for r in rows]
    ids, suffix_mask, positions = left_padded(suffixes, pad_id, device)
    cache = expanded_cache(prefix_kv, batch)
    mask = torch.cat([torch.ones((batch, prefix), dtype=torch.long, device=device), suffix_mask], dim=1)
    out = decoder(input_ids=ids, attention_mask=mask, position_ids=positions + prefix, use_cache=True, **{kwarg: cache})
    return _completion_loss(
        head, out.last_hidden_state, rows, decision_weight, computed=prefix + int(ids.numel()), prefix=prefix
    )


def frozen_batch_loss(
    model: Any,
    rows: Sequence[Example],
    frozen: FrozenLayers,
    *,
    decision_weight: float = 1.0,
    prefix_gradients: bool = True,
    reuse_prefix: bool = False,
    prompt_gradients: bool = True,
) -> BatchLoss:
    """The loss of :func:`batch_loss`, run from the first adapted layer up: the lower layers' work on the
    run's shared prefix and on each row comes from ``frozen`` (:mod:`dataflywheel.training.frozen`).

    ``reuse_prefix`` (only without ``prefix_gradients``): the adapted layers' keys/values of the prefix are
    the ones the last computation left in ``frozen``, made with the adapter as it was then (an approximation
    once the optimizer has stepped since: the trainer refreshes them every ``prefix_refresh_steps``).

    ``prompt_gradients`` False (only without ``prefix_gradients``): each row's prompt runs forward only, then
    the positions that predict its completion run with gradients, attending to it: the loss is the same, the
    gradient leaves out what flows back through the prompt's keys/values."""
    import torch
    from transformers import DynamicCache

    decoder, head = _split_model(model)
    kwarg = cache_kwarg(decoder)
    device = frozen.device
    lower_kv, prefix_hidden = frozen.prefix_state()
    hidden_rows = frozen.rows_hidden(rows)
    prefix = len(frozen.prefix)
    batch = len(rows)
    upper_kv: list[tuple[torch.Tensor, torch.Tensor]] = []
    if reuse_prefix and not prefix_gradients and frozen.upper_kv:
        upper_kv = frozen.upper_kv
    elif prefix_hidden is not None:
        prefix_cache = DynamicCache(config=decoder.config)
        positions = torch.arange(prefix, device=device).unsqueeze(0)
        with torch.set_grad_enabled(prefix_gradients and torch.is_grad_enabled()), frozen.upper():
            decoder(inputs_embeds=prefix_hidden, position_ids=positions, use_cache=True, **{kwarg: prefix_cache})
        upper_kv = layer_kv(prefix_cache, frozen.split)
        if not prefix_gradients:
            frozen.upper_kv = [(k.detach(), v.detach()) for k, v in upper_kv]
    cache = expanded_cache(lower_kv + upper_kv, batch)
    mask = torch.ones((batch, prefix), dtype=torch.long, device=device)
    computed = prefix
    if not prompt_gradients and not prefix_gradients:
        # The rows' prompts (all but the position that predicts the first completion token) run forward only,
        # as more context in the cache; the second call below then runs just the completion positions.
        context = [h[: h.shape[0] - len(r.completion) - 1] for h, r in zip(hidden_rows, rows, strict=True)]
        hidden_rows = [h[h.shape[0] - len(r.completion) - 1 :] for h, r in zip(hidden_rows, rows, strict=True)]
        if max(c.shape[0] for c in context) > 0:
            inputs, context_mask = _left_padded_states(context, device)
            positions = (context_mask.cumsum(dim=1) - 1).clamp(min=0) + prefix
            mask = torch.cat([mask, context_mask], dim=1)
            with torch.no_grad(), frozen.upper():
                decoder(
                    inputs_embeds=inputs, attention_mask=mask, position_ids=positions, use_cache=True, **{kwarg: cache}
                )
            computed += int(context_mask.numel())
            # The lower layers' entries only tell the decoder how long the cache is (it reads the first
            # layer's): stand-ins of the new length, views of one element, not copies.
            upper = layer_kv(cache, frozen.split)
            length = upper[0][0].shape[-2]
            stand_in = [(_stand_in(k, length), _stand_in(v, length)) for k, v in layer_kv(cache, 0, frozen.split)]
            cache = DynamicCache(ddp_cache_data=stand_in + upper)
    inputs, suffix_mask = _left_padded_states(hidden_rows, device)
    start = mask[:, prefix:].sum(dim=1, keepdim=True) + prefix
    positions = (suffix_mask.cumsum(dim=1) - 1).clamp(min=0) + start
    mask = torch.cat([mask, suffix_mask], dim=1)
    # A few completion positions against a long context whose keys/values need no gradient: the explicit
    # attention's backward is a few small products, the fused kernel's computes dK/dV over the whole context
    # (measured on the demo's rows: a step's backward 0.9 s instead of 1.3 s).
    eager = not prompt_gradients and not prefix_gradients
    with frozen.upper(), attention_implementation(decoder, "eager") if eager else contextlib.nullcontext():
        out = decoder(
            inputs_embeds=inputs, attention_mask=mask, position_ids=positions, use_cache=True, **{kwarg: cache}
        )
    return _completion_loss(
        head, out.last_hidden_state, rows, decision_weight, computed=computed + int(suffix_mask.numel()), prefix=prefix
    )


@contextlib.contextmanager
def attention_implementation(decoder: Any, name: str) -> Iterator[None]:
    """Run ``decoder`` with transformers' attention implementation ``name`` inside (read at each call)."""
    config = decoder.config
    before = config._attn_implementation
    config._attn_implementation = name
    try:
        yield
    finally:
        config._attn_implementation = before


def _stand_in(like: torch.Tensor, length: int) -> torch.Tensor:
    """A tensor shaped like ``like`` but ``length`` long on the sequence axis, all one element (no memory)."""
    shape = (*like.shape[:-2], length, like.shape[-1])
    return like.new_zeros((1,) * like.dim()).expand(shape)


def _left_padded_states(states: Sequence[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(``[rows, width, hidden]`` states left-padded with zeros, ``[rows, width]`` mask of the real ones)."""
    import torch

    width = max(s.shape[0] for s in states)
    inputs = states[0].new_zeros((len(states), width, states[0].shape[1]))
    mask = torch.zeros((len(states), width), dtype=torch.long, device=device)
    for i, s in enumerate(states):
        if s.shape[0]:
            inputs[i, width - s.shape[0] :] = s
            mask[i, width - s.shape[0] :] = 1
    return inputs, mask
