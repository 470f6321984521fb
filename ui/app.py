"""The Gradio app: a thin shell over the assistant. ``create_app`` builds, ``launch`` serves."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import gradio as gr

from . import plan, render
from .downloads import COOKIE, StaffDownloads
from .feedback import MAX_COMMENT_CHARS, FeedbackStore
from .furigana import READINGS_FILE, Furigana
from .gate import WebLimits
from .handlers import N_SUGGESTIONS, STAFF_DISABLED, Handlers, empty_state

TITLE = "釧路・根室連携地域「地域づくり推進ビジョン」Q&A"
DEFAULT_EXAMPLES = ["鹿肉って何か取り組みあるの？", "ゼロカーボンに関する施策を全部教えて", "このビジョンの概要は？"]
# One intro per layout: wide screens show the 出典 beside the chat, narrow ones under each answer.
INTRO = ('<p class="vqa-intro">北海道の「釧路・根室連携地域 地域づくり推進ビジョン」に書かれていることを、'
         'ふだんの言葉で質問できます。<span class="vqa-wide">回答の [1] などの番号は、右の「出典」に示すビジョンの原文を'
         '指しています（番号を押すと、その出典に移ります）。</span><span class="vqa-narrow">番号 [1] などは、各回答のすぐ下の「出典」を指しています。</span>'
         '<span class="vqa-wide">ビジョン全体は「ビジョンを読む」で読めます。</span></p>')
# Every event that calls the assistant shares one concurrency group, so the queue's
# default_concurrency_limit bounds the assistant's total load, not each event's.
ASSISTANT = "assistant"
STAFF_SESSION_S = 8 * 3600  # a staff login lasts a working day
# The staff session key goes into a cookie that only the download route reads: a draft
# file is served to the browser that logged in, not to whoever has its URL.
SET_COOKIE_JS = f"""(key) => {{
  if (key) {{
    const secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = "{COOKIE}=" + key + "; Path=/; Max-Age={STAFF_SESSION_S}; SameSite=Strict" + secure;
  }}
  return [];
}}"""
FURIGANA_JS = "(on) => { window.vqaFurigana(on); return []; }"
PLAN_JS = ("element.addEventListener('click', (e) => { const b = e.target.closest('.vqa-plan-ask');"
           " if (b) trigger('click', {question: b.dataset.q}); });")


def _asset(name: str) -> str:
    return resources.files("ui").joinpath("assets", name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Serving:
    """What ``launch`` installs around an app: the gate's limits, the staff downloads and the
    page's stylesheet and script."""

    limits: WebLimits
    downloads: StaffDownloads
    css: str
    head: str
    theme: Any = None


def create_app(assistant: Any, *, feedback: FeedbackStore, staff_password: str = "",
               max_question_chars: int = 2000, max_inquiry_chars: int = 10000,
               rate_limit_per_min: int = 20, examples: list[str] | None = None,
               web: WebLimits | None = None, furigana: Furigana | None = None) -> gr.Blocks:
    """Build the residents', plan and staff tabs and the ``ask``/``draft`` API endpoints."""
    web = web or WebLimits()
    h = Handlers(assistant, feedback=feedback, staff_password=staff_password,
                 max_question_chars=max_question_chars, max_inquiry_chars=max_inquiry_chars,
                 rate_limit_per_min=rate_limit_per_min, furigana=furigana or Furigana())
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.Markdown(f"# {TITLE}")
        toggle = gr.Checkbox(label="ふりがなを表示", value=False, elem_id="vqa-furigana", container=False)
        toggle.change(None, [toggle], None, js=FURIGANA_JS)
        state = gr.State(empty_state())
        with gr.Tabs(elem_id="vqa-tabs") as tabs:
            with gr.Tab("住民向け", id="residents"):
                chat_outputs = _residents_tab(h, state, DEFAULT_EXAMPLES if examples is None else examples,
                                              max_question_chars)
            with gr.Tab("ビジョンを読む", id="plan"):
                plan_view = gr.HTML(plan.EMPTY, js_on_load=PLAN_JS, elem_id="vqa-plan")
            with gr.Tab("職員向け", id="staff"):
                _staff_tab(h, max_inquiry_chars)
        demo.load(h.plan_page, None, plan_view, api_visibility="private")
        plan_view.click(h.ask_from_plan, [state], [tabs, *chat_outputs], api_name="plan_ask",
                        api_visibility="private", concurrency_id=ASSISTANT)
        gr.api(h.api_ask, api_name="ask", concurrency_id=ASSISTANT)
        gr.api(h.api_draft, api_name="draft", concurrency_id=ASSISTANT)
        if h.staff_password:
            demo.unload(h.staff_closed)
    # api_open=False: no /run route that skips the queue (and so every limit on it).
    demo.queue(max_size=web.max_queue, default_concurrency_limit=web.concurrency, api_open=False)
    # Blue buttons and tabs: white text on the default orange, and on the default primary shade
    # (blue 500, 3.7:1), is below AA contrast; blue 600 is 5.2:1 and blue 700, on hover, 6.7:1.
    theme = gr.themes.Default(primary_hue="blue").set(
        button_primary_background_fill="*primary_600", button_primary_background_fill_hover="*primary_700")
    demo.serving = Serving(web, h.downloads, _asset("page.css"), f"<script>{_asset('page.js')}</script>", theme)
    return demo


