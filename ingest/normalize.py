"""Text repair and normalization.

Two forms of every text exist: the *display* form keeps the source's characters (quotes
must be verbatim), and the *index* form (NFKC + confusable folding) is used only for search.
"""
from __future__ import annotations

import re
import unicodedata

# Zero-width, bidi controls and Unicode tag characters: invisible, and used to smuggle text.
_INVISIBLE = re.compile(
    "[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]"
)
# C0/C1 controls other than tab and newline.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# Cyrillic and Greek letters that look like Latin ones. The vision writes ＣО₂ with a
# Cyrillic О, so a search for CO2 must fold it.
_CONFUSABLES = str.maketrans({
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P",
    "С": "C", "Т": "T", "Х": "X", "а": "a", "е": "e", "о": "o", "р": "p", "с": "c",
    "у": "y", "х": "x", "Ο": "O", "ο": "o", "Α": "A", "Ε": "E", "Ι": "I", "Κ": "K",
})

SENTENCE_END = "。！？!?"
BULLET_MARKS = "・○◆●■◇□◎※"
_HEADING_START = re.compile(
    r"^\s*(?:[■●◆□◇【〈〔]|第[0-9０-９一二三四五六七八九十]+[章節]|[0-9０-９]+[\.．、\s]"
    r"|[（(][0-9０-９]+[)）]|[①-⑳]|[ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩ])"
)


def strip_invisible(text: str) -> str:
    """Remove control, zero-width, bidi and tag characters (keeps newlines and tabs)."""
    return _CONTROL.sub("", _INVISIBLE.sub("", text))


def normalize_for_index(text: str) -> str:
    """The search form: invisible characters removed, NFKC, confusables folded, lower case."""
    return unicodedata.normalize("NFKC", strip_invisible(text)).translate(_CONFUSABLES).lower()


def squash_whitespace(text: str) -> str:
    return re.sub(r"\s+", "", text)


def starts_new_unit(line: str) -> bool:
    """A line that opens a bullet or a heading is never the continuation of a wrap."""
    s = line.lstrip()
    return bool(s) and (s[0] in BULLET_MARKS or bool(_HEADING_START.match(s)))


def join_wrapped(lines: list[str]) -> str:
    """Join PDF-wrapped lines of one unit.

    Japanese has no spaces between words, so a wrap inside a sentence (「地\\n域」) is joined
    with nothing. Only where both sides are Latin letters (an English word wrap) is a space kept.
    """
    out = ""
    for line in (ln.strip() for ln in lines):
        if not line:
            continue
        if out and out[-1].isascii() and out[-1].isalpha() and line[0].isascii() and line[0].isalpha():
            out += " "
        out += line
    return out
