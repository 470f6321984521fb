"""Event handlers behind the app. ``create_app`` wires them; tests call them directly."""
from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
from typing import Any

import gradio as gr

from assistant import logs
from assistant.history import parse_history
from assistant.query import clean_text
from assistant.types import Answer, Draft, InputError, Message

from . import render
from .downloads import ROUTE, StaffDownloads
from .feedback import FeedbackStore
from .files import DOCX_TYPE, TXT_TYPE, docx_bytes, draft_stem, txt_bytes
from .limits import LoginBackoff, RateLimited, RateLimiter, backoff_message, client_key, length_error

log = logging.getLogger(__name__)

GENERIC_ERROR = "回答の作成中に問題が発生しました。時間をおいてもう一度お試しください。"
STAFF_DISABLED = ("職員向け機能は無効です。利用するには、環境変数 VISION_QA_STAFF_PASSWORD に"
                  "パスワードを設定してアプリを再起動してください。")
WRONG_PASSWORD = "パスワードが違います。"
LOGIN_FIRST = "先に職員用パスワードでログインしてください。"
THANKS = "ご意見ありがとうございました。今後の改善に役立てます。"
NOTHING_TO_RATE = "評価できる回答がまだありません。先に質問してください。"
MAX_HISTORY = 20  # messages passed to the assistant; older turns are dropped for long sessions
MAX_KEPT = 200  # messages a chat session keeps (and shows); the oldest go first
N_SUGGESTIONS = 5


def error(message: str) -> gr.Error:
    # gr.Error renders its message as HTML in the browser's modal, so escape it.
    return gr.Error(html.escape(message), title="エラー", print_exception=False)


def empty_state() -> dict:
    return {"history": [], "answers": []}


def answer_record(answer: Answer) -> dict:
    """What a chat session keeps of an answer, enough to store feedback about it."""
    d = answer.to_dict()
    return {k: d[k] for k in ("question", "rewritten_query", "answer", "citations")}


def display(history: list[Message]) -> list[dict]:
    """Chatbot messages for a raw history: each text escaped, shown as typed."""
    return [{"role": m["role"], "content": render.chat_text(m["content"])} for m in history]


def download_links(links: list[tuple[str, str, str]]) -> str:
    """Links to the staff files, relative to the page (so a proxy's path prefix is kept)."""
    items = "".join(f'<a class="vqa-download" href="{html.escape(ROUTE.format(token=token).lstrip("/"))}" '
                    f'download="{html.escape(name)}">{html.escape(label)}</a>' for token, name, label in links)
    note = "各ファイルは1回だけダウンロードできます（30分後、またはこのページを閉じると削除されます）。"
    return f'<div class="vqa-downloads">{items}</div><p class="vqa-download-note">{note}</p>'


