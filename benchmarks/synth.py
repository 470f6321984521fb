"""Plan-like synthetic Japanese documents for the benchmarks, made from the real corpus.

Bullets, statements and headings of 釧路・根室連携地域「地域づくり推進ビジョン」 are recombined
(the first clauses of one sentence, the ending of another), moved to other towns, given
other numbers and synonyms, and laid out under 第N章 / ■ / １ / （１） headings, so that the
generic chunker cuts them like a real municipal plan. Generation is seeded and document k
never depends on the requested size: the corpus for 1,000 chunks is a prefix of the one for
10,000, except for its last, shortened, document.

Recombined sentences alone hold a few hundred content words however large the corpus. Real
plans keep meeting new ones, so most sentences also get common nouns drawn from SudachiDict's
lexicon with Zipf-distributed ranks: the vocabulary then grows with the corpus as in real
text (Heaps' law), to tens of thousands of distinct terms at 100k chunks.
"""
from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import random
import re
from dataclasses import dataclass
from pathlib import Path

from ingest.chunker import Chunker
from ingest.types import Chunk, LoadedDoc

MARKER = "※これはベンチマーク用の合成文書です（synthetic）"
PLACES = ("釧路", "根室", "厚岸", "標茶", "弟子屈", "中標津", "別海", "羅臼", "白糠", "浜中", "鶴居", "標津",
          "釧路町", "音別", "阿寒", "落石", "霧多布", "川湯", "養老牛", "尾岱沼")
# Place names of the real text that may be swapped for another town.
_SWAPPABLE = re.compile("釧路・根室|釧路|根室|知床")
_SYNONYMS = (("推進", ("促進", "展開", "強化", "推進")), ("充実", ("強化", "拡充", "充実")),
             ("支援", ("後押し", "支援", "サポート")), ("確保", ("維持", "確保", "拡大")),
             ("促進", ("推進", "加速", "促進")), ("向上", ("改善", "向上", "底上げ")))
_FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
_KANJI_DIGITS = "一二三四五六七八九"


@dataclass(frozen=True)
class SynthDoc:
    name: str  # file name inside the corpus folder
    title: str
    text: str

    def loaded(self) -> LoadedDoc:
        return LoadedDoc(source=self.name, text=self.text, title=self.title,
                         sha256=hashlib.sha256(self.text.encode("utf-8")).hexdigest())


@dataclass(frozen=True)
class Templates:
    sentences: tuple[str, ...]  # bullets and statements of the real corpus
    headings: tuple[str, ...]  # the five policy directions, without their numbers
    nouns: tuple[str, ...] = ()  # drawn with Zipf-distributed ranks (see ``lexicon_nouns``)


ZIPF_S = 1.0
# Phrases that carry drawn nouns into a sentence the way a plan adds its particulars.
_NOUN_FRAMES = ("{a}と{b}に関する", "{a}における", "{a}を活用した", "{a}や{b}を含む", "{a}・{b}の")


@functools.cache
def lexicon_nouns() -> tuple[str, ...]:
    """SudachiDict's common nouns written in 2–4 kanji (about 98k in sudachidict-core),
    in a fixed random order: the rank of each in the Zipf draw."""
    from sudachipy import Dictionary

    kanji = re.compile(r"[\u4e00-\u9fff]{2,4}")
    nouns = sorted({m.surface() for m in Dictionary(dict="core").entries()
                    if m.part_of_speech()[:3] in (("名詞", "普通名詞", "一般"), ("名詞", "普通名詞", "サ変可能"))
                    and kanji.fullmatch(m.surface())})
    random.Random("lexicon").shuffle(nouns)
    return tuple(nouns)


@functools.cache
def _zipf_cumulative(n: int, s: float = ZIPF_S) -> tuple[float, ...]:
    return tuple(itertools.accumulate(1.0 / (rank ** s) for rank in range(1, n + 1)))


def real_templates(corpus_file: Path, chunker: Chunker | None = None, vocabulary: bool = True) -> Templates:
    """Sentences and headings of the real vision, as the real chunker reads them, and (with
    ``vocabulary``) the lexicon nouns that make the vocabulary grow."""
    text = corpus_file.read_text(encoding="utf-8")
    doc = LoadedDoc(source=corpus_file.name, text=text, title=corpus_file.stem, sha256="")
    chunks = (chunker or Chunker()).split(doc)
    sentences = [c.text for c in chunks if c.kind in ("bullet", "statement", "slogan") and len(c.text) >= 10]
    headings = [re.sub(r"^[０-９0-9]+\s*", "", c.text) for c in chunks if c.kind == "heading"]
    return Templates(tuple(sentences), tuple(headings), lexicon_nouns() if vocabulary else ())


