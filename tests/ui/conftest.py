"""Fakes and guards for the UI tests: a scripted assistant and a loopback-only network."""
from __future__ import annotations

import os
import socket
import threading
import time

import pytest

# Before gradio is imported anywhere: no telemetry from the app or the client.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from types import SimpleNamespace  # noqa: E402

from assistant.structure import Outline  # noqa: E402
from assistant.types import Answer, Citation, Draft, DraftPoint, InputError, Message  # noqa: E402
from ingest.types import Chunk  # noqa: E402

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
SUGGESTIONS = ["「主な施策の方向１（農林水産業・地域産業）」の施策を全部教えて",
               "「主な施策の方向３（ゼロカーボン北海道・自然環境）」の施策を全部教えて"]
CONTACT = "くわしくは、お住まいの市町村の窓口にお問い合わせください。"
REFUSAL = ("ビジョンには、この質問についての記載がありません。" + CONTACT + "\nビジョンの中で近い内容は、次のとおりです。\n"
           "・自然環境・景観との調和、地域との共生に留意しつつ「ゼロカーボン北海道」の実現に向けた取組を推進します。 [1]")
CONFIG = {"assistant": "scripted", "mode": "extractive", "version": 1}
DRAFT_TEXT = ("お問い合わせありがとうございます。\nビジョンでは、捕獲したエゾシカの有効活用と地域ブランド化を推進するとしています[1]。"
              "\n\n【出典】\n[1] 釧路・根室連携地域「地域づくり推進ビジョン」 › １ 農林水産業をはじめとする地域産業の振興")


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
    CONTACT, REFUSAL, DRAFT_TEXT = CONTACT, REFUSAL, DRAFT_TEXT

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
        if "宇宙" in question:  # not covered: where to ask, and the nearest bullet
            return Answer(question=question, rewritten_query=rewritten, text=REFUSAL, citations=[ZERO_CARBON],
                          coverage="none", mode="extractive", suggestions=list(SUGGESTIONS))
        if HOSTILE in question:
            cite = Citation(n=1, chunk_id="vision-9999", source="x.txt", title=f"資料{HOSTILE}",
                            section=("Ⅰ <b>地域</b>",), quote=f"記述{HOSTILE}です", page=None)
            return Answer(question=question, rewritten_query=rewritten, text=f"「{HOSTILE}」の記述です[1]。",
                          citations=[cite], coverage="direct", mode="extractive")
        if "鹿" in question or "エゾシカ" in question:
            return Answer(question=question, rewritten_query=rewritten,
                          text="捕獲したエゾシカの有効活用と地域ブランド化を推進するとしています[1]。",
                          citations=[DEER], coverage="direct", mode="extractive", highlights=["エゾシカ"])
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
            text=DRAFT_TEXT,
            points=[DraftPoint(question="エゾシカの活用は？", answer=point)],
            uncovered=["補助金の申請期限", f"記載のない事項{HOSTILE}"],
            citations=[DEER], mode="extractive")

    def config(self) -> dict:
        return dict(CONFIG)

    def current(self):
        """The generation's outline, as the ビジョンを読む tab reads it."""
        return SimpleNamespace(outline=OUTLINE)


def _chunk(id: str, text: str, kind: str, section: tuple[str, ...] = ()) -> Chunk:
    return Chunk(id=id, text=text, source="kushiro-nemuro-vision.txt", title=TITLE, section=section, start=0,
                 end=len(text), kind=kind, order=0)


_DIRS = "連携地域の主な施策の方向（今後５年程度）"
_D1 = "１ 農林水産業をはじめとする地域産業の振興"
_D3 = "３ 「ゼロカーボン北海道」と豊かな自然環境が調和する社会の構築"
OUTLINE = Outline(
    generation="g1", title=TITLE, titles={}, slogan=[_chunk("vision-0001", "輝く「釧路・根室連携地域」", "slogan")],
    statements=[_chunk("vision-0005", ZERO_CARBON.quote, "statement", ("Ⅰ 地域のめざす姿",))],
    headings=[_chunk("vision-0011", _D1, "heading", (_DIRS,)), _chunk("vision-0024", _D3, "heading", (_DIRS,))],
    dated=[], title_chunks=[_chunk("vision-0000", TITLE, "title")], all_headings=[],
    bullets={("kushiro-nemuro-vision.txt", (_DIRS, _D1)): [_chunk("vision-0042", DEER.quote, "bullet", (_DIRS, _D1))],
             ("kushiro-nemuro-vision.txt", (_DIRS, _D3)): [_chunk("vision-0124", f"釧路湿原の保全{HOSTILE}", "bullet",
                                                                   (_DIRS, _D3))]},
    labels={("kushiro-nemuro-vision.txt", _D1): "主な施策の方向１（農林水産業・地域産業）"})


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
