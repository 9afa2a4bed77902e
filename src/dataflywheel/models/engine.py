"""The local engine: batched generation with a Hugging Face causal LM, LoRA adapters and prefix reuse.

:class:`LocalEngine` loads a model folder with the normal ``AutoModelForCausalLM.from_pretrained`` path and
answers :class:`~dataflywheel.models.types.ChatRequest` lists (:meth:`LocalEngine.chat`) or raw prompts
(:meth:`LocalEngine.generate_text`). It is built for the flywheel's workload: many short answers (one tool
call) to long prompts whose first ~800 tokens (system prompt + tool schemas) are the same in every request.

How a batch is generated
    Prompts are tokenized and cut into sub-batches of at most ``max_batch_size`` (with prefix reuse: in token
    order, so prompts sharing a prefix land together; without: by length). Each sub-batch runs one prefill,
    then one decode step per new token for all its rows, in our own loop (not ``model.generate``) so every
    row keeps its own sampling parameters (greedy, or temperature/top-p with its own seed), ``max_tokens``
    and stop strings. Rows leave the batch (and the KV cache) as soon as they finish. Cache layers write into
    buffers sized once for the whole generation (``DynamicLayer`` would re-copy the cache at every step).

Shared-prefix reuse
    When the prompts of a sub-batch share at least ``min_prefix_tokens`` leading tokens, the KV cache of that
    prefix is computed once (batch 1) and only the rest of each prompt (its suffix) is run. Computed prefixes
    go into a small LRU (per adapter: a LoRA changes keys and values); an entry sharing at least
    ``min_prefix_tokens`` leading tokens with a new batch is reused, cut to the shared part (the KV of a
    prefix does not depend on what follows it). A single request caches its whole prompt, so one-at-a-time
    requests reuse the system prompt too. Two ways to run the suffixes:

    * cascade (the default, for models that use transformers' attention interface with ``sdpa``): the
      prefix's keys/values stay batch-1 and every attention step combines scores against the prefix (read
      once for all rows) with scores against each row's own tokens in one softmax (:mod:`.attention`).
      The suffixes are prefilled packed into one sequence, each seeing the prefix and causally itself, so no
      padding is computed; their keys/values are then laid out as a left-padded batch for decoding.
    * expanded (``cascade_attention = False``, or models without the attention interface): the prefix's
      keys/values are copied into every row, laid out ``[prefix | padding | suffix]`` with the padding masked
      out and the suffix's position ids continuing from the prefix.

    Either way each row sees exactly the tokens and positions it would see alone: greedy outputs are the same
    as without reuse (tests check it). Measured on 2 CPU cores (SmolLM2-135M, 32 routing prompts sharing
    ~1000 tokens, 48 new tokens each, batches of 16; benchmarks/generation.py): cascade 1.7x faster than
    expanded and 6.8x faster than no reuse; 6x the tokens/s of one request at a time.

Tool names
    A chat request with ``tools`` (``constrain_tool_names`` on, the default) generates with a
    :class:`~dataflywheel.models.constrain.ToolNameConstraint`: while a row writes a call's name, the logits
    of the tokens that would make a name no tool has are set to -inf before argmax or sampling. Rows without
    one take the unconstrained path unchanged. Every token's text is decoded once per engine, on the first
    such request; masks are cached per tool set.

Device and dtype (``"auto"``)
    CUDA when available, in bfloat16 (float16 on GPUs without bf16). On CPU, bfloat16 only when the CPU has
    native bf16 arithmetic (AVX512-BF16 or AMX, as torch reports it or ``/proc/cpuinfo`` lists it), else
    float32: without it torch converts bf16 in software, which only pays where memory bandwidth is all that
    counts. Measured on a 2-core AVX2 machine with SmolLM2-135M: bf16 decodes one stream 1.5x faster
    (0.039 vs 0.060 s/token) but a 16-row decode step takes 2.3x longer (0.25 vs 0.11 s) and a 256-token
    prefill 6x longer (2.9 vs 0.47 s); the engine's work is batches and prefills. Torch uses as many threads
    as the process may run on (``threads`` to change it: torch's thread count is process-wide).

Thread safety: every public method takes one lock; one generation runs at a time.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from dataflywheel.errors import ConfigError, FlywheelError
from dataflywheel.models.attention import KV, holding_prefix, use_cascade_attention
from dataflywheel.models.constrain import (
    CallOpening,
    TokenMask,
    TokenTexts,
    ToolNameConstraint,
    ToolNameRule,
    call_opening,
)
from dataflywheel.models.registry import ModelLoadError, local_model_dir, resolve_model
from dataflywheel.models.types import ChatRequest, ChatResult, SamplingParams, Usage

if TYPE_CHECKING:
    import torch

    from dataflywheel.settings import Settings

__all__ = [
    "GeneratedText",
    "GenerationInputError",
    "LocalEngine",
    "UnknownAdapterError",
    "cpu_has_fast_bf16",
    "resolve_device",
    "resolve_dtype",
]

DEFAULT_MIN_PREFIX_TOKENS = 64
_MAX_PACKED_MASK = 1 << 24
"""Largest packed prefill (suffix tokens x (prefix + suffix tokens)) run as one sequence; beyond, padded."""
DEFAULT_PREFIX_CACHE_SIZE = 4
_TOOL_NAME_RULES = 64
"""Tool sets whose name masks are kept (evaluations ask many requests with the same tools)."""

FinishReason = Literal["stop", "length"]


class UnknownAdapterError(FlywheelError):
    """A request named a LoRA adapter that the engine has not loaded."""


class GenerationInputError(FlywheelError, ValueError):
    """A prompt the engine cannot run (empty, longer than the model's context) or mismatched arguments."""


@dataclass(frozen=True)
class GeneratedText:
    """What one prompt generated: the text (trimmed before the first stop string; an EOS token is not in
    it), the prompt's tokens, the generated tokens (an EOS included, like ``max_tokens`` counts them), and
    why it ended: ``stop`` (EOS or a stop string) or ``length`` (``max_tokens`` reached)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason


class _RenderedPrompt(Protocol):
    @property
    def text(self) -> str: ...

    @property
    def prefill(self) -> str: ...


class _Codec(Protocol):
    """What :meth:`LocalEngine.chat` needs from :class:`dataflywheel.models.codec.ToolCallCodec`."""

    @property
    def stop_strings(self) -> list[str]: ...

    def render_prompt(
        self, messages: list[dict[str, Any]], tools: Any = None, tool_choice: Any = None
    ) -> _RenderedPrompt: ...

    def parse(self, generated_text: str, tools: Any = None, prefill: str = "") -> dict[str, Any]: ...

    # Also used when the codec has it: ``prefill(tool_choice) -> str`` (the call opening, for tool-name
    # constraints); a codec without it answers unconstrained.


# ---- device and dtype ----------------------------------------------------------------------------------
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU does bf16 arithmetic natively (AVX512-BF16 or AMX), so bf16 beats fp32 on it."""
    import torch

    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):  # torch.cpu's (private) probes
        fn = getattr(torch.cpu, probe, None)
        if fn is not None:
            with contextlib.suppress(Exception):
                if fn():
                    return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(device: str) -> torch.device:
    """``auto``: CUDA when available, else CPU. Anything else is passed to ``torch.device``."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"device {device!r}: {exc}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    return resolved


_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on CUDA (fp16 without bf16 support), bf16 on CPUs with native bf16, else fp32."""
    import torch

    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu":
            return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
        return torch.float32
    name = _DTYPES.get(dtype.lower())
    if name is None:
        raise ConfigError(f"dtype {dtype!r}: expected auto, float32, bfloat16 or float16")
    result: torch.dtype = getattr(torch, name)
    return result


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# ---- prefix cache --------------------------------------------------------------------------------------
@dataclass
class _PrefixEntry:
    adapter: str | None
    tokens: tuple[int, ...]
    kv: KV


