"""The one sentence splitter: answers, quotes, inquiries and the fidelity guard split alike.

A sentence ends at 。！？, or at . ! ? before a space or the end of the line (so 3.5 and
e.g. inside a sentence do not split). Closing brackets right after the end belong to the
sentence they close (〈…示しています。〉). A line break always ends a sentence.
"""
from __future__ import annotations

import re

CLOSERS = "」』）)〉》】\"'”’"
END = rf"(?:[。！？]|[.!?](?=\s|$))[{re.escape(CLOSERS)}]*"


def sentence_spans(line: str, start: int = 0, tail: str = "") -> list[tuple[int, int]]:
    """(start, end) of each sentence of one line from ``start``, without leading spaces.
    ``tail``: a pattern that also belongs to the sentence before it (citation markers)."""
    end_re = re.compile(END + (rf"(?:\s*{tail})*" if tail else ""))
    out, pos = [], start
    for m in end_re.finditer(line, start):
        if line[pos:m.end()].strip():
            out.append((pos, m.end()))
        pos = m.end()
    if line[pos:].strip():
        out.append((pos, len(line.rstrip())))
    return [(s + len(line[s:e]) - len(line[s:e].lstrip()), e) for s, e in out]


def sentences(text: str) -> list[str]:
    """The sentences of ``text``, each stripped; line breaks end sentences."""
    return [line[s:e].strip() for line in text.splitlines() for s, e in sentence_spans(line)]
