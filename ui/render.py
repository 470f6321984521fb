"""HTML for answers, source cards and the staff panels. Pure functions, no gradio.

Every piece of user or document text goes through ``html.escape`` here (or in ``ui.plan``);
nothing else in ``ui/`` builds HTML from text it did not write itself. Readings (ふりがな) are
always in the markup as <ruby>/<rt>; the page's stylesheet shows them only when the toggle is
on, and <rt> is never selectable, so a copied quote is the quote.
"""
from __future__ import annotations

import html
import itertools
import re
from collections.abc import Iterable, Sequence

from assistant.types import Answer, Citation

from .furigana import Furigana

ATTRIBUTION = "出典：北海道「釧路・根室連携地域 地域づくり推進ビジョン」"
SOURCES_EMPTY = "質問すると、回答の根拠となるビジョンの記述がここに表示されます。"
SOURCES_PLACEHOLDER = f'<div class="vqa-sources"><p class="vqa-empty">{SOURCES_EMPTY}</p></div>'
SOURCES_SEARCHING = '<div class="vqa-sources"><p class="vqa-empty">ビジョンの記述を検索しています…</p></div>'
NOT_COVERED = "ビジョンには、この質問への答えはありません。近い記述を示します。"
_QUOTE_LINE = re.compile(r"^・(.*) \[(\d+)\]$")
_MARKER = re.compile(r"\[(\d+)\]")


def chat_text(text: str) -> str:
    """A user's message as the Chatbot shows it: the text itself, never markup."""
    return html.escape(text, quote=True)


def mark_spans(text: str, words: Iterable[str]) -> list[tuple[int, int]]:
    """Where ``words`` occur in ``text``, overlapping and touching spans merged."""
    spans = sorted((m.start(), m.end()) for w in words if w for m in re.finditer(re.escape(w), text))
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _marked(text: str, offset: int, spans: list[tuple[int, int]]) -> str:
    """``text`` (which starts at ``offset`` of the whole) escaped, its parts in ``spans`` in <mark>."""
    out, pos = [], 0
    for start, end in spans:
        s, e = max(start - offset, pos), min(end - offset, len(text))
        if s >= e:
            continue
        out += [html.escape(text[pos:s]), f"<mark>{html.escape(text[s:e])}</mark>"]
        pos = e
    out.append(html.escape(text[pos:]))
    return "".join(out)


def rich(text: str, furigana: Furigana | None = None, marks: Iterable[str] = ()) -> str:
    """Escaped text with <mark> over ``marks`` and, with ``furigana``, <ruby> over kanji words."""
    spans = mark_spans(text, marks)
    if furigana is None:
        return _marked(text, 0, spans)
    pieces = furigana.pieces(text)
    bounds = {0, *itertools.accumulate(len(p.base) for p in pieces)}
    # A highlight over whole words stays one <mark> around their rubies (有効活用, not 有効|活用);
    # one that starts or ends inside a word is marked inside that word's base text.
    whole = {s: e for s, e in spans if s in bounds and e in bounds}
    inner = [(s, e) for s, e in spans if whole.get(s) != e]
    ends = set(whole.values())
    out, pos = [], 0
    for piece in pieces:
        if pos in whole:
            out.append("<mark>")
        base = _marked(piece.base, pos, inner)
        out.append(f"<ruby>{base}<rt>{html.escape(piece.reading)}</rt></ruby>" if piece.reading else base)
        pos += len(piece.base)
        if pos in ends:
            out.append("</mark>")
    return "".join(out)


def ref_link(n: int, target: str) -> str:
    """A citation number as a link to its card; its name is 「出典 n」 for screen readers."""
    return f'<a class="vqa-ref" href="#{target}"><span class="vqa-sr">出典</span>[{n}]</a>'


def citation_html(c: Citation, card_id: str, *, furigana: Furigana | None = None,
                  marks: Iterable[str] = ()) -> str:
    """One source card: number and short label, the verbatim quote, and the full heading path,
    which links to the bullet in the ビジョンを読む tab."""
    label = c.label or (c.section[-1] if c.section else "")
    parts = [f'<div class="vqa-citation" id="{card_id}" tabindex="-1">',
             f'<div class="vqa-card-head"><span class="vqa-n">[{c.n}]</span>'
             f'<span class="vqa-label">{rich(label, furigana)}</span></div>',
             f'<blockquote class="vqa-quote">{rich(c.quote, furigana, marks)}</blockquote>',
             f'<div class="vqa-section"><span class="vqa-title">{html.escape(c.title)}</span>']
    if c.section:
        parts.append(f' › <a class="vqa-plan-link" href="#vqa-plan-{html.escape(c.chunk_id)}">'
                     f'{html.escape(c.section_label)}</a>')
    parts.append("</div>")
    if c.page is not None:
        parts.append(f'<div class="vqa-page">{c.page}ページ</div>')
    parts.append("</div>")
    return "".join(parts)


