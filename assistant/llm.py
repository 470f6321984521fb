"""Generated answers, drafts and query rewrites through an OpenAI-compatible chat model.

Every failure of the model (connection refused, timeout, HTTP error, broken stream, the
answer's time budget spent) surfaces as ``LlmUnavailable`` so the caller can fall back to
the extractive answer. Generation is bounded: each kind of call sends its own
``max_tokens``, and an answer or draft that runs past its wall-clock budget is cut off.
Ending a stream early closes its HTTP response, which is how a server learns to stop
generating (llama.cpp cancels the slot when the client disconnects).
"""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from assistant import logs
from assistant.echo import PromptEcho
from assistant.guard import FidelityGuard, GuardResult
from assistant.prompts import render
from assistant.support import flat
from assistant.types import Message
from ingest.types import Chunk

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_openai import ChatOpenAI

    from assistant.query import TermExtractor

_HISTORY_TURNS = 6  # rewriting needs the last few turns, not the whole chat
_HISTORY_CHARS = 600
_THINK_RE = re.compile(r"<think>.*?(?:</think>|$)", re.S)
# Delimiters of the prompt; passage or question text must not be able to close them.
_TAG_RE = re.compile(r"</?\s*(passages|question|inquiry|history)\s*>", re.I)
# A search query is one short line of words: markup or prompt syntax means the model did
# something else (「<question>」, 「## 1.」, 「[1]」).
_MARKUP_RE = re.compile(r"[<>＜＞#＃\[\]［］{}`*|＿_]|https?:|\n")
REWRITE_MAX_CHARS = 120  # the rule-based rewrite adds at most ~100 characters of topic to a question
PromptKind = Literal["answer", "draft"]


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What one call may cost. Tokens are sent as ``max_tokens``; ``budget_s`` is the wall
    clock an answer or draft may take from request to last token."""

    answer_tokens: int = 512
    draft_tokens: int = 1024
    rewrite_tokens: int = 64
    budget_s: float = 60.0


class LlmUnavailable(RuntimeError):
    """The chat model could not produce an answer (down, timed out, refused the request)."""


def make_chat_model(base_url: str, model: str, api_key: str = "", timeout_s: float = 60,
                    temperature: float = 0, max_retries: int = 0) -> ChatOpenAI:
    """A chat model for any OpenAI-compatible server (vLLM, llama.cpp, Ollama, OpenAI).

    ``timeout_s`` bounds connecting and each read (also between streamed chunks). With the
    default ``max_retries=0`` a dead server fails at once instead of after back-off retries.
    """
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        base_url=base_url,
        model=model,
        api_key=api_key or "not-needed",  # local servers ignore the key but the client requires one
        timeout=timeout_s,
        temperature=temperature,
        max_retries=max_retries,
        # Local servers speak Chat Completions only; never route to the Responses API
        # (langchain-openai does so by model name for some OpenAI models).
        use_responses_api=False,
    )


def _describe(exc: BaseException) -> str:
    """``Type: message`` of the error and of its root cause (the openai SDK hides httpx's)."""
    parts, seen = [], set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(parts) < 3:
        seen.add(id(current))
        parts.append(f"{current.__class__.__name__}: {str(current).strip() or '-'}")
        current = current.__cause__ or current.__context__
    return " ← ".join(parts)


def stream_text(chat_model: BaseChatModel, messages: list[BaseMessage], max_tokens: int,
                budget_s: float | None = None) -> Iterator[str]:
    """Text deltas of ``chat_model.stream``; any failure of the model, and running past
    ``budget_s``, becomes ``LlmUnavailable``. The model's stream is closed however this ends
    (exhausted, failed, cut off, or closed by the caller), so its connection is closed too.

    Only the model call sits inside the ``try``, so catching broadly here cannot hide a bug of
    ours; it covers openai/httpx errors, timeouts and malformed or empty responses alike.
    """
    deadline = None if budget_s is None else time.monotonic() + budget_s
    chunks = chat_model.stream(messages, max_tokens=max_tokens)
    try:
        for chunk in chunks:
            delta = str(chunk.text)  # .text joins text blocks when content is a list
            if delta:
                yield delta
            if deadline is not None and time.monotonic() > deadline:
                raise LlmUnavailable(f"言語モデルの回答が時間内に終わりませんでした（{budget_s:g}秒）")
    except LlmUnavailable:
        raise
    except GeneratorExit:
        raise
    except Exception as exc:  # noqa: BLE001 - see docstring
        raise LlmUnavailable(f"言語モデルから回答を得られませんでした（{_describe(exc)}）") from exc
    finally:
        chunks.close()


def strip_think(text: str) -> str:
    # Reasoning models served locally may put their thoughts in <think> … </think>.
    return _THINK_RE.sub("", text).strip()


def _defang(text: str) -> str:
    """Make delimiter tags inside data harmless (<passages> → ＜passages＞)."""
    return _TAG_RE.sub(lambda m: m.group().replace("<", "＜").replace(">", "＞"), text)


def _passage_vars(passages: list[Chunk]) -> list[dict[str, object]]:
    return [{"n": i, "section": _defang(p.section_label or p.title), "text": _defang(p.text)}
            for i, p in enumerate(passages, start=1)]


def render_messages(kind: PromptKind, asked: str, passages: list[Chunk], language: str = "ja") -> list[str]:
    """The system and user text of an answer (``asked``: the question) or a reply draft
    (``asked``: the inquiry)."""
    if kind == "draft":
        return [render("answer", "draft_system"),
                render("answer", "draft_user", inquiry=_defang(asked), passages=_passage_vars(passages))]
    return [render("answer", "system"),
            render("answer", "user", question=_defang(asked), passages=_passage_vars(passages), language=language)]


def prompt_echo(messages: list[str], asked: str, passages: list[Chunk]) -> PromptEcho:
    """What of ``messages`` a model must not repeat: everything but the data (the passages'
    text and section names, their documents' titles, the question or inquiry)."""
    return PromptEcho.of(messages, [*(p.text for p in passages), *(s for p in passages for s in p.section),
                                    *(p.title for p in passages), asked])


class LlmAnswerer:
    """Answers and reply drafts from numbered passages, checked by the fidelity guard."""

    def __init__(self, chat_model: BaseChatModel, guard: FidelityGuard, limits: Limits = Limits()) -> None:
        self.chat_model = chat_model
        self.guard = guard
        self.limits = limits

    def messages(self, question: str, passages: list[Chunk], language: str) -> list[BaseMessage]:
        system, user = render_messages("answer", question, passages, language)
        return [SystemMessage(system), HumanMessage(user)]

    def draft_messages(self, inquiry: str, passages: list[Chunk]) -> list[BaseMessage]:
        system, user = render_messages("draft", inquiry, passages)
        return [SystemMessage(system), HumanMessage(user)]

    def stream(self, question: str, passages: list[Chunk], language: str) -> Iterator[str]:
        """Raw token deltas as they arrive (not yet checked by the guard), within the
        answer's token limit and time budget. Closing the iterator ends the request."""
        return stream_text(self.chat_model, self.messages(question, passages, language),
                           self.limits.answer_tokens, self.limits.budget_s)

    def answer(self, question: str, passages: list[Chunk], language: str) -> GuardResult:
        text = strip_think("".join(self.stream(question, passages, language)))
        if not text:
            raise LlmUnavailable("言語モデルの応答が空でした")
        echo = prompt_echo(render_messages("answer", question, passages, language), question, passages)
        return self.guard.check(text, passages, echo=echo)

    def draft(self, inquiry: str, passages: list[Chunk]) -> GuardResult:
        """The draft's body, guarded in ``remove`` mode: a reply must be sendable as it is."""
        deltas = stream_text(self.chat_model, self.draft_messages(inquiry, passages), self.limits.draft_tokens,
                             self.limits.budget_s)
        text = strip_think("".join(deltas))
        if not text:
            raise LlmUnavailable("言語モデルの応答が空でした")
        echo = prompt_echo(render_messages("draft", inquiry, passages), inquiry, passages)
        return self.guard.check(text, passages, mode="remove", draft=True, echo=echo)


class LlmRewriter:
    """Rewrites a follow-up question into a standalone Japanese search query, and uses it
    only when it is a plausible one (``plausible``)."""

    def __init__(self, chat_model: BaseChatModel, extractor: TermExtractor, limits: Limits = Limits()) -> None:
        self.chat_model = chat_model
        self.extractor = extractor
        self.limits = limits
        self.last_problem = ""  # why the last rewrite was not used ("" when it was)

    def messages(self, question: str, history: list[Message]) -> list[BaseMessage]:
        recent = [{"role": m.get("role", "user"), "content": _defang(_clip(m.get("content", "")))}
                  for m in history[-_HISTORY_TURNS:]]
        return [
            SystemMessage(render("rewrite", "system")),
            HumanMessage(render("rewrite", "user", question=_defang(question), history=recent)),
        ]

    def rewrite(self, question: str, history: list[Message]) -> str | None:
        """The model's query, or None when it is not a plausible one (the caller then uses
        the rule-based rewrite)."""
        messages = self.messages(question, history)
        text = strip_think("".join(stream_text(self.chat_model, messages, self.limits.rewrite_tokens,
                                               self.limits.budget_s)))
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        query = re.sub(r"^(?:検索クエリ|クエリ|query)\s*[:：]\s*", "", lines[0], flags=re.I) if lines else ""
        query = query.strip().strip("「」『』\"'")
        echo = PromptEcho.of([str(m.content) for m in messages],
                             [question, *(str(m.get("content", "")) for m in history)])
        self.last_problem = self.problem(query, question, echo)
        if self.last_problem:
            logs.event("rewrite_rejected", problem=self.last_problem.split(":")[0], chars=len(text))
            return None
        return query

    def problem(self, query: str, question: str, echo: PromptEcho) -> str:
        """Why ``query`` is no plausible rewrite of ``question`` ("" when it is one): a query
        is one short line of words, not prompt text, says more than the question did, names
        something, and keeps what the question named (an English question's words cannot be
        checked in the Japanese query)."""
        if not query:
            return "empty"
        if len(query) > max(REWRITE_MAX_CHARS, 2 * len(question)):
            return "too long"
        if _MARKUP_RE.search(query):
            return "markup"
        if echo.is_echo(query):
            return "prompt text"
        if flat(query).strip("?？。") == flat(question).strip("?？。"):
            return "unchanged"
        if not any(t.topical for t in self.extractor.terms(query)):
            return "no content words"
        if _has_kana_or_kanji(question):
            have = flat(query)
            lost = [t.surface or t.text for t in self.extractor.terms(question)
                    if t.topical and flat(t.surface or t.text) not in have and flat(t.text) not in have]
            if lost:
                return "lost the question's terms: " + "、".join(lost)
        return ""


def _has_kana_or_kanji(text: str) -> bool:
    return bool(re.search(r"[\u3040-\u30ff\u3400-\u9fff]", text))


def _clip(text: str) -> str:
    return text if len(text) <= _HISTORY_CHARS else text[:_HISTORY_CHARS] + "…"
