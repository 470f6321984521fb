"""Formal reply drafts for municipal staff.

The reply is only what goes to the resident: one section per sub-question with the plan's
words quoted and numbered, and a closing 出典 list that resolves every [n]. What staff must
check before sending (the points the plan does not cover, and the specifics it does not
state) is a separate list, never part of the reply.
"""
from __future__ import annotations

import re
import time
from dataclasses import replace
from collections.abc import Callable
from typing import TYPE_CHECKING

from assistant import prompts
from assistant.query import clean_question, refers_back
from assistant.sentences import sentences
from assistant.structure import Outline
from assistant.types import Answer, Citation, Draft, DraftPoint, Message
from ingest.types import Chunk

if TYPE_CHECKING:
    from assistant.llm import LlmAnswerer

# Greetings and sign-offs carry no question.
_COURTESY = re.compile(
    r"^(お世話になって|いつも|はじめまして|初めまして|突然|失礼|よろしく|宜しく|何卒|以上|ありがとう|"
    r"お忙しい|恐れ入り|恐縮|[^\s]{1,12}(市|町|村)?在住の|[^\s]{1,10}と申します)"
)
_ASKS = re.compile(r"[？?]|教えて|知りたい|伺いたい|お尋ね|ください|下さい|でしょうか|ますか|ですか|のか")
MAX_POINTS = 12  # more sub-questions than this are listed for a person to check
_JOINED = re.compile(r"(?<=[^、。])(?:と、|、および|、及び|、また|、それから)")
_ENUM = re.compile(r"^\s*(?:[0-9０-９]+[.．、)）]|[（(][0-9０-９]+[)）]|[①-⑳]|・)\s*")


def split_inquiry(inquiry: str) -> list[str]:
    """The sub-questions of an inquiry: sentences or list items that ask something."""
    pieces = [s for line in inquiry.splitlines() for s in sentences(_ENUM.sub("", line))]
    questions = [p for p in pieces if _ASKS.search(p) and not _COURTESY.search(p)]
    return questions or ([inquiry.strip()] if inquiry.strip() else [])


def sources_list(citations: list[Citation]) -> str:
    """The closing 出典 list of a reply: each [n] resolved to the document and its section."""
    lines = [prompts.render("draft", "sources_heading")]
    for c in citations:
        where = c.label
        page = f"（{c.page}ページ）" if c.page else ""
        lines.append(prompts.render("draft", "source_line", n=c.n, title=c.title, where=where, page=page))
    return "\n".join(lines)


