"""What the server does before Gradio sees a request. No gradio import here.

``Gate`` is a plain ASGI middleware, installed through the FastAPI app that Gradio builds:
- the client is its address, taken from a trusted reverse proxy's header when one is
  configured (``ClientResolver``), and written back into the request, so that handlers
  and Gradio see it too;
- only the POST routes the app uses are open (no uploads, no queue bypass);
- a request body over ``max_body_bytes`` is refused before anything parses it;
- a new job is admitted only while its client has fewer than ``client_max_answering``
  answers and ``client_max_pending`` jobs of any kind waiting or running, and the queue
  holds fewer than ``max_queue``: otherwise the client gets 「混み合っています…」 (429)
  instead of a queue that one client can fill;
- every response carries X-Frame-Options and a Content-Security-Policy.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

BUSY = "混み合っています。しばらくしてからお試しください。"
TOO_LARGE = "送信された内容が大きすぎます。短くしてもう一度お試しください。"
NOT_OFFERED = "この操作は受け付けていません。"
ADMIT_WAIT_S = 0.25

# Gradio's page needs inline scripts and styles and evaluates event ``js`` snippets;
# everything else may come only from this server, and the page may not be framed.
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; font-src 'self' data:; media-src 'self' data: blob:; connect-src 'self'; "
       "worker-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"x-frame-options", b"DENY"), (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]

# The only POST routes the app needs (under /gradio_api/): joining the queue (the page and
# gradio_client), the named API calls, and cancelling. Uploads, /run (which skips the
# queue) and the rest are closed.
_JOIN = ("queue/join", "call/")
_OTHER_POSTS = ("cancel", "reset")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class WebLimits:
    """Serving limits; ``vision_qa.settings`` resolves them, ``create_app`` takes them."""

    concurrency: int = 2  # answers run at once (the queue's concurrency limit); see vision_qa.settings
    max_queue: int = 64  # jobs waiting, all clients together
    # Answers one client may have waiting or running: fewer than ``concurrency``, so that one
    # client never holds every worker (a page asks one question at a time).
    client_max_answering: int = 1
    client_max_pending: int = 4  # jobs of any kind (a 👍, a new chat) one client may have waiting or running
    max_body_bytes: int = 1 << 20  # a 20-message history in \u escapes is about 0.5 MB
    trusted_proxies: tuple[str, ...] = ()  # addresses or networks of reverse proxies
    client_ip_header: str = "X-Forwarded-For"  # where a trusted proxy names the client
    retry_after_s: int = 10


class ClientResolver:
    """The client's address: the peer, or, when the peer is a trusted proxy, the address that
    proxy put in ``header`` (for X-Forwarded-For the right-most one that is not a trusted
    proxy itself: entries to its left are whatever the client sent)."""

    def __init__(self, trusted_proxies: Iterable[str], header: str = "X-Forwarded-For") -> None:
        self._networks = [ipaddress.ip_network(p.strip(), strict=False) for p in trusted_proxies if p.strip()]
        self._header = header.strip().lower().encode("latin-1")
        self._list = self._header == b"x-forwarded-for"

    def trusted(self, host: str) -> bool:
        address = _address(host)
        return address is not None and any(address in net for net in self._networks)

    def resolve(self, peer: str, headers: Iterable[tuple[bytes, bytes]]) -> str:
        if not self._networks or not self.trusted(peer):
            return peer
        values = [v.decode("latin-1") for k, v in headers if k.lower() == self._header]
        if not values:
            return peer
        entries = [e.strip() for e in ",".join(values).split(",")] if self._list else [values[-1].strip()]
        for entry in reversed(entries):
            address = _address(entry)
            if address is None:
                return peer  # a proxy wrote something that is not an address: count the proxy
            if not self.trusted(str(address)):
                return str(address)
        return peer


def _address(entry: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from "1.2.3.4", "1.2.3.4:567", "[::1]:567" or "::1"."""
    host = entry.strip()
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def pending_by_client(queue: Any, group: str) -> tuple[Counter[str], Counter[str]]:
    """Jobs waiting or running in Gradio's queue by client address: all of them, and those of
    concurrency group ``group``. Gradio keeps no such count; each queued event holds the
    request it came with and its group (``gradio.queueing.Event``)."""
    waiting = (e for q in queue.event_queue_per_concurrency_id.values() for e in q.queue)
    running = (e for job in queue.active_jobs if job for e in job)
    every: Counter[str] = Counter()
    grouped: Counter[str] = Counter()
    for event in (*waiting, *running):
        client = getattr(getattr(event, "request", None), "client", None)
        host = getattr(client, "host", None) or "unknown"
        every[host] += 1
        grouped[host] += getattr(event, "concurrency_id", None) == group
    return every, grouped