def citations_html(citations: Sequence[Citation], prefix: str, *, furigana: Furigana | None = None,
                   marks: Iterable[str] = ()) -> str:
    if not citations:
        return '<p class="vqa-empty">引用できる記述はありません。</p>'
    return "\n".join(citation_html(c, f"{prefix}-c{c.n}", furigana=furigana, marks=marks) for c in citations)


def shows_rewritten(answer: Answer) -> bool:
    rewritten = (answer.rewritten_query or "").strip()
    return bool(rewritten) and rewritten != answer.question.strip()


def sources_body(answer: Answer, prefix: str, furigana: Furigana | None = None) -> str:
    """What the 出典 of one answer show: the question searched after a follow-up, a note when
    the plan is silent, and the cards (ids ``<prefix>-c<n>``)."""
    parts = []
    if shows_rewritten(answer):
        parts.append(f'<p class="vqa-rewritten">検索した質問：{html.escape(answer.rewritten_query.strip())}</p>')
    if answer.coverage == "none":
        parts.append(f'<p class="vqa-note">{NOT_COVERED}</p>' if answer.citations else
                     '<p class="vqa-empty">ビジョンの中に、この質問に答える記述が見つかりませんでした。</p>')
    if answer.citations or answer.coverage != "none":
        parts.append(citations_html(answer.citations, prefix, furigana=furigana, marks=answer.highlights))
    return "\n".join(parts)


def sources_html(answer: Answer, furigana: Furigana | None = None) -> str:
    """The 出典 panel for a single answer (the API's and tests' view of one answer)."""
    return f'<div class="vqa-sources">\n{sources_body(answer, "vqa-s0", furigana)}\n</div>'


def panel_html(sections: Sequence[str]) -> str:
    """The side panel: one section per answer, the latest shown; a citation link shows its own."""
    if not sections:
        return SOURCES_PLACEHOLDER
    last = len(sections) - 1
    return '<div class="vqa-sources">' + "".join(
        f'<section class="vqa-src" id="vqa-s{k}" aria-label="回答{k + 1}の出典"{"" if k == last else " hidden"}>'
        f"{body}</section>" for k, body in enumerate(sections)) + "</div>"


def _line(text: str, k: int, numbers: set[int], furigana: Furigana | None) -> str:
    """One line of an answer with each known [n] a link to its card."""
    out, pos = [], 0
    for m in _MARKER.finditer(text):
        n = int(m.group(1))
        if n in numbers:
            out += [rich(text[pos:m.start()], furigana), ref_link(n, f"vqa-m{k}-c{n}")]
            pos = m.end()
    out.append(rich(text[pos:], furigana))
    return "".join(out)


def answer_html(answer: Answer, k: int, furigana: Furigana | None = None) -> str:
    """The chat bubble of answer ``k``: the lead, the quotes with [n] links, and (shown on
    narrow screens, where there is no side panel) its own 出典 under it."""
    numbers = {c.n for c in answer.citations}
    lang = ' lang="en"' if answer.language == "en" else ""
    kind = {"none": "vqa-refusal", "related": "vqa-related"}.get(answer.coverage, "vqa-direct")
    parts, quotes = [f'<div class="vqa-answer {kind}"{lang}>'], []
    for line in answer.text.splitlines():
        quote = _QUOTE_LINE.match(line)
        if quote and int(quote.group(2)) in numbers:
            n = int(quote.group(2))
            quotes.append(f'<li lang="ja">{rich(quote.group(1), furigana)} {ref_link(n, f"vqa-m{k}-c{n}")}</li>')
            continue
        if quotes:
            parts.append(f'<ul class="vqa-quotes">{"".join(quotes)}</ul>')
            quotes = []
        if line.strip():
            parts.append(f"<p>{_line(line, k, numbers, furigana)}</p>")
    if quotes:
        parts.append(f'<ul class="vqa-quotes">{"".join(quotes)}</ul>')
    if answer.citations or shows_rewritten(answer):
        parts.append(f'<details class="vqa-msg-sources" open lang="ja"><summary>出典（{len(answer.citations)}件）'
                     f'</summary>{sources_body(answer, f"vqa-m{k}", furigana)}</details>')
    parts.append("</div>")
    return "".join(parts)


def uncovered_html(items: Iterable[str]) -> str:
    items = list(items)
    if not items:
        return '<p class="vqa-empty">要確認事項はありません。</p>'
    lis = "".join(f"<li>{html.escape(item)}</li>" for item in items)
    return f'<ul class="vqa-uncovered">{lis}</ul>'


def live_text(answer: Answer) -> str:
    """What the live region says when an answer arrives: the answer text, without markup."""
    return f"回答：{answer.text}"
