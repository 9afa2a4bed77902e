"""Cascade attention: a batch of rows that share a prompt prefix whose keys/values are held once, not per row.

In a routing workload ~90% of every prompt (system prompt + tool schemas) is the same token sequence. The
serving engine computes that prefix once (batch 1) and runs only each row's own tokens (its suffix, padding,
generated tokens) as the batch. While it does, :data:`CASCADE_ATTENTION` reads the prefix's per-layer
keys/values from :func:`holding_prefix` instead of a copy in every row:

* decoding (one query per row): the scores of all rows' queries against the prefix are one matrix product
  per key/value head (the prefix is read once per step, not once per row, and grouped query heads need no
  copy of it), the scores against each row's own tokens a small batched product with the row's mask, and
  both are combined in one softmax (:func:`split_attention`): what ``sdpa`` computes on the prefix copied
  into every row;
* prefilling (several queries): ``sdpa`` on the prefix concatenated to the row's keys, where its fused kernel
  beats the explicit softmax.

Training does not use it: with gradients, the split softmax's float32 passes over ``queries x prefix``
scores cost about what the fused kernel's backward does (207 vs 190 ms per layer for 8 rows of 148 tokens
after a 993-token prefix, SmolLM2-135M's heads, 2 cores), so the trainer expands the prefix instead.

Outside such a batch the implementation is transformers' ``sdpa``. :func:`use_cascade_attention` switches a
model that uses transformers' attention interface with ``sdpa`` over to it (and reports when it cannot).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

KV = list[tuple["torch.Tensor", "torch.Tensor"]]
"""Per layer (keys, values), each ``[1, kv_heads, tokens, head_dim]``."""

CASCADE_ATTENTION = "flywheel_cascade"
"""The attention implementation of a model run from a shared prefix: plain ``sdpa``, except while a batch
runs inside :func:`holding_prefix`."""

_shared_prefix: contextvars.ContextVar[KV | None] = contextvars.ContextVar("flywheel_shared_prefix", default=None)
_registered = False


@contextlib.contextmanager
def holding_prefix(kv: KV) -> Iterator[None]:
    """While inside, every layer of a model under :data:`CASCADE_ATTENTION` treats ``kv`` (its layer's entry)
    as keys/values in front of each row's own: the mask it is given covers ``prefix + own`` tokens."""
    token = _shared_prefix.set(kv)
    try:
        yield
    finally:
        _shared_prefix.reset(token)


def _register() -> None:
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(CASCADE_ATTENTION, cascade_attention)
    AttentionMaskInterface.register(CASCADE_ATTENTION, sdpa_mask)
    _registered = True


def use_cascade_attention(model: Any) -> bool:
    """Switch ``model`` (a transformers model, not a PEFT wrapper) from ``sdpa`` to :data:`CASCADE_ATTENTION`
    (the same outside :func:`holding_prefix`); False, with ``sdpa`` kept, when it cannot: another attention
    implementation, an older transformers, a model of its own making."""
    if getattr(model.config, "_attn_implementation", None) == CASCADE_ATTENTION:
        return True
    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return False
    try:
        if not model._can_set_attn_implementation():
            return False
        _register()
        model.set_attn_implementation(CASCADE_ATTENTION)
    except Exception:
        with contextlib.suppress(Exception):
            model.set_attn_implementation("sdpa")
        return False
    return bool(model.config._attn_implementation == CASCADE_ATTENTION)


def cascade_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention interface. Inside :func:`holding_prefix`, ``key``/``value`` (``[batch,
    kv_heads, own, dim]``) are each row's own tokens and the mask (``[batch, 1, queries, prefix + own]``, or
    None: nothing masked) covers the prefix too; every query sees the whole prefix."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    shared = _shared_prefix.get()
    if shared is None:
        result: tuple[torch.Tensor, None] = sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
        return result
    prefix_k, prefix_v = shared[module.layer_idx]
    batch, _, queries, dim = query.shape
    if queries > 1:
        full_k = torch.cat([prefix_k.expand(batch, -1, -1, -1), key], dim=2)
        full_v = torch.cat([prefix_v.expand(batch, -1, -1, -1), value], dim=2)
        result = sdpa_attention_forward(
            module, query, full_k, full_v, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
        return result
    own_mask = None if attention_mask is None else attention_mask[..., prefix_k.shape[2] :]
    scale = scaling if scaling is not None else dim**-0.5
    out = split_attention(query, prefix_k, prefix_v, key, value, own_mask, scale)
    return out.transpose(1, 2).contiguous(), None


def split_attention(
    query: torch.Tensor,
    prefix_k: torch.Tensor,
    prefix_v: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    own_mask: torch.Tensor | None,
    scale: float,
) -> torch.Tensor:
    """Attention of ``query`` (``[batch, heads, queries, dim]``) over a shared prefix (``[1, kv_heads, prefix,
    dim]``) followed by each row's own keys/values (``[batch, kv_heads, own, dim]``), the own part masked by
    ``own_mask`` (``[batch, 1, queries, own]``: bool, True = visible, or additive floats; None: all visible).
    Returns ``[batch, heads, queries, dim]``. Grouped query heads share their key/value head without a copy;
    scores and the softmax are computed in float32."""
    import torch

    batch, heads, queries, dim = query.shape
    kv_heads, prefix_len, own = key.shape[1], prefix_k.shape[2], key.shape[2]
    groups = heads // kv_heads  # query heads per key/value head
    rows = groups * queries
    q = query.reshape(batch, kv_heads, rows, dim)  # head h = kv * groups + g: a view
    # Against the prefix, all rows at once: [kv_heads, batch * rows, prefix] -> [batch, kv_heads, rows, prefix].
    q_flat = q.transpose(0, 1).reshape(kv_heads, batch * rows, dim)
    prefix_scores = torch.matmul(q_flat, prefix_k[0].transpose(-1, -2)).float() * scale
    prefix_scores = prefix_scores.view(kv_heads, batch, rows, prefix_len).transpose(0, 1)
    # Against the row's own tokens: [batch, kv_heads, rows, own].
    own_scores = torch.matmul(q, key.transpose(-1, -2)).float() * scale
    if own_mask is not None:
        grouped = own_scores.view(batch, kv_heads, groups, queries, own)
        mask = own_mask.unsqueeze(2)  # [batch, 1, 1, queries, own]
        grouped = grouped.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else grouped + mask.float()
        own_scores = grouped.view(batch, kv_heads, rows, own)
    # The prefix is never masked, so every query has a finite maximum and a positive normaliser.
    top = torch.maximum(prefix_scores.amax(dim=-1, keepdim=True), own_scores.amax(dim=-1, keepdim=True)).detach()
    prefix_weights = (prefix_scores - top).exp()
    own_weights = (own_scores - top).exp()
    total = prefix_weights.sum(dim=-1, keepdim=True) + own_weights.sum(dim=-1, keepdim=True)
    flat_weights = prefix_weights.transpose(0, 1).reshape(kv_heads, batch * rows, prefix_len)
    out = torch.matmul(flat_weights.to(value.dtype), prefix_v[0])  # [kv_heads, batch * rows, dim]
    out = out.view(kv_heads, batch, rows, dim).transpose(0, 1).float()
    out = out + torch.matmul(own_weights.to(value.dtype), value).float()
    return (out / total).to(query.dtype).reshape(batch, heads, queries, dim)
