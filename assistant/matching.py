"""How well a question term is found in a passage: literally, by reading, with one typo,
or as a near-synonym by term embedding.

- Literal: the term's index form is in the passage's index form, or its normalized form is in
  the passage's normalized words (鹿 in 蝦夷鹿, which Sudachi makes of エゾシカ).
- Reading: a term written in kana (しれとこ, えぞしか) matches the passage's katakana reading
  (知床 → シレトコ); Sudachi reads the passage, so no word list is needed.
- One typo: a term of four or more characters (釧路湿現) equals a stretch of the passage but
  for one character.
- Embedding: the cosine between the term's vector and the passage terms' vectors (e5-small:
  病院/医療 0.94, unrelated pairs under 0.89). The passages' term vectors were computed at
  ingest; a question's new terms are embedded once and remembered.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ingest.normalize import normalize_for_index
from ingest.terms import Term, TermExtractor
from ingest.tokenize import is_kanji
from ingest.types import Chunk

MAX_CACHED = 50_000  # per cache; a full cache starts over (a long-running server meets endless text)
_KANA = re.compile(r"^[\u3041-\u309f\u30a0-\u30ffー]+$")


def _hiragana_to_katakana(text: str) -> str:
    return "".join(chr(ord(c) + 0x60) if "\u3041" <= c <= "\u3096" else c for c in text)


def one_typo_in(needle: str, haystack: str) -> bool:
    """``needle`` equals some stretch of ``haystack`` except for one character."""
    n = len(needle)
    for i in range(len(haystack) - n + 1):
        window = haystack[i:i + n]
        if sum(a != b for a, b in zip(needle, window)) == 1:
            return True
    return False


_TIME_COUNTERS = frozenset({"年", "年度", "月", "日", "時", "週"})


@dataclass(frozen=True)
class PassageView:
    """What matching needs of one passage, computed once per passage."""

    text: str  # index form of the passage text (not its section path)
    norms: str  # Sudachi's normalized forms of its words, joined (エゾシカ → 蝦夷鹿)
    reading: str  # katakana reading of the whole passage
    terms: tuple[str, ...]
    matrix: np.ndarray  # the terms' vectors, one row each
    facts: frozenset[str]  # kinds of fact the passage states: quantity, date, who, which
    names: frozenset[str]  # its proper nouns (normalized)


def facts_of(tokens) -> tuple[frozenset[str], frozenset[str]]:
    """The kinds of fact a passage states, from its tokens: a number with a counter or unit
    (quantity), a number with a time counter or a period (date), a person's or body's name
    (who), any proper noun (which)."""
    kinds: set[str] = set()
    names = {t.norm for t in tokens if t.pos2 == "固有名詞"}
    for t, after in zip(tokens, [*tokens[1:], None]):
        if t.pos2 == "数詞" and after is not None:
            if after.norm in _TIME_COUNTERS:
                kinds.add("date")
            elif "助数詞" in after.pos2 + after.pos3 or after.pos == "接尾辞" or after.norm == "%":
                kinds.add("quantity")
    if any(t.pos3 in ("人名", "組織名") for t in tokens):
        kinds.add("who")
    if names:
        kinds.add("which")
    return frozenset(kinds), frozenset(names)


class TermMatcher:
    """Scores question terms against passages for one index generation."""

    def __init__(self, extractor: TermExtractor, embeddings, indexed: dict[str, np.ndarray],
                 term_sim: float = 0.905, vocabulary=()) -> None:
        self.extractor = extractor
        self.embeddings = embeddings
        self.indexed = indexed  # the ingest's vectors of every indexed term
        self.term_sim = term_sim
        self._vectors: dict[str, np.ndarray] = {}  # terms embedded here, mostly questions'
        self._views: dict[str, PassageView] = {}
        self._scores: dict[tuple[str, str, str], float] = {}  # (term, surface, chunk id) → score
        self.vocabulary = vocabulary  # the index's words (normalized forms)
        self._by_reading: dict[str, list[str]] | None = None

    # -- vectors ---------------------------------------------------------------------------
    def unknown(self, terms: list[str]) -> list[str]:
        """The terms that have no vector yet."""
        return [t for t in dict.fromkeys(terms) if t not in self.indexed and t not in self._vectors]

    def remember(self, terms: list[str], vectors) -> None:
        """Vectors of terms embedded elsewhere (with the query, in one batch)."""
        if len(self._vectors) > MAX_CACHED:
            self._vectors.clear()
        for t, v in zip(terms, vectors):
            self._vectors[t] = np.asarray(v, dtype=np.float32)

    def embed(self, terms: list[str]) -> None:
        """Embed the terms that have no vector, in one batch."""
        todo = self.unknown(terms)
        if todo:
            many = getattr(self.embeddings, "embed_queries", None)
            self.remember(todo, many(todo) if many else [self.embeddings.embed_query(t) for t in todo])

    def vector(self, term: str) -> np.ndarray:
        v = self.indexed.get(term)
        if v is None:
            v = self._vectors.get(term)
        if v is None:
            self.embed([term])
            v = self._vectors[term]
        return v

    # -- kana ------------------------------------------------------------------------------
    def spellings(self, term: Term) -> list[str]:
        """The index's words that read like a term written in kana (しれとこ → 知床,
        くしろ → 釧路). The reading index is built from the vocabulary on first use."""
        kana = normalize_for_index(term.surface or term.text)
        if len(kana) < 2 or not _KANA.match(kana):
            return []
        if self._by_reading is None:
            table: dict[str, list[str]] = {}
            for word in self.vocabulary:
                if len(word) > 1 and not _KANA.match(word):
                    reading = "".join(t.reading for t in self.extractor.tokenizer.analyze(word))
                    table.setdefault(reading, []).append(word)
            self._by_reading = table
        return self._by_reading.get(_hiragana_to_katakana(kana), [])

    # -- passages --------------------------------------------------------------------------
    def view(self, chunk: Chunk) -> PassageView:
        v = self._views.get(chunk.id)
        if v is None:
            if len(self._views) > MAX_CACHED:
                self._views.clear()
            tokens = self.extractor.tokenizer.analyze(chunk.text)
            terms = tuple(t.text for t in self.extractor.terms(chunk.text))
            self.embed(list(terms))
            matrix = np.stack([self.vector(t) for t in terms]) if terms else np.zeros((0, 1), np.float32)
            v = self._views[chunk.id] = PassageView(normalize_for_index(chunk.text), "".join(t.norm for t in tokens),
                                                    "".join(t.reading for t in tokens), terms, matrix,
                                                    *facts_of(tokens))
        return v

    def literal(self, term: Term, chunk: Chunk) -> bool:
        """Found as written, by reading (kana), or with one typo."""
        view = self.view(chunk)
        needle = normalize_for_index(term.text)
        if needle in view.text or needle in view.norms or (
                term.surface and normalize_for_index(term.surface) in view.text):
            return True
        kana = normalize_for_index(term.surface or term.text)
        if len(kana) >= 3 and _KANA.match(kana) and _hiragana_to_katakana(kana) in view.reading:
            return True
        return len(needle) >= 4 and one_typo_in(needle, view.text)

    def score(self, term: Term, chunk: Chunk) -> float:
        """1.0 when found literally; else the best cosine to one of the passage's terms.
        Remembered: the three coverage models ask for the same pairs."""
        key = (term.text, term.surface, chunk.id)
        found = self._scores.get(key)
        if found is None:
            if len(self._scores) > MAX_CACHED:
                self._scores.clear()
            found = self._scores[key] = self._score(term, chunk)
        return found

    def _score(self, term: Term, chunk: Chunk) -> float:
        if self.literal(term, chunk):
            return 1.0
        view = self.view(chunk)
        if not view.terms:
            return 0.0
        return float((view.matrix @ self.vector(term.text)).max())

    def kanji_share(self, term: Term, chunk: Chunk, weight) -> float:
        """The weighted share of the term's kanji that the passage's words have (鹿肉 against
        蝦夷鹿, 湿地 against 湿原): a compound's characters carry its meaning. ``weight``
        gives each kanji its rarity (IDF), so 地 and 業 count for little."""
        kanji = [ch for ch in dict.fromkeys(normalize_for_index(term.text)) if is_kanji(ch)]
        if not kanji:
            return 0.0
        norms = self.view(chunk).norms
        total = sum(weight(ch) for ch in kanji) or 1.0
        return sum(weight(ch) for ch in kanji if ch in norms) / total

    def found(self, term: Term, chunk: Chunk) -> bool:
        return self.score(term, chunk) >= self.term_sim
