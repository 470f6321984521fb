"""The staff draft as .txt and .docx bytes, made in memory (nothing is written to disk). No gradio here."""
from __future__ import annotations

import io
import re
import uuid
from datetime import datetime

from assistant.types import Citation, Draft

from .render import ATTRIBUTION

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TXT_TYPE = "text/plain; charset=utf-8"
# What XML 1.0 cannot hold (controls, lone surrogates, U+FFFE/U+FFFF): python-docx refuses
# such a string, and a .txt with a lone surrogate cannot be encoded. An inquiry may carry any.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    return _NOT_XML.sub("", text)


def citation_line(c: Citation) -> str:
    line = f"[{c.n}] {c.title}"
    if c.section:
        line += f"／{c.section_label}"
    if c.page is not None:
        line += f"（{c.page}ページ）"
    return line


def draft_plain_text(draft: Draft) -> str:
    """The draft, its 要確認事項 and its sources as one plain text."""
    lines = [draft.text.rstrip(), ""]
    lines.append("【要確認事項】")
    lines.extend([f"・{item}" for item in draft.uncovered] or ["なし"])
    lines.append("")
    lines.append("【出典】")
    for c in draft.citations:
        lines.append(citation_line(c))
        lines.append(f"「{c.quote}」")
    lines.append("")
    lines.append(ATTRIBUTION)
    return xml_safe("\n".join(lines) + "\n")


def txt_bytes(draft: Draft) -> bytes:
    return draft_plain_text(draft).encode("utf-8")


def docx_bytes(draft: Draft) -> bytes:
    from docx import Document  # python-docx; loaded only when a draft is exported

    doc = Document()

    def para(text: str, style: str | None = None) -> None:
        doc.add_paragraph(xml_safe(text), style=style)

    doc.add_heading("回答案", level=1)
    for line in draft.text.strip().split("\n"):
        para(line)
    doc.add_heading("要確認事項", level=2)
    if draft.uncovered:
        for item in draft.uncovered:
            para(item, "List Bullet")
    else:
        para("なし")
    doc.add_heading("出典", level=2)
    for c in draft.citations:
        para(citation_line(c))
        para(f"「{c.quote}」")
    para(ATTRIBUTION)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def draft_stem() -> str:
    """``vision-qa-draft-<time>-<id>``: ASCII, so that every browser keeps it in the download header."""
    return f"vision-qa-draft-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
