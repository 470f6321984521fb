"""Event handlers behind the app. ``create_app`` wires them; tests call them directly."""
from __future__ import annotations

import hmac
import html
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from assistant.types import Answer, Draft, InputError, Message

from . import render
from .feedback import FeedbackStore
from .files import write_draft_files
from .limits import RateLimited, RateLimiter, length_error

log = logging.getLogger(__name__)

GENERIC_ERROR = "回答の作成中に問題が発生しました。時間をおいてもう一度お試しください。"
STAFF_DISABLED = ("職員向け機能は無効です。利用するには、環境変数 VISION_QA_STAFF_PASSWORD に"
                  "パスワードを設定してアプリを再起動してください。")
WRONG_PASSWORD = "パスワードが違います。"
LOGIN_FIRST = "先に職員用パスワードでログインしてください。"
THANKS = "ご意見ありがとうございました。今後の改善に役立てます。"
NOTHING_TO_RATE = "評価できる回答がまだありません。先に質問してください。"
HISTORY_FORMAT = 'history_json は [{"role": "user" または "assistant", "content": "…"}] の形のJSONで指定してください。'
MAX_HISTORY = 20  # messages passed to the assistant; older turns are dropped for long sessions
N_SUGGESTIONS = 5


def error(message: str) -> gr.Error:
    # gr.Error renders its message as HTML in the browser's modal, so escape it.
    return gr.Error(html.escape(message), title="エラー", print_exception=False)


def empty_state() -> dict:
    return {"history": [], "answers": []}


def session_key(request: gr.Request | None) -> str:
    return (getattr(request, "session_hash", None) or "anonymous") if request is not None else "anonymous"


def answer_record(answer: Answer) -> dict:
    """What a chat session keeps of an answer, enough to store feedback about it."""
    d = answer.to_dict()
    return {k: d[k] for k in ("question", "rewritten_query", "answer", "citations")}


def parse_history(history_json: str) -> list[Message]:
    try:
        data = json.loads(history_json or "[]")
    except json.JSONDecodeError:
        raise error(HISTORY_FORMAT) from None
    if not isinstance(data, list) or not all(
            isinstance(m, dict) and m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str)
            for m in data):
        raise error(HISTORY_FORMAT)
    return [{"role": m["role"], "content": m["content"]} for m in data]


def display(history: list[Message]) -> list[dict]:
    """Chatbot messages for a raw history: each text escaped, shown as typed."""
    return [{"role": m["role"], "content": render.chat_text(m["content"])} for m in history]


