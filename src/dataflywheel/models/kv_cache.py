"""The transformers KV caches the local engine generates with: plain per-layer caches whose layers write into
buffers sized once for the whole generation (``DynamicLayer`` would re-copy the cache at every decode step),
optionally starting from a shared prefix's keys/values.
"""

from __future__ import annotations

from typing import Any

from dataflywheel.models.attention import KV

__all__ = ["cache_is_plain", "new_cache", "preallocated_layer_type"]

_PREALLOCATED_LAYER: type[Any] | None = None


def preallocated_layer_type() -> type[Any]:
    """A ``DynamicLayer`` whose keys and values live in buffers sized for the whole generation (defined on
    first use: transformers is imported lazily)."""
    global _PREALLOCATED_LAYER
    if _PREALLOCATED_LAYER is not None:
        return _PREALLOCATED_LAYER
    import torch
    from transformers.cache_utils import DynamicLayer

    class PreallocatedLayer(DynamicLayer):  # type: ignore[no-untyped-call]
        def __init__(self, capacity: int, offset: int = 0) -> None:
            super().__init__()  # type: ignore[no-untyped-call]
            self.capacity = capacity
            self.length = 0
            self.offset = offset
            """Tokens before the buffer (a shared prefix held elsewhere): counted in the sequence length."""
            self._k = self._v = torch.empty(0)

        def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
            batch, heads, _, dim = key_states.shape
            self.device = key_states.device
            # Zeros: padding that no forward wrote must not hold NaN (0 x NaN in the weighted sum is NaN).
            self._k = key_states.new_zeros(batch, heads, self.capacity, dim)
            self._v = value_states.new_zeros(batch, value_states.shape[1], self.capacity, value_states.shape[3])
            self.is_initialized = True

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
        ) -> tuple[torch.Tensor, torch.Tensor]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            end = self.length + key_states.shape[-2]
            if end > self.capacity:  # not expected (capacity covers the generation); grow anyway
                self.capacity = max(end, 2 * self.capacity)
                k, v = self._k[:, :, : self.length], self._v[:, :, : self.length]
                self.lazy_initialization(k, v)
                self._k[:, :, : self.length], self._v[:, :, : self.length] = k, v
            self._k[:, :, self.length : end] = key_states
            self._v[:, :, self.length : end] = value_states
            self.length = end
            self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.offset + self.length

        def load_rows(self, keys: torch.Tensor, values: torch.Tensor, spans: list[tuple[int, int]], width: int) -> None:
            """Fill a fresh layer with rows cut out of one packed sequence (``keys[0, :, start:end]`` per row),
            right-aligned in ``width`` tokens (the rest is padding, masked out)."""
            self.lazy_initialization(keys.expand(len(spans), -1, -1, -1), values.expand(len(spans), -1, -1, -1))
            for row, (start, end) in enumerate(spans):
                self._k[row, :, width - (end - start) : width] = keys[0, :, start:end]
                self._v[row, :, width - (end - start) : width] = values[0, :, start:end]
            self.length = width
            self.keys, self.values = self._k[:, :, :width], self._v[:, :, :width]

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            if self.is_initialized:
                self._k, self._v = self._k[indices], self._v[indices]
                self.keys, self.values = self._k[:, :, : self.length], self._v[:, :, : self.length]

    _PREALLOCATED_LAYER = PreallocatedLayer
    return PreallocatedLayer


def cache_is_plain(config: Any) -> bool:
    """Whether a model with this config caches plain per-layer KV tensors. Prefix reuse slices and expands
    those; sliding-window or other cache layers keep something else, so those models generate without it."""
    try:
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer
    except ImportError:  # pragma: no cover - older transformers
        return False
    try:
        cache = DynamicCache(config=config)
    except Exception:
        return False
    layers: list[Any] = getattr(cache, "layers", None) or []
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def new_cache(
    config: Any,
    kv: KV | None = None,
    batch: int = 1,
    capacity: int | None = None,
    offset: int = 0,
    *,
    preallocate: bool = True,
) -> Any:
    """A fresh cache, starting from ``kv`` (expanded to ``batch`` rows) when given. With ``capacity``
    (tokens: prefix + prompt + new) and ``preallocate`` (plain layers), each layer writes into a buffer
    allocated once, instead of re-copying the whole cache on every decode step as ``DynamicLayer`` does.
    ``offset``: tokens of a shared prefix held outside the cache (cascade attention)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=config)
    if capacity is not None and preallocate:
        layer_type = preallocated_layer_type()
        cache.layers = [layer_type(capacity, offset) for _ in cache.layers]
    if kv is not None:
        for layer, (k, v) in enumerate(kv):
            if batch > 1:
                k, v = k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)
            cache.update(k, v, layer)
    return cache
