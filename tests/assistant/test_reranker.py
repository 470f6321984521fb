"""The CrossEncoder reranker, with a tiny randomly initialised BERT cross-encoder built on disk."""
from __future__ import annotations

from pathlib import Path

import pytest

from assistant.build import build_assistant
from assistant.retrieval import CrossEncoderReranker, rrf_fuse
from assistant.types import Hit
from ingest.types import Chunk
from vision_qa.settings import Settings

QUERY = "エゾシカの有効活用"
TEXTS = [
    "個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進",
    "自然、アイヌ文化、食など、地域が有する観光資源の連結・融合",
    "釧路湿原等のラムサール条約湿地を始めとする、豊かな自然環境の保全・再生の取組の推進",
    "地震や津波、火山、大雨などに対する防災体制及び施設の充実・強化",
    "北方領土隣接地域の振興",
]


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer BERT with one output label and a character WordPiece vocabulary."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("tiny-cross-encoder")
    chars = sorted({ch for text in [QUERY, *TEXTS] for ch in text})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{ch}" for ch in chars)]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = transformers.BertTokenizer.from_pretrained(str(path), do_lower_case=False)
    torch.manual_seed(1234)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=37, num_labels=1,
                                     max_position_embeddings=512, initializer_range=0.5)
    transformers.BertForSequenceClassification(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def _hit(i: int, text: str) -> Hit:
    chunk = Chunk(id=f"c{i}", text=text, source="v.txt", title="t", section=("施策", f"方向{i}"), start=0, end=1,
                  kind="bullet", order=i)
    return Hit(chunk=chunk, score=1.0 / (61 + i), retriever="hybrid", ranks={"bm25": i + 1}, scores={"bm25": float(10 - i)})


def _predict(path: Path, query: str, hits: list[Hit]) -> list[float]:
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(path), device="cpu")
    return [float(s) for s in model.predict([(query, h.chunk.embed_text()) for h in hits], show_progress_bar=False)]


def test_tokenizer_knows_the_characters(tiny_cross_encoder: Path) -> None:
    from transformers import BertTokenizer

    tokens = BertTokenizer.from_pretrained(str(tiny_cross_encoder)).tokenize("エゾシカ")
    assert tokens == ["エ", "##ゾ", "##シ", "##カ"]


def test_rerank_orders_by_the_cross_encoder_scores(tiny_cross_encoder: Path) -> None:
    hits = [_hit(i, t) for i, t in enumerate(TEXTS)]
    expected = _predict(tiny_cross_encoder, QUERY, hits)
    assert len(set(expected)) == len(expected)  # no ties: the order below is decided by the scores alone
    # Feed the hits worst-first so that the reranker has to reverse them.
    worst_first = [h for _, h in sorted(zip(expected, hits), key=lambda p: p[0])]
    reranked = CrossEncoderReranker(str(tiny_cross_encoder)).rerank(QUERY, worst_first)
    assert [h.chunk.id for h in reranked] == [h.chunk.id for h in reversed(worst_first)]
    by_id = {h.chunk.id: s for h, s in zip(hits, expected)}
    assert [h.score for h in reranked] == [by_id[h.chunk.id] for h in reranked]
    assert {h.retriever for h in reranked} == {"rerank"}
    # Earlier ranks and raw scores are kept beside the rerank score.
    original = {h.chunk.id: h for h in hits}
    for h in reranked:
        assert h.ranks == original[h.chunk.id].ranks
        assert h.scores == {**original[h.chunk.id].scores, "rerank": h.score}


def test_rerank_is_deterministic_across_loads(tiny_cross_encoder: Path) -> None:
    hits = [_hit(i, t) for i, t in enumerate(TEXTS)]
    first = CrossEncoderReranker(str(tiny_cross_encoder)).rerank(QUERY, hits)
    second = CrossEncoderReranker(str(tiny_cross_encoder)).rerank(QUERY, hits)
    assert [(h.chunk.id, h.score) for h in first] == [(h.chunk.id, h.score) for h in second]


def test_rerank_of_nothing_does_not_load_the_model() -> None:
    reranker = CrossEncoderReranker("/nonexistent/model")
    assert reranker.rerank("質問", []) == []
    assert reranker._model is None


def test_assistant_with_a_reranker_answers_from_reranked_hits(vision_index: Settings,
                                                              tiny_cross_encoder: Path) -> None:
    settings = vision_index.model_copy(update={"reranker_model": str(tiny_cross_encoder)})
    assistant = build_assistant(settings)
    assert assistant.config()["reranker"] == str(tiny_cross_encoder)
    question = "CO2"
    answer = assistant.ask(question)
    assert answer.mode == "extractive"
    assert len(answer.retrieved) == 8
    assert {h.retriever for h in answer.retrieved} == {"rerank"}
    # The reranker reorders the fused hits; it neither adds nor drops any.
    _, lists = assistant.current().retriever.retrieve(question)
    fused = rrf_fuse(list(lists.values()), top=8)
    assert {h.chunk.id for h in answer.retrieved} == {h.chunk.id for h in fused}
    expected = _predict(tiny_cross_encoder, question, fused)
    order = [h.chunk.id for _, h in sorted(zip(expected, fused), key=lambda p: -p[0])]
    assert [h.chunk.id for h in answer.retrieved] == order
    assert order != [h.chunk.id for h in fused]  # the random model does disagree with the fusion
    assert [h.score for h in answer.retrieved] == sorted(expected, reverse=True)
