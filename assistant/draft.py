"""Formal reply drafts for municipal staff: one section per sub-question, quotes cited,
and the points the plan does not cover listed as 要確認事項."""
from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from assistant import prompts
from assistant.query import clean_question
from assistant.types import Citation, Draft, DraftPoint

if TYPE_CHECKING:
    from assistant.core import Assistant
    from assistant.types import Answer

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
    pieces: list[str] = []
    for line in inquiry.splitlines():
        line = _ENUM.sub("", line).strip()
        pieces.extend(s.strip() for s in re.findall(r"[^。？?！!]+[。？?！!]*", line) if s.strip())
    questions = [p for p in pieces if _ASKS.search(p) and not _COURTESY.search(p)]
    return questions or ([inquiry.strip()] if inquiry.strip() else [])


class DraftWriter:
    def __init__(self, assistant: "Assistant") -> None:
        self.assistant = assistant

    def write(self, inquiry: str) -> Draft:
        t0 = time.perf_counter()
        inquiry = clean_question(inquiry, self.assistant.cfg.max_inquiry_chars)
        points: list[DraftPoint] = []
        citations: list[Citation] = []
        by_chunk: dict[str, int] = {}
        sections = [prompts.render("draft", "opening")]
        uncovered: list[str] = []
        questions = split_inquiry(inquiry)
        asked = [pair for q in questions[:MAX_POINTS] for pair in self._ask_parts(q)]
        for i, (question, answer) in enumerate(asked, start=1):
            numbered = []
            for c in answer.citations:  # one number per passage across the whole draft
                if c.chunk_id not in by_chunk:
                    by_chunk[c.chunk_id] = len(citations) + 1
                    citations.append(Citation(by_chunk[c.chunk_id], c.chunk_id, c.source, c.title, c.section,
                                              c.quote, c.page))
                numbered.append(citations[by_chunk[c.chunk_id] - 1])
            points.append(DraftPoint(question, answer, [c.n for c in numbered]))
            if answer.abstained:
                uncovered.append(question)
            sections.append(prompts.render("draft", "point", number=i, question=question,
                                           covered=not answer.abstained, citations=numbered))
        uncovered += questions[MAX_POINTS:]
        sections.append(prompts.render("draft", "closing"))
        if uncovered:
            sections.append(prompts.render("draft", "uncovered_heading") + "\n"
                            + "\n".join(f"・{q}（要確認）" for q in uncovered))
        sections.append(prompts.render("extractive", "attribution"))
        draft = Draft(inquiry, "\n\n".join(sections), points, uncovered, citations, "extractive",
                      {"total": (time.perf_counter() - t0) * 1000.0})
        if self.assistant.llm is not None and citations:
            draft = self._llm_draft(draft, t0)
        return draft

    def _ask_parts(self, question: str) -> list[tuple[str, "Answer"]]:
        """Ask a sub-question; when the plan does not cover it and it joins two topics
        (「エゾシカの活用と、その予算について」), ask each topic on its own, so the covered
        one is answered and only the other goes to 要確認事項."""
        answer = self.assistant.ask(question[: self.assistant.cfg.max_question_chars])
        parts = [p for p in _JOINED.split(question) if p.strip()]
        if not answer.abstained or len(parts) < 2:
            return [(question, answer)]
        return [(p, self.assistant.ask(p[: self.assistant.cfg.max_question_chars])) for p in parts]

    def _llm_draft(self, extractive: Draft, t0: float) -> Draft:
        """The LLM writes the prose from the same passages; the guard checks it. On any
        failure the extractive draft stands, with a note in its mode."""
        from assistant.llm import LlmUnavailable

        chunks = [self.assistant.index.by_id[c.chunk_id] for c in extractive.citations]
        try:
            result = self.assistant.llm.draft(extractive.inquiry, chunks)
        except LlmUnavailable:
            extractive.mode = "extractive-fallback"
            return extractive
        if not result.cited:
            extractive.mode = "extractive-fallback"
            return extractive
        cited = [c for c in extractive.citations if c.n in result.cited]
        text = result.text
        if extractive.uncovered and "要確認事項" not in text:
            text += "\n\n" + prompts.render("draft", "uncovered_heading") + "\n" + "\n".join(
                f"・{q}（要確認）" for q in extractive.uncovered)
        return Draft(extractive.inquiry, text, extractive.points, extractive.uncovered, cited, "llm",
                     {"total": (time.perf_counter() - t0) * 1000.0})
