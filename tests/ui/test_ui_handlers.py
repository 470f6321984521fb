"""The handlers behind create_app's events, called directly (no server)."""
from __future__ import annotations

import copy
import io
import json
import re
from types import SimpleNamespace

import docx
import gradio as gr
import pytest

from ui import create_app, plan
from ui.handlers import LOGIN_FIRST, N_SUGGESTIONS, STAFF_DISABLED, WRONG_PASSWORD, empty_state

RATE_MSG = "短時間に多くのリクエストがありました（1分あたり3回まで）。1分ほど待ってからもう一度お試しください。"
SKIP = gr.skip()


def req(session="s1", host="192.0.2.1"):
    return gr.Request(session_hash=session, client={"host": host, "port": 0})


@pytest.fixture
def app(scripted, store, handlers_of):
    return handlers_of(create_app(scripted, feedback=store, staff_password="職員pw"))


def test_chat_shows_the_question_then_the_answer_and_sources(app, scripted):
    steps = list(app["chat_send"]("鹿肉って何か取り組みあるの？", None, req()))
    chat, sources, box, state, live, comment_box, row, *buttons = steps[0]
    assert chat == [{"role": "user", "content": "鹿肉って何か取り組みあるの？"},
                    {"role": "assistant", "content": "（回答を作成しています…）"}]
    assert (box, live, row) == ("", "回答を作成しています。", gr.update(visible=False))
    assert len(steps) == 2  # a placeholder, then the whole answer (nothing is shown before the guard)
    assert scripted.calls == [("ask", "鹿肉って何か取り組みあるの？", [])]
    chat, sources, box, state, live, comment_box, row, *buttons = steps[-1]
    assert box == SKIP
    answer_text = "捕獲したエゾシカの有効活用と地域ブランド化を推進するとしています[1]。"
    assert live == "回答：" + answer_text  # the live region announces the answer
    assert chat["feedback_value"] == [None]
    bubble = chat["value"][-1]
    assert bubble["role"] == "assistant"
    assert bubble["content"].startswith(
        '<div class="vqa-answer vqa-direct"><p><ruby>捕獲<rt>ほかく</rt></ruby>したエゾシカの<ruby>有効<rt>ゆうこう</rt></ruby>'
        '<ruby>活用<rt>かつよう</rt></ruby>と<ruby>地域<rt>ちいき</rt></ruby>ブランド<ruby>化<rt>か</rt></ruby>を'
        '<ruby>推進<rt>すいしん</rt></ruby>するとしています'
        '<a class="vqa-ref" href="#vqa-m0-c1"><span class="vqa-sr">出典</span>[1]</a>。</p>'
        '<details class="vqa-msg-sources" open lang="ja"><summary>出典（1件）</summary>'
        '<div class="vqa-citation" id="vqa-m0-c1" tabindex="-1">')
    assert state["history"] == [{"role": "user", "content": "鹿肉って何か取り組みあるの？"},
                                {"role": "assistant", "content": answer_text}]
    assert sources.startswith('<div class="vqa-sources"><section class="vqa-src" id="vqa-s0" aria-label="回答1の出典">'
                              '<div class="vqa-citation" id="vqa-s0-c1" tabindex="-1">')
    # the card: short label, the quote with the rare question word marked, the full heading path
    # linking to the bullet in ビジョンを読む, and the page
    assert '<mark>エゾシカ</mark>' in sources and "<mark>有効" not in sources
    assert ('<a class="vqa-plan-link" href="#vqa-plan-vision-0042">Ⅰ 地域のめざす姿 › １ 農林水産業をはじめとする地域産業の振興</a>'
            in sources)
    assert '<div class="vqa-page">2ページ</div>' in sources
    assert row == gr.update(visible=False)


def test_each_answer_keeps_its_own_sources_section(app, scripted):
    *_, first = app["chat_send"]("鹿肉って何か取り組みあるの？", None, req())
    *_, second = app["chat_send"]("ゼロカーボンは？", first[3], req())
    sources, state = second[1], second[3]
    assert state["count"] == 2 and len(state["answers"]) == 2
    assert '<section class="vqa-src" id="vqa-s0" aria-label="回答1の出典" hidden>' in sources
    assert '<section class="vqa-src" id="vqa-s1" aria-label="回答2の出典">' in sources
    assert 'href="#vqa-m1-c1"' in second[0]["value"][-1]["content"]


