"""Event handlers behind the app. ``create_app`` wires them; tests call them directly."""
from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import uuid
from typing import Any

import gradio as gr

from assistant import logs
from assistant.history import parse_history
from assistant.query import clean_text
from assistant.types import Answer, Draft, InputError

from . import plan, render
from .downloads import ROUTE, StaffDownloads
from .feedback import FeedbackStore
from .files import DOCX_TYPE, TXT_TYPE, docx_bytes, draft_stem, txt_bytes
from .furigana import Furigana
from .limits import LoginBackoff, RateLimited, RateLimiter, backoff_message, client_key, length_error

log = logging.getLogger(__name__)

GENERIC_ERROR = "回答の作成中に問題が発生しました。時間をおいてもう一度お試しください。"
STAFF_DISABLED = ("職員向け機能は無効です。利用するには、環境変数 VISION_QA_STAFF_PASSWORD に"
                  "パスワードを設定してアプリを再起動してください。")
WRONG_PASSWORD = "パスワードが違います。"
LOGIN_FIRST = "先に職員用パスワードでログインしてください。"
VOTED = "評価ありがとうございました。よろしければ、理由をお書きください（任意）。"
THANKS = "ご意見ありがとうございました。今後の改善に役立てます。"
WITHDRAWN = "評価を取り消しました。"
NOTHING_TO_RATE = "評価できる回答がまだありません。先に質問してください。"
NO_VOTE = "先に、回答の 👍 または 👎 を押してください。"
MAX_HISTORY = 20  # messages passed to the assistant; older turns are dropped for long sessions
MAX_KEPT = 200  # messages a chat session keeps (and shows); the oldest go first
N_SUGGESTIONS = 5
_RATINGS = {True: 1, "Like": 1, False: -1, "Dislike": -1}


def error(message: str) -> gr.Error:
    # gr.Error renders its message as HTML in the browser's modal, so escape it.
    return gr.Error(html.escape(message), title="エラー", print_exception=False)


def empty_state() -> dict:
    """A chat session: the raw history (for the assistant), what the chat and the side panel
    show, a record of each answer (for feedback), votes by answer id, and an answer counter
    (so that ids in the page never repeat)."""
    return {"history": [], "shown": [], "panels": [], "answers": [], "votes": {}, "voted": "", "count": 0}


