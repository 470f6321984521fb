"""The assistant: question (+ chat so far) → retrieval → cited answer."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Iterator

from assistant import logs, prompts
from assistant.evidence import EvidenceJudge, strip_injection
from assistant.extractive import ExtractiveAnswerer, document_name, make_citations, render_quotes
from assistant.query import FollowUpRewriter, TermExtractor, clean_question, clean_text, detect_language
from assistant.retrieval import Bm25Retriever, CrossEncoderReranker, DenseRetriever, HybridRetriever
from assistant.structure import StructureAnswerer
from assistant.types import Answer, Citation, Draft, Hit, Message
from ingest.embedders import BaseEmbedder
from ingest.store import IndexReader, StoreSpec
from ingest.tokenize import JapaneseTokenizer


@dataclass(frozen=True)
class AssistantConfig:
    retrieve_k: int = 30
    top_k: int = 8
    rrf_k: int = 60
    retrieval_mode: str = "hybrid"  # hybrid | bm25 | dense (for evaluation)
    reranker_model: str = ""
    max_question_chars: int = 2000
    max_inquiry_chars: int = 10000
    guard_mode: str = "mark"
    llm_model: str = ""
    log_questions: bool = False  # put question text into the logs (off: privacy)


class Assistant:
    """Answers questions from the current index generation; reloads when an ingest has
    switched in a new one."""

    def __init__(self, store: StoreSpec, embedder: BaseEmbedder, config: AssistantConfig,
                 tokenizer: JapaneseTokenizer | None = None, llm=None, rewriter=None) -> None:
        self.store = store
        self.embedder = embedder
        self.cfg = config
        self.tokenizer = tokenizer or JapaneseTokenizer()
        self.extractor = TermExtractor(self.tokenizer)
        self.rewriter = FollowUpRewriter(self.extractor)
        self.llm = llm  # an assistant.llm.LlmAnswerer, or None for extractive answers
        self.llm_rewriter = rewriter
        self.judge = EvidenceJudge(self.extractor, embedder)
        self.extractive = ExtractiveAnswerer(self.judge)
        self.structure = StructureAnswerer(self.extractor)
        self.reranker = CrossEncoderReranker(config.reranker_model) if config.reranker_model else None
        self._index: IndexReader | None = None
        self._retriever: HybridRetriever | None = None
        self._lock = threading.Lock()

    # -- loading -------------------------------------------------------------------------
    @property
    def index(self) -> IndexReader:
        with self._lock:
            if self._index is None or self._index.stale:
                index = IndexReader(self.store, self.embedder.id)
                self._retriever = HybridRetriever(
                    Bm25Retriever(index, self.tokenizer), DenseRetriever(index, self.embedder), self.reranker,
                    self.cfg.retrieve_k, self.cfg.top_k, self.cfg.rrf_k, self.cfg.retrieval_mode,
                )
                self.judge.use_index(index.term_vectors)
                self.structure.outline(index)  # once per generation, at load rather than in an answer
                self._index = index
            return self._index

    @property
    def retriever(self) -> HybridRetriever:
        _ = self.index
        return self._retriever

    def warm_up(self) -> None:
        _ = self.index.bm25
        self.retriever.dense.store
        self.embedder.warm_up()
        self.tokenizer.tokens("準備")

    def config(self) -> dict:
        return {"embedder": self.embedder.id, "retrieval": self.cfg.retrieval_mode, "top_k": self.cfg.top_k,
                "reranker": self.cfg.reranker_model or None, "llm": self.cfg.llm_model or None,
                "index": self.index.generation}

    # -- asking --------------------------------------------------------------------------
    def rewrite(self, question: str, history: list[Message]) -> str:
        if self.llm_rewriter is not None and self.rewriter.is_follow_up(question, history):
            try:
                return self.llm_rewriter.rewrite(question, history)
            except Exception:  # the rules below are the fallback; the LLM is an upgrade
                pass
        return self.rewriter.rewrite(question, history)

    def _encode(self, query: str) -> list[float] | None:
        """The query's vector, embedded in one batch with the question's terms that no
        vector is known for (the evidence check needs them next). The engine spreads a
        batch over the cores, so those terms cost little beside the query itself. None
        when every term is known: the dense retriever then embeds the query alone."""
        if self.retriever.mode == "bm25" or not hasattr(self.embedder, "embed_queries"):
            return None
        unknown = self.judge.unknown([t.text for t in self.extractor.terms(query)])
        if not unknown:
            return None
        vectors = self.embedder.embed_queries([*unknown, query])  # the query last: often alone on a core
        self.judge.remember(unknown, vectors[:-1])
        return vectors[-1]

    def ask(self, question: str, history: list[Message] | None = None) -> Answer:
        answer = None
        for item in self.stream(question, history):
            if isinstance(item, Answer):
                answer = item
        return answer

    def _log(self, answer: Answer) -> Answer:
        fields = {"mode": answer.mode, "abstained": answer.abstained, "citations": len(answer.citations),
                  "question_chars": len(answer.question), "unsupported": len(answer.unsupported),
                  "timings_ms": {k: round(v, 1) for k, v in answer.timings_ms.items()}}
        if self.cfg.log_questions:
            fields["question"] = answer.question
            fields["rewritten_query"] = answer.rewritten_query
        logs.event("answer", **fields)
        return answer

    def stream(self, question: str, history: list[Message] | None = None) -> Iterator[str | Answer]:
        """Text deltas, then the final Answer."""
        t0 = time.perf_counter()
        question = clean_question(question, self.cfg.max_question_chars)
        history = [{**m, "content": clean_text(m.get("content", ""))} for m in history or []]
        language = detect_language(question)
        timings: dict[str, float] = {}

        query, injected = strip_injection(question)
        if not query:
            text = prompts.render("extractive", f"refuse_{language}")
            yield text
            yield self._log(Answer(question, "", text, [], True, "refused", language,
                         notes=["the question only tried to change the assistant's instructions"],
                         timings_ms={"retrieve": 0.0, "answer": 0.0, "total": _ms(t0)}))
            return
        query = self.rewrite(query, history)
        t1 = time.perf_counter()
        hits, _lists = self.retriever.retrieve(query, vector=self._encode(query))
        timings["retrieve"] = _ms(t1)
        notes = ["instructions inside the question were ignored"] if injected else []

        t2 = time.perf_counter()
        answer = self._structured(question, query, hits, language)
        if answer is None:
            verdict = self.judge.judge(query, hits, question)
            if not verdict.answerable:
                suggestions = self.extractive.suggestions(hits)
                text = prompts.render("extractive", f"abstain_{language}", suggestions=suggestions)
                answer = Answer(question, query, text, [], True, "extractive", language, hits, suggestions,
                                notes + [f"abstained: {verdict.reason}; missing: {', '.join(verdict.missing)}"])
            elif self.llm is not None:
                yield from self._llm_answer(question, query, hits, language, notes, timings, t0)
                return
            else:
                text, citations = self.extractive.answer(self.extractor.terms(query), hits, language)
                answer = Answer(question, query, text, citations, False, "extractive", language, hits, notes=notes)
        if answer.mode == "structure":
            answer.notes = notes
        timings["answer"] = _ms(t2)
        timings["total"] = _ms(t0)
        answer.timings_ms = timings
        yield answer.text
        yield self._log(answer)

    def _structured(self, question: str, query: str, hits: list[Hit], language: str) -> Answer | None:
        overview = self.structure.overview(query, self.index)
        if overview is not None:
            kind, chunks = overview
            citations = make_citations(chunks)
            text = render_quotes(prompts.render("extractive", f"{kind}_{language}"), citations)
            return Answer(question, query, text, citations, False, "structure", language, _structure_hits(chunks, hits))
        direction = self.structure.direction(query, self.index, hits[0].chunk if hits else None)
        if direction is not None:
            heading, chunks = direction
            citations = make_citations(chunks)
            lead = prompts.render("extractive", f"direction_{language}", section=heading, count=len(chunks),
                                  document=document_name({c.title for c in chunks}, language))
            return Answer(question, query, render_quotes(lead, citations), citations, False, "structure",
                          language, _structure_hits(chunks, hits))
        return None

    def _llm_answer(self, question, query, hits, language, notes, timings, t0) -> Iterator[str | Answer]:
        from assistant.llm import LlmUnavailable, redact_prompt, strip_think

        passages = [h.chunk for h in hits]
        t2 = time.perf_counter()
        raw = ""
        try:
            # Not streamed as it arrives: shown only after redaction and the guard.
            for delta in self.llm.stream(question if query == question else query, passages, language):
                raw += delta
        except LlmUnavailable as exc:
            text, citations = self.extractive.answer(self.extractor.terms(query), hits, language)
            timings.update(answer=_ms(t2), total=_ms(t0))
            yield "\n\n" + text
            yield self._log(Answer(question, query, text, citations, False, "extractive-fallback", language, hits,
                                   notes=notes + [f"LLM unavailable, extractive answer instead: {exc}"],
                                   timings_ms=timings))
            return
        result = self.llm.guard.check(redact_prompt(strip_think(raw)), passages)
        citations = [c for c in make_citations(passages) if c.n in result.cited]
        refused = "記載がありません" in result.text or "does not cover" in result.text
        if result.invalid_citations:
            notes = notes + [f"citations to passages that do not exist: {result.invalid_citations}"]
        if not citations and not refused:
            # Nothing the model said could be tied to a passage: show quotes instead.
            text, citations = self.extractive.answer(self.extractor.terms(query), hits, language)
            timings.update(answer=_ms(t2), total=_ms(t0))
            yield self._log(Answer(question, query, text, citations, False, "extractive-fallback", language, hits,
                                   notes=notes + ["the LLM answer had no supported citation; extractive answer instead"],
                                   unsupported=result.unsupported, timings_ms=timings))
            return
        timings.update(answer=_ms(t2), total=_ms(t0))
        yield result.text
        yield self._log(Answer(question, query, result.text, citations, refused and not citations, "llm", language,
                               hits, notes=notes, unsupported=result.unsupported, timings_ms=timings))

    def draft(self, inquiry: str) -> Draft:
        from assistant.draft import DraftWriter

        return DraftWriter(self).write(inquiry)


def _structure_hits(chunks, hits: list[Hit]) -> list[Hit]:
    """What a structural answer retrieved: its chunks in document order, then the rest."""
    ids = {c.id for c in chunks}
    return [Hit(c, 1.0, "structure") for c in chunks] + [h for h in hits if h.chunk.id not in ids]


def _ms(t: float) -> float:
    return (time.perf_counter() - t) * 1000.0