def test_hostile_question_is_escaped_in_chat_and_sources(app, scripted):
    hostile = scripted.HOSTILE
    *_, last = app["chat_send"](hostile, None, req())
    chat, sources = last[0]["value"], last[1]
    assert chat[0] == {"role": "user", "content": "&lt;img src=x onerror=alert(1)&gt;"}
    assert "&lt;img src=x onerror=alert(1)&gt;" in chat[1]["content"] and "<img" not in chat[1]["content"]
    assert last[3]["history"][0] == {"role": "user", "content": hostile}  # the assistant gets raw text
    assert '<span class="vqa-title">資料&lt;img src=x onerror=alert(1)&gt;</span>' in sources
    assert "Ⅰ &lt;b&gt;地域&lt;/b&gt;" in sources
    assert "<img" not in sources and "<b>" not in sources


def test_follow_up_passes_history_and_shows_rewritten_query(app, scripted):
    *_, first = app["chat_send"]("エゾシカの有効活用について教えて", None, req())
    *_, second = app["chat_submit"]("いつまで？", first[3], req())
    assert scripted.calls[-1] == ("ask", "いつまで？", first[3]["history"])
    assert '<p class="vqa-rewritten">検索した質問：エゾシカの有効活用について教えて いつまで？</p>' in second[1]
    assert '検索した質問：エゾシカの有効活用について教えて いつまで？' in second[0]["value"][-1]["content"]
    assert len(second[0]["value"]) == 4


def test_refusal_says_where_to_ask_and_suggestions_ask_their_question(app, scripted):
    *_, last = app["chat_send"]("宇宙開発は？", None, req())
    bubble = last[0]["value"][-1]["content"]
    assert bubble.startswith('<div class="vqa-answer vqa-refusal">')
    assert "お<ruby>住<rt>す</rt></ruby>まいの<ruby>市町村<rt>しちょうそん</rt></ruby>の<ruby>窓口<rt>まどぐち</rt></ruby>" in bubble
    assert '<p class="vqa-note">ビジョンには、この質問への答えはありません。近い記述を示します。</p>' in last[1]
    assert '<span class="vqa-label">３ 「ゼロカーボン<ruby>北海道<rt>ほっかいどう</rt></ruby>」' in last[1]
    row, buttons = last[6], list(last[7:])
    assert row == gr.update(visible=True)
    assert buttons == [gr.update(visible=True, value=scripted.SUGGESTIONS[0]),
                       gr.update(visible=True, value=scripted.SUGGESTIONS[1])] + [
                       gr.update(visible=False, value="")] * (N_SUGGESTIONS - 2)
    *_, asked = app["suggestion_1"](scripted.SUGGESTIONS[1], last[3], req())
    assert scripted.calls[-1][1] == "「主な施策の方向３（ゼロカーボン北海道・自然環境）」の施策を全部教えて"
    assert asked[0]["value"][-2]["content"] == "「主な施策の方向３（ゼロカーボン北海道・自然環境）」の施策を全部教えて"


def test_example_buttons_ask_and_new_conversation_clears(app, scripted):
    *_, last = app["example_1"]("ゼロカーボンに関する施策を全部教えて", None, req())
    assert "ゼロカーボン" in last[1]
    chat, sources, box, state, live, comment_box, row, *buttons = app["new_conversation"]()
    assert (chat, box, state, live) == ([], "", empty_state(), "新しい会話を始めました。")
    assert sources.startswith('<div class="vqa-sources"><p class="vqa-empty">質問すると')


def test_the_plan_page_is_rendered_once_per_generation(app, scripted, monkeypatch):
    h = app["plan_ask"].__self__
    rendered = []
    real = plan.plan_html
    monkeypatch.setattr(plan, "plan_html", lambda outline, furigana: rendered.append(outline) or real(outline, furigana))
    outline = scripted.current().outline
    first = h.plan_page()
    assert h.plan_page() == first and len(rendered) == 1  # another page load, the same generation
    later = copy.copy(outline)  # an ingest switched generations: a new outline
    monkeypatch.setattr(scripted, "current", lambda: SimpleNamespace(outline=later))
    assert h.plan_page() == first and len(rendered) == 2 and rendered[0] is outline and rendered[1] is later


