"""Query clean-up and follow-up rewriting (content terms and language detection live in
``ingest.terms``; they are re-exported here for the assistant's stages)."""
from __future__ import annotations

import re

from assistant.types import InputError, Message
from ingest.normalize import strip_invisible
from ingest.terms import GENERIC_TERMS, Term, TermExtractor, detect_language

__all__ = ["GENERIC_TERMS", "FollowUpRewriter", "Term", "TermExtractor", "clean_question", "clean_text",
           "detect_language"]

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