def answer_record(answer: Answer) -> dict:
    """What a chat session keeps of an answer, enough to store feedback about it."""
    d = answer.to_dict()
    return {"id": uuid.uuid4().hex, **{k: d[k] for k in ("question", "rewritten_query", "answer", "citations")}}


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
                 backoff: LoginBackoff | None = None, furigana: Furigana | None = None):
        self.assistant = assistant
        self.feedback = feedback
        self.staff_password = staff_password
        self.max_question_chars = max_question_chars
        self.max_inquiry_chars = max_inquiry_chars
        self.limiter = RateLimiter(rate_limit_per_min)
        self.feedback_limiter = RateLimiter(rate_limit_per_min)
        self.downloads = downloads or StaffDownloads()
        self.backoff = backoff or LoginBackoff()
        self.furigana = furigana
        self._plan: tuple[object, str] | None = None  # (outline, its page): one rendering per generation

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

    @staticmethod
    def _chat_value(state: dict) -> dict:
        feedback = [state["votes"].get(a["id"]) for a in state["answers"]]
        return gr.update(value=state["shown"], feedback_value=feedback)

    def chat(self, question: str, state: dict | None, request: gr.Request = None):
        """One answer. Yields (chatbot, side panel, question box, state, live region, comment box,
        suggestion row, *suggestion buttons): first the question with a placeholder, then the answer."""
        question = "" if question is None else question
        self._check(question, self.max_question_chars, "質問", request)
        question = clean_text(question)  # nothing unencodable (a lone surrogate) is ever echoed
        state = state or empty_state()
        history = list(state["history"])
        shown = state["shown"] + [{"role": "user", "content": render.chat_text(question)},
                                  {"role": "assistant", "content": "（回答を作成しています…）"}]
        yield (shown, gr.skip(), "", state, "回答を作成しています。", gr.update(visible=False),
               *self._suggestion_updates([]))
        try:
            answer = self.assistant.ask(question, history[-MAX_HISTORY:])
        except InputError as e:
            raise error(str(e)) from None
        except Exception:
            log.exception("ask failed")
            raise error(GENERIC_ERROR) from None
        k = state["count"]
        keep = MAX_KEPT // 2
        new_state = {
            **state,
            "history": (history + [{"role": "user", "content": question},
                                   {"role": "assistant", "content": answer.text}])[-MAX_KEPT:],
            "shown": shown[:-1][-(MAX_KEPT - 1):] + [{"role": "assistant",
                                                       "content": render.answer_html(answer, k, self.furigana)}],
            "panels": (state["panels"] + [render.sources_body(answer, f"vqa-s{k}", self.furigana)])[-keep:],
            "answers": (list(state["answers"]) + [answer_record(answer)])[-keep:],
            "count": k + 1,
        }
        yield (self._chat_value(new_state), render.panel_html(new_state["panels"]), gr.skip(), new_state,
               render.live_text(answer), gr.update(visible=False), *self._suggestion_updates(list(answer.suggestions)))

    def ask_suggestion(self, question: str, state: dict | None, request: gr.Request = None):
        yield from self.chat(question, state, request)

    def ask_from_plan(self, state: dict | None, data: gr.EventData, request: gr.Request = None):
        """A bullet's button in ビジョンを読む: back to the chat, asking about that bullet."""
        question = getattr(data, "_data", {}).get("question") if data is not None else None
        if not isinstance(question, str) or not question.strip():
            return
        for step in self.chat(question, state, request):
            yield (gr.update(selected="residents"), *step)

    def new_conversation(self) -> tuple:
        return ([], render.SOURCES_PLACEHOLDER, "", empty_state(), "新しい会話を始めました。", gr.update(visible=False),
                *self._suggestion_updates([]))

    def plan_page(self) -> str:
        """The ビジョンを読む tab, from the current index generation's outline (rendered once per
        generation, not on every page load: with its readings it costs about 13 ms)."""
        try:
            outline = self.assistant.current().outline
        except Exception:
            log.exception("no outline for the plan tab")
            return plan.EMPTY
        cached = self._plan
        if cached is None or cached[0] is not outline:
            cached = self._plan = (outline, plan.plan_html(outline, self.furigana))
        return cached[1]

    # -- feedback ------------------------------------------------------------------------

    def on_like(self, state: dict | None, data: gr.LikeData, request: gr.Request = None):
        """The Chatbot's 👍/👎 on an answer: one row per answer, a later vote replaces the earlier
        one, clicking the same thumb again withdraws it. Returns (status, comment box, state)."""
        state = state or empty_state()
        index = data.index if isinstance(data.index, int) else (data.index or [None])[0]
        # the chat shows strictly (user, assistant) pairs
        if not (isinstance(index, int) and index % 2 == 1 and index // 2 < len(state["answers"])):
            return NOTHING_TO_RATE, gr.update(visible=False), state
        self._rate(self.feedback_limiter, request)
        record = state["answers"][index // 2]
        rating = _RATINGS.get(data.liked) if isinstance(data.liked, (bool, str)) else None
        votes = dict(state["votes"])
        if rating is None:
            self.feedback.withdraw(record["id"])
            votes.pop(record["id"], None)
            return WITHDRAWN, gr.update(visible=False), {**state, "votes": votes, "voted": ""}
        self.feedback.vote(answer_id=record["id"], rating=rating, question=record["question"],
                           rewritten_query=record["rewritten_query"], answer=record["answer"],
                           citations=record["citations"], config=self.assistant.config())
        votes[record["id"]] = "Like" if rating > 0 else "Dislike"
        return VOTED, gr.update(visible=True), {**state, "votes": votes, "voted": record["id"]}

    def send_comment(self, comment: str, state: dict | None, request: gr.Request = None):
        """The comment box that opens after a vote. Returns (status, comment text, comment box)."""
        voted = (state or empty_state()).get("voted", "")
        if not voted:
            return NO_VOTE, comment, gr.update(visible=False)
        if isinstance(comment, str) and comment.strip():
            self._rate(self.feedback_limiter, request)
            self.feedback.comment(voted, comment)
        return THANKS, "", gr.update(visible=False)

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
            raise InputError(problem)
        return self.assistant.draft(inquiry)

    def staff_draft(self, inquiry: str, key: str, request: gr.Request = None) -> tuple:
        """Returns (reply text, 要確認事項 HTML, citations HTML, download links HTML, status). A
        problem is one plain status message; the other fields are left as they were."""
        keep = (gr.skip(),) * 4
        if not (self.staff_password and self.downloads.is_open(key)):
            return (*keep, LOGIN_FIRST)
        try:
            self.limiter.check(client_key(request))
            draft = self._draft(inquiry)
        except (RateLimited, InputError) as e:
            return (*keep, str(e))
        except Exception:
            log.exception("draft failed")
            return (*keep, GENERIC_ERROR)
        stem = draft_stem()
        links = [(self.downloads.add(key, f"{stem}.txt", TXT_TYPE, txt_bytes(draft)), f"{stem}.txt",
                  "テキスト（.txt）をダウンロード"),
                 (self.downloads.add(key, f"{stem}.docx", DOCX_TYPE, docx_bytes(draft)), f"{stem}.docx",
                  "Word（.docx）をダウンロード")]
        cites = render.citations_html(draft.citations, "vqa-d", furigana=self.furigana)
        return (draft.text, render.uncovered_html(draft.uncovered), f'<div class="vqa-sources">{cites}</div>',
                download_links(links), "回答案を作成しました。")

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
        try:
            return json.dumps(self._draft(inquiry).to_dict(), ensure_ascii=False)
        except InputError as e:
            raise error(str(e)) from None
        except Exception:
            log.exception("draft failed")
            raise error(GENERIC_ERROR) from None
