"""Questions about the plan as a whole, answered from its outline: the overview, the target
picture, the slogan, its period and issuer, and every measure of one direction.

A question is about the plan as a whole when its asking clause names no topic: its content
terms are only words for the parts of a plan (スローガン, めざす姿, 柱, 期間) or for the plan's
own scope (the words of its title). Which part it asks for follows from those words and from
the kind of fact asked (いつまで → the period, 誰が → the issuer).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from assistant.question import Question
from ingest.normalize import normalize_for_index
from ingest.store import IndexReader
from ingest.terms import TermExtractor
from ingest.types import Chunk

# Words for the parts of a plan document (normalized forms), by the part they ask for.
_SLOGAN = frozenset("スローガン キャッチフレーズ 標語 合言葉 一言 slogan motto catchphrase".split())
_TARGET = frozenset("目指す めざす 姿 将来像 将来 目的 狙い 願い 理想 aim aims goal goals future vision".split())
_OVERVIEW = frozenset("""概要 全体像 全体 あらまし 要約 纏め 纏める 柱 方向 方針 構成 中身 内容 目次 ざっくり 大まか
overview summary summarize summarise pillars directions structure contents outline""".split())
_PERIOD = frozenset("期間 期限 年度 年 目標年 先 いつ頃 何時 period years until".split())
_ISSUER = frozenset("作る 作成 策定 発行 作成者 発行者 主体 publish published issue issued made make author".split())
_NAME = frozenset("名前 名称 題名 タイトル 正式 name title".split())
_PARTS = _SLOGAN | _TARGET | _OVERVIEW | _PERIOD | _ISSUER | _NAME | frozenset("""
計画 ビジョン 文書 資料 書類 冊子 地域 連携 地域づくり 推進 示す 掲げる 書く 挙げる 主 五つ 5つ 何 plan document
""".split())
_ALL = re.compile(r"全部|全て|すべて|総て|一覧|列挙|残らず|漏れなく|\ball\b|\blist\b|\bevery\b", re.I)
_ORDINAL = re.compile(r"([0-9０-９一二三四五])\s*(?:番目|つ目|個目|本目)|(?:第)([0-9０-９一二三四五])|"
                      r"\b(first|second|third|fourth|fifth)\b", re.I)
_ORDINAL_WORDS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "first": 1, "second": 2, "third": 3, "fourth": 4,
                  "fifth": 5}


@dataclass
class Outline:
    """What structural answers need from one index generation, computed once.

    The overview, target picture and slogan come from the plan documents only: the sources
    with a slogan (the vision's layout), or the single document of a one-file corpus.
    """

    generation: str
    title: str  # normalized titles of the plan documents
    titles: dict[str, str]  # source → its title (a document's own scope)
    slogan: list[Chunk]
    statements: list[Chunk]
    headings: list[Chunk]  # the plan documents' headings
    dated: list[Chunk]  # the plan documents' structural units that state a period or year
    title_chunks: list[Chunk]
    all_headings: list[tuple[Chunk, str]]  # every document's headings with normalized text
    bullets: dict[tuple[str, tuple[str, ...]], list[Chunk]]  # (source, section) → bullets
    issuers: dict[str, str] = field(default_factory=dict)  # plan source → issuer (sources.toml)
    labels: dict[tuple[str, str], str] = field(default_factory=dict)  # (source, heading) → short label

    def label(self, chunk: Chunk) -> str:
        """The short name of the section a chunk belongs to (or of the heading itself)."""
        heading = chunk.text if chunk.kind == "heading" else (chunk.section[-1] if chunk.section else "")
        return self.labels.get((chunk.source, heading), _plain(heading))

    @classmethod
    def of(cls, index: IndexReader, extractor: TermExtractor,
           issuers: dict[str, str] | None = None) -> "Outline":
        chunks = index.chunks
        plan = {c.source for c in chunks if c.kind == "slogan"} or (
            {chunks[0].source} if chunks and len({c.source for c in chunks}) == 1 else set())
        mine = [c for c in chunks if c.source in plan]
        bullets: dict[tuple[str, tuple[str, ...]], list[Chunk]] = {}
        for c in chunks:
            if c.kind == "bullet":
                bullets.setdefault((c.source, c.section), []).append(c)
        structural = [c for c in mine if c.kind in ("note", "section", "heading", "title")]
        return cls(
            generation=index.generation,
            title="".join(normalize_for_index(c.text) for c in mine if c.kind == "title"),
            titles={c.source: c.title for c in chunks},
            slogan=[c for c in mine if c.kind == "slogan"],
            statements=[c for c in mine if c.kind == "statement"],
            headings=[c for c in mine if c.kind == "heading"],
            dated=[c for c in structural if re.search(r"[0-9０-９]+\s*(?:年|年度)", c.text)],
            title_chunks=[c for c in mine if c.kind == "title"],
            all_headings=[(c, normalize_for_index(c.text)) for c in chunks if c.kind == "heading"],
            bullets=bullets,
            issuers={s: i for s, i in (issuers or {}).items() if s in plan and i},
            labels={(c.source, c.text): short_label(c, extractor) for c in chunks if c.kind == "heading"},
        )


_NUMBERED = re.compile(r"^\s*([0-9０-９]+|[ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩ])[\s.．、)）]*")
_LONG = 16  # headings up to this many characters are their own label


def _plain(heading: str) -> str:
    """A heading without its list number (「Ⅰ 地域のめざす姿」 → 地域のめざす姿)."""
    return _NUMBERED.sub("", heading).strip()


def short_label(heading: Chunk, extractor: TermExtractor) -> str:
    """A short name derived from a long numbered heading: what its parent section calls its
    parts, its number, and its first two noun phrases
    (「４ 人流・物流ネットワークの形成と…」 under 「…主な施策の方向（…）」 → 主な施策の方向４（人流・物流ネットワーク）)."""
    plain = _plain(heading.text)
    number = _NUMBERED.match(heading.text)
    parent = re.sub(r"[（(].*?[)）]", "", heading.section[-1]).strip() if heading.section else ""
    if len(plain) <= _LONG or not number or not parent:
        return plain  # short, or nothing to name it by but its own words
    keys = "・".join(extractor.phrases(plain, actions=False)[:2])
    kind = "の".join(parent.split("の")[-2:]) if "の" in parent else parent
    return f"{kind}{number.group(1)}（{keys}）" if keys else plain


@dataclass(frozen=True, kw_only=True)
class Structural:
    """A structural answer: its kind (the template), the chunks to quote, and what the lead
    names (a heading for a direction; the issuer for an issuer question)."""

    kind: str  # overview | target | slogan | period | issuer | name | direction
    chunks: list[Chunk]
    heading: str = ""
    issuer: str = ""


class StructureAnswerer:
    def find(self, question: Question, outline: Outline, top_chunk: Chunk | None) -> Structural | None:
        direction = self._direction(question, outline, top_chunk)
        if direction is not None:
            return direction
        if self._topical(question, outline):
            return None
        lemmas = question.lemmas
        if lemmas & _SLOGAN and outline.slogan:
            return Structural(kind="slogan", chunks=outline.slogan)
        if question.asks == "who" or lemmas & _ISSUER:
            issuer = next(iter(outline.issuers.values()), "")
            if issuer and outline.title_chunks:
                return Structural(kind="issuer", chunks=outline.title_chunks[:1], issuer=issuer)
        if (question.asks == "date" or lemmas & _PERIOD) and outline.dated:
            return Structural(kind="period", chunks=outline.dated)
        if lemmas & _NAME and outline.title_chunks:
            return Structural(kind="name", chunks=outline.title_chunks[:1])
        if lemmas & _TARGET and len(outline.slogan + outline.statements) > 1:
            return Structural(kind="target", chunks=outline.slogan + outline.statements)
        if lemmas & _OVERVIEW and len(outline.slogan + outline.headings) > 1:
            return Structural(kind="overview", chunks=outline.slogan + outline.headings)
        return None

    @staticmethod
    def _topical(question: Question, outline: Outline) -> bool:
        """Does the asking clause name a topic (a term that is not a word for a part of the
        plan, nor a word of its title)?"""
        return any(t.text not in _PARTS and normalize_for_index(t.text) not in outline.title
                   for t in question.focus)

    def _direction(self, question: Question, outline: Outline, top_chunk: Chunk | None) -> Structural | None:
        """Every bullet of one direction: asked for all of them (全部, 一覧), or by its number."""
        if not outline.all_headings:
            return None
        ordinal = _ORDINAL.search(question.text)
        best = None
        if ordinal is not None and question.lemmas & (_OVERVIEW | frozenset({"施策", "項目"})):
            raw = next(g for g in ordinal.groups() if g)
            n = _ORDINAL_WORDS.get(raw.lower()) or int(normalize_for_index(raw))
            best = outline.headings[n - 1] if 0 < n <= len(outline.headings) else None
        elif _ALL.search(question.text):
            terms = [normalize_for_index(t.text) for t in question.terms if t.text not in _PARTS]
            score = 0
            for h, text in outline.all_headings:
                s = sum(1 for t in terms if t in text)
                if s > score:
                    best, score = h, s
            if best is None and top_chunk is not None and top_chunk.kind == "bullet":
                best = next((h for h, _ in outline.all_headings
                             if h.source == top_chunk.source and h.text == top_chunk.section[-1]), None)
        if best is None:
            return None
        bullets = outline.bullets.get((best.source, best.section + (best.text,)), [])
        return Structural(kind="direction", chunks=bullets, heading=best.text) if bullets else None
