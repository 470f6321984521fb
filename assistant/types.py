"""Plain dataclasses that the assistant stages exchange and return."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypedDict

from ingest.types import Chunk

# direct: the passages state what was asked. related: the topic is in the plan, the asked
# specific (a place, a number, a date, a body) is not. none: nothing relevant.
Coverage = Literal["direct", "related", "none"]
AnswerMode = Literal["extractive", "structure", "llm", "extractive-fallback", "refused"]
RetrieverName = Literal["bm25", "dense", "hybrid", "rerank", "structure", "sentence"]
Language = Literal["ja", "en"]


class Message(TypedDict):
    role: str  # "user" | "assistant"
    content: str


class InputError(ValueError):
    """A question or inquiry that cannot be answered as given (empty, too long)."""


@dataclass(frozen=True, kw_only=True)
class Hit:
    chunk: Chunk
    score: float
    retriever: RetrieverName
    ranks: dict[str, int] = field(default_factory=dict)  # rank in each retriever, 1-based
    scores: dict[str, float] = field(default_factory=dict)  # raw score in each retriever


@dataclass(frozen=True, kw_only=True)
class Citation:
    n: int
    chunk_id: str
    source: str
    title: str
    section: tuple[str, ...]
    quote: str  # verbatim from the chunk text (the source's characters)
    page: int | None = None
    label: str = ""  # short name of the quote's section for leads and cards (施策の方向４（…）)

    @property
    def section_label(self) -> str:
        return " › ".join(self.section)

    def to_dict(self) -> dict:
        return {"n": self.n, "chunk_id": self.chunk_id, "source": self.source, "title": self.title,
                "section": self.section_label, "label": self.label, "quote": self.quote, "page": self.page}


@dataclass(kw_only=True)
class Answer:
    question: str
    rewritten_query: str
    text: str
    citations: list[Citation]
    coverage: Coverage
    mode: AnswerMode
    language: Language = "ja"
    missing: list[str] = field(default_factory=list)  # what was asked that the plan does not state
    lead_section: str = ""  # the section the lead names; every quote under it is from that section
    retrieved: list[Hit] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)  # questions that lead on (when not covered)
    highlights: list[str] = field(default_factory=list)  # the question's rare words as the quotes write them
    notes: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)  # shown with the guard's 要確認 marker (mark mode)
    # Generated sentences the guard kept out of the text (echoes, unsupported ones in remove
    # mode, a whole withheld answer after a fallback): for the log and debugging, never shown.
    rejected: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def abstained(self) -> bool:
        """True unless the plan states what was asked."""
        return self.coverage != "direct"

    def to_dict(self) -> dict:
        return {
            "question": self.question, "rewritten_query": self.rewritten_query, "answer": self.text,
            "coverage": self.coverage, "missing": self.missing, "abstained": self.abstained, "mode": self.mode,
            "language": self.language, "citations": [c.to_dict() for c in self.citations],
            "retrieved": [{"chunk_id": h.chunk.id, "text": h.chunk.text, "section": h.chunk.section_label,
                           "score": round(h.score, 6), "retriever": h.retriever} for h in self.retrieved],
            "suggestions": self.suggestions, "highlights": self.highlights, "notes": self.notes,
            "unsupported": self.unsupported, "rejected_llm_sentences": self.rejected,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


@dataclass(kw_only=True)
class DraftPoint:
    question: str
    answer: Answer
    numbers: list[int] = field(default_factory=list)  # the draft's citation numbers for this point


@dataclass(kw_only=True)
class Draft:
    inquiry: str
    text: str  # the whole reply draft, 敬語
    points: list[DraftPoint]
    uncovered: list[str]  # 要確認事項: what the plan does not answer
    citations: list[Citation]
    mode: AnswerMode = "extractive"
    notice: str = ""  # for staff, not part of the reply: why a generated draft was not used
    rejected: list[str] = field(default_factory=list)  # generated sentences left out (debugging only)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "inquiry": self.inquiry, "draft": self.text, "mode": self.mode, "notice": self.notice,
            "rejected_llm_sentences": self.rejected,
            "points": [{"question": p.question, "coverage": p.answer.coverage, "missing": p.answer.missing,
                        "abstained": p.answer.abstained, "citations": p.numbers} for p in self.points],
            "uncovered": self.uncovered, "citations": [c.to_dict() for c in self.citations],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }
