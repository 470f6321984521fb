"""The handlers behind create_app's events, called directly (no server)."""
from __future__ import annotations

import io
import json
import re

import docx
import gradio as gr
import pytest

from ui import create_app
from ui.handlers import N_SUGGESTIONS, STAFF_DISABLED, WRONG_PASSWORD

RATE_MSG = "短時間に多くのリクエストがありました（1分あたり3回まで）。1分ほど待ってからもう一度お試しください。"
SKIP = gr.skip()


def req(session="s1", host="192.0.2.1"):
    return gr.Request(session_hash=session, client={"host": host, "port": 0})


@pytest.fixture
def app(scripted, store, handlers_of):
    return handlers_of(create_app(scripted, feedback=store, staff_password="職員pw"))


def test_chat_shows_the_question_then_the_answer_and_sources(app, scripted):
    steps = list(app["chat_send"]("鹿肉って何か取り組みあるの？", None, req()))
    chat, sources, box, state, status, row, *buttons = steps[0]
    assert chat == [{"role": "user", "content": "鹿肉って何か取り組みあるの？"},
                    {"role": "assistant", "content": "（回答を作成しています…）"}]
    assert (box, status, row) == ("", "", gr.update(visible=False))
    assert len(steps) == 2  # a placeholder, then the whole answer (nothing is shown before the guard)
    assert scripted.calls == [("ask", "鹿肉って何か取り組みあるの？", [])]
    chat, sources, box, state, status, row, *buttons = steps[-1]
    assert box == SKIP
    answer_text = "捕獲したエゾシカの有効活用と地域ブランド化を推進するとしています[1]。"
    assert chat[-1] == {"role": "assistant", "content": answer_text}
    assert state["history"] == [{"role": "user", "content": "鹿肉って何か取り組みあるの？"},
                                {"role": "assistant", "content": answer_text}]
    assert sources == (
        '<div class="vqa-sources">\n'
        '<div class="vqa-citation" id="vqa-cite-1">'
        '<div><span class="vqa-n">[1]</span><span class="vqa-title">釧路・根室連携地域「地域づくり推進ビジョン」</span></div>'
        '<div class="vqa-section">Ⅰ 地域のめざす姿 › １ 農林水産業をはじめとする地域産業の振興</div>'
        '<blockquote class="vqa-quote">個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進</blockquote>'
        '<div class="vqa-page">2ページ</div></div>\n'
        '</div>')
    assert row == gr.update(visible=False)


def test_hostile_question_is_escaped_in_chat_and_sources(app, scripted):
    hostile = scripted.HOSTILE
    *_, last = app["chat_send"](hostile, None, req())
    chat, sources = last[0], last[1]
    assert chat == [{"role": "user", "content": "&lt;img src=x onerror=alert(1)&gt;"},
                    {"role": "assistant", "content": "「&lt;img src=x onerror=alert(1)&gt;」の記述です[1]。"}]
    assert last[3]["history"][0] == {"role": "user", "content": hostile}  # the assistant gets raw text
    assert (
        '<span class="vqa-title">資料&lt;img src=x onerror=alert(1)&gt;</span></div>'
        '<div class="vqa-section">Ⅰ &lt;b&gt;地域&lt;/b&gt;</div>'
        '<blockquote class="vqa-quote">記述<mark>&lt;img src=x onerror=alert(1)&gt;</mark>です</blockquote>'
    ) in sources
    assert "<img" not in sources and "<b>" not in sources


def test_follow_up_passes_history_and_shows_rewritten_query(app, scripted):
    *_, first = app["chat_send"]("エゾシカの有効活用について教えて", None, req())
    *_, second = app["chat_submit"]("いつまで？", first[3], req())
    assert scripted.calls[-1] == ("ask", "いつまで？", first[3]["history"])
    assert '<p class="vqa-rewritten">検索した質問：エゾシカの有効活用について教えて いつまで？</p>' in second[1]
    assert len(second[0]) == 4


def test_abstention_shows_suggestion_buttons_that_ask_about_the_section(app, scripted):
    *_, last = app["chat_send"]("宇宙開発は？", None, req())
    row, buttons = last[5], list(last[6:])
    assert row == gr.update(visible=True)
    assert buttons == [gr.update(visible=True, value=scripted.SUGGESTIONS[0]),
                       gr.update(visible=True, value=scripted.SUGGESTIONS[1])] + [
                       gr.update(visible=False, value="")] * (N_SUGGESTIONS - 2)
    *_, asked = app["suggestion_1"](scripted.SUGGESTIONS[1], last[3], req())
    assert scripted.calls[-1][1] == "「３ 「ゼロカーボン北海道」と豊かな自然環境が調和する社会の構築」について教えてください"
    assert asked[0][-2]["content"] == "「３ 「ゼロカーボン北海道」と豊かな自然環境が調和する社会の構築」について教えてください"


