"""ふりがな: readings for the kanji words of a text, as <ruby> pieces. No gradio here.

Readings are SudachiPy's reading forms (split mode C, so that 釧路湿原 is one word), in
hiragana, placed over the kanji of a word only (担い手 → 担(にな)い手(て)). A small reading
dictionary (``corpus/readings.toml``) overrides Sudachi for words it reads wrongly in the plan
and pins the region's place names. The text itself is never changed: the pieces' bases joined
give it back exactly.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ingest.tokenize import SudachiTokenizers, is_kanji

READINGS_FILE = "readings.toml"
_KANJI_LIKE = set("々〆ヶ")


@dataclass(frozen=True)
class Piece:
    """A stretch of the text and its reading ("" when it is shown without ruby)."""

    base: str
    reading: str = ""


@dataclass(frozen=True, kw_only=True)
class Entry:
    word: str
    reading: str
    sudachi: str  # what SudachiPy reads in the plan's text (tested, so a fixed Sudachi shows up)
    why: str = ""


def load_entries(path: str | Path) -> list[Entry]:
    """The ``[[reading]]`` tables of a readings file."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    return [Entry(word=e["word"], reading=e["reading"], sudachi=e.get("sudachi", ""), why=e.get("why", ""))
            for e in data.get("reading", [])]


def hiragana(text: str) -> str:
    return "".join(chr(ord(ch) - 0x60) if "ァ" <= ch <= "ヶ" else ch for ch in text)


def _has_kanji(text: str) -> bool:
    return any(is_kanji(ch) or ch in _KANJI_LIKE for ch in text)


def _kind(ch: str) -> str:
    """K: kanji, a: kana, o: anything else (digits, letters, symbols)."""
    if is_kanji(ch) or ch in _KANJI_LIKE:
        return "K"
    if "\u3041" <= ch <= "\u309f" or "\u30a1" <= ch <= "\u30fc":
        return "a"
    return "o"


def align(surface: str, reading: str) -> list[Piece]:
    """Readings over the kanji runs of one word: the word's kana must match its reading, the
    kanji runs take what is between (担い手/になひて → 担:にな, い, 手:て). When they do not
    line up, the whole word carries the reading."""
    if not reading or not _has_kanji(surface) or _has_kanji(reading):
        return [Piece(surface)]
    runs, pos = [], 0
    for kinds in (m.group() for m in re.finditer(r"K+|a+|o+", "".join(_kind(ch) for ch in surface))):
        runs.append((surface[pos:pos + len(kinds)], kinds[0]))
        pos += len(kinds)
    pattern = "".join({"K": "(.+?)", "o": "(.*?)"}.get(kind) or re.escape(hiragana(text)) for text, kind in runs)
    match = re.fullmatch(pattern, reading)
    if match is None:
        return [Piece(surface, reading)]
    groups = iter(match.groups())
    out = []
    for text, kind in runs:
        found = next(groups) if kind in "Ko" else ""
        out.append(Piece(text, found if kind == "K" else ""))
    return out


class Furigana:
    """Text → pieces with readings, from Sudachi's words in split mode C (loaded on first use)."""

    def __init__(self, entries: list[Entry] | None = None) -> None:
        self.entries = {e.word: hiragana(e.reading) for e in entries or []}
        words = sorted(self.entries, key=len, reverse=True)
        self._words = re.compile("|".join(map(re.escape, words))) if words else None
        self._tokenizers = SudachiTokenizers("C")

    @classmethod
    def from_file(cls, path: str | Path | None) -> "Furigana":
        """With the readings of ``path`` when it exists, else Sudachi's alone."""
        return cls(load_entries(path) if path and Path(path).is_file() else [])

    def sudachi(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, hiragana reading) of each of Sudachi's words."""
        if not text:
            return []
        return [(m.begin(), m.end(), hiragana(m.reading_form())) for m in self._tokenizers.get().tokenize(text)]

    def pieces(self, text: str) -> list[Piece]:
        words = self.sudachi(text) if _has_kanji(text) else [(0, len(text), "")]
        for start, end in [m.span() for m in self._words.finditer(text)] if self._words else []:
            words = _override(text, words, start, end, self.entries[text[start:end]])
        out: list[Piece] = []
        pos = 0
        for start, end, reading in sorted(words):
            if start > pos:
                out.append(Piece(text[pos:start]))
            out.extend(align(text[start:end], reading) if _has_kanji(text[start:end]) else [Piece(text[start:end])])
            pos = end
        if pos < len(text):
            out.append(Piece(text[pos:]))
        return out


def _override(text: str, words: list[tuple[int, int, str]], start: int, end: int,
              reading: str) -> list[tuple[int, int, str]]:
    """Put a dictionary word over Sudachi's words. A word of Sudachi's that reaches past it
    (標津町 over 標津) keeps the rest of its reading when it begins or ends with the
    dictionary's; otherwise that rest is shown without a reading rather than a wrong one."""
    out = [(start, end, reading)]
    for s, e, r in words:
        if e <= start or s >= end:
            out.append((s, e, r))
            continue
        if s < start:
            head = r[: len(r) - len(reading)] if r.endswith(reading) and e <= end else ""
            out.append((s, start, head))
        if e > end:
            tail = r[len(reading):] if r.startswith(reading) and s >= start else ""
            out.append((end, e, tail))
    return out
