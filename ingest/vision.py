"""Structure parser for the vision's one-page layout.

The PDF page has five columns, one per policy direction. Extraction lists the five
headings first and then five blocks of 「・」 bullets in the same order, so block k belongs
to heading k. The target-picture statements come last, after the note 〈概ね…〉, but they
belong to section Ⅰ 地域のめざす姿, which appears near the top with no body.
"""
from __future__ import annotations

import re

from ingest.lines import Line, joined, paragraphs, split_items, split_lines
from ingest.types import LoadedDoc, Unit

_DIRECTIONS_HEAD = re.compile(r"^■\s*(.*施策の方向.*)$")
_TARGET_HEAD = re.compile(r"^Ⅰ\s*\S*めざす姿")
_NOTE = re.compile(r"^〈.*めざす姿.*〉")
_DIRECTION = re.compile(r"^[１-９1-9]\s")


def is_vision_layout(text: str) -> bool:
    return bool(re.search(r"^■.*施策の方向", text, re.M)) and bool(re.search(r"^〈.*めざす姿", text, re.M))


def _bullets(paras: list[list[Line]]) -> list[tuple[str, int, int]]:
    return [joined(item) for para in paras for item in split_items(para)]


def parse_vision(doc: LoadedDoc) -> list[Unit]:
    """Units of the vision: title, slogan, Ⅰ with its note and statements, the five
    directions with their bullets. Raises ValueError if the layout is not as expected."""
    paras = paragraphs(split_lines(doc.text))
    firsts = [p[0].text for p in paras]
    try:
        i_target = next(i for i, f in enumerate(firsts) if _TARGET_HEAD.match(f))
        i_dirs = next(i for i, f in enumerate(firsts) if _DIRECTIONS_HEAD.match(f))
        i_note = next(i for i, f in enumerate(firsts) if _NOTE.match(f))
    except StopIteration as exc:
        raise ValueError(f"{doc.source}: not the vision layout") from exc

    units: list[Unit] = []
    title, t0, t1 = joined(paras[0][:1])
    units.append(Unit(title, t0, t1, (), "title"))
    if len(paras[0]) > 1 or i_target > 1:
        slogan_lines = paras[0][1:] + [ln for p in paras[1:i_target] for ln in p]
        text, s0, s1 = joined(slogan_lines)
        units.append(Unit(text, s0, s1, (), "slogan"))

    target_text, g0, g1 = joined(paras[i_target][:1])
    target = (target_text,)
    units.append(Unit(target_text, g0, g1, (), "section"))
    dir_root_line = paras[i_dirs][0]
    dir_root = (_DIRECTIONS_HEAD.match(dir_root_line.text).group(1).strip(),)
    root_start = dir_root_line.start + dir_root_line.text.index(dir_root[0])
    units.append(Unit(dir_root[0], root_start, root_start + len(dir_root[0]), (), "section"))

    # Heading paragraphs follow the ■ line (it may share a paragraph with heading １).
    head_paras = [paras[i_dirs][1:]] + paras[i_dirs + 1:i_note]
    head_paras = [p for p in head_paras if p]
    headings: list[tuple[str, int, int]] = []
    blocks: list[list[Line]] = []
    for para in head_paras:
        if _DIRECTION.match(para[0].text) and not para[0].text.startswith("・"):
            headings.append(joined(para))
        else:
            blocks.append(para)
    if len(blocks) != len(headings):
        raise ValueError(
            f"{doc.source}: {len(headings)} direction headings but {len(blocks)} bullet blocks"
        )

    note_text, n0, n1 = joined(paras[i_note][:1])
    units.append(Unit(note_text, n0, n1, target, "note"))
    statement_lines = paras[i_note][1:] + [ln for p in paras[i_note + 1:] for ln in p]
    for text, s0, s1 in _bullets([statement_lines]):
        units.append(Unit(text, s0, s1, target, "statement"))

    for (head, h0, h1), block in zip(headings, blocks):
        section = dir_root + (head,)
        units.append(Unit(head, h0, h1, dir_root, "heading"))
        for text, b0, b1 in _bullets([block]):
            units.append(Unit(text, b0, b1, section, "bullet"))
    return units
