"""Load corpus files (.txt .md .pdf .docx .html) into ``LoadedDoc``.

Reading a file (``read_file``: its bytes, within the size limit) is apart from parsing them
(``parse_bytes``), so an unchanged file is never parsed again and untrusted formats can be
parsed in a worker process (``ingest/sandbox.py``). PDF, Word and HTML are in ``ingest/formats.py``.
Every parser returns the text, the headings it knows from the format, and page starts.
The text is cleaned the same way for every format (newlines normalized to ``\\n``,
invisible and control characters removed) *before* offsets are taken, so heading spans
and page starts index the returned text exactly.
"""
from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NoReturn

from ingest.normalize import strip_invisible
from ingest.sources import SourceMeta
from ingest.types import Heading, LoadedDoc

SUPPORTED = {".txt", ".md", ".pdf", ".docx", ".html", ".htm"}

Parsed = tuple[str, tuple[Heading, ...], tuple[int, ...]]


class FileProblem(Exception):
    """Base of LoadError and Skipped. ``str(err)`` is a message for the user."""

    def __init__(self, path: Path, problem: str, name: str | None = None) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{shown(name or path.name)}: {problem}")


class LoadError(FileProblem):
    """A file that cannot be loaded (damaged, empty, too big, unknown encoding …)."""


class Skipped(FileProblem):
    """A valid file that is skipped with a warning, e.g. a scanned PDF that needs OCR."""


@dataclass(frozen=True)
class ParseLimits:
    """What parsing one file may cost. The worker process enforces memory and time; the
    parsers check the unpacked size (zip members, PDF streams) and the page count."""

    memory_mb: int = 450  # address space of the worker process
    seconds: float = 120.0  # CPU seconds per file (the wall-clock limit is twice that)
    unpacked_mb: float = 100.0
    pages: int = 2000

    @property
    def unpacked_bytes(self) -> int:
        return int(self.unpacked_mb * 1_000_000)


def shown(name: str) -> str:
    """A file name as it may be printed on one line: control and format characters (a
    newline, a bidi override) escaped, so a name cannot forge or reorder a message."""
    return "".join(ch.encode("unicode_escape").decode("ascii")
                   if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in name)


def source_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes (``../`` when outside)."""
    return Path(os.path.relpath(path.absolute(), root.absolute())).as_posix()


def read_file(path: Path, root: Path, max_bytes: int = 20_000_000) -> bytes:
    """The file's bytes. Raises LoadError for a file outside ``root``, of an unsupported
    type, over the size limit, unreadable or empty."""
    source = source_name(path, root)
    if source.startswith("../"):
        raise LoadError(path, f"not inside the corpus folder {root}")
    ext = path.suffix.lower()
    if ext not in SUPPORTED:
        raise LoadError(path, f"unsupported file type {ext or '(none)'!r} "
                              f"(supported: {', '.join(sorted(SUPPORTED))})", source)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise LoadError(path, f"file is {mb(size)} MB, over the {mb(max_bytes)} MB "
                                  "size limit", source)
        raw = path.read_bytes()
    except OSError as exc:
        raise LoadError(path, f"cannot read the file ({exc.strerror or exc})", source) from exc
    if not raw:
        raise LoadError(path, "empty file (0 bytes)", source)
    return raw


def parse_bytes(ext: str, raw: bytes, limits: ParseLimits = ParseLimits()) -> Parsed:
    """Text, headings and page starts of a file's bytes, in this process. Raises
    LoadError or Skipped without a file name."""
    if ext in (".txt", ".md"):
        return _load_markdown(raw) if ext == ".md" else _load_text(raw)
    from ingest import formats

    parser = {".pdf": formats.load_pdf, ".docx": formats.load_docx}.get(ext, formats.load_html)
    return parser(raw, limits)


Parse = Callable[[str, bytes], Parsed]


def make_doc(path: Path, root: Path, raw: bytes, parsed: Parsed, meta: SourceMeta | None = None) -> LoadedDoc:
    text, headings, page_starts = parsed
    if not text.strip():
        raise LoadError(path, "empty file (no text, only whitespace)", source_name(path, root))
    return LoadedDoc(
        source=source_name(path, root), text=text, title=(meta.title if meta else "") or path.stem,
        sha256=hashlib.sha256(raw).hexdigest(), page_starts=page_starts,
        headings=headings, meta=meta.as_meta() if meta else {},
    )


def load_file(path: Path, root: Path, meta: SourceMeta | None = None,
              max_bytes: int = 20_000_000, parse: Parse | None = None) -> LoadedDoc:
    """Load one corpus file. Raises LoadError (cannot load) or Skipped (warn and go on).
    ``parse(ext, raw)``: where the bytes are parsed (default: in this process)."""
    raw = read_file(path, root, max_bytes)
    try:
        parsed = (parse or parse_bytes)(path.suffix.lower(), raw)
    except FileProblem as exc:  # raised without a name: add the source path
        raise type(exc)(path, exc.problem, source_name(path, root)) from exc.__cause__
    return make_doc(path, root, raw, parsed, meta)


def mb(n: int) -> str:
    # Under 0.1 MB one decimal would print "0 MB": show two significant digits instead.
    mb = n / 1e6
    return f"{mb:.1f}".removesuffix(".0") if mb >= 0.1 or n == 0 else f"{mb:.2g}"


def clean(text: str) -> str:
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
        text = strict(raw, "utf-16")
        return clean(text) if text is not None else _fail("not valid UTF-16 text")
    if b"\x00" in raw:
        _fail("binary file (contains NUL bytes), not text")
    if len(_CONTROL_BYTES.findall(raw)) > max(1, len(raw) // 50):
        _fail("binary file (mostly non-printable bytes), not text")
    text = strict(raw, "iso2022_jp") if b"\x1b$" in raw else None
    text = strict(raw, "utf-8-sig") if text is None else text
    if text is None:
        candidates = [t for t in (strict(raw, "cp932"), strict(raw, "euc_jp")) if t is not None]
        if not candidates:
            _fail("unknown encoding (not UTF-8, Shift_JIS/CP932 or EUC-JP)")
        # Both codecs can decode some byte strings; the wrong one yields half-width kana and
        # rare symbols instead of kana and kanji. Ties go to cp932 (first): deterministic.
        text = max(candidates, key=lambda t: len(_HIRAGANA_KATAKANA_KANJI.findall(t)))
    if len(_UNPRINTABLE.findall(text)) > len(text) // 10:
        _fail("binary file (mostly non-printable characters), not text")
    return clean(text)


def strict(raw: bytes, codec: str) -> str | None:
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
