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
    buffers sized once for the whole generation (:mod:`.kv_cache`). The forward passes: :mod:`.forward`;
    picking tokens and ending rows: :mod:`.sampling`.

Shared-prefix reuse
    When the prompts of a sub-batch share at least ``min_prefix_tokens`` leading tokens, the KV cache of that
    prefix is computed once (batch 1) and only the rest of each prompt (its suffix) is run. Computed prefixes
    go into a small LRU (:mod:`.prefix_cache`, per adapter: a LoRA changes keys and values); an entry sharing
    at least ``min_prefix_tokens`` leading tokens with a new batch is reused, cut to the shared part. A single
    request caches its whole prompt, so one-at-a-time requests reuse the system prompt too. Two ways to run
    the suffixes:

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

Device and dtype (``"auto"``): see :mod:`.device`.

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
    TokenTexts,
    ToolNameConstraint,
    ToolNameRule,
    call_opening,
)
from dataflywheel.models.device import DTYPE_ALIASES as _DTYPES  # noqa: F401 (moved; importable as before)
from dataflywheel.models.device import available_cores, cpu_has_fast_bf16, resolve_device, resolve_dtype
from dataflywheel.models.forward import BatchForward
from dataflywheel.models.kv_cache import cache_is_plain
from dataflywheel.models.kv_cache import preallocated_layer_type as _preallocated_layer_type  # noqa: F401
from dataflywheel.models.prefix_cache import PrefixCache as _PrefixCache
from dataflywheel.models.prefix_cache import PrefixEntry as _PrefixEntry  # noqa: F401
from dataflywheel.models.prefix_cache import common_prefix_len as _common_prefix_len
from dataflywheel.models.registry import ModelLoadError, local_model_dir, resolve_model
from dataflywheel.models.sampling import FinishReason, Row
from dataflywheel.models.sampling import apply_masks as _apply_masks  # noqa: F401
from dataflywheel.models.sampling import pick_among as _pick_among  # noqa: F401
from dataflywheel.models.types import ChatRequest, ChatResult, SamplingParams, Usage
from dataflywheel.records.jsonvalue import JsonObject

if TYPE_CHECKING:
    from dataflywheel.settings import Settings

__all__ = [
    "GeneratedText",
    "GenerationInputError",
    "LocalEngine",
    "UnknownAdapterError",
    "available_cores",
    "cpu_has_fast_bf16",
    "resolve_device",
    "resolve_dtype",
]

_Row = Row
"""One prompt in flight (:class:`.sampling.Row`; the ``_``-names imported above lived here before the split)."""

DEFAULT_MIN_PREFIX_TOKENS = 64
_MAX_PACKED_MASK = 1 << 24
"""Largest packed prefill (suffix tokens x (prefix + suffix tokens)) run as one sequence; beyond, padded."""
DEFAULT_PREFIX_CACHE_SIZE = 4
_TOOL_NAME_RULES = 64
"""Tool sets whose name masks are kept (evaluations ask many requests with the same tools)."""


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
        self, messages: Sequence[Mapping[str, object]], tools: Any = None, tool_choice: Any = None
    ) -> _RenderedPrompt: ...

    def parse(self, generated_text: str, tools: Any = None, prefill: str = "") -> JsonObject: ...

    # Also used when the codec has it: ``prefill(tool_choice) -> str`` (the call opening, for tool-name
    # constraints); a codec without it answers unconstrained.


class LocalEngine(BatchForward):
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
        self._plain_cache = cache_is_plain(config)
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

    def _enable_cascade_attention(self) -> bool:
        """Switch the model to cascade attention (:mod:`.attention`) when its cache layers are plain and it
        uses transformers' attention interface with ``sdpa``; False when it cannot."""
        return self._plain_cache and use_cascade_attention(self._base)

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
