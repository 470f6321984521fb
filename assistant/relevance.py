"""Two small calibrated models over general signals.

A raw similarity threshold does not separate the cases (unanswerable questions get top
cosines 0.83–0.86, like answerable ones). Instead:

- **Passage relevance** (one row per retrieved passage): dense cosine and its gap to the
  best, BM25 score, fused rank, how much of the asking clause (IDF-weighted) the passage and
  its section path hold, whether it states the kind of fact asked, and what kind of unit it is.
- **Topic** (one row per question, over all retrieved passages): is the question's topic in them
  at all — the best relevance, the best dense and BM25 scores, how well its nouns match.
- **Direct coverage** (one row per question, over the passages chosen as relevant): the best
  relevance, how much of the asking clause they hold, whether the asked kind of fact and the
  asked names are there, whether only the context matched.

All three are logistic regressions fitted on the dev split only (``vision-qa eval calibrate``); the
coefficients and thresholds are a package file, ``assistant/calibration.json``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from assistant.matching import TermMatcher
from assistant.question import Question
from assistant.types import Hit
from ingest.normalize import normalize_for_index

PASSAGE_FEATURES = (
    "dense", "dense_gap", "bm25", "rank", "focus_soft", "focus_found", "best_focus", "context_found", "section_found",
    "asks_kind", "has_kind", "bullet", "statement", "heading", "other_unit", "english", "english_dense", "no_focus",
)
TOPIC_FEATURES = (
    "best", "second", "dense_top", "bm25_top", "noun_found", "noun_best", "noun_worst", "noun_kanji", "english",
    "no_nouns",
)
QUESTION_FEATURES = (
    "best", "margin", "noun_found", "noun_best", "noun_worst", "noun_kanji", "asks_kind", "kind_found", "name_missing",
    "context_only", "english", "english_best", "no_nouns",
)
_SIM_FLOOR = 0.8  # e5-small's term cosines live in [0.8, 1]; spread them over [0, 1]


def _spread(sim: float) -> float:
    return min(1.0, max(0.0, (sim - _SIM_FLOOR) / (1.0 - _SIM_FLOOR)))


class Idf:
    """Inverse document frequency of terms, read from the BM25 index's postings."""

    def __init__(self, bm25) -> None:
        scores = bm25.scores
        indptr = np.append(scores["indptr"], len(scores["data"]))
        self.n = int(scores["num_docs"])
        self.df = {tok: int(indptr[i + 1] - indptr[i]) for tok, i in bm25.vocab_dict.items()}

    def __call__(self, term: str) -> float:
        return math.log(1.0 + (self.n + 1) / (self.df.get(term, 0) + 0.5))


@lru_cache(maxsize=8192)
def _search_form(text: str) -> str:
    """normalize_for_index, remembered: the same few section paths come back on every question."""
    return normalize_for_index(text)


def _in_section(term, hit: Hit) -> bool:
    """The term is in the passage's section path (the direction a bullet belongs to)."""
    section = hit.chunk.section
    return bool(section) and _search_form(term.text) in _search_form(" ".join(section))


def passage_features(question: Question, hits: list[Hit], matcher: TermMatcher, idf: Idf) -> np.ndarray:
    """One row of PASSAGE_FEATURES per hit."""
    dense = [h.scores.get("dense") for h in hits]
    known = [d for d in dense if d is not None]
    floor, top = (min(known), max(known)) if known else (0.0, 0.0)
    bm25_top = max((h.scores.get("bm25", 0.0) for h in hits), default=0.0) or 1.0
    focus, context = question.focus, question.context
    weights = [idf(t.text) for t in focus]
    total = sum(weights) or 1.0
    heaviest = max(weights, default=1.0) or 1.0
    english = float(question.language == "en")
    rows = []
    for rank, (h, d) in enumerate(zip(hits, dense)):
        d = floor if d is None else d
        sims = [matcher.score(t, h.chunk) for t in focus]
        found = [s >= matcher.term_sim for s in sims]
        kind = h.chunk.kind
        rows.append([
            d, d - top, h.scores.get("bm25", 0.0) / bm25_top, 1.0 / (1 + rank),
            sum(w * _spread(s) for w, s in zip(weights, sims)) / total,
            sum(w for w, f in zip(weights, found) if f) / total,
            max((w for w, f in zip(weights, found) if f), default=0.0) / heaviest,
            (sum(matcher.found(t, h.chunk) for t in context) / len(context)) if context else 0.0,
            sum(w for w, t in zip(weights, focus) if _in_section(t, h)) / total,
            float(bool(question.asks)), float(bool(question.asks) and question.asks in matcher.view(h.chunk).facts),
            float(kind == "bullet"), float(kind == "statement"), float(kind == "heading"),
            float(kind not in ("bullet", "statement", "heading")), english, d * english, float(not focus),
        ])
    return np.asarray(rows, dtype=np.float64).reshape(len(hits), len(PASSAGE_FEATURES))