class DraftWriter:
    """``ask`` answers one sub-question given the earlier ones (from one index generation),
    so 「これらの事業の予算は？」 is read about the points before it; ``chunk`` looks a cited
    passage up for the LLM variant."""

    def __init__(self, *, ask: Callable[[str, list[Message]], Answer], llm: "LlmAnswerer | None",
                 chunk: Callable[[str], Chunk | None],
                 outline: Outline, max_inquiry_chars: int, max_question_chars: int) -> None:
        self.ask = ask
        self.llm = llm
        self.chunk = chunk
        self.outline = outline
        self.max_inquiry_chars = max_inquiry_chars
        self.max_question_chars = max_question_chars

    def write(self, inquiry: str) -> Draft:
        t0 = time.perf_counter()
        inquiry = clean_question(inquiry, self.max_inquiry_chars)
        points: list[DraftPoint] = []
        citations: list[Citation] = []
        by_chunk: dict[str, int] = {}
        sections = [prompts.render("draft", "opening")]
        uncovered: list[str] = []
        questions = split_inquiry(inquiry)
        asked: list[tuple[str, Answer]] = []
        for q in questions[:MAX_POINTS]:
            asked += self._ask_parts(q, [{"role": "user", "content": p} for p, _ in asked])
        for i, (question, answer) in enumerate(asked, start=1):
            numbered = []
            shown = answer.citations if answer.coverage != "none" else []
            for c in shown:  # one number per passage across the whole draft
                if c.chunk_id not in by_chunk:
                    by_chunk[c.chunk_id] = len(citations) + 1
                    citations.append(Citation(n=by_chunk[c.chunk_id], chunk_id=c.chunk_id, source=c.source,
                                              title=c.title, section=c.section, quote=c.quote, page=c.page,
                                              label=c.label))
                numbered.append(citations[by_chunk[c.chunk_id] - 1])
            points.append(DraftPoint(question=question, answer=answer, numbers=[c.n for c in numbered]))
            if answer.coverage == "none":
                uncovered.append(question)
            elif answer.coverage == "related" and answer.missing:
                uncovered.append(prompts.render("draft", "uncovered_related", question=answer.rewritten_query or question,
                                                missing="、".join(answer.missing)))
            elif answer.coverage == "related":
                uncovered.append(prompts.render("draft", "uncovered_unsure", question=answer.rewritten_query or question))
            sections.append(prompts.render("draft", "point", number=i, question=question, coverage=answer.coverage,
                                           missing="、".join(answer.missing), citations=numbered))
        uncovered += questions[MAX_POINTS:]
        sections.append(prompts.render("draft", "closing"))
        if citations:
            sections.append(sources_list(citations))
        draft = Draft(inquiry=inquiry, text="\n\n".join(sections), points=points, uncovered=uncovered,
                      citations=citations, mode="extractive", timings_ms={"total": _ms(t0)})
        if self.llm is not None and citations:
            draft = self._llm_draft(draft, t0)
        return draft

    def _ask_parts(self, question: str, history: list[Message]) -> list[tuple[str, Answer]]:
        """Ask a sub-question. One that joins two topics (「エゾシカの活用と、その予算について」)
        is asked part by part, so the covered part is answered and only the other goes to
        要確認事項."""
        parts = [p.strip() for p in _JOINED.split(question) if p.strip()] or [question]
        out: list[tuple[str, Answer]] = []
        for part in parts:
            # Points of an inquiry are independent unless one refers back (これらの事業の予算は？).
            turns = history + [{"role": "user", "content": p} for p, _ in out] if refers_back(part) else []
            out.append((part, self.ask(part[: self.max_question_chars], turns)))
        return out

    def _llm_draft(self, extractive: Draft, t0: float) -> Draft:
        """The LLM writes the body from the same passages; the guard removes every sentence
        the passages do not support, and the opening, closing and 出典 list are the templates'.
        When nothing supported is left, or the model fails, the extractive draft stands with a
        notice for staff (the rejected sentences only in ``Draft.rejected``)."""
        from assistant.llm import LlmUnavailable

        # The model sees the passages numbered as the extractive draft cites them.
        found = [(c, chunk) for c in extractive.citations if (chunk := self.chunk(c.chunk_id)) is not None]
        pairs = [(replace(c, n=i), chunk) for i, (c, chunk) in enumerate(found, start=1)]
        try:
            result = self.llm.draft(extractive.inquiry, [chunk for _, chunk in pairs])
        except LlmUnavailable:
            return replace(extractive, mode="extractive-fallback", notice=prompts.render("answer", "draft_unavailable"))
        if not result.answers:
            return replace(extractive, mode="extractive-fallback", notice=prompts.render("answer", "draft_withheld"),
                           rejected=result.rejected)
        cited = [c for c, _ in pairs if c.n in result.cited]
        text = "\n\n".join([prompts.render("draft", "opening"), _without_empty_headings(result.text),
                             prompts.render("draft", "closing"), sources_list(cited)])
        return Draft(inquiry=extractive.inquiry, text=text, points=extractive.points, uncovered=extractive.uncovered,
                     citations=cited, mode="llm", rejected=result.rejected, timings_ms={"total": _ms(t0)})


_HEADING_LINE = re.compile(r"^\s*(?:【[^】]*】|#{1,6}\s.*|■.*|\*\*[^*]+\*\*[:：]?)\s*$")


def _without_empty_headings(text: str) -> str:
    """Drop heading lines left with nothing under them once the guard removed their sentences."""
    lines = text.splitlines()
    keep = []
    for i, line in enumerate(lines):
        if _HEADING_LINE.match(line):
            rest = next((ln for ln in lines[i + 1:] if ln.strip()), "")
            if not rest or _HEADING_LINE.match(rest):
                continue
        keep.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(keep)).strip()


def _ms(t: float) -> float:
    return (time.perf_counter() - t) * 1000.0
