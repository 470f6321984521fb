import hashlib
import random
from pathlib import Path

import docx
import pytest
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

from ingest.generic import parse_generic
from ingest.loaders import SUPPORTED, LoadError, Skipped, decode_text, load_file
from ingest.normalize import squash_whitespace
from ingest.sources import SourceMeta
from ingest.types import Heading, LoadedDoc

JA = "釧路・根室連携地域「地域づくり推進ビジョン」\n第１章　地域の現状\nＣＯ２の吸収源対策を推進します。\n"


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _heading_texts(doc: LoadedDoc) -> list[tuple[str, int]]:
    return [(doc.text[h.start:h.end], h.level) for h in doc.headings]


def _units(doc: LoadedDoc) -> list[tuple[str, tuple[str, ...], str]]:
    units = parse_generic(doc)
    for u in units:  # the span invariant, on every fixture
        assert squash_whitespace(u.text) == squash_whitespace(doc.text[u.start:u.end])
        assert "\n" not in u.text
    return [(u.kind, u.section, u.text) for u in units]


# ---- text encodings ---------------------------------------------------------------------

@pytest.mark.parametrize("encoded", [
    JA.encode("utf-8"),
    b"\xef\xbb\xbf" + JA.encode("utf-8"),
    JA.replace("\n", "\r\n").encode("cp932"),
    JA.encode("euc_jp"),
    JA.encode("utf-16"),
    JA.encode("iso2022_jp"),
], ids=["utf8", "utf8-bom", "cp932-crlf", "euc_jp", "utf16-bom", "iso2022jp"])
def test_txt_encodings_round_trip(tmp_path: Path, encoded: bytes) -> None:
    path = _write(tmp_path, "sub/plan.txt", encoded)
    doc = load_file(path, tmp_path)
    assert doc.text == JA
    assert doc.source == "sub/plan.txt"
    assert doc.title == "plan"
    assert doc.sha256 == hashlib.sha256(encoded).hexdigest()
    assert doc.page_starts == () and doc.headings == () and doc.meta == {}


def test_ambiguous_bytes_prefer_the_codec_that_gives_japanese() -> None:
    text = "地域づくりの推進"
    raw = text.encode("euc_jp")
    raw.decode("cp932")  # both codecs accept these bytes
    assert decode_text(raw) == text
    assert decode_text(text.encode("cp932")) == text


def test_meta_title_and_fields(tmp_path: Path) -> None:
    path = _write(tmp_path, "v.txt", JA.encode())
    meta = SourceMeta("v.txt", "ビジョン", "北海道", "2024", "ja")
    doc = load_file(path, tmp_path, meta)
    assert doc.title == "ビジョン"
    assert doc.meta == {"issuer": "北海道", "date": "2024", "language": "ja"}


def test_invisible_and_control_characters_are_removed(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.txt", "地域\u200bの\u202e振興\x0c\r\n次\u2028行".encode())
    assert load_file(path, tmp_path).text == "地域の振興\n次\n行"


@pytest.mark.parametrize("data", [
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
    bytes(b for b in random.Random(0).randbytes(4096) if b),  # no NUL: caught as non-printable
], ids=["nul", "random"])
def test_binary_disguised_as_text(tmp_path: Path, data: bytes) -> None:
    path = _write(tmp_path, "image.txt", data)
    with pytest.raises(LoadError, match=r"^image\.txt: binary file") as err:
        load_file(path, tmp_path)
    assert err.value.path == path


def test_undecodable_bytes_name_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "odd.md", b"abc\x81 def\x82")
    with pytest.raises(LoadError) as err:
        load_file(path, tmp_path)
    assert str(err.value) == "odd.md: unknown encoding (not UTF-8, Shift_JIS/CP932 or EUC-JP)"


@pytest.mark.parametrize("data", [b"", b" \r\n\t\n", "　\n".encode()], ids=["0-bytes", "spaces", "ideographic-space"])
def test_empty_file(tmp_path: Path, data: bytes) -> None:
    path = _write(tmp_path, "empty.txt", data)
    with pytest.raises(LoadError, match=r"^empty\.txt: empty file"):
        load_file(path, tmp_path)


def test_over_size_limit(tmp_path: Path) -> None:
    path = _write(tmp_path, "big.txt", b"a" * 1_500_000)
    with pytest.raises(LoadError) as err:
        load_file(path, tmp_path, max_bytes=1_000_000)
    assert str(err.value) == "big.txt: file is 1.5 MB, over the 1 MB size limit"


def test_unsupported_extension(tmp_path: Path) -> None:
    path = _write(tmp_path, "plan.xlsx", b"PK")
    with pytest.raises(LoadError, match=r"^plan\.xlsx: unsupported file type '\.xlsx'"):
        load_file(path, tmp_path)
    assert SUPPORTED == {".txt", ".md", ".pdf", ".docx", ".html", ".htm"}


# ---- Markdown ---------------------------------------------------------------------------

