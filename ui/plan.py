"""The ビジョンを読む tab: the whole plan as its structure, from the index's outline. No gradio here.

Everything shown is the plan's own text (the chunks the outline holds), escaped; each unit has
the id ``vqa-plan-<chunk id>`` that a citation's section link scrolls to, and each bullet and
statement a button that asks about it in the chat.
"""
from __future__ import annotations

import html

from assistant.structure import Outline
from ingest.types import Chunk

from .furigana import Furigana
from .render import rich

EMPTY = '<div class="vqa-plan"><p class="vqa-empty">ビジョンがまだ取り込まれていません（vision-qa ingest）。</p></div>'


def plan_question(chunk: Chunk) -> str:
    """What a bullet's button asks in the chat."""
    return f"「{chunk.text}」について教えて"


def _unit(chunk: Chunk, furigana: Furigana | None, tag: str = "li") -> str:
    question = html.escape(plan_question(chunk), quote=True)
    return (f'<{tag} class="vqa-plan-unit" id="vqa-plan-{html.escape(chunk.id)}" tabindex="-1">'
            f'<span class="vqa-plan-text">{rich(chunk.text, furigana)}</span>'
            f'<button type="button" class="vqa-plan-ask" data-q="{question}">この項目について質問する</button>'
            f"</{tag}>")


def plan_html(outline: Outline, furigana: Furigana | None = None) -> str:
    """Title, slogan, the めざす姿 statements and a card per direction with its bullets."""
    if not (outline.slogan or outline.statements or outline.headings):
        return EMPTY
    title = outline.title_chunks[0].text if outline.title_chunks else "ビジョン"
    parts = ['<div class="vqa-plan" lang="ja">', f'<h2 class="vqa-plan-title">{html.escape(title)}</h2>']
    if outline.slogan:
        parts.append('<section class="vqa-plan-slogan" aria-labelledby="vqa-plan-slogan-h">'
                     '<h3 id="vqa-plan-slogan-h">スローガン（めざす地域の姿）</h3>')
        parts += [f'<p id="vqa-plan-{html.escape(c.id)}" tabindex="-1" class="vqa-plan-unit">'
                  f'{rich(c.text, furigana)}</p>' for c in outline.slogan]
        parts.append("</section>")
    if outline.statements:
        heading = outline.statements[0].section[-1] if outline.statements[0].section else "めざす姿"
        notes = [c for c in outline.dated if c.kind == "note" and c.section == outline.statements[0].section]
        parts.append(f'<section aria-labelledby="vqa-plan-aims"><h3 id="vqa-plan-aims">{rich(heading, furigana)}</h3>')
        parts += [f'<p class="vqa-plan-note">{rich(c.text, furigana)}</p>' for c in notes]
        parts.append('<ul class="vqa-plan-statements">' + "".join(_unit(c, furigana) for c in outline.statements)
                     + "</ul></section>")
    if outline.headings:
        group = outline.headings[0].section[-1] if outline.headings[0].section else "施策の方向"
        parts.append(f'<section aria-labelledby="vqa-plan-dirs"><h3 id="vqa-plan-dirs">{rich(group, furigana)}</h3>'
                     '<div class="vqa-plan-cards">')
        for h in outline.headings:
            bullets = outline.bullets.get((h.source, h.section + (h.text,)), [])
            label = outline.labels.get((h.source, h.text), "")
            parts.append(f'<article class="vqa-plan-card" id="vqa-plan-{html.escape(h.id)}" tabindex="-1" '
                         f'aria-labelledby="vqa-plan-h-{html.escape(h.id)}">'
                         f'<h4 id="vqa-plan-h-{html.escape(h.id)}">{rich(h.text, furigana)}</h4>')
            if label:
                parts.append(f'<p class="vqa-plan-label">{html.escape(label)}</p>')
            parts.append('<ul class="vqa-plan-bullets">' + "".join(_unit(b, furigana) for b in bullets) + "</ul>"
                         "</article>")
        parts.append("</div></section>")
    parts.append("</div>")
    return "".join(parts)
