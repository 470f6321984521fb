"""The assistant: question (+ chat so far) → retrieval → graded coverage → cited answer."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Literal

from assistant import logs, prompts
from assistant.coverage import CoverageJudge, Grade
from assistant.extractive import Composed, ExtractiveAnswerer
from assistant.injection import strip_injection
from assistant.matching import TermMatcher
from assistant.query import FollowUpRewriter, TermExtractor, bound_history, clean_question, detect_language
from assistant.question import Question, QuestionAnalyzer
from assistant.relevance import Calibration, Idf
from assistant.retrieval import Bm25Retriever, CrossEncoderReranker, DenseRetriever, HybridRetriever, embedded_query
from assistant.structure import Outline, StructureAnswerer
from assistant.types import Answer, Citation, Draft, Hit, Message
from ingest.embedders import BaseEmbedder
from ingest.store import IndexReader, StoreSpec
from ingest.tokenize import JapaneseTokenizer

RetrievalMode = Literal["hybrid", "bm25", "dense"]
RARE_SHARE = 0.1  # a word held by more passages than this share is too common to highlight


@dataclass(frozen=True, kw_only=True)
class AssistantConfig:
    retrieve_k: int = 30
    top_k: int = 8
    rrf_k: int = 60
    retrieval_mode: RetrievalMode = "hybrid"  # bm25 | dense: one side only, for evaluation
    reranker_model: str = ""
    max_question_chars: int = 2000
    max_inquiry_chars: int = 10000
    guard_mode: Literal["mark", "remove"] = "mark"
    llm_model: str = ""
    log_questions: bool = False  # put question text into the logs (off: privacy)
    contact: str = ""  # where to ask when the plan is silent (default: the template's)


@dataclass(frozen=True)
class Generation:
    """One index generation and everything derived from it. A question reads it once, so
    an ingest that switches generations mid-answer cannot mix two."""

    index: IndexReader
    retriever: HybridRetriever
    outline: Outline
    matcher: TermMatcher
    idf: Idf

    @property
    def name(self) -> str:
        return self.index.generation


class Assistant:
    """Answers questions from the current index generation; loads a new one when an ingest
    has switched it in."""

    def __init__(self, store: StoreSpec, embedder: BaseEmbedder, config: AssistantConfig, *,
                 tokenizer: JapaneseTokenizer | None = None, calibration: Calibration | None = None,
                 issuers: dict[str, str] | None = None, llm=None, rewriter=None) -> None:
        self.store = store
        self.embedder = embedder
        self.cfg = config
        self.tokenizer = tokenizer or JapaneseTokenizer()
        self.extractor = TermExtractor(self.tokenizer)
        self.analyzer = QuestionAnalyzer(self.extractor)
        self.rewriter = FollowUpRewriter(self.extractor)
        self.llm = llm  # an assistant.llm.LlmAnswerer, or None for extractive answers
        self.llm_rewriter = rewriter
        self._calibration = calibration
        self.extractive = ExtractiveAnswerer()
        self.structure = StructureAnswerer()
        self.issuers = issuers or {}
        self.reranker = CrossEncoderReranker(config.reranker_model) if config.reranker_model else None
        self._generation: Generation | None = None
        self._lock = threading.Lock()

    # -- loading -------------------------------------------------------------------------
    @property
    def judge(self) -> CoverageJudge:
        """The coverage judge over the calibrated models (loaded on first use)."""
        if self._calibration is None:
            self._calibration = Calibration.load()
        return CoverageJudge(self._calibration)

    def current(self) -> Generation:
        """The generation to answer from (loaded on first use and after an ingest)."""
        with self._lock:
            gen = self._generation
            if gen is None or gen.index.stale:
                index = IndexReader(self.store, self.embedder.id)
                retriever = HybridRetriever(
                    Bm25Retriever(index, self.tokenizer), DenseRetriever(index, self.embedder), self.reranker,
                    self.cfg.retrieve_k, self.cfg.top_k, self.cfg.rrf_k, self.cfg.retrieval_mode)
                gen = self._generation = Generation(
                    index=index, retriever=retriever, outline=Outline.of(index, self.extractor, self.issuers),
                    matcher=TermMatcher(self.extractor, self.embedder, index.term_vectors,
                                        vocabulary=index.bm25.vocab_dict.keys()), idf=Idf(index.bm25))
            return gen

    def warm_up(self) -> None:
        gen = self.current()
        _ = gen.retriever.dense.store
        self.embedder.warm_up()
        self.tokenizer.tokens("準備")

    def config(self) -> dict:
        return {"embedder": self.embedder.id, "retrieval": self.cfg.retrieval_mode, "top_k": self.cfg.top_k,
                "reranker": self.cfg.reranker_model or None, "llm": self.cfg.llm_model or None,
                "index": self.current().name}

    # -- asking --------------------------------------------------------------------------
    def rewrite(self, question: str, history: list[Message], gen: Generation) -> str:
        known = gen.idf.df.__contains__  # the index has the word
        if self.llm_rewriter is not None and self.rewriter.is_follow_up(question, history, known):
            from assistant.llm import LlmUnavailable

            try:
                # None when the model's query is no plausible one (markup, prompt text, too long,
                # lost the question's words): the rules below are the fallback.
                query = self.llm_rewriter.rewrite(question, history)
            except LlmUnavailable:
                query = None
            if query:
                return query
        return self.rewriter.rewrite(question, history, known)

    @staticmethod
    def _searched(gen: Generation, question: Question) -> str:
        """The text to search: the question, plus the plan's spelling of words written in kana
        (しれとこ → 知床), which neither BM25 nor the embedding would otherwise connect."""
        extra = [w for t in question.terms for w in gen.matcher.spellings(t)]
        return " ".join([question.text, *dict.fromkeys(extra)])

    def _encode(self, gen: Generation, question: Question, searched: str) -> list[float] | None:
        """The query's vector, embedded in one batch with the question's terms that no
        vector is known for (the relevance model needs them next). The engine spreads a
        batch over the cores. None when every term is known: the dense retriever then
        embeds the query alone."""
        if gen.retriever.mode == "bm25" or not hasattr(self.embedder, "embed_queries"):
            return None
        unknown = gen.matcher.unknown([t.text for t in question.terms])
        if not unknown:
            return None
        vectors = self.embedder.embed_queries([*unknown, embedded_query(searched)])  # the query last
        gen.matcher.remember(unknown, vectors[:-1])
        return vectors[-1]

    def ask(self, question: str, history: list[Message] | None = None) -> Answer:
        """A cited answer from the current generation."""
        return self._answer(question, history or [], self.current())

    def _answer(self, question: str, history: list[Message], gen: Generation, generate: bool = True) -> Answer:
        """``generate=False``: quotes only, even with an LLM (a draft's points: the draft uses
        their coverage and passages, and writes its own prose in one call)."""
        t0 = time.perf_counter()
        question = clean_question(question, self.cfg.max_question_chars)
        history = bound_history(history)
        language = detect_language(question)
        query, injected = strip_injection(question)
        notes = ["instructions inside the question were ignored"] if injected else []
        if not query:
            text = prompts.render("extractive", f"refuse_{language}")
            return self._log(Answer(question=question, rewritten_query="", text=text, citations=[], coverage="none",
                                    mode="refused", language=language,
                                    notes=["the question only tried to change the assistant's instructions"],
                                    timings_ms={"retrieve": 0.0, "answer": 0.0, "total": _ms(t0)}))
        query = self.rewrite(query, history, gen)
        parsed = self.analyzer.analyze(query)
        t1 = time.perf_counter()
        searched = self._searched(gen, parsed)
        hits, _lists = gen.retriever.retrieve(searched, vector=self._encode(gen, parsed, searched))
        timings = {"retrieve": _ms(t1)}
        t2 = time.perf_counter()
        answer = self._structured(gen, parsed, question, query, hits, language)
        if answer is None:
            grade = self.judge.grade(parsed, hits, gen.matcher, gen.idf, gen.outline.titles)
            if self.llm is not None and generate and grade.coverage == "direct":
                answer = self._llm_answer(gen, parsed, grade, question, query, hits, language)
            else:
                answer = self._extractive(gen, parsed, grade, question, query, hits, language)
            answer.notes = notes + answer.notes + [f"coverage: {grade.reason}"]
        else:
            answer.notes = notes + answer.notes
        answer.highlights = highlights(parsed, answer.citations, gen)
        timings.update(answer=_ms(t2), total=_ms(t0))
        answer.timings_ms = timings
        return self._log(answer)

    def _extractive(self, gen: Generation, parsed: Question, grade: Grade, question: str, query: str,
                    hits: list[Hit], language) -> Answer:
        composed: Composed = self.extractive.compose(grade, parsed, gen.matcher, gen.outline, language,
                                                     contact=self._contact(language))
        suggestions = self._suggestions(gen, grade, language) if grade.coverage == "none" else []
        return Answer(question=question, rewritten_query=query, text=composed.text, citations=composed.citations,
                      coverage=grade.coverage, mode="extractive", language=language,
                      missing=[m.what for m in grade.missing], lead_section=composed.lead_section,
                      retrieved=hits, suggestions=suggestions)

    def _contact(self, language) -> str:
        return self.cfg.contact or prompts.render("extractive", f"contact_{language}")

    @staticmethod
    def _suggestions(gen: Generation, grade: Grade, language) -> list[str]:
        """Questions that lead to a complete answer: every measure of each nearby direction."""
        labels = list(dict.fromkeys(gen.outline.label(h.chunk) for h in grade.nearest if h.chunk.section))
        return [prompts.render("extractive", f"suggest_{language}", section=label) for label in labels if label]

    def _structured(self, gen: Generation, parsed: Question, question: str, query: str, hits: list[Hit],
                    language) -> Answer | None:
        found = self.structure.find(parsed, gen.outline, hits[0].chunk if hits else None)
        if found is None:
            return None
        composed = self.extractive.compose_structure(found, gen.outline, language)
        ids = {c.id for c in found.chunks}
        retrieved = [Hit(chunk=c, score=1.0, retriever="structure") for c in found.chunks] + \
                    [h for h in hits if h.chunk.id not in ids]
        return Answer(question=question, rewritten_query=query, text=composed.text, citations=composed.citations,
                      coverage="direct", mode="structure", language=language, lead_section=composed.lead_section,
                      retrieved=retrieved)

    def _llm_answer(self, gen: Generation, parsed: Question, grade: Grade, question: str, query: str,
                    hits: list[Hit], language) -> Answer:
        """A generated answer when the guard keeps at least one supported sentence that states
        something; otherwise the extractive answer with one line saying why (the rejected
        sentences go to the log and ``Answer.rejected``, never into the text)."""
        from assistant.extractive import make_citations
        from assistant.llm import LlmUnavailable

        passages = [h.chunk for h in grade.passages]
        try:
            result = self.llm.answer(question if query == question else query, passages, language)
        except LlmUnavailable as exc:
            return self._fallback(gen, parsed, grade, question, query, hits, language, "unavailable",
                                  f"LLM unavailable, extractive answer instead: {exc}")
        if not result.answers:
            _log_rejected(result, shown=[], withheld=True)
            return self._fallback(gen, parsed, grade, question, query, hits, language, "withheld",
                                  "the LLM answer had no supported sentence; extractive answer instead",
                                  result.rejected)
        citations = [c for c in make_citations(passages, gen.outline) if c.n in result.cited]
        notes = [f"citations to passages that do not exist: {result.invalid_citations}"] \
            if result.invalid_citations else []
        shown = result.unsupported if self.llm.guard.mode == "mark" else []
        hidden = [s for s in result.rejected if s not in shown]
        if hidden:
            _log_rejected(result, shown, withheld=False)
        return Answer(question=question, rewritten_query=query, text=result.text, citations=citations,
                      coverage="direct", mode="llm", language=language, retrieved=hits, notes=notes,
                      unsupported=shown, rejected=hidden)

    def _fallback(self, gen: Generation, parsed: Question, grade: Grade, question: str, query: str,
                  hits: list[Hit], language, why: str, note: str, rejected: list[str] | None = None) -> Answer:
        answer = self._extractive(gen, parsed, grade, question, query, hits, language)
        answer.mode = "extractive-fallback"
        answer.text += "\n" + prompts.render("answer", f"{why}_{language}")
        answer.notes = [note]
        answer.rejected = rejected or []
        return answer

    def _log(self, answer: Answer) -> Answer:
        fields = {"mode": answer.mode, "coverage": answer.coverage, "citations": len(answer.citations),
                  "question_chars": len(answer.question), "unsupported": len(answer.unsupported),
                  "rejected": len(answer.rejected),
                  "timings_ms": {k: round(v, 1) for k, v in answer.timings_ms.items()}}
        if self.cfg.log_questions:
            fields["question"] = answer.question
            fields["rewritten_query"] = answer.rewritten_query
        logs.event("answer", **fields)
        return answer

    def draft(self, inquiry: str) -> Draft:
        from assistant.draft import DraftWriter

        gen = self.current()
        return DraftWriter(ask=lambda q, history: self._answer(q, history, gen, generate=False), llm=self.llm,
                           chunk=gen.index.by_id.get, outline=gen.outline,
                           max_inquiry_chars=self.cfg.max_inquiry_chars,
                           max_question_chars=self.cfg.max_question_chars).write(inquiry)


def highlights(question: Question, citations: list[Citation], gen: Generation) -> list[str]:
    """The question's content words that are rare in the index (held by at most RARE_SHARE of
    its passages), spelled as the cited quotes write them (エゾシカ for 蝦夷鹿, 知床 for しれとこ).
    Words many passages hold (地域, 資源, 活かす) would mark half of every quote."""
    limit = max(1.0, RARE_SHARE * gen.idf.n)
    quotes = [c.quote for c in citations]
    out: list[str] = []
    for term in question.terms:
        plan = [w for w in [term.text, *gen.matcher.spellings(term)] if 0 < gen.idf.df.get(w, 0) <= limit]
        if not plan:
            continue
        for spelling in dict.fromkeys([term.surface, *plan]):
            if spelling and spelling not in out and any(spelling in q for q in quotes):
                out.append(spelling)
    return out


def _ms(t: float) -> float:
    return (time.perf_counter() - t) * 1000.0


def _log_rejected(result, shown: list[str], withheld: bool) -> None:
    """The sentences the guard kept from the reader, with the reason for each (for debugging;
    clipped so that a runaway generation cannot flood the log; echoes named, not quoted)."""
    from assistant.guard import echo_note

    rows = [{"reason": v.reason, "text": (echo_note(v.sentence) if v.reason == "echo" else v.sentence)[:200]}
            for v in result.sentences if not v.supported and v.sentence not in shown]
    logs.event("llm_rejected", withheld=withheld, count=len(rows), sentences=rows[:20])