def test_markdown_headings(tmp_path: Path) -> None:
    md = "# 地域ビジョン\n\n## 施策の方向 ##\n本文の段落で\nす。\n- 農業\n- 観光\n\n```\n# コード\n```\n#タグ\n"
    doc = load_file(_write(tmp_path, "v.md", md.encode()), tmp_path)
    assert doc.text == md
    assert _heading_texts(doc) == [("地域ビジョン", 1), ("施策の方向", 2)]
    assert _units(doc) == [
        ("heading", (), "地域ビジョン"),
        ("heading", ("地域ビジョン",), "施策の方向"),
        ("paragraph", ("地域ビジョン", "施策の方向"), "本文の段落です。"),
        ("bullet", ("地域ビジョン", "施策の方向"), "農業"),
        ("bullet", ("地域ビジョン", "施策の方向"), "観光"),
        ("paragraph", ("地域ビジョン", "施策の方向"), "```# コード```#タグ"),
    ]


# ---- PDF --------------------------------------------------------------------------------

def _pdf(path: Path, pages: list[list[str]]) -> Path:
    pdfmetrics.registerFont(UnicodeCIDFont("HeiseiMin-W3"))
    c = canvas.Canvas(str(path))
    for lines in pages:
        c.setFont("HeiseiMin-W3", 12)
        for i, line in enumerate(lines):
            c.drawString(72, 750 - 20 * i, line)
        if not lines:
            c.rect(100, 100, 200, 200, fill=1)
        c.showPage()
    c.save()
    return path


def test_pdf_pages_and_japanese_text(tmp_path: Path) -> None:
    path = _pdf(tmp_path / "plan.pdf", [
        ["第1章 地域づくりの基本方針", "本計画は、釧路・根室地", "域の将来像を示すものです。"],
        ["二ページ目の本文です。"],
    ])
    doc = load_file(path, tmp_path)
    page1 = "第1章 地域づくりの基本方針\n本計画は、釧路・根室地\n域の将来像を示すものです。"
    assert doc.text == page1 + "\n\n二ページ目の本文です。"
    assert doc.page_starts == (0, len(page1) + 2)
    assert doc.page_at(doc.text.index("二ページ")) == 2
    assert doc.page_at(doc.text.index("将来像")) == 1
    assert _units(doc) == [
        ("heading", (), "第1章 地域づくりの基本方針"),
        ("paragraph", ("第1章 地域づくりの基本方針",), "本計画は、釧路・根室地域の将来像を示すものです。"),
        ("paragraph", ("第1章 地域づくりの基本方針",), "二ページ目の本文です。"),
    ]


def test_pdf_without_text_needs_ocr(tmp_path: Path) -> None:
    path = _pdf(tmp_path / "scan.pdf", [[], []])
    with pytest.raises(Skipped) as err:
        load_file(path, tmp_path)
    assert str(err.value) == "scan.pdf: PDF (2 pages) has no text layer; needs OCR"
    assert not isinstance(err.value, LoadError)  # a warning, not an error