def create_app_from_settings(assistant: Any, settings: Any) -> gr.Blocks:
    """``create_app`` with the values of a ``vision_qa.settings.Settings`` (read by the caller)."""
    return create_app(assistant, feedback=FeedbackStore(settings.feedback_db),
                      staff_password=settings.staff_password,
                      max_question_chars=settings.max_question_chars,
                      max_inquiry_chars=settings.max_inquiry_chars,
                      rate_limit_per_min=settings.rate_limit_per_min, web=web_limits(settings),
                      furigana=Furigana.from_file(Path(settings.corpus_dir) / READINGS_FILE))


def web_limits(settings: Any) -> WebLimits:
    return WebLimits(concurrency=settings.serve_concurrency, max_queue=settings.serve_max_queue,
                     client_max_answering=settings.client_max_answering,
                     client_max_pending=settings.client_max_pending,
                     max_body_bytes=settings.max_request_kb * 1024,
                     trusted_proxies=tuple(p for p in settings.trusted_proxies.split(",") if p.strip()),
                     client_ip_header=settings.client_ip_header)


def _residents_tab(h: Handlers, state: gr.State, examples: list[str], max_chars: int) -> list:
    """The chat; returns the outputs of an answer (for events outside the tab that ask)."""
    gr.HTML(INTRO, js_on_load=None)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=0):
            # Our own HTML only (ui.render escapes every text): Markdown would turn
            # ![x](http://…) in a quote or an answer into an image the browser fetches from anywhere.
            chatbot = gr.Chatbot(label="会話", height=440, buttons=[], elem_id="vqa-chat", autoscroll=False,
                                 render_markdown=False, latex_delimiters=[],
                                 feedback_options=("Like", "Dislike"),
                                 placeholder="下の欄に質問を入力するか、質問の例を選んでください。")
            with gr.Row(elem_id="vqa-ask-row", equal_height=True):
                question = gr.Textbox(label="質問", placeholder="例：鹿肉の取り組みは？", lines=1,
                                      max_length=max_chars, scale=5, min_width=0, elem_id="vqa-question")
                send = gr.Button("送信", variant="primary", scale=1, min_width=72, elem_id="vqa-send")
            status = gr.Markdown(elem_id="vqa-feedback-status")
            with gr.Column(visible=False, elem_id="vqa-comment") as comment_box:
                comment = gr.Textbox(label="コメント（任意）", max_length=MAX_COMMENT_CHARS, lines=2,
                                     placeholder="わかりにくかった点などがあればお書きください。", elem_id="vqa-comment-text")
                send_comment = gr.Button("コメントを送る", size="sm", elem_id="vqa-comment-send")
            with gr.Column(visible=False, elem_id="vqa-suggestions") as suggest_row:
                gr.Markdown("**近い項目**（押すと、その項目の施策をすべて表示します）")
                with gr.Row():
                    suggest_buttons = [gr.Button("", size="sm", visible=False) for _ in range(N_SUGGESTIONS)]
            if examples:
                gr.Markdown("**質問の例**（押すとすぐに質問します）")
                with gr.Row():
                    example_buttons = [gr.Button(q, size="sm") for q in examples]
            else:
                example_buttons = []
            new_chat = gr.Button("新しい会話", size="sm", elem_id="vqa-new")
        with gr.Column(scale=2, min_width=0, elem_id="vqa-side"):
            gr.Markdown("## 出典")
            sources = gr.HTML(render.SOURCES_PLACEHOLDER, js_on_load=None, elem_id="vqa-sources")
            gr.Markdown(render.ATTRIBUTION, elem_id="vqa-attribution")
    live = gr.HTML("", js_on_load=None, elem_id="vqa-live", elem_classes=["vqa-sr"])

    outputs = [chatbot, sources, question, state, live, comment_box, suggest_row, *suggest_buttons]
    chat = {"outputs": outputs, "api_visibility": "private", "concurrency_id": ASSISTANT}
    question.submit(h.chat, [question, state], api_name="chat_submit", **chat)
    send.click(h.chat, [question, state], api_name="chat_send", **chat)
    for i, b in enumerate(suggest_buttons):
        b.click(h.ask_suggestion, [b, state], api_name=f"suggestion_{i}", **chat)
    for i, b in enumerate(example_buttons):
        b.click(h.chat, [b, state], api_name=f"example_{i}", **chat)
    new_chat.click(h.new_conversation, None, outputs, api_name="new_conversation", api_visibility="private")
    # The Chatbot's own 会話をクリア icon must reset the session's history too.
    chatbot.clear(h.new_conversation, None, outputs, api_name="clear_conversation", api_visibility="private")
    chatbot.like(h.on_like, [state], [status, comment_box, state], api_name="feedback_like",
                 api_visibility="private")
    comment_io = {"fn": h.send_comment, "inputs": [comment, state], "outputs": [status, comment, comment_box],
                  "api_visibility": "private"}
    send_comment.click(api_name="feedback_comment", **comment_io)
    comment.submit(api_name="feedback_comment_submit", **comment_io)
    return outputs


