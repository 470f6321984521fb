"""Exact HTML of answers, source cards and the side panel; every piece of text escaped."""
from __future__ import annotations

from assistant.types import Answer, Citation
from ui import render

HOSTILE = "<img src=x onerror=alert(1)>"


def test_citation_card_exact_with_label_highlight_path_link_and_page(scripted):
    card = render.citation_html(scripted.DEER, "vqa-s0-c1", marks=["エゾシカ", "有効", "活用"])
    assert card == (
        '<div class="vqa-citation" id="vqa-s0-c1" tabindex="-1">'
        '<div class="vqa-card-head"><span class="vqa-n">[1]</span>'
        '<span class="vqa-label">１ 農林水産業をはじめとする地域産業の振興</span></div>'
        '<blockquote class="vqa-quote">個体数管理等のために捕獲した<mark>エゾシカ</mark>の<mark>有効活用</mark>の促進と、'
        '地域ブランド化の推進</blockquote>'
        '<div class="vqa-section"><span class="vqa-title">釧路・根室連携地域「地域づくり推進ビジョン」</span> › '
        '<a class="vqa-plan-link" href="#vqa-plan-vision-0042">Ⅰ 地域のめざす姿 › １ 農林水産業をはじめとする地域産業の振興</a>'
        '</div><div class="vqa-page">2ページ</div></div>')


def test_a_short_label_names_the_card_and_the_full_path_stays():
    cite = Citation(n=2, chunk_id="c9", source="s.txt", title="T", label="主な施策の方向４（人流・物流ネットワーク）",
                    section=("連携地域の主な施策の方向（今後５年程度）", "４ 人流・物流ネットワークの形成と…"), quote="q")
    card = render.citation_html(cite, "x-c2")
    assert '<span class="vqa-label">主な施策の方向４（人流・物流ネットワーク）</span>' in card
    assert '>連携地域の主な施策の方向（今後５年程度） › ４ 人流・物流ネットワークの形成と…</a>' in card


def test_card_escapes_markup_in_title_section_and_quote():
    cite = Citation(n=3, chunk_id='c"><script>', source="s.txt", title='資料"<script>alert(1)</script>',
                    section=("Ⅰ", "<b>太字</b>"), quote=f"記述{HOSTILE}です", page=None)
    card = render.citation_html(cite, "vqa-s0-c3", marks=[HOSTILE])
    assert '<blockquote class="vqa-quote">記述<mark>&lt;img src=x onerror=alert(1)&gt;</mark>です</blockquote>' in card
    assert '<span class="vqa-title">資料&quot;&lt;script&gt;alert(1)&lt;/script&gt;</span>' in card
    assert 'href="#vqa-plan-c&quot;&gt;&lt;script&gt;"' in card
    assert "<img" not in card and "<script" not in card and "<b>" not in card


def test_only_the_given_words_are_marked_never_generic_ones():
    # the old highlighter marked every run shared with the question (地域, 活かした, 資源)
    text = "地域資源を活かした交流の推進"
    assert render.rich(text, marks=[]) == text
    assert render.rich(text, marks=["交流"]) == "地域資源を活かした<mark>交流</mark>の推進"
    assert render.mark_spans("有効活用と有効", ["有効", "活用"]) == [(0, 4), (5, 7)]


def test_sources_show_the_rewritten_question_escaped(scripted):
    answer = Answer(question="その予算は？", rewritten_query=f"エゾシカについて、その予算は？{HOSTILE}",
                    text="…[1]", citations=[scripted.DEER], coverage="related", mode="extractive")
    html = render.sources_html(answer)
    assert html.splitlines()[0:2] == [
        '<div class="vqa-sources">',
        '<p class="vqa-rewritten">検索した質問：エゾシカについて、その予算は？&lt;img src=x onerror=alert(1)&gt;</p>']
    same = Answer(question="鹿は？", rewritten_query=" 鹿は？ ", text="…", citations=[scripted.DEER],
                  coverage="direct", mode="extractive")
    assert "検索した質問" not in render.sources_html(same)


def test_refusal_sources_say_so_and_show_the_nearest(scripted):
    answer = scripted.answer_for("宇宙開発は？", [])
    html = render.sources_html(answer)
    assert html.startswith('<div class="vqa-sources">\n<p class="vqa-note">ビジョンには、この質問への答えはありません。'
                           '近い記述を示します。</p>\n<div class="vqa-citation" id="vqa-s0-c1"')
    empty = Answer(question="q", rewritten_query="q", text="…", citations=[], coverage="none", mode="refused")
    assert render.sources_html(empty) == ('<div class="vqa-sources">\n<p class="vqa-empty">ビジョンの中に、'
                                          'この質問に答える記述が見つかりませんでした。</p>\n</div>')


def test_answer_bubble_quotes_links_and_english(scripted):
    answer = Answer(question="Is there anything about deer?", rewritten_query="Is there anything about deer?",
                    text='The vision says the following (quoted in the original Japanese):\n'
                         f'・{scripted.DEER.quote} [1]', citations=[scripted.DEER], coverage="direct",
                    mode="extractive", language="en")
    bubble = render.answer_html(answer, 3)
    assert bubble.startswith(
        '<div class="vqa-answer vqa-direct" lang="en"><p>The vision says the following (quoted in the original '
        'Japanese):</p><ul class="vqa-quotes"><li lang="ja">個体数管理等のために捕獲したエゾシカの有効活用の促進と、'
        '地域ブランド化の推進 <a class="vqa-ref" href="#vqa-m3-c1"><span class="vqa-sr">出典</span>[1]</a></li></ul>'
        '<details class="vqa-msg-sources" open lang="ja"><summary>出典（1件）</summary>')
    assert 'id="vqa-m3-c1"' in bubble
    # a marker without a citation stays text
    lone = Answer(question="q", rewritten_query="q", text="根拠 [7]", citations=[], coverage="direct", mode="llm")
    assert render.answer_html(lone, 0) == '<div class="vqa-answer vqa-direct"><p>根拠 [7]</p></div>'


def test_chat_text_uncovered_and_panel_are_escaped():
    assert render.chat_text(HOSTILE) == "&lt;img src=x onerror=alert(1)&gt;"
    assert render.uncovered_html(["期限", HOSTILE]) == (
        '<ul class="vqa-uncovered"><li>期限</li><li>&lt;img src=x onerror=alert(1)&gt;</li></ul>')
    assert render.uncovered_html([]) == '<p class="vqa-empty">要確認事項はありません。</p>'
    assert render.panel_html([]) == render.SOURCES_PLACEHOLDER