def test_broken_pdf(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.pdf", random.Random(1).randbytes(2048))
    with pytest.raises(LoadError) as err:
        load_file(path, tmp_path)
    assert str(err.value) == "broken.pdf: not a valid PDF (file is damaged or not a PDF)"


def test_password_protected_pdf(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    plain = _pdf(tmp_path / "plain.pdf", [["秘密の計画"]])
    writer = PdfWriter(clone_from=plain)
    writer.encrypt("secret", algorithm="AES-128")
    writer.write(tmp_path / "locked.pdf")
    with pytest.raises(LoadError, match=r"^locked\.pdf: PDF is password-protected$"):
        load_file(tmp_path / "locked.pdf", tmp_path)


# ---- DOCX -------------------------------------------------------------------------------

def test_docx_headings_lists_tables(tmp_path: Path) -> None:
    d = docx.Document()
    d.add_heading("釧路・根室地域ビジョン", level=0)
    d.add_heading("第1章 総論", level=1)
    d.add_paragraph("本ビジョンは地域の将来像を示します。")
    d.add_paragraph("")
    d.add_heading("施策の方向", level=2)
    d.add_paragraph("農林水産業の振興", style="List Bullet")
    d.add_paragraph("観光の推進", style="List Bullet")
    d.add_paragraph("以上です。")
    table = d.add_table(rows=2, cols=3)
    for r, row in enumerate([("項目", "内容", "備考"), ("期間", "10年", "")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    table.cell(1, 1).merge(table.cell(1, 2))
    d.add_heading("第2章 各論", level=1)
    d.add_paragraph("各論の本文です。")
    d.save(tmp_path / "v.docx")

    doc = load_file(tmp_path / "v.docx", tmp_path)
    assert doc.text == (
        "釧路・根室地域ビジョン\n\n第1章 総論\n\n本ビジョンは地域の将来像を示します。\n\n施策の方向\n\n"
        "・農林水産業の振興\n・観光の推進\n\n以上です。\n\n項目　内容　備考\n\n期間　10年\n\n第2章 各論\n\n各論の本文です。"
    )
    assert _heading_texts(doc) == [
        ("釧路・根室地域ビジョン", 1), ("第1章 総論", 1), ("施策の方向", 2), ("第2章 各論", 1),
    ]
    ch1, ch2 = ("第1章 総論",), ("第2章 各論",)
    assert _units(doc) == [
        ("heading", (), "釧路・根室地域ビジョン"),
        ("heading", (), "第1章 総論"),
        ("paragraph", ch1, "本ビジョンは地域の将来像を示します。"),
        ("heading", ch1, "施策の方向"),
        ("bullet", ch1 + ("施策の方向",), "・農林水産業の振興"),
        ("bullet", ch1 + ("施策の方向",), "・観光の推進"),
        ("paragraph", ch1 + ("施策の方向",), "以上です。"),
        ("paragraph", ch1 + ("施策の方向",), "項目　内容　備考"),
        ("paragraph", ch1 + ("施策の方向",), "期間　10年"),
        ("heading", (), "第2章 各論"),
        ("paragraph", ch2, "各論の本文です。"),
    ]


def test_broken_docx(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.docx", b"PK\x03\x04 not really a zip")
    with pytest.raises(LoadError, match=r"^broken\.docx: not a valid Word \.docx file"):
        load_file(path, tmp_path)


# ---- HTML -------------------------------------------------------------------------------

HTML = """<!DOCTYPE html>
<html><head><meta charset="{charset}"><title>無視</title><style>p {{ color: red }}</style></head>
<body><script>alert(1)</script>
<!-- コメント -->
<h1>地域づくり<br>推進ビジョン</h1>
<p>釧路・根室地域の
将来像を示します。ICT
and AI.</p>
<h2>施策の方向</h2>
<ul><li>農林水産業の振興</li>
    <li>観光の<b>推進</b></li><li>・既に記号あり</li></ul>
<noscript>JavaScriptを有効にしてください</noscript><template><p>テンプレート</p></template>
<table><tr><th>項目</th><th>内容</th></tr><tr><td>期間</td><td><p>10年</p><p>延長可<br>（最大5年）</p></td></tr></table>
</body></html>"""


@pytest.mark.parametrize(("charset", "codec", "ext"), [("utf-8", "utf-8", ".html"), ("Shift_JIS", "cp932", ".htm")])
def test_html(tmp_path: Path, charset: str, codec: str, ext: str) -> None:
    path = _write(tmp_path, "v" + ext, HTML.format(charset=charset).encode(codec))
    doc = load_file(path, tmp_path)
    assert doc.text == (
        "地域づくり\n推進ビジョン\n\n釧路・根室地域の将来像を示します。ICT and AI.\n\n施策の方向\n\n"
        "・農林水産業の振興\n・観光の推進\n・既に記号あり\n\n項目　内容\n\n期間　10年 延長可 （最大5年）"
    )
    assert _heading_texts(doc) == [("地域づくり\n推進ビジョン", 1), ("施策の方向", 2)]
    top, sub = ("地域づくり推進ビジョン",), ("地域づくり推進ビジョン", "施策の方向")
    assert _units(doc) == [
        ("heading", (), "地域づくり推進ビジョン"),
        ("paragraph", top, "釧路・根室地域の将来像を示します。ICT and AI."),
        ("heading", top, "施策の方向"),
        ("bullet", sub, "・農林水産業の振興"),
        ("bullet", sub, "・観光の推進"),
        ("bullet", sub, "・既に記号あり"),
        ("paragraph", sub, "項目　内容"),
        ("paragraph", sub, "期間　10年 延長可 （最大5年）"),
    ]


def test_html_without_charset_detects_cp932(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.html", "<p>地域の振興</p><h3>見出し</h3>".encode("cp932"))
    doc = load_file(path, tmp_path)
    assert doc.text == "地域の振興\n\n見出し"
    assert doc.headings == (Heading(7, 10, 3),)


def test_pdf_with_unmapped_font_needs_ocr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pdfplumber.page

    path = _pdf(tmp_path / "cid.pdf", [["本文"]])
    monkeypatch.setattr(pdfplumber.page.Page, "extract_text", lambda self, **kw: "(cid:12)(cid:345)\n(cid:9)")
    with pytest.raises(Skipped, match=r"^cid\.pdf: PDF text layer cannot be decoded .*needs OCR$"):
        load_file(path, tmp_path)


def test_vision_loads_verbatim_with_manifest_meta() -> None:
    from ingest.sources import load_sources

    corpus = Path(__file__).resolve().parents[2] / "corpus"
    path = corpus / "kushiro-nemuro-vision.txt"
    doc = load_file(path, corpus, load_sources(corpus)["kushiro-nemuro-vision.txt"])
    assert doc.text == path.read_text(encoding="utf-8")  # quotes must be found verbatim
    assert (doc.source, doc.title) == ("kushiro-nemuro-vision.txt", "釧路・根室連携地域「地域づくり推進ビジョン」")
