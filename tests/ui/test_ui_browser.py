"""A resident's view in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from ui import FeedbackStore, create_app, launch
from ui.downloads import NOT_LOGGED_IN
from ui.gate import BUSY

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
TIMEOUT_MS = 20_000


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
def served(browser, tmp_path_factory, assistant_cls, free_port):
    assistant = assistant_cls(delay=0.05)
    store = FeedbackStore(tmp_path_factory.mktemp("fb") / "feedback.sqlite3")
    demo = create_app(assistant, feedback=store, staff_password="staff-pw")
    url = launch(demo, port=free_port(), prevent_thread_lock=True)
    try:
        yield SimpleNamespace(url=url, assistant=assistant, store=store)
    finally:
        demo.close()


@pytest.fixture
def page(browser, served):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(served.url)
    page.wait_for_selector("#vqa-question")
    try:
        yield page
    finally:
        context.close()


def ask(page, question: str) -> None:
    page.locator("#vqa-question").locator("textarea, input").first.fill(question)
    page.click("#vqa-send")


def test_question_answer_sources_feedback_and_screenshot(page, served):
    ask(page, "鹿肉って何か取り組みあるの？")
    quote = page.locator("#vqa-sources .vqa-quote")
    quote.wait_for()
    assert quote.inner_text() == "個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進"
    assert page.locator("#vqa-sources .vqa-section").inner_text() == (
        "Ⅰ 地域のめざす姿 › １ 農林水産業をはじめとする地域産業の振興")
    bot = page.locator('#vqa-chat [data-testid="bot"]').last
    page.wait_for_function(
        "() => [...document.querySelectorAll('#vqa-chat [data-testid=\"bot\"]')]"
        ".some(e => e.innerText.includes('としています[1]。'))")
    assert bot.inner_text().strip() == "捕獲したエゾシカの有効活用と地域ブランド化を推進するとしています[1]。"
    assert "出典：北海道「釧路・根室連携地域 地域づくり推進ビジョン」" in page.locator("#vqa-attribution").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "residents-answer.png"), full_page=True)

    page.locator("#vqa-up").click()
    page.locator("#vqa-feedback-status", has_text="ご意見ありがとうございました").wait_for()
    rows = served.store.list()
    assert [(r["rating"], r["question"]) for r in rows] == [(1, "鹿肉って何か取り組みあるの？")]


def test_markup_in_a_question_is_shown_as_text_and_never_runs(page, served):
    hostile = "<img src=x onerror=alert(1)>"
    ask(page, hostile)
    page.locator("#vqa-sources .vqa-quote", has_text="onerror").wait_for()
    page.wait_for_timeout(500)  # give any injected handler time to fire
    assert hostile in page.locator('#vqa-chat [data-testid="user"]').last.inner_text()
    assert page.locator("#vqa-sources .vqa-quote").inner_text() == f"記述{hostile}です"
    assert page.locator("#vqa-sources mark").inner_text() == hostile
    assert page.locator('#vqa-chat img[src="x"], #vqa-sources img').count() == 0
    assert page.dialogs == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "residents-markup-as-text.png"), full_page=True)


def test_abstention_suggestion_button_asks_about_the_section(page, served):
    ask(page, "宇宙開発は？")
    section = served.assistant.SUGGESTIONS[0]
    button = page.locator("#vqa-suggestions button", has_text=section)
    button.wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "residents-suggestions.png"), full_page=True)
    button.click()
    page.locator("#vqa-sources .vqa-quote").wait_for()
    question = f"「{section}」について教えてください"
    page.locator('#vqa-chat [data-testid="user"]', has_text=question).wait_for()
    assert ("ask", question) in [(kind, q) for kind, q, _ in served.assistant.calls]


def test_staff_login_draft_and_docx_download(page, served, tmp_path):
    import docx

    page.get_by_role("tab", name="職員向け").click()
    page.locator("#vqa-staff-password input").fill("wrong")
    page.get_by_role("button", name="ログイン").click()
    page.get_by_text("パスワードが違います。").wait_for()
    assert not page.locator("#vqa-inquiry textarea").is_visible()
    page.locator("#vqa-staff-password input").fill("staff-pw")
    page.get_by_role("button", name="ログイン").click()
    page.get_by_text("ログインしました。").wait_for()
    page.locator("#vqa-inquiry textarea").fill("エゾシカの活用について教えてください")
    page.get_by_role("button", name="回答案を作成").click()
    page.get_by_text("補助金の申請期限").wait_for()
    assert page.locator("#vqa-draft textarea").input_value().startswith("お問い合わせありがとうございます。")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "staff-draft.png"), full_page=True)
    with page.expect_download() as info:
        page.get_by_role("link", name="Word（.docx）をダウンロード").click()
    saved = tmp_path / "draft.docx"
    info.value.save_as(saved)
    assert info.value.suggested_filename.endswith(".docx")
    assert docx.Document(str(saved)).paragraphs[0].text == "回答案"
    # The link is this browser's only: another browser (no staff cookie) is refused.
    href = page.get_by_role("link", name="テキスト（.txt）をダウンロード").get_attribute("href")
    other = page.context.browser.new_context()
    try:
        response = other.request.get(f"{served.url.rstrip('/')}/{href}")
        assert (response.status, response.text()) == (403, NOT_LOGGED_IN)
    finally:
        other.close()
    assert page.context.request.get(f"{served.url.rstrip('/')}/{href}").status == 200


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
        page.wait_for_selector("#vqa-question")
        ask(page, "鹿肉って何か取り組みあるの？")
        page.get_by_role("button", name="ゼロカーボンに関する施策を全部教えて").click()
        page.locator('[data-testid="toast-text"]', has_text=BUSY).wait_for()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "residents-busy.png"), full_page=True)
        # the first question is still answered
        page.locator("#vqa-sources .vqa-quote").first.wait_for()
        assert [q for kind, q, _ in assistant.calls] == ["鹿肉って何か取り組みあるの？"]
    finally:
        context.close()
        demo.close()
