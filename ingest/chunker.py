"""Turn a loaded document into citable chunks: one bullet or paragraph each."""
from __future__ import annotations

import hashlib
import re

from ingest.normalize import BULLET_MARKS, normalize_for_index
from ingest.types import Chunk, LoadedDoc, Unit
from ingest.vision import is_vision_layout, parse_vision

CHUNKER_VERSION = "structure-v4"  # v4: passages are embedded and indexed without their section path
_SENTENCE = re.compile(r".+?(?:[。！？!?]+[」』）)]*|$)", re.S)


def chunk_id(source: str, section: tuple[str, ...], text: str) -> str:
    key = "\x1f".join([source, " › ".join(section), normalize_for_index(text)])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


def _source_span(doc_text: str, start: int, end: int, nonws_from: int, nonws_to: int) -> tuple[int, int]:
    """Map a range of non-whitespace characters of a unit back to source offsets.

    The unit text had its line wraps removed, so offsets are counted over non-whitespace
    characters, which both forms share.
    """
    idx = [start + i for i, ch in enumerate(doc_text[start:end]) if not ch.isspace()]
    return idx[nonws_from], idx[nonws_to - 1] + 1


def _nonws_len(text: str) -> int:
    return sum(1 for ch in text if not ch.isspace())


class Chunker:
    """Splits a document into chunks by its structure.

    Bullets always stay alone (a bullet is what a citation quotes). Non-bullet fragments
    under ``min_chars`` merge with the next unit of the same section; units over
    ``max_chars`` split at sentence ends.
    """

    def __init__(self, min_chars: int = 40, max_chars: int = 400) -> None:
        self.min_chars = min_chars
        self.max_chars = max_chars

    def split(self, doc: LoadedDoc) -> list[Chunk]:
        if is_vision_layout(doc.text):
            units = parse_vision(doc)
        else:
            from ingest.generic import parse_generic

            units = parse_generic(doc)
        units = [self._strip_marker(doc, u) for u in units]
        units = self._merge_small(units)
        units = [piece for u in units for piece in self._split_long(doc, u)]
        chunks: list[Chunk] = []
        seen: set[str] = set()
        for order, u in enumerate(units):
            cid = chunk_id(doc.source, u.section, u.text)
            if cid in seen:  # the same sentence twice in one section: keep both, distinctly
                cid = chunk_id(doc.source, u.section, f"{u.text}\x1f{order}")
            seen.add(cid)
            chunks.append(Chunk(
                id=cid, text=u.text, source=doc.source, title=doc.title, section=u.section,
                start=u.start, end=u.end, kind=u.kind, order=order, page=doc.page_at(u.start),
            ))
        return chunks

    @staticmethod
    def _strip_marker(doc: LoadedDoc, u: Unit) -> Unit:
        if u.kind in ("bullet", "statement") and u.text[:1] in BULLET_MARKS and len(u.text) > 1:
            body = u.text[1:].lstrip()
            start = doc.text.index(body[0], u.start + 1)
            return Unit(body, start, u.end, u.section, u.kind)
        return u

    def _merge_small(self, units: list[Unit]) -> list[Unit]:
        out: list[Unit] = []
        pending: Unit | None = None
        for u in units:
            if pending is not None:
                if pending.section == u.section and u.kind == "paragraph":
                    u = Unit(f"{pending.text}\n{u.text}", pending.start, u.end, u.section, u.kind)
                else:
                    out.append(pending)
                pending = None
            if u.kind == "paragraph" and _nonws_len(u.text) < self.min_chars:
                pending = u
            else:
                out.append(u)
        if pending is not None:
            if out and out[-1].section == pending.section and out[-1].kind == "paragraph":
                prev = out.pop()
                pending = Unit(f"{prev.text}\n{pending.text}", prev.start, pending.end, prev.section, prev.kind)
            out.append(pending)
        return out

    def _split_long(self, doc: LoadedDoc, u: Unit) -> list[Unit]:
        if len(u.text) <= self.max_chars:
            return [u]
        pieces: list[str] = []
        for sentence in (m.group(0) for m in _SENTENCE.finditer(u.text)):
            if not sentence.strip():
                continue
            if pieces and len(pieces[-1]) + len(sentence) <= self.max_chars:
                pieces[-1] += sentence
            else:
                pieces.append(sentence)
        # A single sentence over the limit is cut at the limit, the last resort.
        pieces = [p[i:i + self.max_chars] for p in pieces for i in range(0, len(p), self.max_chars)]
        out, done = [], 0
        for piece in pieces:
            n = _nonws_len(piece)
            if n == 0:
                continue
            s, e = _source_span(doc.text, u.start, u.end, done, done + n)
            out.append(Unit(piece.strip(), s, e, u.section, u.kind))
            done += n
        return out
