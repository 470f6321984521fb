"""Questions about the plan's structure: a whole policy direction, or the overview."""
from __future__ import annotations

import re
from dataclasses import dataclass

from assistant.query import TermExtractor
from ingest.normalize import normalize_for_index
from ingest.store import IndexReader
from ingest.types import Chunk

_ALL = re.compile(r"全部|全て|すべて|総て|一覧|列挙|全体|残らず|どんな施策|どのような施策|施策は何|\ball\b|\blist\b|\bevery\b", re.I)
_OVERVIEW = re.compile(r"概要|全体像|あらまし|まとめ|要約|ビジョンとは|どんなビジョン|どういうビジョン|柱|施策の方向|"
                       r"overview|summary|summari[sz]e|what is (?:this|the) (?:vision|plan)|pillars|"
                       r"(?:main|policy|five) (?:policy )?directions", re.I)
_SLOGAN = re.compile(r"キャッチフレーズ|スローガン|標語|合言葉|slogan|catch\s*phrase|motto", re.I)
_TARGET = re.compile(r"めざす姿|目指す姿|めざしている|目指している|めざす地域|目指す地域|将来像|どんな地域|"
                     r"どのような地域|何がしたい|何をしたい|目的|ねらい|狙い|what kind of region|aim for|aims? to be|"
                     r"future of the region|what does (?:it|the (?:vision|plan)) want", re.I)
# Words that only say "tell me the structure", not a topic.
_STRUCTURE_WORDS = frozenset("""姿 めざす 目指す 将来 像 全体 概要 まとめ 目標 内容 要約 あらまし 全体像 柱 挙げる 掲げる
冒頭 キャッチフレーズ スローガン 標語 目的 ねらい 狙い したい 五つ 5つ ５つ region future aim kind overview
summary summarize main five directions pillars slogan want""".split())


@dataclass
class Outline:
    """What structural answers need from one index generation, computed once.

    The overview, target picture and slogan come from the plan documents only: the
    sources with a slogan (the vision's layout), or the single document of a one-file
    corpus. Other documents' headings never make the vision's overview.
    """

    generation: str
    title: str  # normalized titles of the plan documents
    slogan: list[Chunk]
    statements: list[Chunk]
    headings: list[Chunk]  # the plan documents' headings
    all_headings: list[tuple[Chunk, str]]  # every document's headings with normalized text
    bullets: dict[tuple[str, tuple[str, ...]], list[Chunk]]  # (source, section) → bullets

    @classmethod
    def of(cls, index: IndexReader) -> "Outline":
        chunks = index.chunks
        plan = {c.source for c in chunks if c.kind == "slogan"} or (
            {chunks[0].source} if chunks and len({c.source for c in chunks}) == 1 else set())
        mine = [c for c in chunks if c.source in plan]
        bullets: dict[tuple[str, tuple[str, ...]], list[Chunk]] = {}
        for c in chunks:
            if c.kind == "bullet":
                bullets.setdefault((c.source, c.section), []).append(c)
        return cls(
            generation=index.generation,
            title="".join(normalize_for_index(c.text) for c in mine if c.kind == "title"),
            slogan=[c for c in mine if c.kind == "slogan"],
            statements=[c for c in mine if c.kind == "statement"],
            headings=[c for c in mine if c.kind == "heading"],
            all_headings=[(c, normalize_for_index(c.text)) for c in chunks if c.kind == "heading"],
            bullets=bullets,
        )


class StructureAnswerer:
    """Finds the chunks that answer a structural question, in document order."""

    def __init__(self, extractor: TermExtractor) -> None:
        self.extractor = extractor
        self._outline: Outline | None = None

    def outline(self, index: IndexReader) -> Outline:
        outline = self._outline
        if outline is None or outline.generation != index.generation:
            outline = self._outline = Outline.of(index)
        return outline

    def _topic_terms(self, question: str, title: str = "") -> list[str]:
        """Content terms other than "tell me the structure" words and the plan's own
        title words (釧路, 根室: every question is about them)."""
        return [t.text for t in self.extractor.terms(question)
                if t.text not in _STRUCTURE_WORDS and normalize_for_index(t.text) not in title]

    def overview(self, question: str, index: IndexReader) -> tuple[str, list[Chunk]] | None:
        """('overview' | 'target' | 'slogan', chunks) for an overview question about the vision."""
        if not (_SLOGAN.search(question) or _TARGET.search(question) or _OVERVIEW.search(question)):
            return None
        outline = self.outline(index)
        if self._topic_terms(question, outline.title):
            return None
        if _SLOGAN.search(question) and outline.slogan:
            return "slogan", outline.slogan
        if _TARGET.search(question):
            chunks = outline.slogan + outline.statements
            return ("target", chunks) if len(chunks) > 1 else None
        if _OVERVIEW.search(question):
            chunks = outline.slogan + outline.headings
            return ("overview", chunks) if len(chunks) > 1 else None
        return None

    def direction(self, question: str, index: IndexReader, top_chunk: Chunk | None) -> tuple[str, list[Chunk]] | None:
        """(direction heading, its bullets) when the question asks for all of a direction."""
        if not _ALL.search(question):
            return None
        outline = self.outline(index)
        if not outline.all_headings:
            return None
        terms = [normalize_for_index(t) for t in self._topic_terms(question)]
        best, best_score = None, 0
        for h, text in outline.all_headings:
            score = sum(1 for t in terms if t in text)
            if score > best_score:
                best, best_score = h, score
        if best is None and top_chunk is not None and top_chunk.kind == "bullet":
            best = next((h for h, _ in outline.all_headings
                         if h.source == top_chunk.source and h.text == top_chunk.section[-1]), None)
        if best is None:
            return None
        bullets = outline.bullets.get((best.source, best.section + (best.text,)), [])
        return (best.text, bullets) if bullets else None
