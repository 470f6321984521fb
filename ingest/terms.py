"""Content terms of a text (Sudachi nouns, verbs and adjectives minus generic words) and
their vectors.

The evidence check compares a question's terms with the terms of the passages it
retrieved, by embedding. The passages' terms are known at ingest, so their vectors are
computed there once (``TermVectors``) instead of on every question.
"""
from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.tokenize import JapaneseTokenizer, is_kanji

# Words that say nothing about the topic of a question about this plan.
GENERIC_TERMS = frozenset("""
取り組み 取組 取り組む 地域 ビジョン 施策 計画 内容 こと もの 何 なに 何か ある 有る する 為る いる 居る なる 成る
教える 知る 思う 言う 書く 記載 全部 全て 総て すべて 概要 方向 方針 推進 関係 場合 どう どんな 具体 具体的
ため 為 よう 様 所 ところ 件 方 点 上 中 際 くれる 下さる ください 頂く いただく お願い 願う 問い合わせ 問合せ
付く つく 聞く 伺う 尋ねる 質問 回答 について 関する 対する 今後 予定 現在 北海道 連携 振興 促進 取る 出来る できる
話 出る 載る 触れる 言及 結局 ぶっちゃけ 実際 ちなみに 必要 教示 ご教示 幸い 存じる 知りたい れる られる せる 見る 行く 来る 呉れる 貰う 欲しい ほしい 良い いい 特に 主 主な 教え 詳しい 詳細 もっと 他 ほか
""".split())

EN_STOP = frozenset("""
a an the is are was were be been being of to in on for and or with about what which who how does do did
this that these those it its there their any some tell me please vision plan plans region regional area
kushiro nemuro hokkaido you your i we our can could would should will say says said mention mentions
anything something doing do done much many more other others policy policies measures
""".split())


def detect_language(text: str) -> str:
    """'en' when the text is mostly Latin letters and has no kana or kanji, else 'ja'."""
    jp = sum(1 for ch in text if unicodedata.name(ch, "").startswith(("CJK", "HIRAGANA", "KATAKANA")))
    latin = sum(1 for ch in text if ch.isascii() and ch.isalpha())
    return "en" if jp == 0 and latin >= 3 else "ja"


@dataclass(frozen=True)
class Term:
    text: str  # normalized form
    proper: bool  # a proper noun (place, person, organisation)
    reading: str = ""  # katakana (Sudachi's reading form)
    surface: str = ""  # as written in the text
    pos: str = ""  # Sudachi's part of speech (名詞, 動詞 …); English words: 名詞
    pos3: str = ""  # its third level (副詞可能 for それぞれ, 今後 …)

    @property
    def topical(self) -> bool:
        """A noun that can name a topic: not a verb of saying or doing, not an adverbial noun
        (それぞれ, 以外)."""
        return self.pos == "名詞" and self.pos3 != "副詞可能"


class TermExtractor:
    """Content terms of a question: Sudachi nouns, verbs and adjectives minus generic words."""

    def __init__(self, tokenizer: JapaneseTokenizer) -> None:
        self.tokenizer = tokenizer

    def terms(self, text: str) -> list[Term]:
        if detect_language(text) == "en":
            words = re.findall(r"[A-Za-z][A-Za-z0-9\-]+", text)
            out = []
            for i, w in enumerate(words):
                if w.lower() in EN_STOP or len(w) < 3:
                    continue
                out.append(Term(w.lower(), proper=w[0].isupper() and i > 0, surface=w, pos="名詞"))
            return _unique(out)
        out = []
        prev_pos = ""
        for t in self.tokenizer.analyze(text):
            # Split mode A leaves single-kanji tails of compounds (札幌|市, 自治|体); they
            # match almost anything, so a one-kanji noun right after a noun is not a term.
            tail = t.pos == "名詞" and prev_pos == "名詞" and len(t.norm) == 1
            prev_pos = t.pos
            if tail:
                continue
            if t.pos not in ("名詞", "動詞", "形容詞", "形状詞") or t.pos2 in ("非自立可能", "数詞", "助数詞", "助動詞語幹"):
                continue
            if t.norm in GENERIC_TERMS or t.surface in GENERIC_TERMS or len(t.norm) < 1:
                continue
            if len(t.norm) == 1 and not is_kanji(t.norm):
                continue
            # A country (ロシア) is context in a regional plan; another city or a person is
            # a different subject.
            out.append(Term(t.norm, proper=t.pos2 == "固有名詞" and t.pos4 != "国", reading=t.reading,
                            surface=t.surface, pos=t.pos, pos3=t.pos3))
        return _unique(out)


    def phrases(self, text: str, actions: bool = True) -> list[str]:
        """The noun compounds of a text as written (Sudachi splits 再生可能エネルギー into three
        words; a phrase joins runs of nouns and suffixes back together), without compounds made
        only of generic words. ``actions=False`` also drops action nouns (推進, 整備, 拡大) at
        a compound's end and compounds made only of them."""
        out, run = [], []
        for t in [*self.tokenizer.analyze(text), None]:
            if t is not None and ((t.pos == "名詞" and t.pos2 != "数詞" and t.pos3 != "副詞可能")
                                  or (t.pos in ("接尾辞", "形状詞") and run)):
                run.append(t)
                continue
            while run and (run[-1].pos == "形状詞" or (not actions and run[-1].pos3.startswith("サ変") and len(run) > 1)):
                run.pop()
            if run and not all(x.norm in GENERIC_TERMS or (not actions and x.pos3.startswith("サ変")) for x in run):
                out.append("".join(x.surface for x in run))
            run = []
        return list(dict.fromkeys(out))


def _unique(terms: list[Term]) -> list[Term]:
    """The first term of each normalized form, in order."""
    seen: set[str] = set()
    return [t for t in terms if not (t.text in seen or seen.add(t.text))]


# Names the extraction rules and word lists, so an analysis cached under an older version
# is not reused (bump the number when the rules in TermExtractor change).
TERMS_ID = "terms-v3-" + hashlib.sha256(" ".join(sorted(GENERIC_TERMS | EN_STOP)).encode("utf-8")).hexdigest()[:8]


class TermVectors:
    """Query-mode vectors of every content term of the indexed chunks, saved with the
    index generation (``terms.json`` + ``terms.npy``)."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    @classmethod
    def build(cls, terms: list[str], embed_queries) -> "TermVectors":
        vectors = np.asarray(embed_queries(terms), dtype=np.float32) if terms else np.zeros((0, 0), np.float32)
        return cls(dict(zip(terms, vectors)))

    def save(self, gen_dir: Path) -> None:
        terms = list(self.vectors)
        matrix = np.stack([self.vectors[t] for t in terms]) if terms else np.zeros((0, 0), np.float32)
        np.save(gen_dir / "terms.npy", matrix)
        (gen_dir / "terms.json").write_text(json.dumps(terms, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, gen_dir: Path) -> "TermVectors":
        """Empty for a generation written before term vectors were stored."""
        if not (gen_dir / "terms.json").exists():
            return cls({})
        terms = json.loads((gen_dir / "terms.json").read_text(encoding="utf-8"))
        matrix = np.load(gen_dir / "terms.npy")
        if len(terms) != len(matrix):
            raise ValueError(f"terms.json lists {len(terms)} terms but terms.npy holds {len(matrix)} vectors")
        return cls(dict(zip(terms, matrix)))
