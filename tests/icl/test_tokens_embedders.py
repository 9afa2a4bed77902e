"""Token counting, local and endpoint embedders (against a real local HTTP server), kNN search."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from dataflywheel.errors import ConfigError, EmbeddingError
from dataflywheel.icl.embedders import (
    Embedder,
    LocalEmbedder,
    OpenAIEmbedder,
    l2_normalize,
    make_embedder,
    top_k_cosine,
)
from dataflywheel.icl.tokens import (
    BUILTIN_MINILM,
    HFTokenCounter,
    TokenCounter,
    builtin_minilm_path,
    clear_token_counter_cache,
    load_token_counter,
)
from dataflywheel.settings import EmbedderSettings
from tests.helpers.embedding_server import EmbeddingServer

LONG_TEXT = " ".join(f"word{i} is part of a rather long sentence about order status" for i in range(60))
TEXTS = [
    "Where is my order? It was supposed to arrive yesterday.",
    "I want to return the ankle socks I bought.",
    "Does the RTX hoodie come in size XL?",
    "hello there!",
    "Ünïcödé façade — naïve café",
]


# Tokens ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    return builtin_minilm_path()


def _reference_tokenizer(minilm_dir: Path) -> Tokenizer:
    tok = Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def test_builtin_counts_equal_tokenizers_encode_length(minilm_dir: Path) -> None:
    ref = _reference_tokenizer(minilm_dir)
    counter = load_token_counter(BUILTIN_MINILM)
    assert isinstance(counter, TokenCounter)
    for text in [*TEXTS, LONG_TEXT]:
        assert counter.count(text) == len(ref.encode(text, add_special_tokens=False).ids)
    assert counter.count_many([*TEXTS, LONG_TEXT]) == [counter.count(t) for t in [*TEXTS, LONG_TEXT]]


def test_no_truncation_no_padding_no_special_tokens(minilm_dir: Path) -> None:
    shipped = Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    assert shipped.truncation is not None  # the shipped file truncates at 128 ...
    counter = HFTokenCounter(shipped)
    assert counter.count(LONG_TEXT) > 128  # ... the counter does not
    assert shipped.truncation is not None  # and the caller's tokenizer was not modified
    assert counter.count("hello") == 1  # no [CLS]/[SEP], no [PAD] up to 128
    assert counter.count("") == 0
    assert counter.count_many([]) == []
    assert counter.count_many(["", "hello"]) == [0, 1]


def test_load_paths_and_cache(minilm_dir: Path, tmp_path: Path) -> None:
    assert load_token_counter(BUILTIN_MINILM) is load_token_counter(BUILTIN_MINILM)
    by_file = load_token_counter(str(minilm_dir / "tokenizer.json"))
    by_dir = load_token_counter(str(minilm_dir))
    assert by_file.count(LONG_TEXT) == by_dir.count(LONG_TEXT) == load_token_counter(BUILTIN_MINILM).count(LONG_TEXT)
    # A folder with only vocab.txt: the WordPiece tokenizer is rebuilt and counts the same.
    vocab_only = tmp_path / "vocab_only"
    vocab_only.mkdir()
    shutil.copy(minilm_dir / "vocab.txt", vocab_only / "vocab.txt")
    from_vocab = load_token_counter(str(vocab_only))
    for text in [*TEXTS, LONG_TEXT]:
        assert from_vocab.count(text) == by_file.count(text)
    clear_token_counter_cache()
    assert load_token_counter(BUILTIN_MINILM) is not by_file


@pytest.mark.parametrize(
    "spec",
    ["builtin:nope", "/does/not/exist/tokenizer.json", "./missing.json", "nonexistent-org/nonexistent-tok"],
)
def test_unloadable_tokenizer_is_config_error(spec: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # huggingface_hub reads HF_HUB_OFFLINE once, at import: make the hub attempt fail fast here.
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match=r"icl\.tokenizer"):
        load_token_counter(spec)


def test_malformed_tokenizer_file(tmp_path: Path) -> None:
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"icl\.tokenizer"):
        load_token_counter(str(bad))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=r"neither tokenizer\.json nor vocab\.txt"):
        load_token_counter(str(empty))


# Local embedder ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local() -> LocalEmbedder:
    return LocalEmbedder()


def test_local_embedder(local: LocalEmbedder) -> None:
    assert isinstance(local, Embedder)
    assert local.dim == 384
    vecs = local.embed(TEXTS)
    assert vecs.dtype == np.float32
    assert vecs.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert local.embed([]).shape == (0, 384)
    # Meaning, not just shape: an order question is nearer to another order question than to socks.
    q = local.embed(["Has my package shipped yet?"])
    idx, _ = top_k_cosine(q, vecs, 1)
    assert idx[0, 0] == 0
    # Instances share the loaded model.
    assert LocalEmbedder()._model is local._model


def test_make_embedder_local(local: LocalEmbedder) -> None:
    emb = make_embedder(EmbedderSettings())
    assert isinstance(emb, LocalEmbedder)
    np.testing.assert_allclose(emb.embed(TEXTS[:2]), local.embed(TEXTS[:2]), atol=1e-6)


def test_l2_normalize_keeps_zero_rows() -> None:
    out = l2_normalize([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]], atol=1e-7)
    assert out.dtype == np.float32


# Endpoint embedder against a real server ---------------------------------------------------------------


@pytest.fixture
def server(local: LocalEmbedder) -> Iterator[EmbeddingServer]:
    with EmbeddingServer(embed=local.embed, reverse_order=True) as srv:
        yield srv


def _no_sleep(_: float) -> None:
    pass


def test_endpoint_vectors_equal_local(server: EmbeddingServer, local: LocalEmbedder) -> None:
    with OpenAIEmbedder(server.base_url, "minilm", batch_size=2, sleep=_no_sleep) as emb:
        vecs = emb.embed(TEXTS)
        assert emb.dim == 384
    np.testing.assert_allclose(vecs, local.embed(TEXTS), atol=1e-6)
    assert vecs.dtype == np.float32
    # 5 texts in batches of 2 -> 3 requests, each with model, input list and input_type.
    assert len(server.requests) == 3
    assert [r.body["input"] for r in server.requests] == [TEXTS[0:2], TEXTS[2:4], TEXTS[4:5]]
    assert all(r.path == "/v1/embeddings" for r in server.requests)
    assert all(r.body["model"] == "minilm" and r.body["input_type"] == "query" for r in server.requests)
    assert all("Authorization" not in r.headers for r in server.requests)


def test_endpoint_input_type_omitted(server: EmbeddingServer) -> None:
    with OpenAIEmbedder(server.base_url + "/", "m", input_type=None, sleep=_no_sleep) as emb:
        emb.embed(["x"])
    assert "input_type" not in server.requests[0].body
    assert server.requests[0].path == "/v1/embeddings"


def test_endpoint_retries_then_succeeds(server: EmbeddingServer, local: LocalEmbedder) -> None:
    server.fail_first = 2
    sleeps: list[float] = []
    with OpenAIEmbedder(server.base_url, "m", backoff=0.5, sleep=sleeps.append) as emb:
        vecs = emb.embed(TEXTS[:2])
    np.testing.assert_allclose(vecs, local.embed(TEXTS[:2]), atol=1e-6)
    assert len(server.requests) == 3
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] >= 0.5  # exponential backoff


def test_endpoint_gives_up_with_status(server: EmbeddingServer) -> None:
    server.fail_first = 10
    server.fail_status = 503
    with (
        OpenAIEmbedder(server.base_url, "m", sleep=_no_sleep) as emb,
        pytest.raises(EmbeddingError, match=r"503") as err,
    ):
        emb.embed(["a", "b"])
    assert server.base_url + "/embeddings" in str(err.value)
    assert len(server.requests) == 3  # 3 tries, no more


def test_endpoint_auth(server: EmbeddingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server.api_key = "s3cret"
    monkeypatch.setenv("TEST_EMB_KEY", "s3cret")
    with OpenAIEmbedder(server.base_url, "m", api_key_env="TEST_EMB_KEY", sleep=_no_sleep) as emb:
        assert emb.embed(["hi"]).shape == (1, 384)
    assert server.requests[-1].headers["Authorization"] == "Bearer s3cret"

    monkeypatch.setenv("TEST_EMB_KEY", "wrong")
    n = len(server.requests)
    with (
        OpenAIEmbedder(server.base_url, "m", api_key_env="TEST_EMB_KEY", sleep=_no_sleep) as emb,
        pytest.raises(EmbeddingError, match=r"HTTP 401"),
    ):
        emb.embed(["hi"])
    assert len(server.requests) == n + 1  # a 401 is not retried

    monkeypatch.delenv("TEST_EMB_KEY")
    with pytest.raises(ConfigError, match="TEST_EMB_KEY"):
        OpenAIEmbedder(server.base_url, "m", api_key_env="TEST_EMB_KEY")


def test_endpoint_connection_refused() -> None:
    srv = EmbeddingServer(embed=lambda texts: np.zeros((len(texts), 3))).start()
    url = srv.base_url
    srv.stop()  # nothing listens there any more
    sleeps: list[float] = []
    with (
        OpenAIEmbedder(url, "m", sleep=sleeps.append, timeout=2) as emb,
        pytest.raises(EmbeddingError, match="ConnectError"),
    ):
        emb.embed(["a"])
    assert len(sleeps) == 2


def test_endpoint_wrong_count_is_error(local: LocalEmbedder) -> None:
    with (
        EmbeddingServer(embed=lambda texts: local.embed(list(texts)[:1])) as srv,
        OpenAIEmbedder(srv.base_url, "m", sleep=_no_sleep) as emb,
        pytest.raises(EmbeddingError, match="1 vectors for 2 inputs"),
    ):
        emb.embed(["a", "b"])


def test_make_embedder_openai(server: EmbeddingServer) -> None:
    emb = make_embedder(EmbedderSettings(kind="openai", base_url=server.base_url, model="m", batch_size=3))
    assert isinstance(emb, OpenAIEmbedder)
    assert emb.embed(TEXTS).shape == (5, 384)
    assert len(server.requests) == 2


# top_k_cosine ------------------------------------------------------------------------------------------


def _reference_top_k(q: np.ndarray, c: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = q @ c.T
    idx = np.array([np.lexsort((np.arange(c.shape[0]), -row))[:k] for row in scores])
    return idx, np.take_along_axis(scores, idx, axis=1)


def test_top_k_matches_full_sort_in_any_block_size() -> None:
    rng = np.random.default_rng(0)
    c = l2_normalize(rng.normal(size=(500, 16)))
    q = l2_normalize(rng.normal(size=(37, 16)))
    ref_idx, ref_sc = _reference_top_k(q, c, 7)
    for block in (1 << 23, 700, 50, 7):
        idx, sc = top_k_cosine(q, c, 7, block_elements=block)
        np.testing.assert_array_equal(idx, ref_idx)
        np.testing.assert_allclose(sc, ref_sc, atol=1e-6)


def test_top_k_ties_by_index_and_edges() -> None:
    c = np.array([[1.0, 0.0]] * 6 + [[0.0, 1.0]], dtype=np.float32)  # six identical rows
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    for block in (1 << 23, 4, 3):
        idx, _ = top_k_cosine(q, c, 3, block_elements=block)
        assert idx.tolist() == [[0, 1, 2]]
    idx, _ = top_k_cosine(q, c, 100)
    assert idx.shape == (1, 7) and idx[0, -1] == 6
    assert top_k_cosine(q, c[:0], 3)[0].shape == (1, 0)
    assert top_k_cosine(q[:0], c, 3)[0].shape == (0, 3)
    assert top_k_cosine(q, c, 0)[0].shape == (1, 0)
    with pytest.raises(ValueError, match="dimension mismatch"):
        top_k_cosine(q, np.ones((2, 3), dtype=np.float32), 1)