def _common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class _PrefixCache:
    """A small LRU of prefix KV caches. An entry serves any prompt sharing enough leading tokens with it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[int, _PrefixEntry] = OrderedDict()
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

    def best(self, adapter: str | None, tokens: Sequence[int]) -> tuple[_PrefixEntry | None, int]:
        """The entry sharing the longest prefix with ``tokens`` (touched as recently used) and that length."""
        best_key, best_len = None, 0
        for key, entry in self._entries.items():
            if entry.adapter != adapter:
                continue
            n = _common_prefix_len(entry.tokens, tokens)
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
        self._entries[self._next] = _PrefixEntry(adapter, new, kv)
        self._next += 1
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


_PREALLOCATED_LAYER: type[Any] | None = None


def _preallocated_layer_type() -> type[Any]:
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


# ---- the engine ----------------------------------------------------------------------------------------
def _apply_masks(
    logits: torch.Tensor, masks: Sequence[tuple[int, TokenMask]], greedy: Sequence[bool]
) -> list[tuple[int, tuple[int, ...]]]:
    """Rule out, in place, the tokens each masked row may not pick: banned ids get -inf; with a list of allowed
    ids, a sampled row's other logits get -inf, while a greedy row is returned with its ids, to take the argmax
    of those few logits (:func:`_pick_among`: cheaper than writing over the whole vocabulary)."""
    width = logits.shape[-1]
    among: list[tuple[int, tuple[int, ...]]] = []
    for i, mask in masks:
        if mask.allow and greedy[i]:
            ids = tuple(t for t in mask.ids if t < width)
            if ids:
                among.append((i, ids))
            continue
        tensor = mask.tensor(logits.device, width)
        if not len(tensor):  # nothing it may pick: better unconstrained than token 0
            continue
        row = logits[i]
        if not mask.allow:
            row[tensor] = float("-inf")
        else:
            kept = row[tensor]
            row.fill_(float("-inf"))
            row[tensor] = kept
    return among


def _pick_among(logits: torch.Tensor, tokens: torch.Tensor, among: Sequence[tuple[int, tuple[int, ...]]]) -> None:
    """Set ``tokens[i]`` to the argmax of row ``i``'s logits over its allowed ids, for all such rows at once
    (ids ascending, padded with the first: ties go to the lowest id, as in a full argmax)."""
    import torch

    size = max(len(ids) for _, ids in among)
    rows = torch.tensor([i for i, _ in among], device=logits.device)
    ids = torch.tensor([[*ids, *[ids[0]] * (size - len(ids))] for _, ids in among], device=logits.device)
    best = logits[rows.unsqueeze(1), ids].argmax(dim=-1, keepdim=True)
    tokens[rows] = ids.gather(1, best).squeeze(1)


@dataclass
class _Row:
    """One prompt in flight."""

    index: int
    """Position in the caller's list."""
    tokens: list[int]
    sampling: SamplingParams
    limit: int
    """Tokens it may generate: ``max_tokens``, or less where the model's context ends first."""
    generator: torch.Generator | None = None
    generated: list[int] | None = None
    """Generated tokens, EOS excepted."""
    count: int = 0
    """Generated tokens, an EOS included (the completion tokens)."""
    text: str = ""
    finish: FinishReason | None = None
    constraint: ToolNameConstraint | None = None
    """Masks the tokens of a tool name no tool has (chat requests with tools); None: unconstrained."""


