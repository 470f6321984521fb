"""Load corpus files (.txt .md .pdf .docx .html) into ``LoadedDoc``.

Every loader returns the text, the headings it knows from the format, and page starts.
The text is cleaned the same way for every format (newlines normalized to ``\\n``,
invisible and control characters removed) *before* offsets are taken, so heading spans
and page starts index the returned text exactly.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path
from typing import NoReturn

from bs4 import BeautifulSoup
from bs4.element import Comment, Doctype, NavigableString, ProcessingInstruction, Tag

from ingest.normalize import BULLET_MARKS, join_wrapped, strip_invisible
from ingest.sources import SourceMeta
from ingest.types import Heading, LoadedDoc

SUPPORTED = {".txt", ".md", ".pdf", ".docx", ".html", ".htm"}

Parsed = tuple[str, tuple[Heading, ...], tuple[int, ...]]


class FileProblem(Exception):
    """Base of LoadError and Skipped. ``str(err)`` is a message for the user."""

    def __init__(self, path: Path, problem: str, name: str | None = None) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{name or path.name}: {problem}")


class LoadError(FileProblem):
    """A file that cannot be loaded (damaged, empty, too big, unknown encoding …)."""


class Skipped(FileProblem):
    """A valid file that is skipped with a warning, e.g. a scanned PDF that needs OCR."""


def load_file(path: Path, root: Path, meta: SourceMeta | None = None,
              max_bytes: int = 20_000_000) -> LoadedDoc:
    """Load one corpus file. Raises LoadError (cannot load) or Skipped (warn and go on)."""
    source = Path(os.path.relpath(path.absolute(), root.absolute())).as_posix()
    if source.startswith("../"):
        raise LoadError(path, f"not inside the corpus folder {root}")
    ext = path.suffix.lower()
    if ext not in SUPPORTED:
        raise LoadError(path, f"unsupported file type {ext or '(none)'!r} "
                              f"(supported: {', '.join(sorted(SUPPORTED))})", source)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise LoadError(path, f"file is {_mb(size)} MB, over the {_mb(max_bytes)} MB "
                                  "size limit", source)
        raw = path.read_bytes()
    except OSError as exc:
        raise LoadError(path, f"cannot read the file ({exc.strerror or exc})", source) from exc
    if not raw:
        raise LoadError(path, "empty file (0 bytes)", source)

    try:
        text, headings, page_starts = _LOADERS[ext](raw)
    except FileProblem as exc:  # raised below without a name: add the source path
        raise type(exc)(path, exc.problem, source) from exc.__cause__
    if not text.strip():
        raise LoadError(path, "empty file (no text, only whitespace)", source)
    return LoadedDoc(
        source=source, text=text, title=(meta.title if meta else "") or path.stem,
        sha256=hashlib.sha256(raw).hexdigest(), page_starts=page_starts,
        headings=headings, meta=meta.as_meta() if meta else {},
    )


def _mb(n: int) -> str:
    # Under 0.1 MB one decimal would print "0 MB": show two significant digits instead.
    mb = n / 1e6
    return f"{mb:.1f}".removesuffix(".0") if mb >= 0.1 or n == 0 else f"{mb:.2g}"


def _clean(text: str) -> str:
    text = re.sub(r"\r\n?|[\u2028\u2029]", "\n", text)
    return strip_invisible(text)


# ---- plain text -------------------------------------------------------------------------

_HIRAGANA_KATAKANA_KANJI = re.compile("[\u3041-\u309f\u30a0-\u30ff\u4e00-\u9fff\u3000-\u303f]")
# Control bytes never found in text in any of the encodings we accept (keeps \t \n \f \r,
# ESC for ISO-2022-JP and 0x1a, the old DOS end-of-file mark).
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0e-\x19\x1c-\x1f\x7f]")
# What a wrong codec or binary data decodes to: controls, private use, replacement char.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ue000-\uf8ff\ufffd]")


def decode_text(raw: bytes) -> str:
    """Decode text bytes: UTF-16 with a BOM, UTF-8 (BOM stripped), ISO-2022-JP, then
    Shift_JIS (cp932) or EUC-JP. Raises LoadError "binary" or "unknown encoding"."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = _strict(raw, "utf-16")
        return _clean(text) if text is not None else _fail("not valid UTF-16 text")
    if b"\x00" in raw:
        _fail("binary file (contains NUL bytes), not text")
    if len(_CONTROL_BYTES.findall(raw)) > max(1, len(raw) // 50):
        _fail("binary file (mostly non-printable bytes), not text")
    text = _strict(raw, "iso2022_jp") if b"\x1b$" in raw else None
    text = _strict(raw, "utf-8-sig") if text is None else text
    if text is None:
        candidates = [t for t in (_strict(raw, "cp932"), _strict(raw, "euc_jp")) if t is not None]
        if not candidates:
            _fail("unknown encoding (not UTF-8, Shift_JIS/CP932 or EUC-JP)")
        # Both codecs can decode some byte strings; the wrong one yields half-width kana and
        # rare symbols instead of kana and kanji. Ties go to cp932 (first): deterministic.
        text = max(candidates, key=lambda t: len(_HIRAGANA_KATAKANA_KANJI.findall(t)))
    if len(_UNPRINTABLE.findall(text)) > len(text) // 10:
        _fail("binary file (mostly non-printable characters), not text")
    return _clean(text)


def _strict(raw: bytes, codec: str) -> str | None:
    try:
        return raw.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _fail(problem: str) -> NoReturn:
    raise LoadError(Path(), problem)


def _load_text(raw: bytes) -> Parsed:
    return decode_text(raw), (), ()


_MD_HEADING = re.compile(r"^(#{1,6})[ \t\u3000]+(.*?)(?:[ \t\u3000]+#+)?[ \t\u3000]*$")
_MD_FENCE = re.compile(r"^\s*(```|~~~)")


def _load_markdown(raw: bytes) -> Parsed:
    text = decode_text(raw)
    headings: list[Heading] = []
    pos, fenced = 0, False
    for line in text.split("\n"):
        if _MD_FENCE.match(line):
            fenced = not fenced
        elif not fenced and (m := _MD_HEADING.match(line)) and m.group(2):
            headings.append(Heading(pos + m.start(2), pos + m.end(2), len(m.group(1))))
        pos += len(line) + 1
    return text, tuple(headings), ()


# ---- PDF --------------------------------------------------------------------------------

_PDF_CID = re.compile(r"\(cid:\d+\)")


def _load_pdf(raw: bytes) -> Parsed:
    import pdfplumber

    pages: list[str] = []
    try:
        with pdfplumber.open(io.BytesIO(raw)) as pdf:
            pages = [_clean(page.extract_text() or "") for page in pdf.pages]
    except Exception as exc:  # pdfminer raises many types for damaged files
        reason = " ".join(type(a).__name__ for a in exc.args)
        if "Password" in reason or "Encryption" in reason:
            raise LoadError(Path(), "PDF is password-protected") from exc
        raise LoadError(Path(), "not a valid PDF (file is damaged or not a PDF)") from exc
    if not pages:
        _fail("PDF has no pages")
    if not any(p.strip() for p in pages):
        raise Skipped(Path(), f"PDF ({len(pages)} pages) has no text layer; needs OCR")
    # A font without a Unicode map extracts as "(cid:1234)": the text layer is unusable.
    joined = "".join(pages)
    if len("".join(_PDF_CID.findall(joined))) * 2 > len(re.sub(r"\s", "", joined)):
        raise Skipped(Path(), "PDF text layer cannot be decoded (fonts without a Unicode "
                              "map); needs OCR")
    starts, pos = [], 0
    for page in pages:
        starts.append(pos)
        pos += len(page) + 2
    return "\n\n".join(pages), (), tuple(starts)


# ---- DOCX -------------------------------------------------------------------------------

class _Builder:
    """Appends blocks of text while recording heading spans."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.headings: list[Heading] = []

    def add(self, text: str, sep: str = "\n\n", level: int = 0) -> None:
        text = _clean(text).strip()
        if not text:
            return
        if self.parts:
            self.parts.append(sep)
            self.pos += len(sep)
        if level:
            self.headings.append(Heading(self.pos, self.pos + len(text), level))
        self.parts.append(text)
        self.pos += len(text)

    def result(self) -> Parsed:
        return "".join(self.parts), tuple(self.headings), ()


def _docx_heading_level(style_name: str) -> int:
    name = style_name.strip()
    if name.lower() == "title":
        return 1
    if name.lower().startswith("heading") or name.startswith("見出し"):
        m = re.search(r"\d+", name)
        return max(1, int(m.group())) if m else 1
    return 0


def _load_docx(raw: bytes) -> Parsed:
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(raw))
        blocks = list(document.iter_inner_content())
    except Exception as exc:  # zipfile, lxml and python-docx errors
        raise LoadError(Path(), "not a valid Word .docx file (damaged, or another format "
                                "renamed to .docx)") from exc
    out = _Builder()
    prev_list = False
    for block in blocks:
        if isinstance(block, Table):
            for row in block.rows:
                cells: list[str] = []
                seen: list[object] = []  # a merged cell repeats in row.cells
                for cell in row.cells:
                    if cell._tc not in seen:
                        seen.append(cell._tc)
                        cells.append(join_wrapped([p.text for p in cell.paragraphs]))
                out.add("　".join(c for c in cells if c))
            prev_list = False
            continue
        style = block.style.name if block.style is not None else ""
        text = block.text.strip()
        level = _docx_heading_level(style or "")
        numbered = block._p.pPr is not None and block._p.pPr.numPr is not None
        is_list = not level and (numbered or style.lower().startswith(("list bullet", "list number")))
        if is_list and text and text[0] not in BULLET_MARKS:
            text = "・" + text  # Word draws the bullet; the text does not contain it
        out.add(text, "\n" if is_list and prev_list else "\n\n", level)
        prev_list = is_list and bool(text)
    return out.result()


# ---- HTML -------------------------------------------------------------------------------

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_CODEC_ALIASES = {"shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932",
                  "windows-31j": "cp932", "euc-jp": "euc_jp", "x-euc-jp": "euc_jp"}
_DROP = {"script", "style", "noscript", "template", "head", "iframe", "svg", "object"}
_BLOCKS = {"p", "div", "section", "article", "main", "header", "footer", "nav", "aside",
           "blockquote", "pre", "table", "ul", "ol", "dl", "dt", "dd", "figure", "figcaption",
           "address", "form", "fieldset", "caption", "hr", "tr"}
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")


def _collapse(s: str) -> str:
    # A source newline between Japanese characters is a wrap of the HTML file, not a space.
    def repl(m: re.Match[str]) -> str:
        before, after = s[m.start() - 1:m.start()], s[m.end():m.end() + 1]
        wrap = "\n" in m.group() and (not before.isascii() or not after.isascii())
        return "" if wrap and before and after else " "
    return _HTML_SPACE.sub(repl, s)


def _load_html(raw: bytes) -> Parsed:
    text = None
    if m := _META_CHARSET.search(raw[:4096]):
        charset = m.group(1).decode("ascii").lower()
        text = _strict(raw, _CODEC_ALIASES.get(charset, charset))
    soup = BeautifulSoup(text if text is not None else decode_text(raw), "html.parser")
    out = _HtmlText()
    out.walk(soup)
    return "".join(out.parts), tuple(out.headings), ()


class _HtmlText:
    """Renders HTML to text. Separators are owed (``pending``) and written only before
    the next text, so nothing written is ever taken back and offsets stay exact."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.headings: list[Heading] = []
        self.pending = ""
        self.bullet = False  # the next text opens an <li>
        self.first_cell = True
        self.pre = False
        self.in_cell = 0
        self.first_at: int | None = None  # where the first text since a reset was written

    def walk(self, node: Tag) -> None:
        for child in node.children:
            if isinstance(child, (Comment, Doctype, ProcessingInstruction)):
                continue
            if isinstance(child, NavigableString):
                self.write(_clean(str(child)))
            elif not isinstance(child, Tag) or child.name in _DROP:
                continue
            elif child.name == "br":
                self.brk(1)
            elif child.name in ("td", "th"):
                if not self.first_cell and self.parts and "\n" not in self.pending:
                    self.pending = "\u3000"
                self.first_cell = False
                self.in_cell += 1
                self.walk(child)
                self.in_cell -= 1
            elif re.fullmatch(r"h[1-6]", child.name):
                self.brk(2)
                self.first_at = None
                self.walk(child)
                if self.first_at is not None:
                    self.headings.append(Heading(self.first_at, self.pos, int(child.name[1])))
                self.brk(2)
            elif child.name == "li":
                self.brk(1)
                self.bullet = True
                self.walk(child)
                self.bullet = False
                self.brk(1)
            elif child.name in _BLOCKS:
                self.brk(2)
                was_pre, self.pre = self.pre, self.pre or child.name == "pre"
                self.first_cell = self.first_cell if self.in_cell else True
                self.walk(child)
                self.pre = was_pre
                self.brk(2)
            else:
                self.walk(child)

    def brk(self, n: int) -> None:
        if not self.parts:
            return
        if self.in_cell:  # a table row stays on one line
            self.pending = self.pending or " "
        elif self.pending.count("\n") < n:
            self.pending = "\n" * n

    def write(self, s: str) -> None:
        if not self.pre:
            s = _collapse(s)
            if s.startswith(" ") and not self.pending:
                self.pending = " "
        body = s if self.pre else s.strip(" ")
        if not body.strip():
            return
        if self.bullet and body.lstrip()[0] not in BULLET_MARKS:
            body = "・" + body
        self.bullet = False
        if self.parts:
            self.parts.append(self.pending)
            self.pos += len(self.pending)
        if self.first_at is None:
            self.first_at = self.pos
        self.parts.append(body)
        self.pos += len(body)
        self.pending = " " if s.endswith(" ") and not self.pre else ""


_LOADERS = {".txt": _load_text, ".md": _load_markdown, ".pdf": _load_pdf,
            ".docx": _load_docx, ".html": _load_html, ".htm": _load_html}
