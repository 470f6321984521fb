"""PDF, DOCX and HTML files go through the whole ingest and come back as cited answers
with their page or heading metadata; bad files get clear errors and lose nothing."""
from __future__ import annotations

from pathlib import Path

import docx
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

from assistant.build import build_assistant, build_indexer

PDF_P2 = "厚岸町では牡蠣の養殖技術を若い漁業者へ伝える研修を行います。"


def _pdf(path: Path) -> None:
    pdfmetrics.registerFont(UnicodeCIDFont("HeiseiMin-W3"))
    c = canvas.Canvas(str(path), pagesize=A4)
    for lines in (["第1章 はじめに", "この資料は地域の取組を紹介します。"], ["第2章 漁業", PDF_P2]):
        c.setFont("HeiseiMin-W3", 12)
        for i, line in enumerate(lines):
            c.drawString(72, 760 - 20 * i, line)
        c.showPage()
    c.save()


def _docx(path: Path) -> None:
    d = docx.Document()
    d.add_heading("観光の取組", level=1)
    d.add_heading("冬の観光", level=2)
    d.add_paragraph("流氷と丹頂鶴を組み合わせた冬季の周遊ツアーを造成し、宿泊客の増加につなげます。")
    d.save(str(path))


def _html(path: Path) -> None:
    path.write_text(
        "<html><head><style>p{color:red}</style><script>alert(1)</script></head><body>"
        "<h1>子育て支援</h1><h2>相談窓口</h2><p>子育て世代包括支援センターで、妊娠期から切れ目なく相談に応じます。</p>"
        "</body></html>", encoding="utf-8")


def test_pdf_docx_html_are_indexed_and_cited(fresh_settings):
    corpus = fresh_settings.corpus_dir
    _pdf(corpus / "fishery.pdf")
    _docx(corpus / "tourism.docx")
    _html(corpus / "kosodate.html")
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "fake.pdf").write_bytes(b"\x89PNG not a pdf at all" * 10)

    report = build_indexer(fresh_settings).run()

    assert report.files == 6
    assert sorted(e.split(":")[0] for e in report.errors) == ["empty.txt", "fake.pdf"]
    assistant = build_assistant(fresh_settings)
    by_source = {}
    for c in assistant.current().index.chunks:
        by_source.setdefault(c.source, []).append(c)
    assert len([c for c in by_source["kushiro-nemuro-vision.txt"] if c.kind == "bullet"]) == 27

    fishery = [c for c in by_source["fishery.pdf"] if PDF_P2 in c.text]
    assert [(c.page, c.section) for c in fishery] == [(2, ("第2章 漁業",))]
    winter = [c for c in by_source["tourism.docx"] if "流氷" in c.text]
    assert [c.section for c in winter] == [("観光の取組", "冬の観光")]
    html = [c for c in by_source["kosodate.html"] if "包括支援センター" in c.text]
    assert [c.section for c in html] == [("子育て支援", "相談窓口")]
    assert not any("alert(1)" in c.text or "color:red" in c.text for c in by_source["kosodate.html"])

    answer = assistant.ask("牡蠣の養殖技術の研修はありますか？")
    assert answer.abstained is False
    assert (answer.citations[0].quote, answer.citations[0].page, answer.citations[0].source) == (
        PDF_P2, 2, "fishery.pdf")