class Gate:
    """The ASGI middleware. ``blocks`` is the Gradio app whose queue it admits jobs to;
    ``answering`` is the concurrency group of its events that call the assistant."""

    def __init__(self, app: Callable, *, blocks: Any, limits: WebLimits, answering: str) -> None:
        self.app = app
        self.blocks = blocks
        self.limits = limits
        self.answering = answering
        self.resolver = ClientResolver(limits.trusted_proxies, limits.client_ip_header)
        # admitted joins Gradio has not queued yet: (client, answering?) → count
        self._joining: Counter[tuple[str, bool]] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        peer = scope.get("client") or ("", 0)
        client = self.resolver.resolve(peer[0], scope.get("headers", []))
        if client != peer[0]:
            scope = {**scope, "client": (client, 0)}
        send = _with_headers(send)
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        route = _api_route(scope["path"])
        joins = route is not None and route.startswith(_JOIN)
        if not joins and route not in _OTHER_POSTS:
            await _refuse(send, 404, NOT_OFFERED)
            return
        body = await self._read_body(scope, receive, send)
        if body is None:
            return
        if not joins:
            await self.app(scope, _replay(body, receive), send)
            return
        key = (client, self._answers(route, body))
        # A job that has just ended can stay in Gradio's count a moment after its client has
        # its answer (the error path awaits before freeing the slot): a client that asks again
        # at once waits that moment rather than being told the app is busy.
        give_up = time.monotonic() + ADMIT_WAIT_S
        while not self._admit(*key):
            if time.monotonic() >= give_up:
                await _refuse(send, 429, BUSY, retry_after=self.limits.retry_after_s)
                return
            await asyncio.sleep(0.01)
        self._joining[key] += 1
        try:
            await self.app(scope, _replay(body, receive), send)
        finally:
            self._joining[key] -= 1
            if self._joining[key] <= 0:
                del self._joining[key]

    def _answers(self, route: str, body: bytes) -> bool:
        """Whether the job asked for calls the assistant (by its function's concurrency group)."""
        if route == "queue/join":
            try:
                index = json.loads(body).get("fn_index")
            except (ValueError, AttributeError):
                return False
            fn = self.blocks.fns.get(index) if isinstance(index, int) else None
        else:  # call/<api_name>, call/v2/<api_name>
            name = route.rsplit("/", 1)[-1]
            fn = next((f for f in self.blocks.fns.values() if f.api_name == name), None)
        return fn is not None and fn.concurrency_id == self.answering

    def _admit(self, client: str, answers: bool) -> bool:
        queue, limits = self.blocks._queue, self.limits
        if len(queue) + sum(self._joining.values()) >= limits.max_queue:
            return False
        every, answering = pending_by_client(queue, self.answering)
        if every[client] + self._joining[client, True] + self._joining[client, False] >= limits.client_max_pending:
            return False
        return not answers or answering[client] + self._joining[client, True] < limits.client_max_answering

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None when it is over the limit (413 sent) or the client left."""
        limit = self.limits.max_body_bytes
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _refuse(send, 413, TOO_LARGE)
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _refuse(send, 413, TOO_LARGE)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _api_route(path: str) -> str | None:
    """"queue/join" for ".../gradio_api/queue/join"; None outside Gradio's API."""
    head, sep, rest = path.partition("/gradio_api/")
    return rest.rstrip("/") if sep else None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {k.lower() for k, _ in headers}
            headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


async def _refuse(send: Send, status: int, message: str, retry_after: int | None = None) -> None:
    """A JSON error the Gradio page shows as it is (``detail``), as do API clients."""
    body = json.dumps({"detail": message, "error": message}, ensure_ascii=False).encode("utf-8")
    headers = [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
