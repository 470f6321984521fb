"""Line and paragraph helpers shared by the structure parsers."""
from __future__ import annotations

from dataclasses import dataclass

from ingest.normalize import join_wrapped, starts_new_unit


@dataclass(frozen=True)
class Line:
    text: str  # without the newline
    start: int
    end: int

    @property
    def blank(self) -> bool:
        return not self.text.strip()


def split_lines(text: str) -> list[Line]:
    out, pos = [], 0
    for raw in text.splitlines(keepends=True):
        body = raw.rstrip("\r\n")
        lead = len(body) - len(body.lstrip())
        out.append(Line(body.strip(), pos + lead, pos + lead + len(body.strip())))
        pos += len(raw)
    return out


def paragraphs(lines: list[Line]) -> list[list[Line]]:
    """Runs of non-blank lines."""
    out: list[list[Line]] = []
    cur: list[Line] = []
    for line in lines:
        if line.blank:
            if cur:
                out.append(cur)
            cur = []
        else:
            cur.append(line)
    if cur:
        out.append(cur)
    return out


def split_items(para: list[Line]) -> list[list[Line]]:
    """Split a paragraph into items: a bullet or heading line starts a new item, other
    lines continue the current one (they are PDF wraps)."""
    items: list[list[Line]] = []
    for line in para:
        if not items or starts_new_unit(line.text) or items[-1][-1].text.endswith(("。", "！", "？")):
            items.append([line])
        else:
            items[-1].append(line)
    return items


def joined(item: list[Line]) -> tuple[str, int, int]:
    """The joined text of an item and its span."""
    return join_wrapped([ln.text for ln in item]), item[0].start, item[-1].end
