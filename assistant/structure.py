"""Questions about the plan's structure: a whole policy direction, or the overview."""
from __future__ import annotations

import re

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


class StructureAnswerer:
    """Finds the chunks that answer a structural question, in document order."""

    def __init__(self, extractor: TermExtractor) -> None:
        self.extractor = extractor

    def _topic_terms(self, question: str, index: IndexReader | None = None) -> list[str]:
        """Content terms other than "tell me the structure" words and the plan's own
        title words (釧路, 根室: every question is about them)."""
        title = "".join(normalize_for_index(c.text) for c in (index.chunks if index else []) if c.kind == "title")
        return [t.text for t in self.extractor.terms(question)
                if t.text not in _STRUCTURE_WORDS and normalize_for_index(t.text) not in title]

    def overview(self, question: str, index: IndexReader) -> tuple[str, list[Chunk]] | None:
        """('overview' | 'target', chunks) for an overview question about the vision."""
        if self._topic_terms(question, index):
            return None
        slogan = [c for c in index.chunks if c.kind == "slogan"]
        if _SLOGAN.search(question) and slogan:
            return "slogan", slogan
        if _TARGET.search(question):
            chunks = slogan + [c for c in index.chunks if c.kind == "statement"]
            return ("target", chunks) if len(chunks) > 1 else None
        if _OVERVIEW.search(question):
            chunks = slogan + [c for c in index.chunks if c.kind == "heading"]
            return ("overview", chunks) if len(chunks) > 1 else None
        return None

    def direction(self, question: str, index: IndexReader, top_chunk: Chunk | None) -> tuple[str, list[Chunk]] | None:
        """(direction heading, its bullets) when the question asks for all of a direction."""
        if not _ALL.search(question):
            return None
        headings = [c for c in index.chunks if c.kind == "heading"]
        if not headings:
            return None
        terms = [normalize_for_index(t) for t in self._topic_terms(question)]
        best, best_score = None, 0
        for h in headings:
            score = sum(1 for t in terms if t in normalize_for_index(h.text))
            if score > best_score:
                best, best_score = h, score
        if best is None and top_chunk is not None and top_chunk.kind == "bullet":
            best = next((h for h in headings if h.text == top_chunk.section[-1]), None)
        if best is None:
            return None
        section = best.section + (best.text,)
        bullets = [c for c in index.chunks if c.section == section and c.kind == "bullet"]
        return (best.text, bullets) if bullets else None