def test_plan_tab_from_the_outline_and_asking_about_a_bullet(app, scripted):
    h = app["plan_ask"].__self__
    page = h.plan_page()
    assert page.startswith('<div class="vqa-plan" lang="ja"><h2 class="vqa-plan-title">釧路・根室連携地域「地域づくり推進ビジョン」</h2>')
    deer = scripted.DEER.quote
    assert ('<li class="vqa-plan-unit" id="vqa-plan-vision-0042" tabindex="-1"><span class="vqa-plan-text">'
            '<ruby>個体<rt>こたい</rt></ruby>') in page
    assert f'<button type="button" class="vqa-plan-ask" data-q="「{deer}」について教えて">この項目について質問する</button>' in page
    assert '<p class="vqa-plan-label">主な施策の方向１（農林水産業・地域産業）</p>' in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img" not in page
    steps = list(h.ask_from_plan(None, gr.EventData(None, {"question": f"「{deer}」について教えて"}), req()))
    tabs, chat, *_ = steps[-1]
    assert tabs == gr.update(selected="residents")
    assert scripted.calls[-1] == ("ask", f"「{deer}」について教えて", [])
    assert list(h.ask_from_plan(None, gr.EventData(None, {}), req())) == []  # a click beside the buttons


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
    for key in ("", "made-up-key"):  # no login, or a key that no login opened: one plain message
        assert app["staff_draft"]("鹿について", key, req()) == (SKIP, SKIP, SKIP, SKIP, LOGIN_FIRST)
    panel, key, status, box, cookie = app["staff_login"]("職員pw", req())
    assert (panel, status, box) == (gr.update(visible=True), "ログインしました。", "")
    assert cookie == key and len(key) >= 40 and app["staff_login"].__self__.downloads.is_open(key)
    assert scripted.calls == []


@pytest.mark.parametrize(("inquiry", "message"), [
    ("", "問い合わせを入力してください。"),
    ("   ", "問い合わせを入力してください。"),
    ("あ" * 10001, "問い合わせは10000文字以内で入力してください（現在10001文字）。"),
])
def test_a_bad_inquiry_is_one_plain_message(app, scripted, inquiry, message):
    key = app["staff_login"]("職員pw", req())[1]
    assert app["staff_draft"](inquiry, key, req()) == (SKIP, SKIP, SKIP, SKIP, message)
    assert scripted.calls == []


def _files(app, links_html: str) -> list[tuple[str, str]]:
    """(token, file name) of each download link."""
    return re.findall(r'href="vqa/download/([\w-]+)" download="([\w.-]+)"', links_html)


def test_staff_draft_outputs_and_downloads(app, scripted):
    downloads = app["staff_draft"].__self__.downloads
    key = app["staff_login"]("職員pw", req())[1]
    text, uncovered, cites, links, status = app["staff_draft"]("捕獲したエゾシカの活用について", key, req())
    assert text == scripted.DRAFT_TEXT and "要確認" not in text  # only what goes to the resident
    assert status == "回答案を作成しました。"
    assert uncovered == ('<ul class="vqa-uncovered"><li>補助金の申請期限</li>'
                         '<li>記載のない事項&lt;img src=x onerror=alert(1)&gt;</li></ul>')
    assert cites.startswith('<div class="vqa-sources"><div class="vqa-citation" id="vqa-d-c1" tabindex="-1">')
    (txt_token, txt_name), (docx_token, docx_name) = _files(app, links)
    assert re.fullmatch(r"vision-qa-draft-\d{8}-\d{6}-[0-9a-f]{6}\.txt", txt_name)
    assert docx_name == txt_name.replace(".txt", ".docx")
    assert ">テキスト（.txt）をダウンロード</a>" in links and ">Word（.docx）をダウンロード</a>" in links
    assert downloads.take(txt_token, "another-session") == (403, None)  # not its owner: the file stays
    status, txt = downloads.take(txt_token, key)
    assert (status, txt.name, txt.media_type) == (200, txt_name, "text/plain; charset=utf-8")
    body = txt.data.decode("utf-8")
    assert body == (scripted.DRAFT_TEXT + "\n\n" + "―" * 20 + "\n"
                    "【要確認事項】（職員用：送信前に確認し、この欄は送らないでください）\n"
                    "・補助金の申請期限\n・記載のない事項<img src=x onerror=alert(1)>\n")
    assert (body.count("【出典】"), body.count("要確認事項"), body.count("補助金の申請期限")) == (1, 1, 1)
    assert downloads.take(txt_token, key) == (404, None)  # served once, then gone
    status, docx_file = downloads.take(docx_token, key)
    paragraphs = [p.text for p in docx.Document(io.BytesIO(docx_file.data)).paragraphs]
    assert paragraphs == ["回答案", *scripted.DRAFT_TEXT.split("\n"),
                          "【要確認事項】（職員用：送信前に確認し、この欄は送らないでください）",
                          "補助金の申請期限", "記載のない事項<img src=x onerror=alert(1)>"]
    assert (sum("【出典】" in p for p in paragraphs), sum("要確認事項" in p for p in paragraphs)) == (1, 1)
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
