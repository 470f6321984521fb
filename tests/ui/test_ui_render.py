"""Exact HTML of the sources panel and chat text; every piece of text escaped."""
from __future__ import annotations

from assistant.types import Answer, Citation
from ui import render

HOSTILE = "<img src=x onerror=alert(1)>"


def test_citation_html_exact_with_highlight_and_page(scripted):
    html = render.citation_html(scripted.DEER, "エゾシカの有効活用について教えて")
    assert html == (
        '<div class="vqa-citation" id="vqa-cite-1">'
        '<div><span class="vqa-n">[1]</span><span class="vqa-title">釧路・根室連携地域「地域づくり推進ビジョン」</span></div>'
        '<div class="vqa-section">Ⅰ 地域のめざす姿 › １ 農林水産業をはじめとする地域産業の振興</div>'
        '<blockquote class="vqa-quote">個体数管理等のために捕獲した<mark>エゾシカの有効活用</mark>の促進と、地域ブランド化の推進</blockquote>'
        '<div class="vqa-page">2ページ</div>'
        '</div>'
    )


def test_citation_html_escapes_markup_in_title_section_and_quote():
    cite = Citation(n=3, chunk_id="c", source="s.txt", title='資料"<script>alert(1)</script>',
                    section=("Ⅰ", "<b>太字</b>"), quote=f"記述{HOSTILE}です", page=None)
    html = render.citation_html(cite, f"これは{HOSTILE}？")
    assert html == (
        '<div class="vqa-citation" id="vqa-cite-3">'
        '<div><span class="vqa-n">[3]</span><span class="vqa-title">資料&quot;&lt;script&gt;alert(1)&lt;/script&gt;</span></div>'
        '<div class="vqa-section">Ⅰ › &lt;b&gt;太字&lt;/b&gt;</div>'
        '<blockquote class="vqa-quote">記述<mark>&lt;img src=x onerror=alert(1)&gt;</mark>です</blockquote>'
        '</div>'
    )
    assert "<img" not in html and "<script" not in html and "<b>" not in html


def test_highlight_skips_particles_and_trims_leading_hiragana():
    # 「の」「について」 are shared with the quote but are not terms; 「の取組」 → 「取組」.
    assert render.highlight("地域の取組を推進します", "地域について、の取組は？") == (
        "<mark>地域</mark>の<mark>取組</mark>を推進します")
    assert render.highlight("について", "について") == "について"
    assert render.highlight("a<b", "") == "a&lt;b"


def test_sources_html_shows_rewritten_query_escaped(scripted):
    answer = Answer(question="いつまで？", rewritten_query=f"エゾシカの有効活用はいつまで？{HOSTILE}",
                    text="…[1]", citations=[scripted.DEER], coverage="direct", mode="extractive")
    html = render.sources_html(answer)
    assert html.splitlines()[0:2] == [
        '<div class="vqa-sources">',
        '<p class="vqa-rewritten">検索した質問：エゾシカの有効活用はいつまで？&lt;img src=x onerror=alert(1)&gt;</p>',
    ]
    assert html.splitlines()[-1] == "</div>"
    assert "<mark>エゾシカの有効活用</mark>" in html


def test_sources_html_hides_rewritten_query_when_same(scripted):
    answer = Answer(question="鹿は？", rewritten_query=" 鹿は？ ", text="…", citations=[scripted.DEER],
                    coverage="direct", mode="extractive")
    assert "検索した質問" not in render.sources_html(answer)


def test_sources_html_on_abstention(scripted):
    answer = scripted.answer_for("宇宙開発は？", [])
    assert render.sources_html(answer) == (
        '<div class="vqa-sources">\n'
        '<p class="vqa-empty">ビジョンの中に、この質問に答える記述が見つかりませんでした。'
        '質問欄の下の「近い項目」から選んで質問できます。</p>\n'
        '</div>')


def test_chat_text_and_uncovered_are_escaped():
    assert render.chat_text(HOSTILE) == "&lt;img src=x onerror=alert(1)&gt;"
    assert render.uncovered_html(["期限", HOSTILE]) == (
        '<ul class="vqa-uncovered"><li>期限</li><li>&lt;img src=x onerror=alert(1)&gt;</li></ul>')
    assert render.uncovered_html([]) == '<p class="vqa-empty">要確認事項はありません。</p>'
    assert render.suggestion_question("観光") == "「観光」について教えてください"