def test_example_buttons_ask_and_new_conversation_clears(app, scripted):
    *_, last = app["example_1"]("ゼロカーボンに関する施策を全部教えて", None, req())
    assert "ゼロカーボン" in last[1]
    chat, sources, box, state, status, row, *buttons = app["new_conversation"]()
    assert (chat, box, state, status) == ([], "", {"history": [], "answers": []}, "")
    assert sources.startswith('<div class="vqa-sources"><p class="vqa-empty">質問すると')


@pytest.mark.parametrize(("question", "message"), [
    ("   ", "質問を入力してください。"),
    ("あ" * 2001, "質問は2000文字以内で入力してください（現在2001文字）。"),
])
def test_question_length_limits(app, scripted, question, message):
    with pytest.raises(gr.Error) as e:
        next(app["chat_send"](question, None, req()))
    assert e.value.message == message
    with pytest.raises(gr.Error) as e:
        app["ask"](question, "[]", req())
    assert e.value.message == message
    assert scripted.calls == []


def test_input_error_from_the_assistant_becomes_gr_error(store, handlers_of, assistant_cls):
    h = handlers_of(create_app(assistant_cls(max_chars=10), feedback=store))
    with pytest.raises(gr.Error) as e:
        list(h["chat_send"]("あ" * 11, None, req()))
    assert (e.value.message, e.value.title) == ("質問は10文字以内にしてください。", "エラー")


def test_rate_limit_per_client_address_not_per_session(scripted, store, handlers_of):
    h = handlers_of(create_app(scripted, feedback=store, rate_limit_per_min=3))
    for session in ("a", "b", "c"):  # a new session hash for every request changes nothing
        list(h["chat_send"]("鹿は？", None, req(session, "192.0.2.7")))
    with pytest.raises(gr.Error) as e:
        next(h["chat_send"]("鹿は？", None, req("d", "192.0.2.7")))
    assert e.value.message == RATE_MSG
    with pytest.raises(gr.Error) as e:
        h["ask"]("鹿は？", "[]", req("e", "192.0.2.7"))
    assert e.value.message == RATE_MSG
    # another client is answered
    assert json.loads(h["ask"]("鹿は？", "[]", req("a", "192.0.2.8")))["citations"][0]["n"] == 1


def test_api_ask_returns_answer_json_and_checks_history(app, scripted):
    history = [{"role": "user", "content": "エゾシカの有効活用について教えて"},
               {"role": "assistant", "content": "…[1]"}]
    data = json.loads(app["ask"]("いつまで？", json.dumps(history, ensure_ascii=False), req()))
    assert data == scripted.answer_for("いつまで？", history).to_dict()
    assert data["rewritten_query"] == "エゾシカの有効活用について教えて いつまで？"
    for bad in ("not json", '{"role": "user"}', '[{"role": "system", "content": "x"}]'):
        with pytest.raises(gr.Error) as e:
            app["ask"]("鹿は？", bad, req())
        assert e.value.message.startswith("history_json は")


def test_staff_tab_disabled_without_password(scripted, store):
    demo = create_app(scripted, feedback=store)
    texts = [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown)]
    assert STAFF_DISABLED in texts
    assert "VISION_QA_STAFF_PASSWORD" in STAFF_DISABLED
    fns = {f.api_name for f in demo.fns.values()}
    assert "staff_draft" not in fns and "staff_login" not in fns
    with pytest.raises(gr.Error) as e:
        {f.api_name: f.fn for f in demo.fns.values()}["draft"]("問い合わせ", "", req())
    assert e.value.message == "職員向け機能は無効です。利用するには、環境変数 VISION_QA_STAFF_PASSWORD にパスワードを設定してアプリを再起動してください。"


def test_staff_login_gate(app, scripted):
    assert app["staff_login"]("違う", req()) == (gr.update(visible=False), "", WRONG_PASSWORD, "", "")
    with pytest.raises(gr.Error) as e:
        app["staff_draft"]("鹿について", "", req())
    assert e.value.message == "先に職員用パスワードでログインしてください。"
    with pytest.raises(gr.Error) as e:  # a key that no login opened
        app["staff_draft"]("鹿について", "made-up-key", req())
    assert e.value.message == "先に職員用パスワードでログインしてください。"
    panel, key, status, box, cookie = app["staff_login"]("職員pw", req())
    assert (panel, status, box) == (gr.update(visible=True), "ログインしました。", "")
    assert cookie == key and len(key) >= 40 and app["staff_login"].__self__.downloads.is_open(key)
    assert scripted.calls == []


def _files(app, links_html: str) -> list[tuple[str, str]]:
    """(token, file name) of each download link."""
    return re.findall(r'href="vqa/download/([\w-]+)" download="([\w.-]+)"', links_html)