def _noun_matches(question: Question, hits: list[Hit], matcher: TermMatcher, idf: Idf):
    """For each topical noun of the asking clause: its weight, its best similarity to a term of
    the hits, and the best weighted share of its kanji that a hit has."""
    nouns = [t for t in question.focus if t.topical]
    weights = [idf(t.text) for t in nouns]
    sims = [max((matcher.score(t, h.chunk) for h in hits), default=0.0) for t in nouns]
    kanji = [max((matcher.kanji_share(t, h.chunk, idf) for h in hits), default=0.0) for t in nouns]
    return nouns, weights, sims, kanji


def topic_features(question: Question, hits: list[Hit], probs: np.ndarray, matcher: TermMatcher,
                   idf: Idf) -> np.ndarray:
    """The TOPIC_FEATURES row: is the question's topic in the retrieved passages at all?"""
    ranked = np.sort(probs)[::-1]
    nouns, weights, sims, kanji = _noun_matches(question, hits, matcher, idf)
    total = sum(weights) or 1.0
    dense = [h.scores["dense"] for h in hits if "dense" in h.scores]
    return np.asarray([
        float(ranked[0]) if len(ranked) else 0.0, float(ranked[1]) if len(ranked) > 1 else 0.0,
        max(dense, default=0.0), max((h.scores.get("bm25", 0.0) for h in hits), default=0.0),
        sum(w for w, s in zip(weights, sims) if s >= matcher.term_sim) / total,
        _spread(max(sims, default=0.0)), _spread(min(sims, default=0.0)),
        sum(w * k for w, k in zip(weights, kanji)) / total,
        float(question.language == "en"), float(not nouns),
    ], dtype=np.float64)


def question_features(question: Question, chosen: list[Hit], probs: np.ndarray, matcher: TermMatcher, idf: Idf,
                      names_missing: bool, kind_found: bool) -> np.ndarray:
    """The QUESTION_FEATURES row over the passages chosen as relevant. Only the asking
    clause's topical nouns count: its verbs (書く, 示す, 掲げる) frame the question."""
    ranked = np.sort(probs)[::-1]
    best = float(ranked[0]) if len(ranked) else 0.0
    margin = best - float(ranked[1]) if len(ranked) > 1 else best
    nouns, weights, sims, kanji = _noun_matches(question, chosen, matcher, idf)
    share = sum(w for w, s in zip(weights, sims) if s >= matcher.term_sim) / (sum(weights) or 1.0)
    context_hit = any(matcher.found(t, h.chunk) for t in question.context for h in chosen)
    english = float(question.language == "en")
    return np.asarray([
        best, margin, share, _spread(max(sims, default=0.0)), _spread(min(sims, default=0.0)),
        sum(w * k for w, k in zip(weights, kanji)) / (sum(weights) or 1.0),
        float(bool(question.asks)), float(kind_found), float(names_missing),
        float(bool(nouns) and share == 0.0 and context_hit), english, english * best, float(not nouns),
    ], dtype=np.float64)


@dataclass(frozen=True)
class Logistic:
    """A logistic regression on standardized features."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(x)
        if x.shape[0] == 0:
            return np.zeros(0)
        z = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict:
        return {"features": list(self.features), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept}

    @classmethod
    def from_dict(cls, d: dict, expected: tuple[str, ...]) -> "Logistic":
        if tuple(d["features"]) != expected:
            raise ValueError("the calibration was fitted on other features: run `vision-qa eval calibrate`")
        return cls(expected, np.asarray(d["mean"]), np.asarray(d["scale"]), np.asarray(d["coef"]),
                   float(d["intercept"]))


@dataclass(frozen=True)
class Calibration:
    """The three models and their thresholds, fitted together on dev."""

    relevance: Logistic
    topic: Logistic
    direct: Logistic
    topic_from: float  # the question's topic is in the plan when the topic model is this sure
    quote_from: float  # quote the passages at least this likely relevant (at most three)
    direct_from: float  # the plan states what was asked when the direct model is this sure
    meta: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"relevance": self.relevance.to_dict(), "topic": self.topic.to_dict(),
                           "direct": self.direct.to_dict(),
                           "thresholds": {"topic_from": self.topic_from, "quote_from": self.quote_from,
                                          "direct_from": self.direct_from},
                           "meta": self.meta}, ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Calibration":
        d = json.loads(text)
        t = d["thresholds"]
        return cls(Logistic.from_dict(d["relevance"], PASSAGE_FEATURES), Logistic.from_dict(d["topic"], TOPIC_FEATURES),
                   Logistic.from_dict(d["direct"], QUESTION_FEATURES),
                   float(t["topic_from"]), float(t["quote_from"]), float(t["direct_from"]), d.get("meta", {}))

    @classmethod
    def load(cls, path: Path | None = None) -> "Calibration":
        """The calibration at ``path``, or the one shipped in the package."""
        text = path.read_text(encoding="utf-8") if path else \
            resources.files("assistant").joinpath("calibration.json").read_text(encoding="utf-8")
        return cls.from_json(text)
