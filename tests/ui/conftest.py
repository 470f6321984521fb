"""Fakes and guards for the UI tests: a scripted assistant and a loopback-only network."""
from __future__ import annotations

import os
import socket
import threading
import time

import pytest

# Before gradio is imported anywhere: no telemetry from the app or the client.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from assistant.types import Answer, Citation, Draft, DraftPoint, InputError, Message  # noqa: E402

TITLE = "釧路・根室連携地域「地域づくり推進ビジョン」"
DEER = Citation(
    n=1, chunk_id="vision-0042", source="kushiro-nemuro-vision.txt", title=TITLE,
    section=("Ⅰ 地域のめざす姿", "１ 農林水産業をはじめとする地域産業の振興"),
    quote="個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進", page=2)
ZERO_CARBON = Citation(
    n=1, chunk_id="vision-0124", source="kushiro-nemuro-vision.txt", title=TITLE,
    section=("Ⅱ 施策の展開方向", "３ 「ゼロカーボン北海道」と豊かな自然環境が調和する社会の構築"),
    quote="自然環境・景観との調和、地域との共生に留意しつつ「ゼロカーボン北海道」の実現に向けた取組を推進します。")
HOSTILE = "<img src=x onerror=alert(1)>"
SUGGESTIONS = ["１ 農林水産業をはじめとする地域産業の振興", "３ 「ゼロカーボン北海道」と豊かな自然環境が調和する社会の構築"]
CONFIG = {"assistant": "scripted", "mode": "extractive", "version": 1}


class ScriptedAssistant:
    """Deterministic answers keyed on words in the question; records every call.

    - 鹿 / エゾシカ → one citation (DEER, page 2)
    - 宇宙 → abstains with SUGGESTIONS
    - the HOSTILE string → a citation whose title, section and quote contain markup
    - anything else → one ZERO_CARBON citation
    A follow-up (non-empty history) gets rewritten_query = previous question + " " + question.
    Tests reach the scripted data through the class (``scripted.DEER``), not by importing
    this conftest.
    """

    TITLE, DEER, ZERO_CARBON, HOSTILE = TITLE, DEER, ZERO_CARBON, HOSTILE
    SUGGESTIONS, CONFIG, FIXED_TIME = SUGGESTIONS, CONFIG, "2025-01-02T03:04:05+00:00"

    def __init__(self, *, delay: float = 0.0, max_chars: int = 2000):
        self.delay = delay
        self.max_chars = max_chars
        self.calls: list[tuple[str, str, list[Message]]] = []
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _validate(self, text: str, what: str) -> None:
        if not text.strip():
            raise InputError(f"{what}を入力してください。")
        if len(text) > self.max_chars:
            raise InputError(f"{what}は{self.max_chars}文字以内にしてください。")

    def answer_for(self, question: str, history: list[Message]) -> Answer:
        previous = [m["content"] for m in history if m["role"] == "user"]
        rewritten = f"{previous[-1]} {question}" if previous else question
        if "宇宙" in question:
            return Answer(question=question, rewritten_query=rewritten,
                          text="ビジョンには、この質問に答える記述が見つかりませんでした。",
                          citations=[], coverage="none", mode="extractive", suggestions=list(SUGGESTIONS))
        if HOSTILE in question:
            cite = Citation(n=1, chunk_id="vision-9999", source="x.txt", title=f"資料{HOSTILE}",
                            section=("Ⅰ <b>地域</b>",), quote=f"記述{HOSTILE}です", page=None)
            return Answer(question=question, rewritten_query=rewritten, text=f"「{HOSTILE}」の記述です[1]。",
                          citations=[cite], coverage="direct", mode="extractive")
        if "鹿" in question or "エゾシカ" in question:
            return Answer(question=question, rewritten_query=rewritten,
                          text="捕獲したエゾシカの有効活用と地域ブランド化を推進するとしています[1]。",
                          citations=[DEER], coverage="direct", mode="extractive")
        return Answer(question=question, rewritten_query=rewritten,
                      text="「ゼロカーボン北海道」の実現に向けた取組を推進します[1]。",
                      citations=[ZERO_CARBON], coverage="direct", mode="extractive")

    def ask(self, question: str, history: list[Message] = []) -> Answer:  # noqa: B006 (the interface's signature)
        self._validate(question, "質問")
        self._enter()
        try:
            with self._lock:
                self.calls.append(("ask", question, list(history)))
            time.sleep(self.delay)
            return self.answer_for(question, history)
        finally:
            self._leave()

    def draft(self, inquiry: str) -> Draft:
        self._validate(inquiry, "問い合わせ")
        with self._lock:
            self.calls.append(("draft", inquiry, []))
        point = self.answer_for("エゾシカの活用は？", [])
        return Draft(
            inquiry=inquiry,
            text="お問い合わせありがとうございます。\nビジョンでは、捕獲したエゾシカの有効活用と地域ブランド化を推進するとしています[1]。",
            points=[DraftPoint(question="エゾシカの活用は？", answer=point)],
            uncovered=["補助金の申請期限", f"記載のない事項{HOSTILE}"],
            citations=[DEER], mode="extractive")

    def config(self) -> dict:
        return dict(CONFIG)


# -- network guard ----------------------------------------------------------------------

_LOOPBACK_NAMES = {"localhost", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"}


def _is_loopback(host) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode()
    return host in _LOOPBACK_NAMES or host.startswith("127.")


@pytest.fixture(scope="module", autouse=True)
def block_outbound_network(offline_client_env):
    """Refuse connections (and name look-ups) to anything but loopback, for each module.

    Module scope, so that servers a module starts are covered from their first byte.
    """
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    blocked: list[str] = []

    def check(address) -> None:
        if isinstance(address, (str, bytes)):  # AF_UNIX paths
            return
        if not _is_loopback(address[0]):
            blocked.append(repr(address))
            raise ConnectionRefusedError(f"tests/ui: outbound network is blocked ({address!r})")

    def connect(self, address):
        check(address)
        return real_connect(self, address)

    def connect_ex(self, address):
        check(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not _is_loopback(host):
            blocked.append(repr(host))
            raise socket.gaierror(f"tests/ui: name look-up blocked ({host!r})")
        return real_getaddrinfo(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        mp.setattr(socket.socket, "connect", connect)
        mp.setattr(socket.socket, "connect_ex", connect_ex)
        mp.setattr(socket, "getaddrinfo", getaddrinfo)
        yield
    if blocked:  # visible with -s; these calls were refused, not made
        print(f"tests/ui: refused outbound network to {sorted(set(blocked))}")


# -- shared fixtures ----------------------------------------------------------------------

@pytest.fixture(scope="session")
def assistant_cls() -> type[ScriptedAssistant]:
    return ScriptedAssistant


@pytest.fixture
def scripted() -> ScriptedAssistant:
    return ScriptedAssistant()


@pytest.fixture
def store(tmp_path):
    from ui.feedback import FeedbackStore

    return FeedbackStore(tmp_path / "feedback.sqlite3", clock=lambda: ScriptedAssistant.FIXED_TIME)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def free_port():
    """A function returning a free TCP port on 127.0.0.1."""
    return _free_port


def _handlers_of(demo) -> dict:
    return {f.api_name: f.fn for f in demo.fns.values()}


@pytest.fixture(scope="session")
def handlers_of():
    """A function mapping a Blocks to the functions behind its events, by api_name."""
    return _handlers_of
