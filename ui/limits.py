"""Per-client rate limit, staff-login back-off and input length checks. No gradio here.

A client is its address (``gr.Request.client.host``), which ``ui.gate`` has already taken
from a trusted proxy's header when one is configured; never the session hash, which the
client chooses itself.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

WINDOW_S = 60.0
_MAX_KEYS = 10_000  # forget idle clients beyond this many, so memory stays bounded


class RateLimited(Exception):
    pass


def rate_limit_message(per_min: int) -> str:
    return f"短時間に多くのリクエストがありました（1分あたり{per_min}回まで）。1分ほど待ってからもう一度お試しください。"


def client_key(request: object) -> str:
    """The client address of a ``gr.Request`` (or anything with ``.client.host``)."""
    client = getattr(request, "client", None) if request is not None else None
    return getattr(client, "host", None) or "unknown"


class RateLimiter:
    """A sliding one-minute window per client."""

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


def backoff_message(seconds: float) -> str:
    return f"ログインの失敗が続いたため、しばらく受け付けません。{max(1, round(seconds))}秒後にもう一度お試しください。"


class LoginBackoff:
    """Failed staff logins per client: ``free`` tries, then a wait that doubles with each
    further failure (1 s, 2 s, 4 s … up to ``max_wait_s``). A success clears the count."""

    def __init__(self, *, free: int = 5, max_wait_s: float = 900.0, forget_after_s: float = 86_400.0,
                 clock: Callable[[], float] = time.monotonic):
        self.free = free
        self.max_wait_s = max_wait_s
        self.forget_after_s = forget_after_s
        self._clock = clock
        self._failures: dict[str, tuple[int, float]] = {}  # client → (count, time of the last failure)
        self._lock = threading.Lock()

    def wait_s(self, key: str) -> float:
        """Seconds until ``key`` may try again (0 when it may now)."""
        with self._lock:
            count, last = self._failures.get(key, (0, 0.0))
            if count < self.free:
                return 0.0
            return max(0.0, last + self._delay(count) - self._clock())

    def failed(self, key: str) -> int:
        """Count a failure; returns the client's failures so far."""
        now = self._clock()
        with self._lock:
            if len(self._failures) > _MAX_KEYS:
                for k in [k for k, (_, t) in self._failures.items() if now - t >= self.forget_after_s]:
                    del self._failures[k]
            count, last = self._failures.get(key, (0, now))
            count = 1 if now - last >= self.forget_after_s else count + 1
            self._failures[key] = (count, now)
            return count

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _delay(self, count: int) -> float:
        return min(self.max_wait_s, 2.0 ** (count - self.free))


def length_error(text: object, limit: int, what: str) -> str | None:
    """A Japanese message when ``text`` is not text, is empty or is longer than ``limit``, else None."""
    if not isinstance(text, str):
        return f"{what}は文字列で指定してください。"
    if not text.strip():
        return f"{what}を入力してください。"
    if len(text) > limit:
        return f"{what}は{limit}文字以内で入力してください（現在{len(text)}文字）。"
    return None
