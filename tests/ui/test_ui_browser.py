"""Residents and staff in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright),
over the real assistant and the bundled plan: layout at 1280 and 390 px, axe-core on every
state, the keyboard-only flow, feedback, ふりがな and copy, the plan tab, the staff tab."""
from __future__ import annotations

import io
import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from assistant.build import build_assistant
from ui import FeedbackStore, create_app, launch
from ui.furigana import Furigana
from ui.gate import BUSY, WebLimits
from ui.handlers import VOTED

pytestmark = [
    pytest.mark.slow,
    # noise from gradio's own queue code under pandas 3, not from ours
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated:Warning"),
]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
ARTIFACTS = Path(__file__).parent / "artifacts"
READINGS = Path(__file__).resolve().parents[2] / "corpus" / "readings.toml"
TIMEOUT_MS = 30_000
WIDTHS = {1280: 900, 390: 844}
DEER_Q = "エゾシカの有効活用について教えて"
DEER = "個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進"
NOT_COVERED_Q = "宇宙ロケットの打ち上げ計画は？"
CONTACT = "くわしくは、北海道 釧路総合振興局・根室振興局、またはお住まいの市町村の窓口にお問い合わせください。"


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        reason = f"browser tests skipped: no Chromium at {CHROMIUM} (apt-get install -y chromium)"
        print(reason)
        pytest.skip(reason)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "browser tests skipped: playwright is not installed (pip install playwright)"
        print(reason)
        pytest.skip(reason)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def served(browser, vision_index, tmp_path_factory, free_port):
    """One app over the real assistant for the whole module."""
    assistant = build_assistant(vision_index)
    store = FeedbackStore(tmp_path_factory.mktemp("fb") / "feedback.sqlite3")
    demo = create_app(assistant, feedback=store, staff_password="staff-pw", rate_limit_per_min=1000,
                      furigana=Furigana.from_file(READINGS), web=WebLimits(client_max_pending=8))
    url = launch(demo, port=free_port(), prevent_thread_lock=True)
    try:
        yield SimpleNamespace(url=url, assistant=assistant, store=store)
    finally:
        demo.close()


def open_page(browser, url: str, width: int = 1280, **context):
    ctx = browser.new_context(viewport={"width": width, "height": WIDTHS[width]}, locale="ja-JP", **context)
    page = ctx.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector("#vqa-question textarea")
    return page


@pytest.fixture(params=sorted(WIDTHS), ids=lambda w: f"{w}px")
def page(request, browser, served):
    page = open_page(browser, served.url, request.param)
    page.width = request.param
    try:
        yield page
    finally:
        page.context.close()


def ask(page, question: str) -> None:
    n = page.locator("#vqa-chat .vqa-answer").count()
    page.locator("#vqa-question textarea").fill(question)
    page.click("#vqa-send")
    page.locator("#vqa-chat .vqa-answer").nth(n).wait_for()


def shot(page, name: str, full_page: bool = False) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{page.viewport_size['width']}.png"), full_page=full_page)