def _staff_tab(h: Handlers, max_chars: int) -> None:
    if not h.staff_password:
        gr.Markdown(STAFF_DISABLED, elem_id="vqa-staff-disabled")
        return
    gr.Markdown("住民からの問い合わせに対する回答案を、ビジョンの記述を引用して作成します。内容は必ず確認してから使ってください。")
    # The staff session key ("" until a login); Gradio drops the state an hour after the
    # page closes or at the end of the working day, and the session's files go with it.
    session = gr.State("", time_to_live=STAFF_SESSION_S, delete_callback=h.downloads.close_session)
    cookie_key = gr.Textbox(visible="hidden", elem_id="vqa-staff-key", label="key")
    with gr.Row():
        password = gr.Textbox(label="職員用パスワード", type="password", scale=3, elem_id="vqa-staff-password")
        login = gr.Button("ログイン", scale=1)
    login_status = gr.Markdown()
    with gr.Column(visible=False) as panel:
        inquiry = gr.Textbox(label="住民からの問い合わせ", lines=8, max_length=max_chars, elem_id="vqa-inquiry")
        make = gr.Button("回答案を作成", variant="primary", elem_id="vqa-make")
        staff_status = gr.Markdown(elem_id="vqa-staff-status")
        draft_text = gr.Textbox(label="回答案（住民に送る文面です。編集・コピーできます）", lines=14, buttons=["copy"],
                                interactive=True, elem_id="vqa-draft")
        gr.Markdown("## 要確認事項（職員用：回答案には含まれていません）")
        uncovered = gr.HTML("", js_on_load=None, elem_id="vqa-uncovered-box")
        gr.Markdown("## 引用した記述")
        cites = gr.HTML("", js_on_load=None, elem_id="vqa-draft-sources")
        gr.Markdown(render.ATTRIBUTION)
        files = gr.HTML("", js_on_load=None, elem_id="vqa-downloads")

    login_io = {"fn": h.staff_login, "inputs": [password],
                "outputs": [panel, session, login_status, password, cookie_key], "api_visibility": "private"}
    login.click(api_name="staff_login", **login_io).then(None, [cookie_key], None, js=SET_COOKIE_JS)
    password.submit(api_name="staff_login_submit", **login_io).then(None, [cookie_key], None, js=SET_COOKIE_JS)
    make.click(h.staff_draft, [inquiry, session], [draft_text, uncovered, cites, files, staff_status],
               api_name="staff_draft", api_visibility="private", concurrency_id=ASSISTANT)
