"""Query clean-up, reciprocal rank fusion, and BM25/dense/hybrid retrieval over the real index."""
from __future__ import annotations


import pytest

from assistant.build import store_spec
from assistant.query import clean_question
from assistant.retrieval import Bm25Retriever, DenseRetriever, HybridRetriever, rrf_fuse
from assistant.types import Hit, InputError
from ingest.embedders import make_embedder
from ingest.store import IndexReader
from ingest.tokenize import JapaneseTokenizer
from ingest.types import Chunk
from vision_qa.settings import Settings

EMPTY = "質問が空です。知りたいことを入力してください。"
DEER = "個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進"
# The vision writes ＣО₂ with a Cyrillic О (U+041E).
CO2_COAL = "国内唯一の坑内掘炭鉱の保安の確保とＣ\u041e₂坑内埋め戻し技術の促進"
CO2_FOREST = "計画的な造林や間伐などの森林整備、藻場造成等のブルーカーボン等によるＣ\u041e₂吸収量の確保など吸収源対策の推進"


@pytest.fixture(scope="module")
def retriever(vision_index: Settings) -> HybridRetriever:
    embedder = make_embedder(vision_index.embedder_spec())
    index = IndexReader(store_spec(vision_index), embedder.id)
    return HybridRetriever(Bm25Retriever(index, JapaneseTokenizer()), DenseRetriever(index, embedder))


# -- clean_question ----------------------------------------------------------------------------

def test_clean_question_strips_invisible_bidi_and_control_characters() -> None:
    raw = "\ufeff \u200bエゾ\u200dシカ\u202eの\x07取り\u2066組み\U000e0041は？\u200f\t\n"
    assert clean_question(raw, 2000) == "エゾシカの取り組みは？"


def test_clean_question_keeps_inner_newlines_and_tabs() -> None:
    assert clean_question("  一行目\n\t二行目  ", 2000) == "一行目\n\t二行目"


@pytest.mark.parametrize("raw", ["", "   ", "\n\t ", "\u200b\u200d\ufeff", "\x00\x07 \u202e"])
def test_empty_question_is_refused_with_the_japanese_message(raw: str) -> None:
    with pytest.raises(InputError) as exc:
        clean_question(raw, 2000)
    assert str(exc.value) == EMPTY


def test_over_long_question_is_refused_with_both_counts() -> None:
    with pytest.raises(InputError) as exc:
        clean_question("あ" * 2001, 2000)
    assert str(exc.value) == "質問が長すぎます（2,001文字）。2,000文字以内で入力してください。"


def test_question_at_the_limit_passes_and_invisible_characters_do_not_count() -> None:
    assert clean_question("あ" * 10, 10) == "あ" * 10
    assert clean_question("あ" * 10 + "\u200b" * 5, 10) == "あ" * 10


# -- rrf_fuse ----------------------------------------------------------------------------------

def _chunk(cid: str, order: int) -> Chunk:
    return Chunk(id=cid, text=f"本文{cid}", source="v.txt", title="t", section=("s",), start=0, end=1,
                 kind="bullet", order=order)


def _hits(retriever: str, *chunks: Chunk) -> list[Hit]:
    return [Hit(chunk=c, score=10.0 - i, retriever=retriever, ranks={retriever: i + 1}, scores={retriever: 10.0 - i})
            for i, c in enumerate(chunks)]


def test_rrf_fuse_sums_reciprocal_ranks_and_sorts_by_fused_score() -> None:
    a, b, c = _chunk("a", 0), _chunk("b", 1), _chunk("c", 2)
    fused = rrf_fuse([_hits("bm25", a, b), _hits("dense", b, c)], k=60)
    assert [h.chunk.id for h in fused] == ["b", "a", "c"]
    assert [h.score for h in fused] == [1 / (60 + 2) + 1 / (60 + 1), 1 / (60 + 1), 1 / (60 + 2)]
    assert [h.ranks for h in fused] == [{"bm25": 2, "dense": 1}, {"bm25": 1}, {"dense": 2}]
    assert [h.scores for h in fused] == [{"bm25": 9.0, "dense": 10.0}, {"bm25": 10.0}, {"dense": 9.0}]
    assert {h.retriever for h in fused} == {"hybrid"}


def test_rrf_fuse_breaks_ties_by_document_order_and_cuts_to_top() -> None:
    late, early, other = _chunk("late", 5), _chunk("early", 2), _chunk("other", 9)
    fused = rrf_fuse([_hits("bm25", late, other), _hits("dense", early)], k=10, top=2)
    assert [(h.chunk.id, h.score) for h in fused] == [("early", 1 / 11), ("late", 1 / 11)]


def test_rrf_fuse_of_nothing_is_empty() -> None:
    assert rrf_fuse([[], []]) == []


# -- retrievers over the real index ------------------------------------------------------------

def test_bm25_finds_the_ezo_deer_bullet_first(retriever: HybridRetriever) -> None:
    hits = retriever.bm25.retrieve("エゾシカ")
    assert [h.chunk.text for h in hits] == [DEER]
    assert (hits[0].retriever, hits[0].ranks, hits[0].chunk.kind) == ("bm25", {"bm25": 1}, "bullet")
    assert hits[0].chunk.section == ("連携地域の主な施策の方向（今後５年程度）", "１ 農林水産業をはじめとする地域産業の振興")


def test_bm25_never_returns_the_document_title(retriever: HybridRetriever) -> None:
    hits = retriever.bm25.retrieve("釧路・根室連携地域「地域づくり推進ビジョン」")
    assert hits
    assert "title" not in {h.chunk.kind for h in hits}


@pytest.mark.parametrize("query", ["CO2", "ＣＯ２", "co2", "CO₂"])
def test_bm25_folds_width_and_cyrillic_confusables(retriever: HybridRetriever, query: str) -> None:
    hits = retriever.bm25.retrieve(query)
    assert [h.chunk.text for h in hits] == [CO2_COAL, CO2_FOREST]


def test_hybrid_fuses_both_retrievers_into_top_k(retriever: HybridRetriever) -> None:
    hits, lists = retriever.retrieve("エゾシカ")
    assert sorted(lists) == ["bm25", "dense"]
    assert len(hits) == retriever.top_k == 8
    top = hits[0]
    assert (top.chunk.text, top.retriever, top.ranks) == (DEER, "hybrid", {"bm25": 1, "dense": 1})
    assert top.score == 1 / 61 + 1 / 61
    assert set(top.scores) == {"bm25", "dense"}
    # Only one chunk mentions エゾシカ: the rest come from the dense side alone.
    assert [set(h.ranks) for h in hits[1:]] == [{"dense"}] * 7
    assert [h.ranks["dense"] for h in hits[1:]] == [2, 3, 4, 5, 6, 7, 8]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_hybrid_top_k_per_call_overrides_the_default(retriever: HybridRetriever) -> None:
    hits, _ = retriever.retrieve("再生可能エネルギー", top_k=3)
    assert len(hits) == 3
    assert all(h.chunk.kind != "title" for h in hits)
