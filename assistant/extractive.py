"""Answers made only of verbatim quotes (the default, no LLM needed).

The framing comes from templates and asserts nothing about the plan beyond what the quotes
say: which section they are from (only when every quote is from it), what the plan does not
state (for a related answer), and where to ask (when the plan is silent).
"""
from __future__ import annotations

from dataclasses import dataclass

from assistant import prompts
from assistant.coverage import Grade, Missing
from assistant.matching import TermMatcher
from assistant.question import Question
from assistant.sentences import sentences
from assistant.structure import Outline, Structural
from assistant.types import Citation, Language
from ingest.types import Chunk


@dataclass(frozen=True, kw_only=True)
class Composed:
    text: str
    citations: list[Citation]
    lead_section: str = ""


def make_citations(chunks: list[Chunk], outline: Outline, quotes: list[str] | None = None) -> list[Citation]:
    quotes = quotes or [c.text for c in chunks]
    return [Citation(n=i + 1, chunk_id=c.id, source=c.source, title=c.title, section=c.section, quote=q,
                     page=c.page, label=outline.label(c)) for i, (c, q) in enumerate(zip(chunks, quotes))]


def render_quotes(lead: str, citations: list[Citation]) -> str:
    lines = [lead] + [prompts.render("extractive", "quote_line", quote=c.quote, n=c.n) for c in citations]
    return "\n".join(lines)


def document_name(titles: set[str], language: str) -> str:
    """How a lead names the quoted documents: empty for the vision itself (the template says
    「ビジョン」), else the one title, or "the documents" for several."""
    if all("ビジョン" in t for t in titles):  # do not call another file "the vision"
        return ""
    if len(titles) == 1:
        return f"「{next(iter(titles))}」"
    return "資料" if language == "ja" else "The documents"


class ExtractiveAnswerer:
    def tighten(self, chunk: Chunk, question: Question, matcher: TermMatcher) -> str:
        """The shortest run of the chunk's sentences that still holds every matched term."""
        parts = sentences(chunk.text)
        if len(parts) < 2 or not question.terms:
            return chunk.text
        probe = [Chunk(id=f"{chunk.id}#{i}", text=s, source=chunk.source, title=chunk.title, section=(),
                       start=chunk.start, end=chunk.end, kind=chunk.kind, order=chunk.order)
                 for i, s in enumerate(parts)]
        keep = [i for i, p in enumerate(probe) if any(matcher.found(t, p) for t in question.terms)]
        if not keep:
            return chunk.text
        start = chunk.text.find(parts[keep[0]])
        end = chunk.text.find(parts[keep[-1]], start) + len(parts[keep[-1]])
        return chunk.text[start:end] if start >= 0 and end > start else chunk.text

    def compose(self, grade: Grade, question: Question, matcher: TermMatcher, outline: Outline,
                language: Language, contact: str) -> Composed:
        """``contact``: where to ask when the plan is silent."""
        if grade.coverage == "none":
            citations = make_citations([h.chunk for h in grade.nearest], outline)
            lead = prompts.render("extractive", f"none_{language}", contact=contact, nearest=bool(citations))
            return Composed(text=render_quotes(lead, citations) if citations else lead, citations=citations)
        chunks = [h.chunk for h in grade.passages]
        citations = make_citations(chunks, outline, [self.tighten(c, question, matcher) for c in chunks])
        sections = {c.section for c in citations}
        section = outline.label(chunks[0]) if len(sections) == 1 and chunks[0].section else ""
        document = document_name({c.title for c in citations}, language)
        if grade.coverage == "related":
            section = section if grade.missing else ""  # the neutral lead names no section
            lead = prompts.render("extractive", f"related_{language}", missing=_missing_phrases(grade.missing, language),
                                  section=section, document=document)
        else:
            lead = prompts.render("extractive", f"lead_{language}", section=section, document=document)
        return Composed(text=render_quotes(lead, citations), citations=citations, lead_section=section)

    def compose_structure(self, found: Structural, outline: Outline, language: Language) -> Composed:
        citations = make_citations(found.chunks, outline)
        document = document_name({c.title for c in citations}, language)
        section = outline.label(found.chunks[0]) if found.kind == "direction" else ""
        lead = prompts.render("extractive", f"{found.kind}_{language}", section=section, count=len(citations),
                              document=document, issuer=found.issuer)
        return Composed(text=render_quotes(lead, citations), citations=citations, lead_section=section)


def _missing_phrases(missing: list[Missing], language: Language) -> list[str]:
    return [prompts.render("extractive", f"missing_{m.kind}_{language}", what=m.what) for m in missing]
