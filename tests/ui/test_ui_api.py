"""The named API endpoints over HTTP, through gradio_client, on a loopback server."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor, as_completed
from types import SimpleNamespace

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from tests import gradio_wire as wire
from ui import FeedbackStore, create_app, launch
from ui.gate import WebLimits

pytestmark = [
    pytest.mark.slow,
    # noise from gradio's own queue code under pandas 3, not from ours
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated:Warning"),
]
RATE_MSG = "短時間に多くのリクエストがありました（1分あたり3回まで）。1分ほど待ってからもう一度お試しください。"


@pytest.fixture(scope="module")
def served(tmp_path_factory, assistant_cls, free_port):
    assistant = assistant_cls(delay=0.2)
    store = FeedbackStore(tmp_path_factory.mktemp("fb") / "feedback.sqlite3")
    # gradio_client's requests all come from 127.0.0.1: let that one client have 20 pending
    # answers and ask often (the per-client limits have their own test below).
    demo = create_app(assistant, feedback=store, staff_password="staff-pw", rate_limit_per_min=1000,
                      web=WebLimits(client_max_answering=20, client_max_pending=20))
    url = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True)
    try:
        yield SimpleNamespace(url=url, assistant=assistant, demo=demo)
    finally:
        demo.close()


def client(url: str) -> Client:
    # Each Client is its own session (session_hash); all share one address and rate-limit window.
    return Client(url, verbose=False, analytics_enabled=False, download_files=False)


def test_queue_settings(served):
    assert served.url.startswith("http://127.0.0.1:")
    assert served.demo._queue.max_size == 64
    assert served.demo._queue.default_concurrency_limit == 2


def test_ask_endpoint(served):
    c = client(served.url)
    data = json.loads(c.predict("鹿肉って何か取り組みあるの？", "[]", api_name="/ask"))
    assert data == served.assistant.answer_for("鹿肉って何か取り組みあるの？", []).to_dict()
    assert data["citations"] == [{
        "n": 1, "chunk_id": "vision-0042", "source": "kushiro-nemuro-vision.txt",
        "title": "釧路・根室連携地域「地域づくり推進ビジョン」",
        "section": "Ⅰ 地域のめざす姿 › １ 農林水産業をはじめとする地域産業の振興", "label": "",
        "quote": "個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進", "page": 2}]
    history = json.dumps([{"role": "user", "content": "エゾシカの有効活用について教えて"},
                          {"role": "assistant", "content": "…[1]"}], ensure_ascii=False)
    follow = json.loads(c.predict(question="いつまで？", history_json=history, api_name="/ask"))
    assert follow["rewritten_query"] == "エゾシカの有効活用について教えて いつまで？"


def test_ask_errors_are_clear_japanese(served):
    c = client(served.url)
    with pytest.raises(AppError, match="質問を入力してください。"):
        c.predict("  ", "[]", api_name="/ask")
    with pytest.raises(AppError, match="質問は2000文字以内で入力してください（現在2001文字）。"):
        c.predict("あ" * 2001, "[]", api_name="/ask")


def test_draft_endpoint(served):
    c = client(served.url)
    data = json.loads(c.predict("エゾシカの活用について知りたい", "staff-pw", api_name="/draft"))
    assert data == served.assistant.draft("エゾシカの活用について知りたい").to_dict()
    assert data["uncovered"] == ["補助金の申請期限", "記載のない事項<img src=x onerror=alert(1)>"]
    with pytest.raises(AppError, match="パスワードが違います。"):
        c.predict("エゾシカの活用について知りたい", "wrong", api_name="/draft")


def test_twenty_concurrent_requests(served):
    c = client(served.url)
    questions = [f"鹿肉の取組 その{i}" for i in range(20)]

    def ask(q: str) -> dict:
        return json.loads(c.submit(q, "[]", api_name="/ask").result(timeout=60))

    served.assistant.max_in_flight = 0
    with ThreadPoolExecutor(max_workers=10) as pool:
        futures = {pool.submit(ask, q): q for q in questions}
        results = {futures[f]: f.result() for f in as_completed(futures, timeout=120)}
    assert sorted(results) == sorted(questions)
    assert all(r["question"] == q and r["citations"][0]["chunk_id"] == "vision-0042" for q, r in results.items())
    # the queue's default_concurrency_limit bounds the assistant's load
    assert served.assistant.max_in_flight == 2


def test_rate_limit_per_client_address(tmp_path, assistant_cls, free_port):
    demo = create_app(assistant_cls(), feedback=FeedbackStore(tmp_path / "fb.sqlite3"), rate_limit_per_min=3)
    url = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True).rstrip("/")
    try:
        with wire.client("127.0.0.2") as first, wire.client("127.0.0.3") as second:
            fn = wire.fn_index(first, url, "ask")
            # a new session hash for every request changes nothing
            for _ in range(3):
                assert wire.run(first, url, fn, ["鹿は？", "[]"])["success"]
            refused = wire.run(first, url, fn, ["鹿は？", "[]"])
            assert (refused["success"], refused["output"]["error"]) == (False, RATE_MSG)
            answered = wire.run(second, url, fn, ["鹿は？", "[]"])
            assert json.loads(answered["output"]["data"][0])["question"] == "鹿は？"
    finally:
        demo.close()
