"""A chat history from outside (the ``/ask`` API, ``ask --history``), bounded before it is used.

A follow-up carries terms of earlier user turns into its search, so an unbounded history
is unbounded work: the text is size-checked before it is parsed, and only the last
``MAX_MESSAGES`` messages, each cut to ``MAX_MESSAGE_CHARS``, are kept.
"""
from __future__ import annotations

import json

from assistant.types import InputError, Message

MAX_JSON_CHARS = 1_000_000  # refused before parsing; a full 20-message history in \u escapes is ~0.5 M
MAX_MESSAGES = 20  # the turns a follow-up can refer back to; older ones are dropped
MAX_MESSAGE_CHARS = 4000  # twice the question limit: an answer listing a whole direction fits
FORMAT = 'history_json は [{"role": "user" または "assistant", "content": "…"}] の形のJSONで指定してください。'


def too_large(chars: int) -> str:
    return f"会話の履歴が大きすぎます（{chars:,}文字）。{MAX_JSON_CHARS:,}文字以内で指定してください。"


def bound_history(messages: object) -> list[Message]:
    """The last ``MAX_MESSAGES`` well-formed messages, each cut to ``MAX_MESSAGE_CHARS``.
    Raises InputError (``FORMAT``) when ``messages`` is not a list of {role, content} objects."""
    if not isinstance(messages, list) or not all(
            isinstance(m, dict) and m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str)
            for m in messages):
        raise InputError(FORMAT)
    return [{"role": m["role"], "content": m["content"][:MAX_MESSAGE_CHARS]} for m in messages[-MAX_MESSAGES:]]


def parse_history(text: object) -> list[Message]:
    """``bound_history`` of a JSON text, whose size is checked before it is parsed."""
    if text is None or text == "":
        return []
    if not isinstance(text, str):
        raise InputError(FORMAT)
    if len(text) > MAX_JSON_CHARS:
        raise InputError(too_large(len(text)))
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: "[[[[…" nested deeper than the parser goes
        raise InputError(FORMAT) from None
    return bound_history(data)
