"""The web findings of the security review (issue 13), each reproduced against the real app
over the real assistant on loopback, speaking Gradio's queue protocol as the page does.

Clients are told apart by address: every 127.x.y.z is this machine, so a test opens its
connections from 127.0.0.2, 127.0.0.3 … to be another client. ``Held`` lets a test keep
the assistant's answers waiting, so that the queue fills the same way on every run.
"""
from __future__ import annotations

import html
import io
import json
import logging
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import docx
import pytest

from assistant.history import FORMAT, MAX_MESSAGE_CHARS, MAX_MESSAGES, too_large
from tests import gradio_wire as wire
from tests.robustness import inputs
from tests.robustness.checks import LEDGER, check_answer
from ui import FeedbackStore, create_app, launch
from ui.downloads import GONE, NOT_LOGGED_IN
from ui.gate import BUSY, NOT_OFFERED, TOO_LARGE, WebLimits
from ui.handlers import LOGIN_FIRST, THANKS, VOTED, WRONG_PASSWORD
from ui.limits import backoff_message

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated:Warning")]
PASSWORD = "staff-pw"
ZERO_CARBON = "ゼロカーボンに関する施策を全部教えて"


class Held:
    """The real assistant, whose answers wait while ``paused`` (and which records what it was asked)."""

    def __init__(self, assistant) -> None:
        self.assistant = assistant
        self.open = threading.Event()
        self.open.set()
        self.calls: list[tuple[str, list]] = []

    def pause(self) -> None:
        self.open.clear()

    def release(self) -> None:
        self.open.set()

    def ask(self, question, history=None):
        self.calls.append((question, list(history or [])))
        assert self.open.wait(60), "held for a minute"
        return self.assistant.ask(question, history)

    def draft(self, inquiry):
        assert self.open.wait(60), "held for a minute"
        return self.assistant.draft(inquiry)

    def config(self) -> dict:
        return self.assistant.config()


def serve(assistant, tmp_path_factory, port: int, **web):
    held = Held(assistant)
    feedback = tmp_path_factory.mktemp("fb") / "fb.sqlite3"
    demo = create_app(held, feedback=FeedbackStore(feedback), staff_password=PASSWORD, rate_limit_per_min=10_000,
                      web=WebLimits(**web))
    url = launch(demo, host="127.0.0.1", port=port, prevent_thread_lock=True).rstrip("/")
    return SimpleNamespace(url=url, demo=demo, held=held, feedback=feedback, limits=demo.serving.limits,
                           downloads=demo.serving.downloads)


@pytest.fixture(scope="module")
def app(real_assistant, tmp_path_factory, free_port, offline_client_env):
    """The app with the default limits."""
    served = serve(real_assistant, tmp_path_factory, free_port())
    try:
        yield served
    finally:
        served.held.release()
        served.demo.close()


def drain(served, timeout: float = 60.0) -> None:
    """Let held answers go and wait until the queue is empty."""
    served.held.release()
    queue, end = served.demo._queue, time.monotonic() + timeout
    while len(queue) or any(queue.active_jobs):
        assert time.monotonic() < end, "the queue did not drain"
        time.sleep(0.05)


def answer_of(completed: dict) -> dict:
    assert completed["success"], completed
    return json.loads(completed["output"]["data"][0])


def error_of(completed: dict) -> str:
    assert not completed["success"]
    return completed["output"]["error"]


def busy(response) -> bool:
    return (response.status_code == 429 and response.json()["detail"] == BUSY
            and response.headers["retry-after"] == "10")


# -- H1: fair use per client, not per session ------------------------------------------------

