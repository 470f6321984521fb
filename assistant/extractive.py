"""Answers made only of verbatim quotes (the default, no LLM needed)."""
from __future__ import annotations

import re

from assistant import prompts
from assistant.evidence import EvidenceJudge
from assistant.query import Term
from assistant.types import Citation, Hit
from ingest.normalize import normalize_for_index
from ingest.types import Chunk

# A closing bracket after 。 belongs to the sentence it closes (〈…示しています。〉).
_SENTENCES = re.compile(r"[^。！？!?]+[。！？!?]*[」』）)〉》】]*")


def bigram_jaccard(a: str, b: str) -> float:
    a, b = normalize_for_index(a), normalize_for_index(b)
    ga = {a[i:i + 2] for i in range(len(a) - 1)}
    gb = {b[i:i + 2] for i in range(len(b) - 1)}
    return len(ga & gb) / len(ga | gb) if ga and gb else 0.0


def make_citations(chunks: list[Chunk], quotes: list[str] | None = None) -> list[Citation]:
    quotes = quotes or [c.text for c in chunks]
    return [Citation(n=i + 1, chunk_id=c.id, source=c.source, title=c.title, section=c.section, quote=q, page=c.page)
            for i, (c, q) in enumerate(zip(chunks, quotes))]


def render_quotes(lead: str, citations: list[Citation]) -> str:
    lines = [lead] + [prompts.render("extractive", "quote_line", quote=c.quote, n=c.n) for c in citations]
    return "\n".join(lines)


class ExtractiveAnswerer:
    """Picks the passages that bear on the question, tightens them to the sentences that
    matter, removes near-duplicates and frames them with a template lead."""

    def __init__(self, judge: EvidenceJudge, max_quotes: int = 4, redundancy: float = 0.7) -> None:
        self.judge = judge
        self.max_quotes = max_quotes
        self.redundancy = redundancy

    def select(self, terms: list[Term], hits: list[Hit]) -> list[Hit]:
        if not hits:
            return []
        matched = [{t for t in terms if self.judge.term_in(t, [h])} for h in hits]
        best = max(len(m) for m in matched)
        chosen = [hits[0]]
        seen = set(matched[0])
        for m, h in zip(matched[1:], hits[1:]):
            # Keep a passage that matches as much as the best one, or that brings a term no
            # chosen passage has (the second part of 「観光と移住」).
            if best > 0 and (len(m) == best or (m - seen and len(m) >= max(1, best / 2))):
                chosen.append(h)
                seen |= m
            elif best == 0 and h.ranks.get("dense", 99) <= 2 and h.ranks.get("bm25", 99) <= 2:
                chosen.append(h)
        out: list[Hit] = []
        for h in chosen:
            if all(bigram_jaccard(h.chunk.text, o.chunk.text) < self.redundancy for o in out):
                out.append(h)
        return out[: self.max_quotes]

    def tighten(self, chunk: Chunk, terms: list[Term]) -> str:
        """The shortest run of the chunk's sentences that still holds every matched term."""
        sentences = _SENTENCES.findall(chunk.text)
        if len(sentences) < 2 or not terms:
            return chunk.text
        keep = [i for i, s in enumerate(sentences) if any(self.judge.term_in(t, [_as_hit(chunk, s)]) for t in terms)]
        if not keep:
            return chunk.text
        return "".join(sentences[keep[0]: keep[-1] + 1]).strip()

    def answer(self, terms: list[Term], hits: list[Hit], language: str) -> tuple[str, list[Citation]]:
        chosen = self.select(terms, hits)
        quotes = [self.tighten(h.chunk, terms) for h in chosen]
        citations = make_citations([h.chunk for h in chosen], quotes)
        sections = {c.section[-1] for c in citations if c.section}
        section = sections.pop() if len(sections) == 1 and len(citations) > 0 else ""
        lead = prompts.render("extractive", f"lead_{language}", section=section,
                              document=document_name({c.title for c in citations}, language))
        return render_quotes(lead, citations), citations

    @staticmethod
    def suggestions(hits: list[Hit], n: int = 3) -> list[str]:
        out: list[str] = []
        for h in hits:
            label = h.chunk.section_label
            if label and label not in out:
                out.append(label)
        return out[:n]


def document_name(titles: set[str], language: str) -> str:
    """How a lead names the quoted documents: empty for the vision itself (the template says
    「ビジョン」), else the one title, or "the documents" for several."""
    if all("ビジョン" in t for t in titles):  # do not call another file "the vision"
        return ""
    if len(titles) == 1:
        return f"「{next(iter(titles))}」"
    return "資料" if language == "ja" else "The documents"


def _as_hit(chunk: Chunk, text: str) -> Hit:
    sub = Chunk(id=f"{chunk.id}:{abs(hash(text))}", text=text, source=chunk.source, title=chunk.title, section=(),
                start=chunk.start, end=chunk.end, kind=chunk.kind, order=chunk.order)
    return Hit(sub, 0.0, "sentence")
