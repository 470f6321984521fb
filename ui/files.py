"""The staff draft as .txt and .docx bytes, made in memory (nothing is written to disk). No gradio here."""
from __future__ import annotations

import io
import re
import uuid
from datetime import datetime

from assistant.types import Draft

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TXT_TYPE = "text/plain; charset=utf-8"
# What XML 1.0 cannot hold (controls, lone surrogates, U+FFFE/U+FFFF): python-docx refuses
# such a string, and a .txt with a lone surrogate cannot be encoded. An inquiry may carry any.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    return _NOT_XML.sub("", text)


UNCOVERED_HEADING = "【要確認事項】（職員用：送信前に確認し、この欄は送らないでください）"


def draft_plain_text(draft: Draft) -> str:
    """The reply as it goes to the resident (its quotes and its 【出典】 list are in it), then
    what staff must check, once, as a separate section."""
    lines = [draft.text.rstrip(), "", "―" * 20, UNCOVERED_HEADING]
    lines.extend([f"・{item}" for item in draft.uncovered] or ["なし"])
    return xml_safe("\n".join(lines) + "\n")


def txt_bytes(draft: Draft) -> bytes:
    return draft_plain_text(draft).encode("utf-8")


def docx_bytes(draft: Draft) -> bytes:
    from docx import Document  # python-docx; loaded only when a draft is exported

    doc = Document()
    doc.add_heading("回答案", level=1)
    for line in draft.text.strip().split("\n"):
        doc.add_paragraph(xml_safe(line))
    doc.add_heading(UNCOVERED_HEADING, level=2)
    for item in draft.uncovered or ["なし"]:
        doc.add_paragraph(xml_safe(item), style="List Bullet" if draft.uncovered else None)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def draft_stem() -> str:
    """``vision-qa-draft-<time>-<id>``: ASCII, so that every browser keeps it in the download header."""
    return f"vision-qa-draft-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