class LocalEngine:
    """A local causal LM answering batches of prompts or chat requests, with LoRA adapters selectable per
    request. See the module docstring for batching, prefix reuse and the device/dtype choice."""

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        *,
        device: str = "auto",
        dtype: str = "auto",
        adapters: Mapping[str, str | os.PathLike[str]] | None = None,
        max_batch_size: int = 16,
        threads: int | None = None,
        prefix_reuse: bool = True,
        min_prefix_tokens: int = DEFAULT_MIN_PREFIX_TOKENS,
        prefix_cache_size: int = DEFAULT_PREFIX_CACHE_SIZE,
        loaded: tuple[Any, Any] | None = None,
    ) -> None:
        """``loaded``: an already loaded ``(model, tokenizer)`` on ``device`` in ``dtype`` to generate with
        instead of loading ``model_dir`` (the trainer scores its model between epochs this way)."""
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            from dataflywheel.errors import DependencyMissingError

            raise DependencyMissingError(
                "the local engine needs torch and transformers: pip install 'data-flywheel[local]'"
            ) from exc

        if max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if min_prefix_tokens < 1:
            raise ConfigError(f"min_prefix_tokens must be >= 1, got {min_prefix_tokens}")
        self.model_dir = str(model_dir)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        if loaded is None:
            try:
                tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
                model: Any = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=self.dtype)
            except (OSError, ValueError, KeyError) as exc:
                raise ModelLoadError(f"cannot load model {self.model_dir}: {exc}") from exc
            model.to(self.device)
        else:
            model, tokenizer = loaded
        self.threads = threads or available_cores()
        torch.set_num_threads(self.threads)
        self.max_batch_size = max_batch_size
        self.prefix_reuse = prefix_reuse
        """Reuse KV caches of shared prompt prefixes (can be switched off at any time, e.g. to compare)."""
        self.min_prefix_tokens = min_prefix_tokens
        self._lock = threading.RLock()
        self._prefix_cache = _PrefixCache(prefix_cache_size)
        self._codec: _Codec | None = None
        self._token_texts: TokenTexts | None = None
        """Every token's text, for tool-name constraints (built on the first constrained request)."""
        self._call_opening: CallOpening | Literal[False] | None = False
        """The codec's call opening (None: its calls are not followed); False: not derived yet."""
        self._tool_name_rules: OrderedDict[tuple[str, ...], ToolNameRule] = OrderedDict()

        self.tokenizer = tokenizer
        model.eval()
        self._base: Any = model
        self._peft: Any = None
        """The :class:`peft.PeftModel` wrapping ``_base`` while at least one adapter is loaded."""
        self._adapters: dict[str, Path] = {}

        config = model.config
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # a lent peft model
        params = inspect.signature(inner.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self._max_positions: int | None = getattr(config, "max_position_embeddings", None)
        self._eos_ids = self._find_eos_ids()
        pad = self.tokenizer.pad_token_id
        self._pad_id: int = int(pad) if pad is not None else (min(self._eos_ids) if self._eos_ids else 0)
        self._plain_cache = self._cache_is_plain()
        self._lent_attention = getattr(model.config, "_attn_implementation", None)
        self.cascade_attention = self._enable_cascade_attention()
        """Run batches from a shared prefix with cascade attention (the prefix's keys/values read once
        per step) instead of copying them into every row. True when the model supports it; can be switched
        off (then the prefix is expanded to the batch)."""
        self._sampling_generator = torch.Generator(device=self.device)
        self._sampling_generator.seed()

        for name, path in (adapters or {}).items():
            self.load_adapter(name, path)

    def release(self) -> None:
        """Give back a model lent with ``loaded=``: its attention implementation as it was (the trainer goes
        on training it after scoring it)."""
        with self._lock:
            if self.cascade_attention and self._lent_attention:
                self._base.set_attn_implementation(self._lent_attention)
                self.cascade_attention = False
            self._prefix_cache.clear()

    @classmethod
    def from_name(
        cls,
        name: str,
        settings: Settings,
        *,
        adapters: Mapping[str, str | os.PathLike[str]] | None = None,
        **kwargs: Any,
    ) -> LocalEngine:
        """The engine of candidate ``name`` (settings, built-in alias, folder, GGUF or hub id)."""
        spec = resolve_model(name, settings)
        return cls(local_model_dir(spec, settings), adapters=adapters, **kwargs)

    # ---- setup helpers ---------------------------------------------------------------------------------
    def _find_eos_ids(self) -> frozenset[int]:
        ids: set[int] = set()
        generation_config = getattr(self._base, "generation_config", None)
        for source in (getattr(generation_config, "eos_token_id", None), self.tokenizer.eos_token_id):
            if isinstance(source, int):
                ids.add(source)
            elif isinstance(source, list | tuple):
                ids.update(int(i) for i in source)
        return frozenset(ids)

    def _cache_is_plain(self) -> bool:
        """Prefix reuse slices and expands plain per-layer KV tensors; sliding-window or other cache layers
        keep something else, so those models generate without it."""
        try:
            from transformers import DynamicCache
            from transformers.cache_utils import DynamicLayer
        except ImportError:  # pragma: no cover - older transformers
            return False
        try:
            cache = DynamicCache(config=self._base.config)
        except Exception:
            return False
        layers: list[Any] = getattr(cache, "layers", None) or []
        return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)

    def _enable_cascade_attention(self) -> bool:
        """Switch the model to cascade attention (:mod:`.attention`) when its cache layers are plain and it
        uses transformers' attention interface with ``sdpa``; False when it cannot."""
        return self._plain_cache and use_cascade_attention(self._base)

    def _new_cache(self, kv: KV | None = None, batch: int = 1, capacity: int | None = None, offset: int = 0) -> Any:
        """A fresh cache, starting from ``kv`` (expanded to ``batch`` rows) when given. With ``capacity``
        (tokens: prefix + prompt + new) and plain layers, each layer writes into a buffer allocated once,
        instead of re-copying the whole cache on every decode step as ``DynamicLayer`` does. ``offset``:
        tokens of a shared prefix held outside the cache (cascade attention)."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self._base.config)
        if capacity is not None and self._plain_cache:
            layer_type = _preallocated_layer_type()
            cache.layers = [layer_type(capacity, offset) for _ in cache.layers]
        if kv is not None:
            for layer, (k, v) in enumerate(kv):
                if batch > 1:
                    k, v = k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)
                cache.update(k, v, layer)
        return cache

    # ---- adapters --------------------------------------------------------------------------------------
    @property
    def adapters(self) -> dict[str, Path]:
        """Loaded LoRA adapters: name -> folder."""
        with self._lock:
            return dict(self._adapters)

    def load_adapter(self, name: str, path: str | os.PathLike[str]) -> None:
        """Load the PEFT (LoRA) adapter saved at ``path`` under ``name``, replacing one of that name."""
        if not name:
            raise ConfigError("adapter name is empty")
        folder = Path(path).expanduser()
        if not (folder / "adapter_config.json").is_file():
            raise ModelLoadError(f"adapter {name!r}: {folder} has no adapter_config.json")
        with self._lock:
            if name in self._adapters:
                self._unload(name)
            try:
                if self._peft is None:
                    from peft import PeftModel

                    self._peft = PeftModel.from_pretrained(self._base, str(folder), adapter_name=name)
                    self._peft.eval()
                else:
                    self._peft.load_adapter(str(folder), adapter_name=name)
            except ImportError as exc:
                from dataflywheel.errors import DependencyMissingError

                raise DependencyMissingError("LoRA adapters need peft: pip install 'data-flywheel[local]'") from exc
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise ModelLoadError(f"cannot load adapter {name!r} from {folder}: {exc}") from exc
            self._adapters[name] = folder
            self._prefix_cache.clear(name)

    def unload_adapter(self, name: str) -> None:
        """Remove a loaded adapter (:class:`UnknownAdapterError` if there is none of that name)."""
        with self._lock:
            self._check_adapter(name)
            self._unload(name)

    def _unload(self, name: str) -> None:
        del self._adapters[name]
        self._prefix_cache.clear(name)
        if not self._adapters:
            # peft cannot run without any adapter: take the LoRA layers out and keep the plain model.
            self._base = self._peft.unload()
            self._peft = None
            return
        if self._peft.active_adapter == name:  # activate another first (peft warns otherwise)
            self._peft.set_adapter(next(iter(self._adapters)))
        self._peft.delete_adapter(name)

    def _check_adapter(self, adapter: str | None) -> None:
        if adapter is not None and adapter not in self._adapters:
            known = ", ".join(sorted(self._adapters)) or "none"
            raise UnknownAdapterError(f"adapter {adapter!r} is not loaded (loaded: {known})")

    @contextlib.contextmanager
    def _use_adapter(self, adapter: str | None) -> Iterator[Any]:
        """Yield the module to call with ``adapter`` active (None: the base model, LoRA layers bypassed)."""
        if self._peft is None:
            yield self._base
        elif adapter is None:
            with self._peft.disable_adapter():
                yield self._peft
        else:
            if self._peft.active_adapter != adapter:
                self._peft.set_adapter(adapter)
            yield self._peft

    # ---- prefix cache ----------------------------------------------------------------------------------
    def clear_prefix_cache(self) -> None:
        with self._lock:
            self._prefix_cache.clear()

    @property
    def prefix_cache_stats(self) -> dict[str, int]:
        """``entries``, ``hits`` (batches that reused a cached prefix) and ``misses`` (that computed one)."""
        cache = self._prefix_cache
        return {"entries": len(cache), "hits": cache.hits, "misses": cache.misses}

    def _prefix_for(self, model: Any, adapter: str | None, rows: Sequence[_Row]) -> tuple[int, KV | None]:
        """The shared prefix of ``rows`` (length, batch-1 KV) to run them from; (0, None) for none."""
        if not (self.prefix_reuse and self._plain_cache):
            return 0, None
        first = rows[0].tokens
        # Every row keeps at least one token of its own to run: its last position gives the first logits.
        common = min(len(r.tokens) for r in rows) - 1
        for row in rows[1:]:
            common = _common_prefix_len(first[:common], row.tokens)
        if common < self.min_prefix_tokens:
            return 0, None
        target = first[:common]
        entry, shared = self._prefix_cache.best(adapter, target)
        if entry is not None and shared >= self.min_prefix_tokens:
            self._prefix_cache.hits += 1
            kv: KV = [(k[:, :, :shared], v[:, :, :shared]) for k, v in entry.kv]
            if common - shared < self.min_prefix_tokens:
                return shared, kv  # the few remaining shared tokens run with the suffixes
            kv = self._run_prefix(model, target[shared:], kv, shared)
        else:
            self._prefix_cache.misses += 1
            kv = self._run_prefix(model, target, None, 0)
        self._prefix_cache.put(adapter, target, kv)
        return common, kv

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

    # ---- generation ------------------------------------------------------------------------------------
    def generate_text(
        self,
        prompts: Sequence[str],
        sampling: Sequence[SamplingParams] | SamplingParams,
        adapter: str | None = None,
    ) -> list[GeneratedText]:
        """Generate a completion for each prompt (already rendered: special tokens included, none added).

        ``sampling`` is one :class:`SamplingParams` for all prompts or one per prompt; prompts with different
        parameters share batches. ``adapter`` names a loaded LoRA adapter (None: the base model).
        """
        with self._lock:
            return self._generate(prompts, sampling, adapter)

    def _generate(
        self,
        prompts: Sequence[str],
        sampling: Sequence[SamplingParams] | SamplingParams,
        adapter: str | None,
        constraints: Sequence[ToolNameConstraint | None] | None = None,
    ) -> list[GeneratedText]:
        """``constraints``: one per prompt (None: that prompt unconstrained), or None for none at all."""
        import torch

        self._check_adapter(adapter)
        if isinstance(sampling, SamplingParams):
            params: list[SamplingParams] = [sampling] * len(prompts)
        else:
            params = list(sampling)
            if len(params) != len(prompts):
                raise GenerationInputError(f"{len(prompts)} prompts but {len(params)} sampling parameters")
        if not prompts:
            return []
        encoded: list[list[int]] = self.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
        rows: list[_Row] = []
        results: list[GeneratedText | None] = [None] * len(prompts)
        for i, (ids, p) in enumerate(zip(encoded, params, strict=True)):
            if not ids:
                raise GenerationInputError(f"prompt {i} is empty")
            if self._max_positions is not None and len(ids) >= self._max_positions:
                raise GenerationInputError(
                    f"prompt {i} has {len(ids)} tokens; the model's context is {self._max_positions}"
                )
            limit = p.max_tokens
            if self._max_positions is not None:  # the context ends generation as max_tokens does
                limit = min(limit, self._max_positions - len(ids))
            if limit < 1:
                results[i] = GeneratedText("", len(ids), 0, "length")
                continue
            generator = None
            if p.temperature > 0 and p.seed is not None:
                generator = torch.Generator(device=self.device)
                generator.manual_seed(p.seed)
            constraint = constraints[i] if constraints else None
            rows.append(_Row(i, list(ids), p, limit, generator, constraint=constraint))
        with torch.inference_mode(), self._use_adapter(adapter) as model:
            for batch in self._batches(rows):
                self._generate_batch(model, adapter, batch)
                for row in batch:
                    assert row.finish is not None
                    results[row.index] = GeneratedText(row.text, len(row.tokens), row.count, row.finish)
        return [r for r in results if r is not None]

    def _batches(self, rows: list[_Row]) -> Iterator[list[_Row]]:
        """Cut rows into sub-batches of at most ``max_batch_size``.

        Without prefix reuse: by length (less padding). With it: rows are sorted in token order, so prompts
        sharing a prefix are neighbours; runs of at least two rows sharing ``min_prefix_tokens`` or more form
        groups, batched apart (each batch then runs from its prefix); the other rows are batched together by
        length. A lone request is its own group: its prompt goes into the prefix cache for the next ones.
        """
        size = self.max_batch_size
        if not (self.prefix_reuse and self._plain_cache) or len(rows) == 1:
            rows = sorted(rows, key=lambda r: len(r.tokens))
            for start in range(0, len(rows), size):
                yield rows[start : start + size]
            return
        groups: list[list[_Row]] = [[]]
        common = 0
        for row in sorted(rows, key=lambda r: r.tokens):
            group = groups[-1]
            shared = min(common, _common_prefix_len(group[0].tokens, row.tokens)) if group else 0
            if group and shared >= self.min_prefix_tokens:
                group.append(row)
                common = shared
            else:
                groups.append([row])
                common = len(row.tokens)
        loose = [group[0] for group in groups if len(group) == 1]
        for group in (g for g in groups if len(g) > 1):
            for start in range(0, len(group), size):
                yield group[start : start + size]
        loose.sort(key=lambda r: len(r.tokens))
        for start in range(0, len(loose), size):
            yield loose[start : start + size]

    def _generate_batch(self, model: Any, adapter: str | None, rows: list[_Row]) -> None:
        prefix_len, prefix_kv = self._prefix_for(model, adapter, rows)
        new_tokens = max(r.limit for r in rows)
        if prefix_kv is None or not self.cascade_attention:
            # Left padding: [pad | prompt]; with an expanded prefix: [prefix | pad | suffix].
            logits, cache, mask, last = self._padded_prefill(model, rows, prefix_len, prefix_kv, new_tokens)
            self._decode_steps(model, rows, logits, cache, mask, last)
            return
        with holding_prefix(prefix_kv):
            suffix_tokens = sum(len(r.tokens) - prefix_len for r in rows)
            if suffix_tokens * (prefix_len + suffix_tokens) <= _MAX_PACKED_MASK:
                logits, cache, mask, last = self._packed_prefill(model, rows, prefix_len, new_tokens)
            else:
                logits, cache, mask, last = self._padded_prefill(model, rows, prefix_len, None, new_tokens)
            self._decode_steps(model, rows, logits, cache, mask, last)

    def _padded_prefill(
        self, model: Any, rows: list[_Row], prefix_len: int, prefix_kv: KV | None, new_tokens: int
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
        self, model: Any, rows: list[_Row], prefix_len: int, new_tokens: int
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
        self, model: Any, rows: list[_Row], logits: torch.Tensor, cache: Any, mask: torch.Tensor, last: torch.Tensor
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

    def _pick(self, logits: torch.Tensor, rows: Sequence[_Row]) -> torch.Tensor:
        """Next token of each row: argmax for greedy rows, temperature/top-p sampling for the others; the
        tokens a row's constraint rules out this step are masked first."""
        import torch

        masks = [
            (i, mask)
            for i, row in enumerate(rows)
            if row.constraint is not None and (mask := row.constraint.mask()) is not None
        ]
        among = _apply_masks(logits, masks, [r.sampling.temperature <= 0 for r in rows]) if masks else []
        tokens = logits.argmax(dim=-1)
        if among:
            _pick_among(logits, tokens, among)
        sampled = [i for i, r in enumerate(rows) if r.sampling.temperature > 0]
        if not sampled:
            return tokens
        index = torch.tensor(sampled, device=logits.device)
        temperature = torch.tensor(
            [rows[i].sampling.temperature for i in sampled], device=logits.device, dtype=torch.float32
        )
        scaled = logits[index].float() / temperature.unsqueeze(1)
        order: torch.Tensor | None = None
        if any(rows[i].sampling.top_p < 1.0 for i in sampled):
            top_p = torch.tensor([rows[i].sampling.top_p for i in sampled], device=logits.device)
            scaled, order = scaled.sort(dim=-1, descending=True)
            probs = scaled.softmax(dim=-1)
            # Drop tokens once the mass before them reaches top_p (the top token always stays).
            drop = (probs.cumsum(dim=-1) - probs) >= top_p.unsqueeze(1)
            probs = probs.masked_fill(drop, 0.0)
        else:
            probs = scaled.softmax(dim=-1)
        for j, i in enumerate(sampled):
            generator = rows[i].generator or self._sampling_generator
            choice = torch.multinomial(probs[j], 1, generator=generator)[0]
            tokens[i] = choice if order is None else order[j, choice]
        return tokens

    def _advance(self, row: _Row, token_tensor: torch.Tensor) -> bool:
        """Append a token to ``row``; True when the row is finished."""
        assert row.generated is not None
        token = int(token_tensor)
        row.count += 1
        if token in self._eos_ids:
            row.finish = "stop"
            row.text = self._decode(row.generated)
            return True
        row.generated.append(token)
        if row.constraint is not None:
            row.constraint.feed(token)
        stop = row.sampling.stop
        if stop:
            text = self._decode(row.generated)
            cut = min((k for k in (text.find(s) for s in stop if s) if k >= 0), default=-1)
            if cut >= 0:
                row.text, row.finish = text[:cut], "stop"
                return True
        if row.count >= row.limit:
            row.text, row.finish = self._decode(row.generated), "length"
            return True
        return False

    def _decode(self, tokens: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(tokens), skip_special_tokens=False))

    # ---- chat ------------------------------------------------------------------------------------------
    @property
    def codec(self) -> _Codec:
        """The :class:`~dataflywheel.models.codec.ToolCallCodec` for this model's tokenizer (created on use)."""
        if self._codec is None:
            from dataflywheel.models.codec import ToolCallCodec

            self._codec = ToolCallCodec(self.tokenizer)
        return self._codec

    @codec.setter
    def codec(self, codec: _Codec) -> None:
        with self._lock:
            self._codec = codec
            self._call_opening = False
            self._tool_name_rules.clear()

    def chat(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Answer OpenAI-style chat requests: render with the codec, generate (per adapter, batched), parse.

        ``latency_s`` of a result is the time from this call to the end of its adapter's sub-batch.
        """
        started = time.perf_counter()
        with self._lock:
            for request in requests:
                self._check_adapter(request.adapter)
            codec = self.codec
            rendered = [codec.render_prompt(r.messages, tools=r.tools, tool_choice=r.tool_choice) for r in requests]
            groups: dict[str | None, list[int]] = {}
            for i, request in enumerate(requests):
                groups.setdefault(request.adapter, []).append(i)
            results: list[ChatResult | None] = [None] * len(requests)
            extra_stops = list(codec.stop_strings)
            for adapter, indices in groups.items():
                sampling = [
                    replace(requests[i].sampling, stop=[*requests[i].sampling.stop, *extra_stops]) for i in indices
                ]
                constraints = [self._tool_name_constraint(requests[i], rendered[i].prefill) for i in indices]
                generated = self._generate(
                    [rendered[i].text for i in indices],
                    sampling,
                    adapter,
                    constraints if any(c is not None for c in constraints) else None,
                )
                for i, gen in zip(indices, generated, strict=True):
                    prefill = rendered[i].prefill
                    message = codec.parse(gen.text, tools=requests[i].tools, prefill=prefill)
                    finish: Literal["stop", "length", "tool_calls"] = (
                        "tool_calls" if message.get("tool_calls") else gen.finish_reason
                    )
                    results[i] = ChatResult(
                        message=message,
                        finish_reason=finish,
                        usage=Usage(gen.prompt_tokens, gen.completion_tokens),
                        raw_text=prefill + gen.text,
                        latency_s=time.perf_counter() - started,
                    )
        return [r for r in results if r is not None]

    def _tool_name_constraint(self, request: ChatRequest, prefill: str) -> ToolNameConstraint | None:
        """The constraint holding ``request``'s tool-call names to its tools (see
        :mod:`dataflywheel.models.constrain`); None when it has no tools offered or opts out, or when the
        codec's calls cannot be followed."""
        if not (request.constrain_tool_names and request.tools and request.tool_choice != "none"):
            return None
        from dataflywheel.models.toolparse import tool_names

        names = tuple(tool_names(request.tools))
        opening = self._opening()
        if opening is None or not names:
            return None
        rule = self._tool_name_rules.get(names)
        if rule is None:
            if self._token_texts is None:
                self._token_texts = TokenTexts.from_tokenizer(self.tokenizer)
            rule = self._tool_name_rules[names] = ToolNameRule(opening, names, self._token_texts)
            while len(self._tool_name_rules) > _TOOL_NAME_RULES:
                self._tool_name_rules.popitem(last=False)
        else:
            self._tool_name_rules.move_to_end(names)
        return ToolNameConstraint(rule, prefill)

    def _opening(self) -> CallOpening | None:
        """The codec's call opening (its ``required`` prefill), derived once per codec."""
        if self._call_opening is False:
            prefill = getattr(self.codec, "prefill", None)
            self._call_opening = call_opening(prefill) if callable(prefill) else None
        return self._call_opening
