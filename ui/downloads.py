"""Staff draft downloads, held in memory for the staff session that made them. No gradio here.

A draft quotes a resident's inquiry, so its files never go through Gradio's file cache
(served to anyone with the URL, never deleted). A staff login opens a session with a random
key, which the browser keeps as the ``vqa_staff`` cookie; a file is served once, to a
request carrying its owner's key, and then forgotten. Files also expire, go with their
session, and live only in memory, so nothing is left on disk at shutdown.
"""
from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

COOKIE = "vqa_staff"
ROUTE = "/vqa/download/{token}"
NOT_LOGGED_IN = "このファイルは、ログインした職員のセッションからのみダウンロードできます。"
GONE = "このファイルはダウンロード済みか、期限が切れています。回答案をもう一度作成してください。"


@dataclass(frozen=True, kw_only=True)
class DraftFile:
    owner: str
    name: str
    media_type: str
    data: bytes
    created: float


class StaffDownloads:
    """Sessions (key → last use) and their files (token → file), bounded in count and age."""

    def __init__(self, *, file_ttl_s: float = 1800.0, session_ttl_s: float = 8 * 3600.0, max_files: int = 200,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.file_ttl_s = file_ttl_s
        self.session_ttl_s = session_ttl_s
        self.max_files = max_files
        self._clock = clock
        self._sessions: dict[str, float] = {}
        self._by_browser: dict[str, set[str]] = {}  # Gradio session_hash → keys opened there
        self._files: dict[str, DraftFile] = {}
        self._lock = threading.Lock()

    def open_session(self, browser: str = "") -> str:
        key = secrets.token_urlsafe(32)
        with self._lock:
            self._expire()
            self._sessions[key] = self._clock()
            if browser:
                self._by_browser.setdefault(browser, set()).add(key)
        return key

    def is_open(self, key: object) -> bool:
        with self._lock:
            self._expire()
            if not isinstance(key, str) or key not in self._sessions:
                return False
            self._sessions[key] = self._clock()
            return True

    def close_session(self, key: object) -> None:
        """Forget a session and delete its files (logout, or Gradio dropping the session's state)."""
        with self._lock:
            self._drop(key)

    def close_browser(self, browser: str) -> None:
        """The page that logged in was closed: its sessions and files go now."""
        with self._lock:
            for key in self._by_browser.pop(browser, set()):
                self._drop(key)

    def add(self, key: str, name: str, media_type: str, data: bytes) -> str:
        """Keep one file for ``key``'s session; returns the token of its URL."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._expire()
            while len(self._files) >= self.max_files:  # the oldest file goes first
                del self._files[next(iter(self._files))]
            self._files[token] = DraftFile(owner=key, name=name, media_type=media_type, data=data,
                                           created=self._clock())
        return token

    def take(self, token: str, key: str | None) -> tuple[Literal[200, 403, 404], DraftFile | None]:
        """(200, the file), removed, when ``key``'s open session owns it; (403, None) when someone
        else asks (the file stays for its owner); (404, None) when it was taken or has expired."""
        with self._lock:
            self._expire()
            item = self._files.get(token)
            if item is None:
                return 404, None
            if not key or key not in self._sessions or not secrets.compare_digest(item.owner, key):
                return 403, None
            del self._files[token]
            return 200, item

    def clear(self) -> None:
        with self._lock:
            self._files.clear()
            self._sessions.clear()
            self._by_browser.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._files)

    def _drop(self, key: object) -> None:
        self._sessions.pop(key, None)  # type: ignore[arg-type]
        for token in [t for t, f in self._files.items() if f.owner == key]:
            del self._files[token]

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, used in self._sessions.items() if now - used >= self.session_ttl_s]:
            self._drop(key)
        for token in [t for t, f in self._files.items() if now - f.created >= self.file_ttl_s]:
            del self._files[token]

    async def endpoint(self, request: Request) -> Response:
        """GET ``ROUTE``: the file, once, to its owner's session; 403 to anyone else."""
        status, item = self.take(request.path_params["token"], request.cookies.get(COOKIE))
        if item is None:
            return PlainTextResponse(GONE if status == 404 else NOT_LOGGED_IN, status_code=status,
                                     headers={"Cache-Control": "no-store"})
        return Response(item.data, media_type=item.media_type, headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(item.name)}",
            "Cache-Control": "no-store"})