class _Writer:
    """One document's random choices."""

    def __init__(self, templates: Templates, rng: random.Random) -> None:
        self.t = templates
        self.rng = rng

    def place(self) -> str:
        return self.rng.choice(PLACES)

    def noun(self) -> str:
        cumulative = _zipf_cumulative(len(self.t.nouns))
        return self.t.nouns[bisect.bisect_left(cumulative, self.rng.random() * cumulative[-1])]

    def perturb(self, text: str) -> str:
        rng = self.rng
        if rng.random() < 0.5:  # the opening clauses of one sentence, the ending of another
            head = re.split(r"(?<=、)", text)
            other = re.split(r"(?<=、)", rng.choice(self.t.sentences))
            if len(head) > 1 and len(other) > 1:
                text = "".join(head[:rng.randint(1, len(head) - 1)]) + other[-1]
        text = _SWAPPABLE.sub(lambda m: self.place() if rng.random() < 0.7 else m.group(0), text)
        for word, choices in _SYNONYMS:
            if word in text and rng.random() < 0.4:
                text = text.replace(word, rng.choice(choices), 1)
        text = re.sub(r"[０-９]+", lambda m: str(rng.randint(1, 99)).translate(_FULLWIDTH), text)
        if rng.random() < 0.3:
            text = f"{self.place()}地域における" + text
        if self.t.nouns and rng.random() < 0.8:
            text = rng.choice(_NOUN_FRAMES).format(a=self.noun(), b=self.noun()) + text
        if rng.random() < 0.25:
            year = str(rng.randint(2025, 2040)).translate(_FULLWIDTH)
            text = text.rstrip("。") + f"（{year}年度までに{str(rng.randint(2, 60)).translate(_FULLWIDTH)}件）"
            text += "。" if rng.random() < 0.3 else ""
        return text

    def heading(self) -> str:
        base = self.rng.choice(self.t.headings)
        if self.rng.random() < 0.5:
            base = f"{self.place()}における{base}"
        return base[:40]

    def statement(self) -> str:
        s = self.perturb(self.rng.choice(self.t.sentences)).rstrip("。")
        return s + "ます。" if s.endswith("推進し") else s + "を図ります。"


def _document_lines(w: _Writer, index: int) -> tuple[str, list[str]]:
    """The title and the lines of document ``index`` (blank strings separate paragraphs)."""
    rng = w.rng
    towns = "・".join(rng.sample(PLACES, 2))
    title = f"{towns}地域 地域づくり推進計画（合成 第{index + 1}号）"
    lines = [MARKER, "", title, ""]
    for ch in range(1, rng.randint(2, 3) + 1):
        lines += [f"第{ch}章 {w.heading()}".translate(_FULLWIDTH), ""]
        for _ in range(rng.randint(1, 3)):
            lines += [f"■ {w.heading()}", "", w.statement() + w.statement(), ""]
            for sec in range(1, rng.randint(2, 4) + 1):
                lines += [f"{sec} {w.heading()}".translate(_FULLWIDTH), ""]
                for sub in range(1, rng.randint(1, 3) + 1):
                    lines.append(f"（{str(sub).translate(_FULLWIDTH)}）{w.heading()[:24]}")
                    lines += [f"・{w.perturb(rng.choice(w.t.sentences))}" for _ in range(rng.randint(3, 8))]
                    lines.append("")
    return title, lines


def _make_doc(templates: Templates, seed: int, index: int, keep_lines: int | None = None) -> SynthDoc:
    rng = random.Random(f"{seed}:{index}")
    title, lines = _document_lines(_Writer(templates, rng), index)
    if keep_lines is not None:
        lines = lines[:keep_lines]
    return SynthDoc(f"synthetic-{index:05d}.txt", title, "\n".join(lines).rstrip() + "\n")


def generate(n_chunks: int, templates: Templates, seed: int = 0,
             chunker: Chunker | None = None) -> list[SynthDoc]:
    """Documents that the chunker splits into exactly ``n_chunks`` chunks."""
    chunker = chunker or Chunker()
    docs: list[SynthDoc] = []
    total = 0
    while total < n_chunks:
        doc = _make_doc(templates, seed, len(docs))
        count = len(chunker.split(doc.loaded()))
        if total + count > n_chunks:  # the longest prefix of its lines that fits
            lo, hi = 1, doc.text.count("\n")
            while lo < hi:
                mid = (lo + hi + 1) // 2
                fits = total + len(chunker.split(_make_doc(templates, seed, len(docs), mid).loaded())) <= n_chunks
                lo, hi = (mid, hi) if fits else (lo, mid - 1)
            doc = _make_doc(templates, seed, len(docs), lo)
            count = len(chunker.split(doc.loaded()))
        docs.append(doc)
        total += count
    return docs


def chunks_of(docs: list[SynthDoc], chunker: Chunker | None = None) -> list[Chunk]:
    chunker = chunker or Chunker()
    return [c for d in docs for c in chunker.split(d.loaded())]


def write_corpus(docs: list[SynthDoc], directory: Path) -> Path:
    """The documents plus a sources.toml with their titles; refuses the real corpus folder."""
    if (directory / "kushiro-nemuro-vision.txt").exists():
        raise ValueError(f"{directory} holds the real corpus; synthetic files never go there")
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for d in docs:
        (directory / d.name).write_text(d.text, encoding="utf-8")
        entries.append(f'[[source]]\nfile = "{d.name}"\ntitle = "{d.title}"\nissuer = "synthetic"\n'
                       f'date = "2025"\nlanguage = "ja"\n')
    (directory / "sources.toml").write_text("\n".join(entries), encoding="utf-8")
    return directory


def plain_text(docs: list[SynthDoc]) -> str:
    """All documents as one text, for the plain LangChain stack."""
    return "\n\n".join(d.text for d in docs)
