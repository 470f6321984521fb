"""Query clean-up, language detection, content terms and follow-up rewriting."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from assistant.types import InputError, Message
from ingest.normalize import strip_invisible
from ingest.tokenize import JapaneseTokenizer

# Words that say nothing about the topic of a question about this plan.
GENERIC_TERMS = frozenset("""
取り組み 取組 取り組む 地域 ビジョン 施策 計画 内容 こと もの 何 なに 何か ある 有る する 為る いる 居る なる 成る
教える 知る 思う 言う 書く 記載 全部 全て 総て すべて 概要 方向 方針 推進 関係 場合 どう どんな 具体 具体的
ため 為 よう 様 所 ところ 件 方 点 上 中 際 くれる 下さる ください 頂く いただく お願い 願う 問い合わせ 問合せ
付く つく 聞く 伺う 尋ねる 質問 回答 について 関する 対する 今後 予定 現在 北海道 連携 振興 促進 取る 出来る できる
話 出る 載る 触れる 言及 結局 ぶっちゃけ 実際 ちなみに 必要 教示 ご教示 幸い 存じる 知りたい れる られる せる 見る 行く 来る 呉れる 貰う 欲しい ほしい 良い いい 特に 主 主な 教え 詳しい 詳細 もっと 他 ほか
""".split())

_EN_STOP = frozenset("""
a an the is are was were be been being of to in on for and or with about what which who how does do did
this that these those it its there their any some tell me please vision plan plans region regional area
kushiro nemuro hokkaido you your i we our can could would should will say says said mention mentions
anything something doing do done much many more other others policy policies measures
""".split())

_FOLLOWUP = re.compile(
    r"^(?:それ|その|そこ|これ|この|あれ|あの|他|ほか|もっと|さらに|更に|詳しく|具体的|じゃあ|では|で、|and\b|"
    r"what about\b|tell me more|more\b|other|anything else)|(?:他には|ほかには|詳しく|\b(?:it|that|this|them)\b)",
    re.I,
)


_SURROGATES = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Invisible characters and lone surrogates removed. A lone surrogate (argv bytes that
    are not UTF-8, a JSON "\\ud800" escape) cannot even be encoded: Sudachi would raise."""
    return _SURROGATES.sub("", strip_invisible(text or ""))


def clean_question(text: str, limit: int) -> str:
    """Strip invisible characters and surrounding space; refuse empty or over-long input."""
    cleaned = clean_text(text).strip()
    if not cleaned:
        raise InputError("質問が空です。知りたいことを入力してください。")
    if len(cleaned) > limit:
        raise InputError(f"質問が長すぎます（{len(cleaned):,}文字）。{limit:,}文字以内で入力してください。")
    return cleaned


def detect_language(text: str) -> str:
    """'en' when the text is mostly Latin letters and has no kana or kanji, else 'ja'."""
    jp = sum(1 for ch in text if unicodedata.name(ch, "").startswith(("CJK", "HIRAGANA", "KATAKANA")))
    latin = sum(1 for ch in text if ch.isascii() and ch.isalpha())
    return "en" if jp == 0 and latin >= 3 else "ja"


@dataclass(frozen=True)
class Term:
    text: str  # normalized form
    proper: bool  # a proper noun (place, person, organisation)
    reading: str = ""


class TermExtractor:
    """Content terms of a question: Sudachi nouns, verbs and adjectives minus generic words."""

    def __init__(self, tokenizer: JapaneseTokenizer) -> None:
        self.tokenizer = tokenizer

    def terms(self, text: str) -> list[Term]:
        if detect_language(text) == "en":
            words = re.findall(r"[A-Za-z][A-Za-z0-9\-]+", text)
            out = []
            for i, w in enumerate(words):
                if w.lower() in _EN_STOP or len(w) < 3:
                    continue
                out.append(Term(w.lower(), proper=w[0].isupper() and i > 0))
            return list(dict.fromkeys(out))
        out = []
        prev_pos = ""
        for t in self.tokenizer.analyze(text):
            # Split mode A leaves single-kanji tails of compounds (札幌|市, 自治|体); they
            # match almost anything, so a one-kanji noun right after a noun is not a term.
            tail = t.pos == "名詞" and prev_pos == "名詞" and len(t.norm) == 1
            prev_pos = t.pos
            if tail:
                continue
            if t.pos not in ("名詞", "動詞", "形容詞", "形状詞") or t.pos2 in ("非自立可能", "数詞", "助数詞"):
                continue
            if t.norm in GENERIC_TERMS or t.surface in GENERIC_TERMS or len(t.norm) < 1:
                continue
            if len(t.norm) == 1 and not _is_kanji(t.norm):
                continue
            # A country (ロシア) is context in a regional plan; another city or a person is
            # a different subject.
            out.append(Term(t.norm, proper=t.pos2 == "固有名詞" and t.pos3 != "国"))
        return list(dict.fromkeys(out))


def _is_kanji(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith("CJK")


class FollowUpRewriter:
    """Rule-based rewriting of a follow-up into a standalone query (no LLM needed).

    A short question that refers back (それ, 他には, その予算は？) gets the previous user
    turn's content terms carried forward.
    """

    def __init__(self, extractor: TermExtractor) -> None:
        self.extractor = extractor

    def is_follow_up(self, question: str, history: list[Message]) -> bool:
        if not any(m.get("role") == "user" for m in history):
            return False
        q = question.strip()
        return (bool(_FOLLOWUP.search(q)) and len(q) <= 40) or not self.extractor.terms(q)

    def rewrite(self, question: str, history: list[Message]) -> str:
        if not self.is_follow_up(question, history):
            return question
        previous = [m["content"] for m in history if m.get("role") == "user"]
        # Walk back to the last turn that had its own topic.
        topic = ""
        for turn in reversed(previous):
            if self.extractor.terms(turn):
                topic = turn
                break
        if not topic:
            return question
        carried = " ".join(t.text for t in self.extractor.terms(topic))
        own = " ".join(t.text for t in self.extractor.terms(question))
        return f"{carried} {own}".strip() if own else carried
