"""Generated answers, drafts and query rewrites through an OpenAI-compatible chat model.

Every failure of the model (connection refused, timeout, HTTP error, broken stream) surfaces
as ``LlmUnavailable`` so the caller can fall back to the extractive answer.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from assistant.guard import FidelityGuard, GuardResult
from assistant.prompts import render
from assistant.types import Message
from ingest.types import Chunk

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_openai import ChatOpenAI

_HISTORY_TURNS = 6  # rewriting needs the last few turns, not the whole chat
_HISTORY_CHARS = 600
_THINK_RE = re.compile(r"<think>.*?(?:</think>|$)", re.S)
# Delimiters of the prompt; passage or question text must not be able to close them.
_TAG_RE = re.compile(r"</?\s*(passages|question|inquiry|history)\s*>", re.I)


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


def _stream_text(chat_model: BaseChatModel, messages: list[BaseMessage]) -> Iterator[str]:
    """Text deltas of ``chat_model.stream``; any failure of the model becomes ``LlmUnavailable``.

    Only the model call sits inside the ``try``, so catching broadly here cannot hide a bug of
    ours; it covers openai/httpx errors, timeouts and malformed or empty responses alike.
    """
    try:
        for chunk in chat_model.stream(messages):
            delta = str(chunk.text)  # .text joins text blocks when content is a list
            if delta:
                yield delta
    except Exception as exc:  # noqa: BLE001 - see docstring
        raise LlmUnavailable(f"言語モデルから回答を得られませんでした（{_describe(exc)}）") from exc


@lru_cache(maxsize=1)
def _prompt_sentences() -> frozenset[str]:
    texts = (render("answer", "system"), render("answer", "draft_system"), render("rewrite", "system"))
    parts = (p.strip() for t in texts for p in re.split(r"[。\n]", t))
    return frozenset(p for p in parts if len(p) >= 15)


def redact_prompt(text: str) -> str:
    """Drop every line that repeats a sentence of the system prompts: the model obeyed an
    injection. Done before the guard, so not even Answer.unsupported carries them."""
    sentences = _prompt_sentences()
    return "\n".join(ln for ln in text.splitlines() if not any(s in ln for s in sentences))


def strip_think(text: str) -> str:
    # Reasoning models served locally may put their thoughts in <think> … </think>.
    return _THINK_RE.sub("", text).strip()


def _defang(text: str) -> str:
    """Make delimiter tags inside data harmless (<passages> → ＜passages＞)."""
    return _TAG_RE.sub(lambda m: m.group().replace("<", "＜").replace(">", "＞"), text)


def _passage_vars(passages: list[Chunk]) -> list[dict[str, object]]:
    return [{"n": i, "section": _defang(p.section_label or p.title), "text": _defang(p.text)}
            for i, p in enumerate(passages, start=1)]


class LlmAnswerer:
    """Answers and reply drafts from numbered passages, checked by the fidelity guard."""

    def __init__(self, chat_model: BaseChatModel, guard: FidelityGuard) -> None:
        self.chat_model = chat_model
        self.guard = guard

    def messages(self, question: str, passages: list[Chunk], language: str) -> list[BaseMessage]:
        return [
            SystemMessage(render("answer", "system")),
            HumanMessage(render("answer", "user", question=_defang(question),
                                passages=_passage_vars(passages), language=language)),
        ]

    def draft_messages(self, inquiry: str, passages: list[Chunk]) -> list[BaseMessage]:
        return [
            SystemMessage(render("answer", "draft_system")),
            HumanMessage(render("answer", "draft_user", inquiry=_defang(inquiry),
                                passages=_passage_vars(passages))),
        ]

    def stream(self, question: str, passages: list[Chunk], language: str) -> Iterator[str]:
        """Raw token deltas as they arrive (not yet checked by the guard)."""
        return _stream_text(self.chat_model, self.messages(question, passages, language))

    def answer(self, question: str, passages: list[Chunk], language: str) -> GuardResult:
        text = redact_prompt(strip_think("".join(self.stream(question, passages, language))))
        if not text:
            raise LlmUnavailable("言語モデルの応答が空でした")
        return self.guard.check(text, passages)

    def draft(self, inquiry: str, passages: list[Chunk]) -> GuardResult:
        text = redact_prompt(strip_think("".join(_stream_text(self.chat_model, self.draft_messages(inquiry, passages)))))
        if not text:
            raise LlmUnavailable("言語モデルの応答が空でした")
        return self.guard.check(text, passages, draft=True)


class LlmRewriter:
    """Rewrites a follow-up question into a standalone Japanese search query."""

    def __init__(self, chat_model: BaseChatModel) -> None:
        self.chat_model = chat_model

    def messages(self, question: str, history: list[Message]) -> list[BaseMessage]:
        recent = [{"role": m.get("role", "user"), "content": _defang(_clip(m.get("content", "")))}
                  for m in history[-_HISTORY_TURNS:]]
        return [
            SystemMessage(render("rewrite", "system")),
            HumanMessage(render("rewrite", "user", question=_defang(question), history=recent)),
        ]

    def rewrite(self, question: str, history: list[Message]) -> str:
        text = strip_think("".join(_stream_text(self.chat_model, self.messages(question, history))))
        for line in text.splitlines():
            query = re.sub(r"^(?:検索クエリ|クエリ|query)\s*[:：]\s*", "", line.strip(), flags=re.I)
            query = query.strip().strip("「」『』\"'`")
            if query:
                return query
        return question


def _clip(text: str) -> str:
    return text if len(text) <= _HISTORY_CHARS else text[:_HISTORY_CHARS] + "…"
