"""The forward passes of one sub-batch of prompts: the KV of a shared prefix, the prefill of the rows' own
tokens (left-padded, or packed into one sequence under cascade attention) and the decode loop, one token per
row per step, rows leaving the batch and the cache as they finish.

:class:`BatchForward` is the part of :class:`~dataflywheel.models.engine.LocalEngine` that calls the model;
the engine decides which rows run together and from which prefix (see its module docstring).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dataflywheel.models.attention import KV
from dataflywheel.models.kv_cache import new_cache
from dataflywheel.models.sampling import Row, advance, pick_tokens

if TYPE_CHECKING:
    import torch

__all__ = ["BatchForward"]


class BatchForward:
    """Runs rows through a causal LM. The subclass sets the attributes below when it loads the model."""

    device: torch.device
    tokenizer: Any
    _base: Any
    """The loaded model (without adapters)."""
    _cache_kwarg: str
    """The name of the model's ``forward`` argument taking the KV cache."""
    _pad_id: int
    _eos_ids: frozenset[int]
    _plain_cache: bool
    """Whether the model's cache layers are plain per-layer KV tensors (:func:`.kv_cache.cache_is_plain`)."""
    _sampling_generator: torch.Generator
    """For sampled rows without a seed of their own."""

    def _new_cache(self, kv: KV | None = None, batch: int = 1, capacity: int | None = None, offset: int = 0) -> Any:
        """A fresh cache (:func:`.kv_cache.new_cache`), with preallocated buffers where the layers are plain."""
        return new_cache(self._base.config, kv, batch, capacity, offset, preallocate=self._plain_cache)

    def _run_prefix(self, model: Any, tokens: Sequence[int], kv: KV | None, start: int) -> KV:
        """KV of ``tokens`` (batch 1) continuing ``kv`` (covering ``start`` tokens)."""
        import torch

        cache = self._new_cache(kv)
        ids = torch.tensor([list(tokens)], dtype=torch.long, device=self.device)
        positions = torch.arange(start, start + len(tokens), device=self.device).unsqueeze(0)
        mask = torch.ones(1, start + len(tokens), dtype=torch.long, device=self.device)
        model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_kwarg: cache},
        )
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _padded_prefill(
        self, model: Any, rows: list[Row], prefix_len: int, prefix_kv: KV | None, new_tokens: int
    ) -> tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor]:
        """Run the rows' tokens after ``prefix_len`` as one left-padded batch. The prefix is either copied into
        every row's cache (``prefix_kv``) or, under cascade attention, held outside it (``prefix_kv`` None).
        Returns the first logits, the cache, the 2-D attention mask and each row's last position."""
        import torch

        suffixes = [r.tokens[prefix_len:] for r in rows]
        width = max(len(s) for s in suffixes)
        batch = len(rows)
        ids = torch.full((batch, width), self._pad_id, dtype=torch.long)
        mask = torch.zeros(batch, prefix_len + width, dtype=torch.long)
        mask[:, :prefix_len] = 1
        positions = torch.full((batch, width), prefix_len, dtype=torch.long)
        for b, suffix in enumerate(suffixes):
            n = len(suffix)
            ids[b, width - n :] = torch.tensor(suffix, dtype=torch.long)
            mask[b, prefix_len + width - n :] = 1
            positions[b, width - n :] = torch.arange(prefix_len, prefix_len + n)
        ids, mask, positions = ids.to(self.device), mask.to(self.device), positions.to(self.device)
        if prefix_kv is not None:
            cache = self._new_cache(prefix_kv, batch, prefix_len + width + new_tokens)
        else:
            cache = self._new_cache(None, batch, width + new_tokens, offset=prefix_len)
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_kwarg: cache},
        )
        return out.logits[:, -1, :], cache, mask, positions[:, -1]

    def _packed_prefill(
        self, model: Any, rows: list[Row], prefix_len: int, new_tokens: int
    ) -> tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor]:
        """Under cascade attention: run all rows' suffixes as one sequence (no padding computed), each
        seeing the shared prefix and, causally, its own tokens only; then lay the suffixes' keys/values out
        as a left-padded batch for decoding. Returns what :meth:`_padded_prefill` returns."""
        import torch

        device = self.device
        lengths = [len(r.tokens) - prefix_len for r in rows]
        total, width, batch = sum(lengths), max(lengths), len(rows)
        ends = torch.tensor(lengths).cumsum(0)
        starts = ends - torch.tensor(lengths)
        ids = torch.tensor([t for r in rows for t in r.tokens[prefix_len:]], device=device).unsqueeze(0)
        positions = torch.cat([torch.arange(prefix_len, prefix_len + n) for n in lengths]).unsqueeze(0)
        segment = torch.repeat_interleave(torch.arange(batch), torch.tensor(lengths))
        index = torch.arange(total)
        own = (segment[:, None] == segment[None, :]) & (index[:, None] >= index[None, :])
        mask4 = torch.cat([torch.ones(total, prefix_len, dtype=torch.bool), own], dim=1)[None, None]
        packed = self._new_cache(None, 1, total, offset=prefix_len)
        out = model(
            input_ids=ids,
            attention_mask=mask4.to(device),
            position_ids=positions.to(device),
            use_cache=True,
            logits_to_keep=(ends - 1).to(device),
            **{self._cache_kwarg: packed},
        )
        cache = self._new_cache(None, batch, width + new_tokens, offset=prefix_len)
        spans = [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]
        for source, target in zip(packed.layers, cache.layers, strict=True):
            target.load_rows(source.keys, source.values, spans, width)
        mask = torch.zeros(batch, prefix_len + width, dtype=torch.long)
        mask[:, :prefix_len] = 1
        for b, n in enumerate(lengths):
            mask[b, prefix_len + width - n :] = 1
        last = torch.tensor([prefix_len + n - 1 for n in lengths])
        return out.logits[0], cache, mask.to(device), last.to(device)

    def _decode_steps(
        self, model: Any, rows: list[Row], logits: torch.Tensor, cache: Any, mask: torch.Tensor, last: torch.Tensor
    ) -> None:
        """From the prefill's logits, pick and feed one token per row per step until every row has finished
        (finished rows leave the batch and the cache)."""
        import torch

        for row in rows:
            row.generated = []
        active = list(rows)
        while True:
            next_tokens = self._pick(logits, active)
            keep = [i for i, row in enumerate(active) if not self._advance(row, next_tokens[i])]
            if not keep:
                return
            if len(keep) < len(active):
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                mask, last, next_tokens = mask[index], last[index], next_tokens[index]
                active = [active[i] for i in keep]
            mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=1)
            last = last + 1
            out = model(
                input_ids=next_tokens.unsqueeze(1),
                attention_mask=mask,
                position_ids=last.unsqueeze(1),
                use_cache=True,
                logits_to_keep=1,
                **{self._cache_kwarg: cache},
            )
            logits = out.logits[:, -1, :]

    def _pick(self, logits: torch.Tensor, rows: Sequence[Row]) -> torch.Tensor:
        return pick_tokens(logits, rows, self._sampling_generator)

    def _advance(self, row: Row, token_tensor: torch.Tensor) -> bool:
        """Append a token to ``row``; True when the row is finished."""
        return advance(row, token_tensor, self._eos_ids, self._decode)

    def _decode(self, tokens: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(tokens), skip_special_tokens=False))
