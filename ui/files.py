"""The staff draft as .txt and .docx files. No gradio here."""
from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

from assistant.types import Citation, Draft

from .render import ATTRIBUTION


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
    return "\n".join(lines) + "\n"


def write_txt(draft: Draft, path: Path) -> Path:
    path.write_text(draft_plain_text(draft), encoding="utf-8")
    return path


def write_docx(draft: Draft, path: Path) -> Path:
    from docx import Document  # python-docx; loaded only when a draft is exported

    doc = Document()
    doc.add_heading("回答案", level=1)
    for para in draft.text.strip().split("\n"):
        doc.add_paragraph(para)
    doc.add_heading("要確認事項", level=2)
    if draft.uncovered:
        for item in draft.uncovered:
            doc.add_paragraph(item, style="List Bullet")
    else:
        doc.add_paragraph("なし")
    doc.add_heading("出典", level=2)
    for c in draft.citations:
        doc.add_paragraph(citation_line(c))
        doc.add_paragraph(f"「{c.quote}」")
    doc.add_paragraph(ATTRIBUTION)
    doc.save(str(path))
    return path


def write_draft_files(draft: Draft, directory: Path) -> tuple[Path, Path]:
    """Write ``vision-qa-draft-<time>-<id>.txt`` and ``.docx`` into ``directory``.

    ASCII names, so that every browser keeps them in the download header."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"vision-qa-draft-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    return write_txt(draft, directory / f"{stem}.txt"), write_docx(draft, directory / f"{stem}.docx")