def test_h1_one_client_with_100_session_hashes_leaves_room_for_another(app, sources) -> None:
    cap = app.limits.client_max_answering
    assert cap < app.limits.concurrency  # one client can never hold every worker
    with wire.client("127.0.0.1") as attacker, wire.client("127.0.0.2") as resident:
        fn = wire.fn_index(attacker, app.url, "ask")
        app.held.pause()
        try:
            with ThreadPoolExecutor(max_workers=25) as pool:  # 100 joins at once, each a new session
                joins = list(pool.map(lambda i: wire.join(attacker, app.url, fn, [f"鹿肉の取組 {i}", "[]"],
                                                          wire.new_session()), range(100)))
            admitted = [r for r in joins if r.status_code == 200]
            assert len(admitted) == cap and all(busy(r) for r in joins if r.status_code != 200)
            for r in joins:
                LEDGER.record("web.h1", "busy" if busy(r) else "answered")
            # While the attacker's jobs are still held, the other client's job starts and is
            # answered: a worker was left for it.
            app.held.calls.clear()
            t0 = time.perf_counter()
            session = wire.new_session()
            event = wire.join(resident, app.url, fn, [ZERO_CARBON, "[]"], session).json()["event_id"]
            seen: list[str] = []

            def release_when_it_is_asked(message: dict) -> None:
                seen.append(message["msg"])
                if message["msg"] == "process_starts" and message.get("event_id") == event:
                    # its job is running while the attacker's are held: let the assistant answer it
                    app.held.release()

            outcome = wire.listen(resident, app.url, session, {event}, release_when_it_is_asked)[event]
            print(f"H1: another client's answer took {time.perf_counter() - t0:.2f} s "
                  f"with {cap} jobs of the first client held in the queue")
            assert outcome.ranks in ([], [0])  # nobody ahead of it in the queue
            data = answer_of(outcome.completed)
            LEDGER.record("web.h1", check_answer(data, sources, ZERO_CARBON))
            assert data["citations"] and app.held.calls[0][0] == ZERO_CARBON
        finally:
            drain(app)


def test_h1_forwarded_for_from_an_untrusted_peer_names_no_one(app) -> None:
    with wire.client("127.0.0.3") as http:
        fn = wire.fn_index(http, app.url, "ask")
        app.held.pause()
        try:
            with ThreadPoolExecutor(max_workers=10) as pool:
                joins = list(pool.map(lambda i: wire.join(http, app.url, fn, [inputs.DEER_Q, "[]"], wire.new_session(),
                                                          **{"X-Forwarded-For": f"127.9.0.{i}"}), range(1, 11)))
            cap = app.limits.client_max_answering
            assert sorted(r.status_code for r in joins) == [200] * cap + [429] * (10 - cap)
            for r in joins:
                LEDGER.record("web.h1", "busy" if busy(r) else "answered")
        finally:
            drain(app)


def test_h1_behind_a_trusted_proxy_clients_are_told_apart_and_a_full_queue_is_busy(
        real_assistant, tmp_path_factory, free_port, offline_client_env) -> None:
    proxied = serve(real_assistant, tmp_path_factory, free_port(), concurrency=2, max_queue=3,
                    trusted_proxies=("127.0.0.1",))
    try:
        with wire.client("127.0.0.1") as proxy:
            fn = wire.fn_index(proxy, proxied.url, "ask")
            proxied.held.pause()

            def join(client: str):
                session = wire.new_session()
                response = wire.join(proxy, proxied.url, fn, [ZERO_CARBON, "[]"], session,
                                     **{"X-Forwarded-For": f"127.99.0.200, {client}"})
                return response, session

            admitted = [join(f"127.8.0.{i}") for i in range(1, 6)]  # two run (held), three wait
            while len(proxied.demo._queue) < 3:  # both workers have taken their job
                time.sleep(0.02)
            full = join("127.8.0.6")  # a new client, but the queue holds 3
            again = join("127.8.0.1")  # 127.8.0.1 already has an answer running
            assert [r.status_code for r, _ in admitted] == [200] * 5
            assert busy(full[0]) and busy(again[0])
            proxied.held.release()
            for response, session in admitted:
                event = response.json()["event_id"]
                data = answer_of(wire.listen(proxy, proxied.url, session, {event})[event].completed)
                assert data["mode"] == "structure" and len(data["citations"]) == 5
                LEDGER.record("web.h1", "answered")
            LEDGER.record("web.h1", "busy")
            LEDGER.record("web.h1", "busy")
    finally:
        proxied.held.release()
        proxied.demo.close()


# -- H2: bounded cost per request -------------------------------------------------------------

def _raw_post(url: str, path: str, head: dict[str, str], body: bytes) -> tuple[int, str]:
    """Send a request by hand (to declare a body it never sends); the status and body."""
    host, port = url.removeprefix("http://").split(":")
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close",
             *(f"{k}: {v}" for k, v in head.items()), "", ""]
    reply = b""
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall("\r\n".join(lines).encode() + body)
        while chunk := s.recv(65536):  # the server closes after its answer
            reply += chunk
    head_part, _, body_part = reply.partition(b"\r\n\r\n")
    return int(head_part.split(b" ", 2)[1]), body_part.decode("utf-8")


