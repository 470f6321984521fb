"""A loopback OpenAI-compatible server for tests: POST /v1/chat/completions.

It replies with scripted completions, as one JSON body or as a Server-Sent Events stream
(``data: {chat.completion.chunk}`` lines, then ``data: [DONE]``), and records each request.
Not a test module itself; ``test_llm.py`` loads it by path (tests/ is not a package).
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Script:
    replies: list[str]
    delay_s: float = 0.0  # wait before the response headers
    stall_after: int | None = None  # streaming: stop sending (but keep the socket open) after n chunks
    chunk_chars: int = 4
    chunk_delay_s: float = 0.0  # streaming: wait between chunks (a slow model)
    requests: list[dict] = field(default_factory=list)
    # streaming: (request index, chunks sent) for each stream the client closed early; the
    # server stops generating there, as llama.cpp does when its client disconnects
    disconnects: list[tuple[int, int]] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)  # request indexes streamed to the end


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base-class name
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        script = self.server.script
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        with self.server.lock:
            script.requests.append({"path": self.path, "body": body})
            index = len(script.requests) - 1
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        if script.delay_s and self.server.stopping.wait(script.delay_s):
            return
        text = script.replies[min(index, len(script.replies) - 1)]
        if body.get("stream"):
            try:
                self._stream(text, body.get("model", "fake"), script, index)
            except (BrokenPipeError, ConnectionResetError):
                pass  # recorded in _stream
        else:
            self._json(200, {
                "id": f"chatcmpl-{index}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": 10, "completion_tokens": len(text), "total_tokens": 10 + len(text)},
            })

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, text: str, model: str, script: Script, index: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        pieces = [text[i:i + script.chunk_chars] for i in range(0, len(text), script.chunk_chars)]
        deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in pieces]
        for i, delta in enumerate(deltas):
            if script.stall_after is not None and i >= script.stall_after:
                self.server.stopping.wait(30)  # silent but connected, until the test ends
                return
            if i and script.chunk_delay_s and self.server.stopping.wait(script.chunk_delay_s):
                return
            try:
                self._event({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 0, "model": model,
                             "choices": [{"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}]})
            except (BrokenPipeError, ConnectionResetError):
                with self.server.lock:
                    script.disconnects.append((index, i))
                return
        self._event({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 0, "model": model,
                     "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}]})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        with self.server.lock:
            script.finished.append(index)

    def _event(self, payload: dict) -> None:
        self.wfile.write(b"data: " + json.dumps(payload, ensure_ascii=False).encode("utf-8") + b"\n\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    script: Script
    lock: threading.Lock
    stopping: threading.Event

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        pass  # clients that time out close their sockets; that is expected here


class FakeOpenAIServer:
    """``with FakeOpenAIServer(Script([...])) as server: server.base_url``"""

    def __init__(self, script: Script) -> None:
        self.script = script
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "FakeOpenAIServer":
        httpd = _Server(("127.0.0.1", 0), _Handler)  # port 0: the OS picks a free port
        httpd.script, httpd.lock, httpd.stopping = self.script, threading.Lock(), threading.Event()
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None and self._thread is not None
        self._httpd.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
