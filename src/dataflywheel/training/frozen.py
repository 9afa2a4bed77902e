"""The decoder layers below the first adapted one, computed once per run instead of once per step.

With LoRA on the top layers only (``layers_fraction`` < 1, as the ``tiny`` recipe does), the layers below
the first adapted one never change during a run: what they make of a token depends only on the tokens before
it. So:

* the prompt prefix every training row shares (system prompt + tool schemas: ~990 of ~1,140 tokens of a
  routing row) runs through those layers once per run; their keys/values and the prefix's hidden states at
  the first adapted layer are kept;
* each row's own tokens run through them the first time the row is drawn (forward only, batched with the
  step's other new rows); their hidden states at the first adapted layer are kept, and every later epoch
  starts the row there.

A step then runs only the adapted layers: the prefix forward (with or without gradients, as
``prefix_gradients`` says) and the rows forward and backward. The loss and the gradients are those of
:func:`dataflywheel.training.loss.batch_loss` up to float rounding (a test checks both). On SmolLM2-135M with
the top half adapted this removes the lower 15 layers' forward pass of the prefix from every step and of the
rows from every epoch after the first (measured in ``benchmarks/training.py``).

The decoder is run on a slice of its layers by swapping its ``layers`` list (and its final norm, for the
lower slice) for the duration of one call: the decoder's own forward builds the masks and rotary embeddings,
so any decoder of the usual shape (``embed_tokens``, ``layers``, ``norm``: Llama, Qwen2, Mistral, SmolLM)
works, and :func:`frozen_split` says None for anything else (the step then runs every layer as before).
Cached activations are bounded by ``budget_bytes``: rows past the budget are recomputed every time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dataflywheel.training.loss import Example, cache_kwarg, expanded_cache, layer_kv, left_padded

if TYPE_CHECKING:
    import torch

__all__ = ["DEFAULT_BUDGET_BYTES", "FrozenLayers", "frozen_split"]

DEFAULT_BUDGET_BYTES = 1 << 30
"""Cached row activations kept at most (1 GiB: the demo's 240 rows take ~85 MB)."""


def _decoder(model: Any) -> Any:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder()


def frozen_split(model: Any, adapted_layers: Sequence[int] | None) -> int | None:
    """Index of the first adapted decoder layer when the layers below it can be cached: the decoder has the
    usual shape, no attention dropout, and at least one layer below the adapter; else None."""
    if not adapted_layers:
        return None
    decoder = _decoder(model)
    layers = getattr(decoder, "layers", None)
    if layers is None or not hasattr(decoder, "norm") or not hasattr(decoder, "embed_tokens"):
        return None
    config = getattr(decoder, "config", None)
    if float(getattr(config, "attention_dropout", 0.0) or 0.0) > 0.0:
        return None
    first = min(adapted_layers)
    if first <= 0 or first >= len(layers):
        return None
    for index in range(first):
        if any(p.requires_grad for p in layers[index].parameters()):
            return None  # something trains below the split: its activations are not constant
    return first


@contextlib.contextmanager
def _only(decoder: Any, start: int, stop: int, *, final_norm: bool) -> Iterator[None]:
    """Run ``decoder`` on its layers ``[start, stop)`` only (without the final norm unless ``final_norm``)."""
    import torch

    layers, norm = decoder.layers, decoder.norm
    decoder.layers = torch.nn.ModuleList(list(layers)[start:stop])
    if not final_norm:
        decoder.norm = torch.nn.Identity()
    try:
        yield
    finally:
        decoder.layers, decoder.norm = layers, norm


@dataclass
class FrozenLayers:
    """What the frozen lower layers make of a run's shared prefix and of each row (see the module)."""

    model: Any = field(repr=False)
    split: int
    """Index of the first adapted layer: layers ``[0, split)`` are cached."""
    prefix: tuple[int, ...] = field(repr=False)
    """The token ids every row starts with (may be empty)."""
    device: torch.device
    pad_id: int = 0
    budget_bytes: int = DEFAULT_BUDGET_BYTES
    _prefix_kv: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list, init=False, repr=False)
    _prefix_hidden: torch.Tensor | None = field(default=None, init=False, repr=False)
    _rows: dict[int, torch.Tensor] = field(default_factory=dict, init=False, repr=False)
    _cached_bytes: int = field(default=0, init=False)
    upper_kv: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list, init=False, repr=False)
    """The adapted layers' keys/values of the prefix as last computed without gradients (see
    :func:`~dataflywheel.training.loss.frozen_batch_loss`'s ``reuse_prefix``)."""
    computed_rows: int = field(default=0, init=False)
    """Rows run through the lower layers so far (a row reused from the cache is not counted again)."""

    @property
    def decoder(self) -> Any:
        return _decoder(self.model)

    @property
    def layer_count(self) -> int:
        return len(self.decoder.layers)

    def lower(self) -> contextlib.AbstractContextManager[None]:
        return _only(self.decoder, 0, self.split, final_norm=False)

    def upper(self) -> contextlib.AbstractContextManager[None]:
        return _only(self.decoder, self.split, self.layer_count, final_norm=True)

    def sibling(self) -> FrozenLayers:
        """A cache for another set of rows (the validation split) over the same prefix: the prefix's lower
        layers are shared, the rows' are not (row indexes count within their own split)."""
        other = FrozenLayers(self.model, self.split, self.prefix, self.device, self.pad_id, self.budget_bytes)
        other._prefix_kv, other._prefix_hidden = self.prefix_state()
        return other

    def covers(self, rows: Sequence[Example]) -> bool:
        """Whether every row starts with this cache's prefix (and has a token after it)."""
        p = len(self.prefix)
        return all(len(r.prompt) > p and r.prompt[:p] == self.prefix for r in rows)

    def prefix_state(self) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor | None]:
        """(keys/values of the lower layers over the prefix, hidden states entering the first adapted layer
        ``[1, prefix, hidden]``), computed on first use."""
        import torch
        from transformers import DynamicCache

        if self.prefix and self._prefix_hidden is None:
            ids = torch.tensor([list(self.prefix)], dtype=torch.long, device=self.device)
            cache = DynamicCache()
            with torch.no_grad(), self.lower():
                out = self.decoder(input_ids=ids, use_cache=True, **{cache_kwarg(self.decoder): cache})
            self._prefix_kv = layer_kv(cache, 0, self.split)
            self._prefix_hidden = out.last_hidden_state.detach()
        return self._prefix_kv, self._prefix_hidden

    def rows_hidden(self, rows: Sequence[Example]) -> list[torch.Tensor]:
        """Hidden states entering the first adapted layer for each row's tokens after the prefix
        (``[tokens, hidden]`` each); rows not cached yet run through the lower layers together."""
        missing = [r for r in rows if r.index not in self._rows]
        fresh: dict[int, torch.Tensor] = {}
        if missing:
            for row, hidden in zip(missing, self._lower_rows(missing), strict=True):
                fresh[row.index] = hidden
                size = hidden.numel() * hidden.element_size()
                if self._cached_bytes + size <= self.budget_bytes:
                    self._rows[row.index] = hidden
                    self._cached_bytes += size
            self.computed_rows += len(missing)
        return [self._rows[r.index] if r.index in self._rows else fresh[r.index] for r in rows]

    def _lower_rows(self, rows: Sequence[Example]) -> list[torch.Tensor]:
        import torch
        from transformers import DynamicCache

        kv, _ = self.prefix_state()
        p = len(self.prefix)
        suffixes = [(r.prompt + r.completion)[p:] for r in rows]
        ids, suffix_mask, positions = left_padded(suffixes, self.pad_id, self.device)
        batch = len(rows)
        cache = expanded_cache(kv, batch)
        mask = torch.cat([torch.ones((batch, p), dtype=torch.long, device=self.device), suffix_mask], dim=1)
        with torch.no_grad(), self.lower():
            out = self.decoder(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions + p,
                use_cache=True,
                **{cache_kwarg(self.decoder): cache if kv else DynamicCache()},
            )
        hidden = out.last_hidden_state
        width = hidden.shape[1]
        return [hidden[i, width - len(s) :].clone() for i, s in enumerate(suffixes)]