def test_staff_draft_outputs_and_downloads(app, scripted):
    downloads = app["staff_draft"].__self__.downloads
    key = app["staff_login"]("職員pw", req())[1]
    text, uncovered, cites, links = app["staff_draft"]("捕獲したエゾシカの活用について", key, req())
    assert text == ("お問い合わせありがとうございます。\n"
                    "ビジョンでは、捕獲したエゾシカの有効活用と地域ブランド化を推進するとしています[1]。")
    assert uncovered == ('<ul class="vqa-uncovered"><li>補助金の申請期限</li>'
                         '<li>記載のない事項&lt;img src=x onerror=alert(1)&gt;</li></ul>')
    assert '<blockquote class="vqa-quote">個体数管理等のために<mark>捕獲したエゾシカの</mark>有効<mark>活用</mark>の促進と、地域ブランド化の推進</blockquote>' in cites
    (txt_token, txt_name), (docx_token, docx_name) = _files(app, links)
    assert re.fullmatch(r"vision-qa-draft-\d{8}-\d{6}-[0-9a-f]{6}\.txt", txt_name)
    assert docx_name == txt_name.replace(".txt", ".docx")
    assert ">テキスト（.txt）をダウンロード</a>" in links and ">Word（.docx）をダウンロード</a>" in links
    assert downloads.take(txt_token, "another-session") == (403, None)  # not its owner: the file stays
    status, txt = downloads.take(txt_token, key)
    assert (status, txt.name, txt.media_type) == (200, txt_name, "text/plain; charset=utf-8")
    assert txt.data.decode("utf-8") == (
        "お問い合わせありがとうございます。\n"
        "ビジョンでは、捕獲したエゾシカの有効活用と地域ブランド化を推進するとしています[1]。\n\n"
        "【要確認事項】\n・補助金の申請期限\n・記載のない事項<img src=x onerror=alert(1)>\n\n"
        "【出典】\n[1] 釧路・根室連携地域「地域づくり推進ビジョン」／Ⅰ 地域のめざす姿 › "
        "１ 農林水産業をはじめとする地域産業の振興（2ページ）\n"
        "「個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進」\n\n"
        "出典：北海道「釧路・根室連携地域 地域づくり推進ビジョン」\n")
    assert downloads.take(txt_token, key) == (404, None)  # served once, then gone
    status, docx_file = downloads.take(docx_token, key)
    document = docx.Document(io.BytesIO(docx_file.data))
    assert [p.text for p in document.paragraphs] == [
        "回答案", "お問い合わせありがとうございます。",
        "ビジョンでは、捕獲したエゾシカの有効活用と地域ブランド化を推進するとしています[1]。",
        "要確認事項", "補助金の申請期限", "記載のない事項<img src=x onerror=alert(1)>",
        "出典", "[1] 釧路・根室連携地域「地域づくり推進ビジョン」／Ⅰ 地域のめざす姿 › １ 農林水産業をはじめとする地域産業の振興（2ページ）",
        "「個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進」",
        "出典：北海道「釧路・根室連携地域 地域づくり推進ビジョン」"]
    assert len(downloads) == 0


def test_api_draft_password(app, scripted):
    with pytest.raises(gr.Error) as e:
        app["draft"]("鹿について", "違う", req())
    assert e.value.message == WRONG_PASSWORD
    data = json.loads(app["draft"]("鹿について", "職員pw", req()))
    assert data == scripted.draft("鹿について").to_dict()
    with pytest.raises(gr.Error) as e:
        app["draft"]("あ" * 10001, "職員pw", req())
    assert e.value.message == "問い合わせは10000文字以内で入力してください（現在10001文字）。"


def test_rate_limiter_window_slides():
    from ui.limits import RateLimited, RateLimiter

    now = [1000.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    limiter.check("s")
    now[0] += 30
    limiter.check("s")
    with pytest.raises(RateLimited) as e:
        limiter.check("s")
    assert str(e.value) == "短時間に多くのリクエストがありました（1分あたり2回まで）。1分ほど待ってからもう一度お試しください。"
    limiter.check("other")
    now[0] += 30  # the first request is now a minute old
    limiter.check("s")
    RateLimiter(0).check("s")  # 0 turns the limit off


def test_create_app_from_settings(scripted, tmp_path, handlers_of):
    from vision_qa.settings import Settings

    from ui import create_app_from_settings

    settings = Settings(staff_password="pw", feedback_db=tmp_path / "fb.sqlite3", rate_limit_per_min=1,
                        max_question_chars=5)
    h = handlers_of(create_app_from_settings(scripted, settings))
    with pytest.raises(gr.Error, match="質問は5文字以内"):
        h["ask"]("123456", "[]", req())
    h["ask"]("鹿は？", "[]", req())
    with pytest.raises(gr.Error, match="1分あたり1回まで"):
        h["ask"]("鹿は？", "[]", req())
    assert h["staff_login"]("pw", req("t"))[2] == "ログインしました。"
