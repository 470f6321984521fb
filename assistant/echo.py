"""Prompt echoes: text a model copied from its own prompt instead of answering.

Small models repeat the system prompt, the instruction line and the passage block
(「[2] (章・項目) 本文」), whole or in pieces, with or without the list numbers. An echo is
- a run of characters shared with the prompt's own words: the messages with their data (the
  passages' text and section names, the document titles, the question) cut out. A run that
  also occurs in the data is a quote, not an echo. Runs are found on the index form of the
  text with white space removed, so 「3. 」 prefixes, line breaks and full-width forms make no
  difference;
- or a line in the passage block's own format, 「[n] (」 (prompts/answer.yaml): an answer
  cites at the end of a sentence, only the prompt starts a line with a number and a section.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ingest.normalize import normalize_for_index

# Tuned on the guard benchmark's dev split (evals/guard): a shared run this long is an echo
# wherever it stands; a shorter sentence is an echo when runs of at least SHORT characters
# cover this share of it (「## 守ること」, 「<passages>」).
LONG = 10
SHORT = 4
SHARE = 0.6
_CITE_RE = re.compile(r"[\[［]\s*[0-9０-９]+(?:\s*[,，、\-–〜~]\s*[0-9０-９]+)*\s*[\]］]")
_GAP = "\x00"
_PASSAGE_LINE_RE = re.compile(r"^\s*[\[［]\s*[0-9０-９]+\s*[\]］]\s*[(（]")


def _flat(text: str) -> str:
    return re.sub(r"\s+", "", normalize_for_index(text))


@dataclass(frozen=True)
class PromptEcho:
    """The prompt's own character runs (``grams``: every SHORT-gram of it that is not data)
    and its own words (``words``: the messages with the data cut out, for the guard's test of
    whether a sentence only talks about the task: ビジョン, 記載, 次 …)."""

    grams: frozenset[str]
    words: str = ""

    @classmethod
    def of(cls, messages: Sequence[str], data: Sequence[str]) -> "PromptEcho":
        """``messages``: the texts sent (system and user); ``data``: what the model may repeat."""
        flat_data = sorted({_flat(d) for d in data if d and d.strip()}, key=len, reverse=True)
        own = []
        for message in messages:
            text = _flat(message)
            for d in flat_data:
                text = text.replace(d, _GAP)
            own.append(text)
        data_grams = {d[i:i + SHORT] for d in flat_data for i in range(len(d) - SHORT + 1)}
        grams = {t[i:i + SHORT] for t in own for i in range(len(t) - SHORT + 1)}
        return cls(frozenset(g for g in grams if _GAP not in g and g not in data_grams), "\n".join(own))

    def runs(self, sentence: str) -> list[str]:
        """The runs of ``sentence`` (citations left out) that come from the prompt."""
        text = _flat(_CITE_RE.sub("", sentence))
        covered = [False] * len(text)
        for i in range(len(text) - SHORT + 1):
            if text[i:i + SHORT] in self.grams:
                covered[i:i + SHORT] = [True] * SHORT
        out, start = [], None
        for i, c in enumerate([*covered, False]):
            if c and start is None:
                start = i
            elif not c and start is not None:
                out.append(text[start:i])
                start = None
        return out

    def is_echo(self, sentence: str) -> bool:
        if _PASSAGE_LINE_RE.match(sentence):
            return True
        runs = self.runs(sentence)
        if not runs:
            return False
        if max(len(r) for r in runs) >= LONG:
            return True
        size = len(re.sub(r"[\W_]+", "", _flat(_CITE_RE.sub("", sentence))))
        return size > 0 and sum(len(re.sub(r"[\W_]+", "", r)) for r in runs) / size >= SHARE
