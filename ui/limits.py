"""Per-session rate limit and input length checks. No gradio here."""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

WINDOW_S = 60.0
_MAX_KEYS = 10_000  # forget idle sessions beyond this many, so memory stays bounded


class RateLimited(Exception):
    pass


def rate_limit_message(per_min: int) -> str:
    return f"短時間に多くのリクエストがありました（1分あたり{per_min}回まで）。1分ほど待ってからもう一度お試しください。"


class RateLimiter:
    """A sliding one-minute window per session key."""

    def __init__(self, per_min: int, *, clock: Callable[[], float] = time.monotonic):
        self.per_min = per_min
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Count one request for ``key``; raise RateLimited when over the limit."""
        if self.per_min <= 0:  # 0 turns the limit off
            return
        now = self._clock()
        with self._lock:
            if len(self._hits) > _MAX_KEYS:
                self._forget_idle(now)
            hits = self._hits.setdefault(key, deque())
            while hits and now - hits[0] >= WINDOW_S:
                hits.popleft()
            if len(hits) >= self.per_min:
                raise RateLimited(rate_limit_message(self.per_min))
            hits.append(now)

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or now - v[-1] >= WINDOW_S]:
            del self._hits[key]


def length_error(text: str, limit: int, what: str) -> str | None:
    """A Japanese message when ``text`` is empty or longer than ``limit``, else None."""
    if not text.strip():
        return f"{what}を入力してください。"
    if len(text) > limit:
        return f"{what}は{limit}文字以内で入力してください（現在{len(text)}文字）。"
    return None