def test_h2_an_oversize_body_is_refused_before_it_is_read(app) -> None:
    # 100 MB announced, 10 bytes sent: the answer comes without waiting for the rest.
    status, body = _raw_post(app.url, "/gradio_api/queue/join",
                             {"Content-Type": "application/json", "Content-Length": str(100_000_000)}, b'{"data": [')
    assert (status, json.loads(body)["detail"]) == (413, TOO_LARGE)
    # 2 MiB without a length (chunked): read up to the limit, then refused.
    with wire.client("127.0.0.4") as http:
        chunks = (b"[" + b" " * 65_536 for _ in range(32))
        response = http.post(f"{app.url}/gradio_api/call/ask", content=chunks,
                             headers={"content-type": "application/json"})
    assert (response.status_code, response.json()["detail"]) == (413, TOO_LARGE)
    LEDGER.record("web.h2", "busy")
    LEDGER.record("web.h2", "busy")


def test_h2_a_long_history_is_cut_and_a_huge_one_refused_before_parsing(app, sources) -> None:
    long_turn = "鹿肉の取組について " + "エゾシカ 釧路 根室 観光 漁業 " * 400  # > 6,000 characters
    history = [{"role": "user", "content": f"{i}番目の質問"} for i in range(30)] + [
        {"role": "user", "content": long_turn}, {"role": "assistant", "content": "…"}]
    with wire.client("127.0.0.5") as http:
        fn = wire.fn_index(http, app.url, "ask")
        app.held.calls.clear()
        t0 = time.perf_counter()
        data = answer_of(wire.run(http, app.url, fn, ["それは誰が進めるの？", json.dumps(history, ensure_ascii=False)]))
        print(f"H2: a follow-up after a {len(long_turn):,}-character turn answered in {time.perf_counter() - t0:.2f} s")
        LEDGER.record("web.h2", check_answer(data, sources, "それは誰が進めるの？"))
        (question, given), = app.held.calls
        assert len(given) == MAX_MESSAGES and max(len(m["content"]) for m in given) == MAX_MESSAGE_CHARS
        assert given[-2]["content"] == long_turn[:MAX_MESSAGE_CHARS]
        huge = json.dumps([{"role": "user", "content": "a" * 1_000_000}])  # under the body limit
        assert error_of(wire.run(http, app.url, fn, [inputs.DEER_Q, huge])) == html.escape(too_large(len(huge)))
        LEDGER.record("web.h2", "input-error")
        deep = "[" * 100_000 + "]" * 100_000  # L3: a 100k-deep history
        assert error_of(wire.run(http, app.url, fn, [inputs.DEER_Q, deep])) == html.escape(FORMAT)
        LEDGER.record("web.h2", "input-error")


# -- M5: no open upload route; no queue bypass --------------------------------------------------

def test_m5_uploads_and_the_queue_bypass_are_closed(app) -> None:
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder())
    before = {p for p in folder.rglob("*")} if folder.exists() else set()
    with wire.client("127.0.0.6") as http:
        upload = http.post(f"{app.url}/gradio_api/upload", files={"files": ("x.html", b"<script>1</script>")})
        bypass = http.post(f"{app.url}/gradio_api/run/ask", json={"data": [inputs.DEER_Q, "[]"]})
    for response in (upload, bypass):
        assert (response.status_code, response.json()["detail"]) == (404, NOT_OFFERED)
        LEDGER.record("web.m5", "busy")
    after = {p for p in folder.rglob("*")} if folder.exists() else set()
    assert after == before


# -- M6 and L1: staff downloads --------------------------------------------------------------

def _login(http, url: str) -> tuple[str, str]:
    """A staff login through the staff tab's own event: (session hash, session key)."""
    session = wire.new_session()
    completed = wire.run(http, url, wire.fn_index(http, url, "staff_login"), [PASSWORD], session)
    assert completed["success"] and completed["output"]["data"][2] == "ログインしました。"
    return session, completed["output"]["data"][4]


def _draft_links(http, url: str, session: str, inquiry: str) -> dict[str, str]:
    completed = wire.run(http, url, wire.fn_index(http, url, "staff_draft"), [inquiry, None], session)
    assert completed["success"], completed
    links = completed["output"]["data"][3]
    return {name.rsplit(".", 1)[1]: f"{url}/{href}"
            for href, name in re.findall(r'href="(vqa/download/[\w-]+)" download="([\w.-]+)"', links)}


