"""HTML for the chat and the sources panel. Pure functions, no gradio.

Every piece of user or document text goes through ``html.escape`` here; nothing else in
``ui/`` builds HTML from text it did not write itself.
"""
from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence

from assistant.types import Answer, Citation

ATTRIBUTION = "出典：北海道「釧路・根室連携地域 地域づくり推進ビジョン」"
SOURCES_PLACEHOLDER = '<div class="vqa-sources"><p class="vqa-empty">質問すると、回答の根拠となるビジョンの記述がここに表示されます。</p></div>'
SOURCES_SEARCHING = '<div class="vqa-sources"><p class="vqa-empty">ビジョンの記述を検索しています…</p></div>'

# Shown scoped to the sources gr.HTML through its css_template (Gradio 6 moved app-wide css
# to launch(); keeping it on the component keeps create_app self-contained).
SOURCES_CSS = """
.vqa-sources { font-size: 0.95rem; line-height: 1.7; }
.vqa-rewritten { margin: 0 0 0.6em; padding: 0.3em 0.6em; background: #f3f4f6; border-radius: 6px; }
.vqa-citation { margin: 0 0 0.9em; padding: 0.6em 0.8em; border-left: 4px solid #2563eb; background: #f8fafc; border-radius: 4px; }
.vqa-n { font-weight: bold; color: #1d4ed8; margin-right: 0.3em; }
.vqa-title { font-weight: bold; }
.vqa-section { color: #475569; font-size: 0.9em; }
.vqa-citation blockquote.vqa-quote { margin: 0.3em 0 0 !important; padding: 0; border: none; white-space: pre-wrap; font-style: normal; }
.vqa-quote mark { background: #fde68a; padding: 0 1px; }
.vqa-page { color: #475569; font-size: 0.85em; }
.vqa-empty { color: #64748b; }
.vqa-uncovered li { margin-bottom: 0.3em; }
"""

_HIRAGANA = re.compile(r"[\u3041-\u309f]")
# A highlighted term must hold at least one kanji, katakana, letter or digit, so that
# particles and okurigana alone (「について」「ある」) are never marked.
_CONTENT = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf\u30a1-\u30fa\u30fc\uff66-\uff9fA-Za-z0-9\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]")
_MIN_TERM = 2


def chat_text(text: str) -> str:
    """A chat message as the Chatbot should show it: the text itself, never markup."""
    return html.escape(text, quote=True)


def highlight_spans(text: str, query: str) -> list[tuple[int, int]]:
    """Spans of ``text`` that also occur in ``query`` (greedy longest match, ≥2 chars).

    Japanese has no spaces between words, so instead of tokenizing we mark the longest
    runs shared with the question, trimmed of leading hiragana (particles such as の・は).
    """
    spans: list[tuple[int, int]] = []
    if not query:
        return spans
    i, n = 0, len(text)
    while i < n:
        j = i
        while j < n and text[i:j + 1] in query:
            j += 1
        start = i
        while start < j and _HIRAGANA.match(text[start]):
            start += 1
        if j - start >= _MIN_TERM and _CONTENT.search(text[start:j]):
            spans.append((start, j))
            i = j
        else:
            i += 1
    return spans


def highlight(text: str, query: str) -> str:
    """Escape ``text`` and wrap the parts shared with ``query`` in <mark>."""
    out, pos = [], 0
    for start, end in highlight_spans(text, query):
        out.append(html.escape(text[pos:start]))
        out.append(f"<mark>{html.escape(text[start:end])}</mark>")
        pos = end
    out.append(html.escape(text[pos:]))
    return "".join(out)


def citation_html(c: Citation, query: str = "") -> str:
    parts = [
        f'<div class="vqa-citation" id="vqa-cite-{c.n}">',
        f'<div><span class="vqa-n">[{c.n}]</span><span class="vqa-title">{html.escape(c.title)}</span></div>',
    ]
    if c.section:
        parts.append(f'<div class="vqa-section">{html.escape(c.section_label)}</div>')
    parts.append(f'<blockquote class="vqa-quote">{highlight(c.quote, query)}</blockquote>')
    if c.page is not None:
        parts.append(f'<div class="vqa-page">{c.page}ページ</div>')
    parts.append("</div>")
    return "".join(parts)


def citations_html(citations: Sequence[Citation], query: str = "") -> str:
    if not citations:
        return '<p class="vqa-empty">引用できる記述はありません。</p>'
    return "\n".join(citation_html(c, query) for c in citations)


def shows_rewritten(answer: Answer) -> bool:
    rewritten = (answer.rewritten_query or "").strip()
    return bool(rewritten) and rewritten != answer.question.strip()


def sources_html(answer: Answer) -> str:
    """The 出典 panel for one answer."""
    query = " ".join(q for q in (answer.question, answer.rewritten_query) if q)
    parts = ['<div class="vqa-sources">']
    if shows_rewritten(answer):
        parts.append(f'<p class="vqa-rewritten">検索した質問：{html.escape(answer.rewritten_query.strip())}</p>')
    if answer.abstained and not answer.citations:
        msg = "ビジョンの中に、この質問に答える記述が見つかりませんでした。"
        if answer.suggestions:
            msg += "質問欄の下の「近い項目」から選んで質問できます。"
        parts.append(f'<p class="vqa-empty">{msg}</p>')
    else:
        parts.append(citations_html(answer.citations, query))
    parts.append("</div>")
    return "\n".join(parts)


def uncovered_html(items: Iterable[str]) -> str:
    items = list(items)
    if not items:
        return '<p class="vqa-empty">要確認事項はありません。</p>'
    lis = "".join(f"<li>{html.escape(item)}</li>" for item in items)
    return f'<ul class="vqa-uncovered">{lis}</ul>'


def suggestion_question(section: str) -> str:
    """The question a suggestion button asks."""
    return f"「{section}」について教えてください"


DOWNLOADS_CSS = """
.vqa-downloads { display: flex; gap: 0.8em; flex-wrap: wrap; }
.vqa-download-note { color: #64748b; font-size: 0.85em; margin-top: 0.4em; }
.vqa-download { padding: 0.4em 0.9em; border: 1px solid #2563eb; border-radius: 6px; color: #1d4ed8; text-decoration: none; }
"""
