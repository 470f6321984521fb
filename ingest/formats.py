"""PDF, Word (.docx) and HTML files into text, headings and page starts.

These parsers read untrusted, often compressed files: ``ParseLimits`` caps what one file may
unpack and how many pages it may have, and ``ingest/sandbox.py`` runs them in a worker
process under memory and time limits.
"""
from __future__ import annotations

import io
import re
import zipfile
import zlib
from pathlib import Path

from bs4 import BeautifulSoup
from bs4.element import Comment, Doctype, NavigableString, ProcessingInstruction, Tag

from ingest.loaders import FileProblem, LoadError, Parsed, ParseLimits, Skipped, clean as _clean, decode_text, mb, strict
from ingest.normalize import BULLET_MARKS, join_wrapped
from ingest.types import Heading

# ---- PDF --------------------------------------------------------------------------------

_PDF_CID = re.compile(r"\(cid:\d+\)")


class _BoundedZlib:
    """What pdfminer sees as ``zlib``: the same, but no stream may unpack to more than
    ``cap`` bytes. pdfminer inflates every stream whole and has no limit of its own, so a
    1.5 MB file of zeros becomes gigabytes in memory."""

    error = zlib.error

    def __init__(self, cap: int) -> None:
        self.cap = cap

    def _check(self, size: int) -> None:
        if size > self.cap:
            raise LoadError(Path(), f"a compressed stream in the PDF unpacks to more than {mb(self.cap)} MB "
                                    "(the limit for unpacked content); not indexed")

    def decompress(self, data: bytes, *args) -> bytes:
        d = zlib.decompressobj()
        out = d.decompress(data, self.cap + 1)
        self._check(len(out))
        if not d.eof:
            raise zlib.error("incomplete or truncated stream")
        return out

    def decompressobj(self, *args):
        return _BoundedStream(self, zlib.decompressobj(*args))


class _BoundedStream:
    def __init__(self, owner: _BoundedZlib, inner) -> None:
        self.owner, self.inner, self.size = owner, inner, 0

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        out = self.inner.decompress(data, self.owner.cap + 1 - self.size)
        self.size += len(out)
        self.owner._check(self.size)  # output stops one byte past the cap
        return out

    def flush(self, *args) -> bytes:
        out = self.inner.flush(*args)
        self.size += len(out)
        self.owner._check(self.size)
        return out


def _declared_pages(pdf) -> int:
    from pdfminer.pdftypes import resolve1

    try:
        return int(resolve1(resolve1(pdf.doc.catalog["Pages"])["Count"]))
    except Exception:  # no or a broken page tree: counted while reading instead
        return 0


def _limit_broken(exc: BaseException, depth: int = 0) -> BaseException | None:
    """The limit (ours, or memory) under an exception; pdfplumber wraps pdfminer's errors."""
    if isinstance(exc, (FileProblem, MemoryError)):
        return exc
    if depth > 5:
        return None
    inner = [a for a in exc.args if isinstance(a, BaseException)] + [e for e in (exc.__cause__, exc.__context__) if e]
    return next((found for e in inner if (found := _limit_broken(e, depth + 1)) is not None), None)


def load_pdf(raw: bytes, limits: ParseLimits) -> Parsed:
    import pdfminer.pdftypes
    import pdfplumber

    pdfminer.pdftypes.zlib = _BoundedZlib(limits.unpacked_bytes)
    pages: list[str] = []
    too_many = LoadError(Path(), f"the PDF has more than {limits.pages:,} pages (the page limit); not indexed")
    try:
        with pdfplumber.open(io.BytesIO(raw)) as pdf:
            if _declared_pages(pdf) > limits.pages:
                raise too_many
            for page in pdf.pages:
                if len(pages) == limits.pages:
                    raise too_many
                pages.append(_clean(page.extract_text() or ""))
                page.close()  # drops the page's parsed objects: memory stays that of one page
    except (FileProblem, MemoryError):
        raise
    except Exception as exc:  # pdfminer raises many types for damaged files
        if (limit := _limit_broken(exc)) is not None:
            raise limit from None
        reason = " ".join(type(a).__name__ for a in exc.args)
        if "Password" in reason or "Encryption" in reason:
            raise LoadError(Path(), "PDF is password-protected") from exc
        raise LoadError(Path(), "not a valid PDF (file is damaged or not a PDF)") from exc
    if not pages:
        raise LoadError(Path(), "PDF has no pages")
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


def _check_zip(raw: bytes, limits: ParseLimits) -> None:
    """The members' unpacked sizes as the zip declares them; zipfile never inflates a member
    past its declared size, so the sum bounds what python-docx can unpack."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            unpacked = sum(info.file_size for info in z.infolist())
    except (zipfile.BadZipFile, ValueError, OSError):
        return  # python-docx reports the damaged file below
    if unpacked > limits.unpacked_bytes:
        raise LoadError(Path(), f"the .docx unpacks to {mb(unpacked)} MB, over the {mb(limits.unpacked_bytes)} MB "
                                "limit for unpacked content; not indexed")


def load_docx(raw: bytes, limits: ParseLimits) -> Parsed:
    import docx
    from docx.table import Table

    _check_zip(raw, limits)
    try:
        document = docx.Document(io.BytesIO(raw))
        blocks = list(document.iter_inner_content())
    except MemoryError:
        raise
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


def load_html(raw: bytes, limits: ParseLimits) -> Parsed:
    text = None
    if m := _META_CHARSET.search(raw[:4096]):
        charset = m.group(1).decode("ascii").lower()
        text = strict(raw, _CODEC_ALIASES.get(charset, charset))
    out = _HtmlText()
    try:
        out.walk(BeautifulSoup(text if text is not None else decode_text(raw), "html.parser"))
    except RecursionError:
        raise LoadError(Path(), "the HTML is nested too deeply to read; not indexed") from None
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