def test_m6_a_draft_is_served_once_and_only_to_the_staff_session_that_made_it(app) -> None:
    with wire.client("127.0.0.7") as staff, wire.client("127.0.0.8") as other:
        session, key = _login(staff, app.url)
        links = _draft_links(staff, app.url, session, "エゾシカの活用について教えてください。")
        assert set(links) == {"txt", "docx"}
        # Not logged in: no cookie, a made-up one, or another staff session's key.
        _, other_key = _login(other, app.url)
        for cookies in ({}, {"vqa_staff": "made-up"}, {"vqa_staff": other_key}):
            response = other.get(links["docx"], cookies=cookies)
            assert (response.status_code, response.text) == (403, NOT_LOGGED_IN)
            LEDGER.record("web.m6", "busy")
        # A session that never logged in cannot make a draft either.
        stranger = wire.run(other, app.url, wire.fn_index(other, app.url, "staff_draft"), ["鹿は？", None])
        assert stranger["success"] and stranger["output"]["data"][4] == LOGIN_FIRST  # one plain message
        LEDGER.record("web.m6", "input-error")
        response = staff.get(links["docx"], cookies={"vqa_staff": key})
        assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
        assert response.headers["content-disposition"].startswith("attachment; filename*=UTF-8''vision-qa-draft-")
        assert docx.Document(io.BytesIO(response.content)).paragraphs[0].text == "回答案"
        LEDGER.record("web.m6", "answered")
        again = staff.get(links["docx"], cookies={"vqa_staff": key})
        assert (again.status_code, again.text) == (404, GONE)  # deleted after the download
        # The other file goes with the session when the page that logged in is closed.
        assert len(app.downloads) >= 1
        app.downloads.close_browser(session)
        gone = staff.get(links["txt"], cookies={"vqa_staff": key})
        assert (gone.status_code, gone.text) == (404, GONE)


def test_l1_noncharacters_in_an_inquiry_still_give_a_docx_and_leave_no_file(app, tmp_path) -> None:
    import tempfile

    def draft_files() -> set:
        return set(Path(tempfile.gettempdir()).glob("**/vision-qa-draft-*"))

    before = draft_files()
    inquiry = "エゾシカの活用\ufffeについて\uffff教えてください。"
    with wire.client("127.0.0.9") as staff:
        session, key = _login(staff, app.url)
        links = _draft_links(staff, app.url, session, inquiry)
        response = staff.get(links["docx"], cookies={"vqa_staff": key})
        text = staff.get(links["txt"], cookies={"vqa_staff": key}).text
    assert response.status_code == 200
    paragraphs = [p.text for p in docx.Document(io.BytesIO(response.content)).paragraphs]
    assert paragraphs[0] == "回答案" and "\ufffe" not in "".join(paragraphs) and "\ufffe" not in text
    assert draft_files() == before
    LEDGER.record("web.l1", "answered", lost=0)


# -- M7: staff password back-off --------------------------------------------------------------

class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_m7_failed_logins_back_off_per_client_and_are_logged_without_the_password(app) -> None:
    records = _Records()
    loggers = [logging.getLogger("vision_qa"), logging.getLogger("ui.handlers")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(records)
        lg.setLevel(logging.INFO)
    guesses = [f"guess-{i}-secret" for i in range(5)]
    try:
        with wire.client("127.0.0.10") as guesser, wire.client("127.0.0.11") as staff:
            fn = wire.fn_index(guesser, app.url, "draft")
            for guess in guesses:
                assert error_of(wire.run(guesser, app.url, fn, [inputs.DEER_Q, guess])) == WRONG_PASSWORD
                LEDGER.record("web.m7", "input-error")
            # Now even the right password waits (1 s after the fifth failure, then 2, 4 …).
            refused = error_of(wire.run(guesser, app.url, fn, [inputs.DEER_Q, PASSWORD]))
            assert refused in (html.escape(backoff_message(1.0)), html.escape(backoff_message(0.5)))
            LEDGER.record("web.m7", "input-error")
            # ... and so does the staff tab's login from that client; another client is not held up.
            login = wire.run(guesser, app.url, wire.fn_index(guesser, app.url, "staff_login"), [PASSWORD])
            assert error_of(login).startswith("ログインの失敗が続いたため")
            assert json.loads(wire.run(staff, app.url, fn, [inputs.DEER_Q, PASSWORD])["output"]["data"][0])["draft"]
            LEDGER.record("web.m7", "answered")
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(records)
            lg.setLevel(level)
    failed = [r for r in records.records if r.getMessage() == "staff_login_failed"]
    assert [(r.fields["client"], r.fields["via"], r.fields["failures"]) for r in failed] == [
        ("127.0.0.10", "api", n) for n in range(1, 6)]
    logged = " ".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in records.records)
    assert not any(g in logged for g in guesses) and PASSWORD not in logged