class Handlers:
    def __init__(self, assistant: Any, *, feedback: FeedbackStore, staff_password: str = "",
                 max_question_chars: int = 2000, max_inquiry_chars: int = 10000,
                 rate_limit_per_min: int = 20, downloads: StaffDownloads | None = None,
                 backoff: LoginBackoff | None = None):
        self.assistant = assistant
        self.feedback = feedback
        self.staff_password = staff_password
        self.max_question_chars = max_question_chars
        self.max_inquiry_chars = max_inquiry_chars
        self.limiter = RateLimiter(rate_limit_per_min)
        self.feedback_limiter = RateLimiter(rate_limit_per_min)
        self.downloads = downloads or StaffDownloads()
        self.backoff = backoff or LoginBackoff()

    # -- shared checks -------------------------------------------------------------------

    def _check(self, text: object, limit: int, what: str, request: gr.Request | None) -> None:
        problem = length_error(text, limit, what)
        if problem:
            raise error(problem)
        self._rate(self.limiter, request)

    @staticmethod
    def _rate(limiter: RateLimiter, request: gr.Request | None) -> None:
        try:
            limiter.check(client_key(request))
        except RateLimited as e:
            raise error(str(e)) from None

    def _password_ok(self, password: object, request: gr.Request | None, via: str) -> bool:
        """A constant-time compare, after the client's back-off; failures are logged without
        the password. Raises gr.Error while the client must wait."""
        client = client_key(request)
        wait = self.backoff.wait_s(client)
        if wait > 0:
            logs.event("staff_login_refused", client=client, via=via, wait_s=round(wait, 1))
            raise error(backoff_message(wait))
        given = password.encode("utf-8", "surrogatepass") if isinstance(password, str) else b""
        # Digests of equal length, so the time taken does not depend on the password's length either.
        ok = bool(self.staff_password) and hmac.compare_digest(
            hashlib.sha256(given).digest(), hashlib.sha256(self.staff_password.encode("utf-8")).digest())
        if ok:
            self.backoff.succeeded(client)
        else:
            failures = self.backoff.failed(client)
            logs.event("staff_login_failed", client=client, via=via, failures=failures)
            log.warning("staff login failed from %s via %s (%d in a row)", client, via, failures)
        return ok

    # -- residents' chat -------------------------------------------------------------------

    def _suggestion_updates(self, suggestions: list[str]) -> list:
        shown = suggestions[:N_SUGGESTIONS]
        row = gr.update(visible=bool(shown))
        buttons = [gr.update(visible=i < len(shown), value=shown[i] if i < len(shown) else "")
                   for i in range(N_SUGGESTIONS)]
        return [row, *buttons]

    def chat(self, question: str, state: dict | None, request: gr.Request = None):
        """One answer. Yields (chatbot, sources, question box, state, status, row, *buttons):
        first the question with a placeholder, then the answer."""
        question = "" if question is None else question
        self._check(question, self.max_question_chars, "質問", request)
        question = clean_text(question)  # nothing unencodable (a lone surrogate) is ever echoed
        state = state or empty_state()
        history = list(state["history"])
        shown = display(history) + [{"role": "user", "content": render.chat_text(question)},
                                    {"role": "assistant", "content": "（回答を作成しています…）"}]
        hidden = self._suggestion_updates([])
        yield (shown, render.SOURCES_SEARCHING, "", state, "", *hidden)
        try:
            answer = self.assistant.ask(question, history[-MAX_HISTORY:])
        except InputError as e:
            raise error(str(e)) from None
        except Exception:
            log.exception("ask failed")
            raise error(GENERIC_ERROR) from None
        new_state = {
            "history": (history + [{"role": "user", "content": question},
                                   {"role": "assistant", "content": answer.text}])[-MAX_KEPT:],
            "answers": (list(state["answers"]) + [answer_record(answer)])[-(MAX_KEPT // 2):],
        }
        yield (display(new_state["history"]), render.sources_html(answer), gr.skip(), new_state, "",
               *self._suggestion_updates(list(answer.suggestions)))

    def ask_suggestion(self, section: str, state: dict | None, request: gr.Request = None):
        yield from self.chat(render.suggestion_question(section), state, request)

    def new_conversation(self) -> tuple:
        return ([], render.SOURCES_PLACEHOLDER, "", empty_state(), "", *self._suggestion_updates([]))

    # -- feedback ------------------------------------------------------------------------

    def _store(self, rating: int, record: dict, comment: object) -> None:
        self.feedback.add(rating=rating, comment=comment if isinstance(comment, str) else "",
                          question=record["question"], rewritten_query=record["rewritten_query"],
                          answer=record["answer"], citations=record["citations"], config=self.assistant.config())

    def rate_latest(self, rating: int, comment: str, state: dict | None,
                    request: gr.Request = None) -> tuple[str, str]:
        """👍/👎 buttons under the chat: rate the latest answer. Returns (status, comment box)."""
        answers = (state or empty_state())["answers"]
        if not answers:
            return NOTHING_TO_RATE, comment
        self._rate(self.feedback_limiter, request)
        self._store(rating, answers[-1], comment)
        return THANKS, ""

    def on_like(self, comment: str, state: dict | None, data: gr.LikeData,
                request: gr.Request = None) -> tuple[str, str]:
        """The Chatbot's own thumbs on an answer bubble. Returns (status, comment box)."""
        if data.liked is True or data.liked is False:
            answers = (state or empty_state())["answers"]
            index = data.index if isinstance(data.index, int) else (data.index or [None])[0]
            # the chat shows strictly (user, assistant) pairs
            if isinstance(index, int) and index % 2 == 1 and index // 2 < len(answers):
                self._rate(self.feedback_limiter, request)
                self._store(1 if data.liked else -1, answers[index // 2], comment)
                return THANKS, ""
        return NOTHING_TO_RATE, comment

    # -- staff -------------------------------------------------------------------------

    def staff_login(self, password: str, request: gr.Request = None) -> tuple:
        """Returns (panel, session key state, status, password box, key for the cookie)."""
        if self._password_ok(password, request, "staff_tab"):
            key = self.downloads.open_session(getattr(request, "session_hash", None) or "")
            return gr.update(visible=True), key, "ログインしました。", "", key
        return gr.update(visible=False), "", WRONG_PASSWORD, "", ""

    def staff_closed(self, request: gr.Request = None) -> None:
        """The page was closed: the staff session it opened and its files go."""
        session = getattr(request, "session_hash", None)
        if session:
            self.downloads.close_browser(session)

    def _draft(self, inquiry: object) -> Draft:
        problem = length_error(inquiry, self.max_inquiry_chars, "問い合わせ")
        if problem:
            raise error(problem)
        try:
            return self.assistant.draft(inquiry)
        except InputError as e:
            raise error(str(e)) from None
        except Exception:
            log.exception("draft failed")
            raise error(GENERIC_ERROR) from None

    def staff_draft(self, inquiry: str, key: str, request: gr.Request = None) -> tuple:
        """Returns (draft text, 要確認事項 HTML, citations HTML, download links HTML)."""
        if not (self.staff_password and self.downloads.is_open(key)):
            raise error(LOGIN_FIRST)
        self._rate(self.limiter, request)
        draft = self._draft(inquiry)
        stem = draft_stem()
        links = [(self.downloads.add(key, f"{stem}.txt", TXT_TYPE, txt_bytes(draft)), f"{stem}.txt",
                  "テキスト（.txt）をダウンロード"),
                 (self.downloads.add(key, f"{stem}.docx", DOCX_TYPE, docx_bytes(draft)), f"{stem}.docx",
                  "Word（.docx）をダウンロード")]
        return (draft.text, render.uncovered_html(draft.uncovered),
                f'<div class="vqa-sources">{render.citations_html(draft.citations, draft.inquiry)}</div>',
                download_links(links))

    # -- named API endpoints ---------------------------------------------------------------

    def api_ask(self, question: str, history_json: str = "[]", request: gr.Request = None) -> str:
        """Answer one question. history_json: JSON list of {"role", "content"}. Returns Answer JSON."""
        self._check(question, self.max_question_chars, "質問", request)
        try:
            history = parse_history(history_json)  # its size is checked before it is parsed
            answer = self.assistant.ask(question, history[-MAX_HISTORY:])
        except InputError as e:
            raise error(str(e)) from None
        except Exception:
            log.exception("ask failed")
            raise error(GENERIC_ERROR) from None
        return json.dumps(answer.to_dict(), ensure_ascii=False)

    def api_draft(self, inquiry: str, password: str, request: gr.Request = None) -> str:
        """Draft a reply to a resident's inquiry (staff password required). Returns Draft JSON."""
        if not self.staff_password:
            raise error(STAFF_DISABLED)
        self._rate(self.limiter, request)
        if not self._password_ok(password, request, "api"):
            raise error(WRONG_PASSWORD)
        return json.dumps(self._draft(inquiry).to_dict(), ensure_ascii=False)
