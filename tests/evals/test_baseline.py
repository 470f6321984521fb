"""The LangChain tutorial baseline on the real corpus, beside our assistant."""
from __future__ import annotations

from pathlib import Path

from evals.baseline import LangChainBaseline, missing_requirements
from evals.metrics import quote_tightness
from ingest.embedders import EmbedderSpec, make_embedder

CORPUS_TEXT = (Path(__file__).resolve().parents[2] / "corpus" / "kushiro-nemuro-vision.txt").read_text(encoding="utf-8")
CHUNK_LENGTHS = [329, 354, 495, 446, 436]


def _items(result, config: str) -> dict:
    return {r.item.id: r for r in result.configs[config].items}


def test_requirements_installed():
    assert missing_requirements() == ""


def test_chunks_are_500_char_pieces_of_the_raw_text(tmp_path):
    baseline = LangChainBaseline(CORPUS_TEXT, make_embedder(EmbedderSpec()), tmp_path)  # the model loads lazily
    assert len(CORPUS_TEXT) == 2031
    assert [len(c) for c in baseline.chunks] == CHUNK_LENGTHS
    assert all(c in CORPUS_TEXT for c in baseline.chunks)


def test_baseline_in_the_eval_run(eval_result):
    run = eval_result.configs["langchain"]
    assert run.available and run.system["chunks"] == 5 and run.system["bm25_preprocess"] == "whitespace (default)"
    assert [r.outcome.coverage for r in run.items] == ["direct"] * 7  # it cannot abstain
    assert run.overall["abstention_accuracy"] == 5 / 7 and run.overall["verbatim"] == 1.0
    fact = _items(eval_result, "langchain")["fact-01"].outcome
    # k=8 per retriever and only 5 chunks: every chunk comes back, the top 4 are quoted whole.
    assert sorted(len(t) for t in fact.retrieved) == sorted(CHUNK_LENGTHS)
    assert list(fact.quotes) == [1, 2, 3, 4] and list(fact.quotes.values()) == fact.retrieved[:4]
    assert fact.text.splitlines()[:2] == ["関連する記述です。", "・" + "".join(fact.quotes[1].splitlines()) + " [1]"]
    assert set(fact.timings_ms) == {"retrieve", "answer", "total"}


def test_baseline_quotes_are_looser_than_ours(eval_result):
    ours = _items(eval_result, "hybrid")["fact-01"]
    theirs = _items(eval_result, "langchain")["fact-01"]
    gold = ours.item.gold_evidence
    assert ours.outcome.coverage == "direct"
    ours_t = quote_tightness(list(ours.outcome.quotes.values()), gold)
    theirs_t = quote_tightness(list(theirs.outcome.quotes.values()), gold)
    assert (ours_t, theirs_t) == (ours.scores["quote_tightness"], theirs.scores["quote_tightness"])
    # Ours quotes the plan's two statements of its period; theirs, four 500-character pieces.
    assert theirs_t < 0.05 < 0.3 < ours_t
    assert eval_result.configs["langchain"].overall["quote_tightness"] < eval_result.configs["hybrid"].overall[
        "quote_tightness"]


def test_close_removes_the_chroma_dir(tmp_path):
    b = LangChainBaseline("短い本文です。", make_embedder(EmbedderSpec()), tmp_path / "b")
    assert b.retrieve("本文") == ["短い本文です。"]
    made = list((tmp_path / "b").iterdir())
    assert len(made) == 1 and made[0].name.startswith("chroma-")
    b.close()
    assert list((tmp_path / "b").iterdir()) == []


def test_the_peer_store_takes_more_chunks_than_one_chroma_batch(tmp_path):
    """6,000 chunks (Chroma's max batch is 5,461). Hashed fake vectors: 6,000 real
    embeddings would take minutes and the vectors do not matter to batching."""
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from evals.baseline import build_store, chroma_client, documents

    docs = documents([f"第{i}項 テスト用の断片 {i}" for i in range(6000)])
    assert len(docs) > chroma_client(tmp_path / "probe").get_max_batch_size()
    store = build_store(docs, DeterministicFakeEmbedding(size=16), tmp_path / "chroma")
    assert store._collection.count() == 6000
    assert store.similarity_search("第5999項 テスト用の断片 5999", k=1)[0].metadata == {"i": 5999}
