"""The prefix cache: a small LRU of the KV caches of prompt prefixes, reused by the next batches that share them.

In the flywheel's workload the first ~800 tokens of every prompt (system prompt + tool schemas) are the same.
The local engine (:mod:`.engine`) computes the keys/values of such a shared prefix once and keeps them here,
per adapter (a LoRA changes keys and values). An entry sharing at least ``min_prefix_tokens`` leading tokens
with a new batch serves it, cut to the shared part: the KV of a prefix does not depend on what follows it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from dataflywheel.models.attention import KV

__all__ = ["PrefixCache", "PrefixEntry", "common_prefix_len"]


@dataclass
class PrefixEntry:
    """The KV of ``tokens`` (batch 1) computed with ``adapter`` active (None: the base model)."""

    adapter: str | None
    tokens: tuple[int, ...]
    kv: KV


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class PrefixCache:
    """A small LRU of prefix KV caches. An entry serves any prompt sharing enough leading tokens with it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[int, PrefixEntry] = OrderedDict()
        self._next = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self, adapter: str | Literal["*"] | None = "*") -> None:
        if adapter == "*":
            self._entries.clear()
            return
        for key in [k for k, e in self._entries.items() if e.adapter == adapter]:
            del self._entries[key]

    def best(self, adapter: str | None, tokens: Sequence[int]) -> tuple[PrefixEntry | None, int]:
        """The entry sharing the longest prefix with ``tokens`` (touched as recently used) and that length."""
        best_key, best_len = None, 0
        for key, entry in self._entries.items():
            if entry.adapter != adapter:
                continue
            n = common_prefix_len(entry.tokens, tokens)
            if n > best_len:
                best_key, best_len = key, n
        if best_key is None:
            return None, 0
        self._entries.move_to_end(best_key)
        return self._entries[best_key], best_len

    def put(self, adapter: str | None, tokens: Sequence[int], kv: KV) -> None:
        if self.size <= 0:
            return
        new = tuple(tokens)
        # An entry whose tokens start the new one is superseded by it.
        for key in [
            k
            for k, e in self._entries.items()
            if e.adapter == adapter and len(e.tokens) <= len(new) and new[: len(e.tokens)] == e.tokens
        ]:
            del self._entries[key]
        self._entries[self._next] = PrefixEntry(adapter, new, kv)
        self._next += 1
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
