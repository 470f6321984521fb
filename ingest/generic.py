"""Structure parser for documents other than the vision: headings, bullets, paragraphs.

Headings come from the file format when the loader knows them (docx styles, HTML tags,
Markdown #), else from the numbering patterns of Japanese plans: 第N章, 第N節, ■/●, 【…】,
1., (1), ①. The section of a unit is the stack of headings above it.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from ingest.lines import Line, joined, paragraphs, split_items, split_lines
from ingest.normalize import join_wrapped, starts_new_unit
from ingest.types import Heading, LoadedDoc, Unit

_NUM = "0-9０-９"
_KANJI_NUM = "一二三四五六七八九十百"
_HEADING_PATTERNS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(rf"^第[{_NUM}{_KANJI_NUM}]+章"), 1),
    (re.compile("^[ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩ]"), 1),
    (re.compile(rf"^第[{_NUM}{_KANJI_NUM}]+節"), 2),
    (re.compile("^[■●]"), 2),
    (re.compile("^【[^】]+】"), 2),
    # "1." "１．" "1 " then a title; "1.5倍" is a number, not a heading.
    (re.compile(rf"^[{_NUM}]{{1,2}}(?:[.．](?![{_NUM}])|[ 　])\s*\S"), 3),
    (re.compile(rf"^[(（][{_NUM}]{{1,2}}[)）]"), 4),
    (re.compile("^[①-⑳]"), 5),
)
_MAX_HEADING_CHARS = 60
_BULLET_START = ("・", "○", "◆", "◇", "◎", "□", "●", "■")
# Markdown list markers; a plan's own bullets are the marks above.
_MD_BULLET = re.compile(r"^[-*+][ \t\u3000]+\S")
_MD_MARK = re.compile(r"^[-*+][ \t\u3000]+")


def heading_level(line: str) -> int | None:
    """The level of a line that looks like a numbered heading, or None.

    A heading is short and is not a sentence: a line ending with 「。」 is body text even
    when it starts with a number.
    """
    s = line.strip()
    if not s or len(s) > _MAX_HEADING_CHARS or s.endswith("。"):
        return None
    for pattern, level in _HEADING_PATTERNS:
        if pattern.match(s):
            return level
    return None


def _is_bullet(item: list[Line]) -> bool:
    first = item[0].text
    return first.startswith(_BULLET_START) or bool(_MD_BULLET.match(first))


class _Sections:
    """The stack of open headings."""

    def __init__(self) -> None:
        self.stack: list[tuple[int, str]] = []

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(text for _, text in self.stack)

    def open(self, level: int, text: str) -> tuple[str, ...]:
        """Close headings at ``level`` or deeper, push this one; return the parent path."""
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        parent = self.path
        self.stack.append((level, text))
        return parent


def parse_generic(doc: LoadedDoc) -> list[Unit]:
    """Units of any document: heading, bullet and paragraph, in reading order."""
    sections = _Sections()
    known = sorted(doc.headings, key=lambda h: h.start)
    ends = [h.end for h in known]  # headings do not overlap: sorted like their starts
    units: list[Unit] = []
    for para in paragraphs(split_lines(doc.text)):
        for part in _parts(para, known, ends):
            if isinstance(part, _Head):
                parent = sections.open(part.level, part.text)
                units.append(Unit(part.text, part.start, part.end, parent, "heading"))
            else:
                units.extend(_body_units(part, sections.path))
    return units


@dataclass(frozen=True)
class _Head:
    text: str
    start: int
    end: int
    level: int


def _parts(para: list[Line], known: list[Heading], ends: list[int]) -> list[_Head | list[Line]]:
    """Split a paragraph into headings and runs of body lines, in order."""
    out: list[_Head | list[Line]] = []
    body: list[Line] = []

    def flush() -> None:
        if body:
            out.append(body.copy())
            body.clear()

    if known:
        done: set[int] = set()
        for line in para:
            i = bisect.bisect_right(ends, line.start)  # first heading ending after the line starts
            h = known[i] if i < len(known) and known[i].start < line.end else None
            if h is None:
                body.append(line)
            elif h.start not in done:  # a heading may wrap over several lines
                flush()
                done.add(h.start)
                text = join_wrapped(_span_lines(para, h.start, h.end))
                out.append(_Head(text, h.start, h.end, h.level))
        flush()
        return out

    i = 0
    while i < len(para):
        level = heading_level(para[i].text)
        if level is None:
            body.append(para[i])
            i += 1
            continue
        flush()
        n = _wrapped_heading_lines(para[i:])
        first = para[i].text.lstrip("■●").lstrip()  # the marks are not part of the name
        start = para[i].end - len(first)
        text = join_wrapped([first] + [ln.text for ln in para[i + 1:i + n]])
        out.append(_Head(text, start, para[i + n - 1].end, level))
        i += n
    flush()
    return out


def _wrapped_heading_lines(lines: list[Line]) -> int:
    """How many lines the heading at ``lines[0]`` spans.

    A PDF wraps long headings too (「１ 農林水産業をはじめとする地\\n域産業の振興」). The
    rest of the paragraph is taken as the heading's wrap only when all of it could be:
    no line starts a new unit or ends a sentence, and the whole stays heading-short.
    """
    rest = lines[1:]
    if not rest or any(starts_new_unit(ln.text) or ln.text.endswith("。") for ln in rest):
        return 1
    if len(join_wrapped([ln.text for ln in lines])) > _MAX_HEADING_CHARS:
        return 1
    return len(lines)


def _span_lines(para: list[Line], start: int, end: int) -> list[str]:
    """The parts of the paragraph's lines that fall inside [start, end)."""
    return [ln.text[max(start, ln.start) - ln.start:min(end, ln.end) - ln.start]
            for ln in para if ln.start < end and start < ln.end]


def _items(run: list[Line]) -> list[list[Line]]:
    """``split_items``, and also a new item at each Markdown list marker."""
    out: list[list[Line]] = []
    for item in split_items(run):
        for line in item:
            if not out or line is item[0] or _MD_BULLET.match(line.text):
                out.append([line])
            else:
                out[-1].append(line)
    return out


def _body_units(run: list[Line], section: tuple[str, ...]) -> list[Unit]:
    """Bullets alone; consecutive non-bullet items merge into one paragraph (their lines
    are wraps of one text block, or sentences of one paragraph)."""
    units: list[Unit] = []
    prose: list[Line] = []

    def flush() -> None:
        if prose:
            text, start, end = joined(prose)
            units.append(Unit(text, start, end, section, "paragraph"))
            prose.clear()

    for item in _items(run):
        if _is_bullet(item):
            flush()
            text, start, end = joined(item)
            # The chunker strips the plan's bullet marks; "- " of Markdown is dropped here.
            if m := _MD_MARK.match(text):
                text, start = text[m.end():], start + m.end()
            units.append(Unit(text, start, end, section, "bullet"))
        else:
            prose.extend(item)
    flush()
    return units