class Handlers:
    def __init__(self, assistant: Any, *, feedback: FeedbackStore, staff_password: str = "",
                 max_question_chars: int = 2000, max_inquiry_chars: int = 10000,
                 rate_limit_per_min: int = 20, download_dir: Path | None = None):
        self.assistant = assistant
        self.feedback = feedback
        self.staff_password = staff_password
        self.max_question_chars = max_question_chars
        self.max_inquiry_chars = max_inquiry_chars
        self.limiter = RateLimiter(rate_limit_per_min)
        self.feedback_limiter = RateLimiter(rate_limit_per_min)
        self._download_dir = download_dir

    # -- shared checks -------------------------------------------------------------------

    def _check(self, text: str, limit: int, what: str, request: gr.Request | None) -> None:
        problem = length_error(text, limit, what)
        if problem:
            raise error(problem)
        self._rate(self.limiter, request)

    @staticmethod
    def _rate(limiter: RateLimiter, request: gr.Request | None) -> None:
        try:
            limiter.check(session_key(request))
        except RateLimited as e:
            raise error(str(e)) from None

    def _password_ok(self, password: str) -> bool:
        return bool(self.staff_password) and hmac.compare_digest(
            (password or "").encode("utf-8"), self.staff_password.encode("utf-8"))

    @property
    def download_dir(self) -> Path:
        if self._download_dir is None:
            self._download_dir = Path(tempfile.mkdtemp(prefix="vision-qa-drafts-"))
        return self._download_dir

    # -- residents' chat -------------------------------------------------------------------

    def _suggestion_updates(self, suggestions: list[str]) -> list:
        shown = suggestions[:N_SUGGESTIONS]
        row = gr.update(visible=bool(shown))
        buttons = [gr.update(visible=i < len(shown), value=shown[i] if i < len(shown) else "")
                   for i in range(N_SUGGESTIONS)]
        return [row, *buttons]

    def chat(self, question: str, state: dict | None, request: gr.Request = None):
        """Stream one answer. Yields (chatbot, sources, question box, state, status, row, *buttons)."""
        question = question or ""
        self._check(question, self.max_question_chars, "質問", request)
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
            "history": history + [{"role": "user", "content": question},
                                  {"role": "assistant", "content": answer.text}],
            "answers": list(state["answers"]) + [answer_record(answer)],
        }
        yield (display(new_state["history"]), render.sources_html(answer), gr.skip(), new_state, "",
               *self._suggestion_updates(list(answer.suggestions)))

    def ask_suggestion(self, section: str, state: dict | None, request: gr.Request = None):
        yield from self.chat(render.suggestion_question(section), state, request)

    def new_conversation(self) -> tuple:
        return ([], render.SOURCES_PLACEHOLDER, "", empty_state(), "", *self._suggestion_updates([]))

    # -- feedback ------------------------------------------------------------------------

    def _store(self, rating: int, record: dict, comment: str) -> None:
        self.feedback.add(rating=rating, comment=comment, question=record["question"],
                          rewritten_query=record["rewritten_query"], answer=record["answer"],
                          citations=record["citations"], config=self.assistant.config())

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
            index = data.index if isinstance(data.index, int) else data.index[0]
            turn = index // 2  # the chat shows strictly (user, assistant) pairs
            if index % 2 == 1 and turn < len(answers):
                self._rate(self.feedback_limiter, request)
                self._store(1 if data.liked else -1, answers[turn], comment)
                return THANKS, ""
        return NOTHING_TO_RATE, comment

    # -- staff -------------------------------------------------------------------------

    def staff_login(self, password: str, request: gr.Request = None) -> tuple:
        """Returns (panel, authed state, status, password box)."""
        self._rate(self.limiter, request)
        if self._password_ok(password):
            return gr.update(visible=True), True, "ログインしました。", ""
        return gr.update(visible=False), False, WRONG_PASSWORD, ""

    def _draft(self, inquiry: str) -> Draft:
        problem = length_error(inquiry or "", self.max_inquiry_chars, "問い合わせ")
        if problem:
            raise error(problem)
        try:
            return self.assistant.draft(inquiry)
        except InputError as e:
            raise error(str(e)) from None
        except Exception:
            log.exception("draft failed")
            raise error(GENERIC_ERROR) from None

    def staff_draft(self, inquiry: str, authed: bool, request: gr.Request = None) -> tuple:
        """Returns (draft text, 要確認事項 HTML, citations HTML, .txt file, .docx file)."""
        if not (self.staff_password and authed):
            raise error(LOGIN_FIRST)
        self._rate(self.limiter, request)
        draft = self._draft(inquiry)
        txt, docx = write_draft_files(draft, self.download_dir)
        return (draft.text, render.uncovered_html(draft.uncovered),
                f'<div class="vqa-sources">{render.citations_html(draft.citations, inquiry)}</div>',
                gr.update(value=str(txt), visible=True), gr.update(value=str(docx), visible=True))

    # -- named API endpoints ---------------------------------------------------------------

    def api_ask(self, question: str, history_json: str = "[]", request: gr.Request = None) -> str:
        """Answer one question. history_json: JSON list of {"role", "content"}. Returns Answer JSON."""
        history = parse_history(history_json)
        self._check(question or "", self.max_question_chars, "質問", request)
        try:
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
        if not self._password_ok(password):
            raise error(WRONG_PASSWORD)
        return json.dumps(self._draft(inquiry).to_dict(), ensure_ascii=False)