def axe_violations(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    page.mouse.move(0, 0)  # no control is hovered: its resting colours are the ones checked
    results = Axe().run(page)  # every rule axe runs by default, best practices included
    return [f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in results.response["violations"]]


def no_overflow(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


# -- residents ----------------------------------------------------------------------------

def test_layout_answer_and_its_sources(page, served):
    assert page.evaluate("document.documentElement.lang") == "ja"
    send = page.locator("#vqa-send").bounding_box()
    assert send["y"] + send["height"] <= page.viewport_size["height"]  # 送信 on the first screen
    assert send["x"] + send["width"] <= page.viewport_size["width"]
    assert no_overflow(page)
    if page.width < 700:  # an empty chat does not take half the first screen
        assert page.locator("#vqa-chat").bounding_box()["height"] < page.viewport_size["height"] / 4
    shot(page, "residents-empty")
    ask(page, DEER_Q)
    assert no_overflow(page)
    answer = page.locator("#vqa-chat .vqa-answer").last
    assert DEER in answer.inner_text()
    # a screen reader reads the message itself, not a name made of its HTML source
    assert page.locator('#vqa-chat [data-testid="bot"][aria-label], #vqa-chat [data-testid="user"][aria-label]'
                        ).count() == 0
    names = page.locator("#vqa-chat button").evaluate_all("bs => bs.map(b => b.getAttribute('aria-label'))")
    assert names and all(re.search("[ぁ-んァ-ヶ一-龥]", n or "") for n in names), names  # in Japanese, like the page
    if page.width < 700:  # the sources sit under the answer, the side panel is gone
        assert not page.locator("#vqa-side").is_visible()
        answer.locator("ul.vqa-quotes").scroll_into_view_if_needed()
        text_bottom = answer.locator("ul.vqa-quotes").bounding_box()
        card = page.locator("#vqa-m0-c1").bounding_box()
        assert 0 <= card["y"] - (text_bottom["y"] + text_bottom["height"]) <= 400
        assert page.locator(".vqa-narrow").is_visible() and not page.locator(".vqa-wide").first.is_visible()
    else:
        assert page.locator("#vqa-s0-c1").is_visible() and not page.locator("#vqa-m0-c1").is_visible()
        assert page.locator(".vqa-wide").first.is_visible() and not page.locator(".vqa-narrow").is_visible()
    card = page.locator("#vqa-m0-c1" if page.width < 700 else "#vqa-s0-c1")
    assert card.locator(".vqa-quote").inner_text() == DEER
    assert [m.inner_text() for m in card.locator("mark").all()] == ["エゾシカ", "有効活用"]
    assert card.locator(".vqa-label").inner_text() == "主な施策の方向１（農林水産業・地域産業）"
    assert card.locator(".vqa-plan-link").inner_text() == (
        "連携地域の主な施策の方向（今後５年程度） › １ 農林水産業をはじめとする地域産業の振興")
    assert page.locator("#vqa-live").get_attribute("aria-live") == "polite"
    assert page.locator("#vqa-live").inner_text().startswith("回答：ビジョンの「主な施策の方向１")
    shot(page, "residents-answer")
    assert axe_violations(page) == []


def test_refusal_says_where_to_ask_and_a_suggestion_lists_a_whole_direction(page, served):
    ask(page, NOT_COVERED_Q)
    refusal = page.locator("#vqa-chat .vqa-refusal").last
    assert refusal.locator("p").first.inner_text() == "ビジョンには、この質問についての記載がありません。" + CONTACT
    labels = page.locator("#vqa-m0-c1, #vqa-m0-c2, #vqa-m0-c3" if page.width < 700 else
                          "#vqa-s0 .vqa-label").all_inner_texts()
    assert len(labels) == 3 and all(label for label in labels)
    shot(page, "residents-refusal")
    assert axe_violations(page) == []
    assert no_overflow(page)
    page.locator("#vqa-furigana input").check()
    assert page.locator("#vqa-chat .vqa-refusal rt").first.is_visible()
    shot(page, "residents-refusal-furigana")
    page.locator("#vqa-furigana input").uncheck()
    suggestion = page.locator("#vqa-suggestions button", has_text="主な施策の方向３").first
    question = suggestion.inner_text()
    assert question == "「主な施策の方向３（ゼロカーボン北海道・自然環境）」の施策を全部教えて"
    suggestion.click()
    page.locator("#vqa-chat .vqa-answer").nth(1).wait_for()
    gen = served.assistant.current()
    heading = next(h for h in gen.outline.headings if h.text.startswith("３"))
    bullets = gen.outline.bullets[(heading.source, heading.section + (heading.text,))]
    quotes = page.locator("#vqa-chat .vqa-answer").nth(1).locator("ul.vqa-quotes li")
    assert quotes.count() == len(bullets) == 5  # the whole direction, not a part of it


def test_english_answer_is_marked_english(browser, served):
    page = open_page(browser, served.url)
    try:
        ask(page, "Is there anything about deer hunting?")
        assert page.locator("#vqa-chat .vqa-answer").last.get_attribute("lang") == "en"
        assert page.locator("#vqa-chat .vqa-answer li").first.get_attribute("lang") == "ja"
    finally:
        page.context.close()


def test_one_feedback_row_per_answer_and_a_comment_after_the_vote(browser, served):
    page = open_page(browser, served.url)
    try:
        assert not page.locator("#vqa-comment").is_visible()  # no feedback form before an answer
        ask(page, "鹿肉って何か取り組みあるの？")
        chat = page.locator("#vqa-chat")  # the answer's thumbs are the chat's last ones
        chat.get_by_role("button", name="よくないね").last.click()
        page.locator("#vqa-feedback-status", has_text=VOTED).wait_for()
        chat.get_by_role("button", name="いいね").last.click()  # changes the vote
        page.locator("#vqa-comment textarea").fill("わかりやすかった")
        page.locator("#vqa-comment-send").click()
        page.locator("#vqa-feedback-status", has_text="ご意見ありがとうございました").wait_for()
        rows = [r for r in served.store.list() if r["question"] == "鹿肉って何か取り組みあるの？"]
        assert [(r["rating"], r["comment"]) for r in rows] == [(1, "わかりやすかった")]
    finally:
        page.context.close()


def focus_until(page, predicate_js: str, limit: int = 60) -> None:
    """Press Tab until the focused element satisfies ``predicate_js`` (an expression of ``e``)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(() => {{ const e = document.activeElement; return !!(e && ({predicate_js})); }})()"):
            return
    raise AssertionError(f"Tab never reached {predicate_js}")


def focus_visible(page) -> bool:
    return page.evaluate("""(() => { const s = getComputedStyle(document.activeElement);
        return (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2) || s.boxShadow !== 'none'; })()""")


def test_the_resident_flow_by_keyboard_alone(browser, served):
    page = open_page(browser, served.url)
    try:
        focus_until(page, "e.closest('#vqa-question')")
        assert focus_visible(page)
        page.keyboard.type(DEER_Q)
        page.keyboard.press("Enter")  # send
        page.locator("#vqa-chat .vqa-answer").first.wait_for()
        focus_until(page, "e.matches('a.vqa-ref')")  # the answer's [1]
        assert page.evaluate("document.activeElement.textContent") == "出典[1]"
        assert focus_visible(page)
        page.keyboard.press("Enter")  # read the source: focus moves to its card
        assert page.evaluate("document.activeElement.id") == "vqa-s0-c1"
        assert focus_visible(page)
        focus_until(page, "e.getAttribute('aria-label') === 'いいね'")  # vote
        assert focus_visible(page)
        page.keyboard.press("Enter")
        page.locator("#vqa-feedback-status", has_text=VOTED).wait_for()
        focus_until(page, "e.id === 'vqa-new'")  # a new chat
        assert focus_visible(page)
        page.keyboard.press("Enter")
        page.locator("#vqa-chat .vqa-answer").first.wait_for(state="detached")
        assert [r["rating"] for r in served.store.list() if r["question"] == DEER_Q] == [1]
    finally:
        page.context.close()


def test_furigana_shows_readings_and_copy_gives_the_plain_quote(page, served):
    assert page.locator("rt").count() == 0 or not page.locator("rt").first.is_visible()  # off by default
    page.locator("#vqa-furigana input").check()
    ask(page, DEER_Q)
    card = page.locator("#vqa-m0-c1" if page.width < 700 else "#vqa-s0-c1")
    card.scroll_into_view_if_needed()
    rubies = card.locator(".vqa-quote ruby").all()
    reading = {r.evaluate("e => e.firstChild.textContent"): r.locator("rt").inner_text() for r in rubies}
    assert reading["有効"] + reading["活用"] == "ゆうこうかつよう"
    assert card.locator(".vqa-quote rt").first.is_visible()
    shot(page, "residents-furigana")
    # select the quote and copy it the way a resident does
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    card.locator(".vqa-quote").evaluate("""e => { const r = document.createRange(); r.selectNodeContents(e);
        const s = getSelection(); s.removeAllRanges(); s.addRange(r); }""")
    page.keyboard.press("Control+C")
    assert page.evaluate("navigator.clipboard.readText()") == DEER
    assert axe_violations(page) == []


def test_furigana_on_the_kushiro_marsh(browser, served):
    page = open_page(browser, served.url)
    try:
        page.locator("#vqa-furigana input").check()
        ask(page, "釧路湿原の保全は？")
        quote = page.locator("#vqa-s0 .vqa-quote").first
        # the quote with its readings left out, as a resident copies it
        plain = quote.evaluate("e => { const c = e.cloneNode(true); c.querySelectorAll('rt').forEach(r => r.remove());"
                               " return c.textContent; }")
        assert plain.startswith("釧路湿原")
        readings = quote.evaluate("e => [...e.querySelectorAll('ruby')].map(r => [r.firstChild.textContent,"
                                  " r.querySelector('rt').textContent])")
        assert readings[:2] == [["釧路", "くしろ"], ["湿原", "しつげん"]]
    finally:
        page.context.close()


def test_a_section_link_opens_the_plan_at_that_bullet(page, served):
    ask(page, DEER_Q)
    link = page.locator("#vqa-m0-c1 .vqa-plan-link" if page.width < 700 else "#vqa-s0-c1 .vqa-plan-link")
    link.scroll_into_view_if_needed()
    link.click()
    gen = served.assistant.current()
    chunk = next(c for c in gen.index.chunks if c.text == DEER)
    bullet = page.locator(f"#vqa-plan-{chunk.id}")
    bullet.wait_for()
    page.wait_for_function(f"document.getElementById('vqa-plan-{chunk.id}').classList.contains('vqa-plan-hit')")
    box = bullet.bounding_box()
    assert 0 <= box["y"] and box["y"] + box["height"] <= page.viewport_size["height"]  # scrolled to it
    assert page.evaluate("document.activeElement.id") == f"vqa-plan-{chunk.id}"
    # the whole plan, as its structure, in its own words
    assert page.locator(".vqa-plan-card").count() == len(gen.outline.headings) == 5
    assert page.locator(".vqa-plan-slogan p").inner_text() == gen.outline.slogan[0].text
    assert page.locator(".vqa-plan-statements li").count() == len(gen.outline.statements)
    assert no_overflow(page)
    shot(page, "plan-tab")
    assert axe_violations(page) == []
    page.locator("#vqa-furigana input").check()
    assert bullet.locator("rt").first.is_visible()
    assert no_overflow(page)
    bullet.scroll_into_view_if_needed()
    shot(page, "plan-tab-furigana")
    assert axe_violations(page) == []
    page.locator("#vqa-furigana input").uncheck()
    # a bullet's button asks about it in the chat
    other = page.locator(".vqa-plan-card").nth(2).locator(".vqa-plan-ask").first
    other.click()
    page.locator("#vqa-chat .vqa-answer").nth(1).wait_for()
    asked = page.locator('#vqa-chat [data-testid="user"]').last.inner_text()
    first = gen.outline.bullets[(gen.outline.headings[2].source,
                                 gen.outline.headings[2].section + (gen.outline.headings[2].text,))][0]
    assert asked == f"「{first.text}」について教えて"


def test_markup_in_a_question_is_shown_as_text_and_never_runs(browser, served):
    page = open_page(browser, served.url)
    try:
        hostile = "<img src=x onerror=alert(1)>"
        ask(page, hostile)
        assert hostile in page.locator('#vqa-chat [data-testid="user"]').last.inner_text()
        assert page.locator('#vqa-chat img[src="x"], #vqa-sources img').count() == 0
        assert page.dialogs == []
    finally:
        page.context.close()


# -- staff ----------------------------------------------------------------------------------

def test_staff_draft_panels_downloads_and_a_plain_message(page, served):
    page.get_by_role("tab", name="職員向け").click()
    page.locator("#vqa-staff-password input").fill("staff-pw")
    page.get_by_role("button", name="ログイン").click()
    page.get_by_text("ログインしました。").wait_for()
    page.locator("#vqa-make").click()  # an empty inquiry
    page.locator("#vqa-staff-status", has_text="問い合わせを入力してください。").wait_for()
    assert page.locator('[data-testid="toast-body"], .toast-body').count() == 0
    assert page.get_by_text("Error", exact=True).count() == 0 and page.get_by_text("エラー", exact=True).count() == 0
    page.locator("#vqa-inquiry textarea").fill("お世話になっております。エゾシカの活用と、その予算について教えてください。")
    page.locator("#vqa-make").click()
    page.locator("#vqa-staff-status", has_text="回答案を作成しました。").wait_for()
    reply = page.locator("#vqa-draft textarea").input_value()
    assert reply.count("【出典】") == 1 and "要確認" not in reply
    assert page.locator("#vqa-uncovered-box li").count() >= 1
    assert no_overflow(page)
    shot(page, "staff-draft", full_page=True)
    assert axe_violations(page) == []
    with page.expect_download() as info:
        page.get_by_role("link", name="テキスト（.txt）をダウンロード").click()
    body = Path(info.value.path()).read_text(encoding="utf-8")
    assert body.startswith(reply) and (body.count("【出典】"), body.count("要確認事項")) == (1, 1)
    with page.expect_download() as info:
        page.get_by_role("link", name="Word（.docx）をダウンロード").click()
    import docx

    paragraphs = [p.text for p in docx.Document(io.BytesIO(Path(info.value.path()).read_bytes())).paragraphs]
    assert sum("【出典】" in p for p in paragraphs) == 1 and sum("要確認事項" in p for p in paragraphs) == 1


def test_a_resident_over_the_limit_is_told_the_app_is_busy(browser, tmp_path, assistant_cls, free_port):
    """A page may have one answer pending: a second question while the first is being
    answered is refused by the server, and the page says so in Japanese."""
    assistant = assistant_cls(delay=3.0)
    demo = create_app(assistant, feedback=FeedbackStore(tmp_path / "fb.sqlite3"))
    url = launch(demo, port=free_port(), prevent_thread_lock=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        page.wait_for_selector("#vqa-question textarea")
        page.locator("#vqa-question textarea").fill("鹿肉って何か取り組みあるの？")
        page.click("#vqa-send")
        page.get_by_role("button", name="ゼロカーボンに関する施策を全部教えて").click()
        page.locator('[data-testid="toast-text"]', has_text=BUSY).wait_for()
        # the first question is still answered
        page.locator("#vqa-sources .vqa-quote").first.wait_for()
        assert [q for kind, q, _ in assistant.calls] == ["鹿肉って何か取り組みあるの？"]
        assert re.search("エゾシカ", page.locator("#vqa-sources").inner_text())
    finally:
        context.close()
        demo.close()
