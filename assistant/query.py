"""Query clean-up and follow-up rewriting (content terms and language detection live in
``ingest.terms``; they are re-exported here for the assistant's stages)."""
from __future__ import annotations

import re

from assistant.injection import strip_injection
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
# What of a chat's history a question may use: the last turns, each clipped. Follow-ups need
# the recent topic, not the whole session, and the cost of an answer must not grow with it.
HISTORY_TURNS = 6
HISTORY_TURN_CHARS = 500
CARRIED_TERMS = 4  # noun phrases a follow-up carries from the turn it refers to
CARRIED_CHARS = 20  # … each at most this long
SHORT_FOLLOW_UP = 30  # a question this short that names nothing the plan has continues the chat's topic


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


def refers_back(question: str) -> bool:
    """The question points at something said before (それ, その, 他には, this …)."""
    return bool(_FOLLOWUP.search(question.strip()))


def bound_history(history: list[Message]) -> list[Message]:
    """The last HISTORY_TURNS messages with text content, each cleaned and clipped."""
    out: list[Message] = []
    for m in list(history)[-HISTORY_TURNS:]:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            out.append({"role": str(m.get("role", "user")), "content": clean_text(content)[:HISTORY_TURN_CHARS]})
    return out


class FollowUpRewriter:
    """Rule-based rewriting of a follow-up into a standalone query (no LLM needed).

    A short question that refers back (それ, 他には, その予算は？) is read as being about the
    topic of the last user turn that had one: 「エゾシカについて、その予算は？」.
    """

    def __init__(self, extractor: TermExtractor) -> None:
        self.extractor = extractor

    def is_follow_up(self, question: str, history: list[Message], known=lambda term: True) -> bool:
        """A question that refers back (それ, 他には), has no content words, or is short and
        names nothing the plan has (「年間何頭ぐらい獲る目標なの？」 after a question about
        エゾシカ). ``known(term)``: the index has the term."""
        if not any(m.get("role") == "user" for m in history):
            return False
        q = question.strip()
        terms = self.extractor.terms(q)
        if (bool(_FOLLOWUP.search(q)) and len(q) <= 40) or not terms:
            return True
        return len(q) <= SHORT_FOLLOW_UP and not any(t.topical and known(t.text) for t in terms)

    def rewrite(self, question: str, history: list[Message], known=lambda term: True) -> str:
        if not self.is_follow_up(question, history, known):
            return question
        # A turn that only tried to steer the assistant has no topic to carry.
        previous = [strip_injection(m["content"])[0] for m in history if m.get("role") == "user"]
        # Walk back to the last turn that had its own topic.
        topic = ""
        for turn in reversed(previous):
            if self.extractor.terms(turn):
                topic = turn
                break
        if not topic:
            return question
        own = "".join(self.extractor.phrases(question))
        carried = [p[:CARRIED_CHARS] for p in self.extractor.phrases(topic) if p not in own][:CARRIED_TERMS]
        if not carried:
            return question
        if detect_language(question) == "en":
            return f"About {', '.join(carried)}: {question}"
        return f"{'・'.join(carried)}について、{question}"