# -- L2, L3: text that is not what the page sends --------------------------------------------------

def _chat_text(message: dict) -> str:
    return "".join(part["text"] for part in message["content"])


def test_l2_a_lone_surrogate_in_the_chat_box_is_answered(app, sources) -> None:
    with wire.client("127.0.0.12") as http:
        completed = wire.run(http, app.url, wire.fn_index(http, app.url, "chat_send"),
                             ["鹿肉\ud800って何か取り組みあるの？", None])
    assert completed["success"], completed
    user, bot = completed["output"]["data"][0]["value"]  # an update: the messages and their votes
    assert _chat_text(user) == inputs.DEER_Q
    assert inputs.DEER in re.sub(r"<rt>.*?</rt>|<[^>]+>", "", _chat_text(bot))  # the quote under its ruby
    LEDGER.record("web.l2", "answered")


@pytest.mark.parametrize(("api_name", "data", "message"), [
    ("ask", [123, "[]"], "質問は文字列で指定してください。"),
    ("ask", [None, "[]"], "質問は文字列で指定してください。"),
    ("ask", [inputs.DEER_Q, 5], FORMAT),
    ("ask", [inputs.DEER_Q, '[{"role": "user", "content": 1}]'], FORMAT),
    ("chat_send", [None, None], "質問を入力してください。"),
    ("draft", [{"x": 1}, PASSWORD], "問い合わせは文字列で指定してください。"),
])
def test_l3_input_of_the_wrong_type_gets_a_clear_message(app, api_name, data, message) -> None:
    with wire.client("127.0.0.13") as http:
        completed = wire.run(http, app.url, wire.fn_index(http, app.url, api_name), data)
    assert error_of(completed) == html.escape(message)
    LEDGER.record("web.l3", "input-error")


# -- L6: feedback comments ------------------------------------------------------------------------

def test_l6_a_hostile_feedback_comment_is_neutralised_in_the_export(app, tmp_path) -> None:
    comment = "<script>alert(1)</script>\x00見\u202eにくい\u2066<b>"
    with wire.client("127.0.0.14") as http:
        session = wire.new_session()
        asked = wire.run(http, app.url, wire.fn_index(http, app.url, "chat_send"), [inputs.DEER_Q, None], session)
        assert asked["success"]
        # the session's chat state stays on the server: the page sends None for it
        voted = wire.run(http, app.url, wire.fn_index(http, app.url, "feedback_like"), [None], session,
                         event_data={"index": 1, "value": "…", "liked": True})
        assert voted["success"] and voted["output"]["data"][0] == VOTED, voted
        rated = wire.run(http, app.url, wire.fn_index(http, app.url, "feedback_comment"), [comment, None], session)
    assert rated["success"] and rated["output"]["data"][0] == THANKS
    out = tmp_path / "feedback.jsonl"
    FeedbackStore(app.feedback).export(out)
    raw = out.read_text(encoding="utf-8")
    assert not any(c in raw for c in ("\x00", "\\u0000", "\u202e", "\u2066", "<", ">"))
    row = json.loads(raw.splitlines()[-1])
    assert (row["comment"], row["question"]) == ("<script>alert(1)</script>見にくい<b>", inputs.DEER_Q)
    LEDGER.record("web.l6", "answered", lost=0)


# -- headers ---------------------------------------------------------------------------------------

def test_every_response_forbids_framing_and_sets_a_content_security_policy(app) -> None:
    with wire.client("127.0.0.15") as http:
        responses = [http.get(f"{app.url}/"), http.get(f"{app.url}/config"),
                     http.get(f"{app.url}/vqa/download/none"),
                     http.post(f"{app.url}/gradio_api/upload", content=b"")]
    for response in responses:
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
    assert responses[0].status_code == 200 and responses[0].text.startswith("<!doctype html>")
