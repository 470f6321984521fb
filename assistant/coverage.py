"""Graded coverage: does the plan state what was asked (direct), only the topic (related), or
nothing relevant (none)?

1. The passage model scores every retrieved passage; the topic model judges from those scores
   and from how well the question's nouns match whether its topic is in the plan at all. When
   it is not, the nearest bullets are shown.
2. Otherwise the likely relevant passages (at most three) hold the topic. Whether they also
   state what the question singles out is the direct model's call, from: how much of the
   asking clause they hold, the kind of fact its interrogative asks for (a number, a date, a
   person or body, a particular place or thing) and whether they state one, and whether the
   names in the asking clause are there (literally, by reading or with one typo; the words of
   the plan's title are its own scope). Names in context clauses never decide.
3. A related answer says what the passages do not state: the asked fact or the missing names.
   When the direct model doubts without either, the answer calls the passages related and
   claims nothing about what the plan lacks.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from assistant.matching import TermMatcher
from assistant.question import Question
from ingest.terms import Term
from assistant.relevance import Calibration, Idf, passage_features, question_features, topic_features
from assistant.types import Coverage, Hit
from ingest.normalize import normalize_for_index

MAX_QUOTES = 3
# Units an answer may quote. A heading is quoted through its bullets; the title, slogan, section
# names and the note speak for the plan as a whole and are quoted only by structural answers.
QUOTABLE = frozenset({"bullet", "statement", "paragraph"})
_NEAREST_UNITS = ("bullet", "statement")


@dataclass(frozen=True, kw_only=True)
class Missing:
    """One thing asked that the relevant passages do not state."""

    what: str  # the words of the question (エゾシカの駆除目標, 雌阿寒岳)
    kind: str  # quantity | date | who | which | name


@dataclass(kw_only=True)
class Grade:
    coverage: Coverage
    passages: list[Hit]  # the relevant passages, most relevant first (to quote)
    nearest: list[Hit] = field(default_factory=list)  # when not covered: the closest bullets
    missing: list[Missing] = field(default_factory=list)
    probabilities: dict[str, float] = field(default_factory=dict)  # chunk id → P(relevant)
    reason: str = ""


class CoverageJudge:
    def __init__(self, calibration: Calibration) -> None:
        self.cal = calibration

    def grade(self, question: Question, hits: list[Hit], matcher: TermMatcher, idf: Idf,
              titles: dict[str, str]) -> Grade:
        """``titles``: source → document title (a document's own scope counts as found)."""
        hits = [h for h in hits if h.chunk.kind in QUOTABLE]
        if not hits:
            return Grade(coverage="none", passages=[], reason="nothing was retrieved")
        p = self.cal.relevance.probabilities(passage_features(question, hits, matcher, idf))
        order = [hits[i] for i in np.argsort(-p, kind="stable")]
        prob = {h.chunk.id: float(x) for h, x in zip(hits, p)}
        best = float(p.max())
        nearest = [h for h in order if h.chunk.kind in _NEAREST_UNITS][:MAX_QUOTES]
        topic = float(self.cal.topic.probabilities(topic_features(question, hits, p, matcher, idf))[0])
        if topic < self.cal.topic_from:
            return Grade(coverage="none", passages=[], nearest=nearest, probabilities=prob,
                         reason=f"the topic is not in the plan (topic {topic:.2f} < {self.cal.topic_from:.2f})")
        chosen = choose(order, prob, self.cal.quote_from)
        kind_found, names = asked_facts(question, chosen, matcher, titles)
        row = question_features(question, chosen, p, matcher, idf, bool(names), kind_found)
        direct = float(self.cal.direct.probabilities(row)[0])
        if direct >= self.cal.direct_from:
            return Grade(coverage="direct", passages=chosen, probabilities=prob,
                         reason=f"direct {direct:.2f}; relevant passages: {len(chosen)} (best {best:.2f})")
        missing = ([Missing(what=question.asked or _words(question.focus), kind=question.asks)]
                   if question.asks and not kind_found else [])
        missing += [Missing(what=n.surface or n.text, kind="name") for n in names]
        if not missing and question.context:
            # A follow-up found its passages through the topic it carries (「エゾシカについて、その
            # 予算は？」); what its own clause asks for, they do not have.
            lacking = [t for t in question.focus if t.topical and not any(matcher.found(t, h.chunk) for h in chosen)]
            if lacking and len(lacking) == len([t for t in question.focus if t.topical]):
                missing = [Missing(what=_words(lacking), kind="name")]
        # Without a fact or a name to point at, the model's doubt is all there is: the answer
        # says the passages are related, and claims nothing about what the plan lacks.
        return Grade(coverage="related", passages=chosen, missing=missing, probabilities=prob,
                     reason=f"direct {direct:.2f} < {self.cal.direct_from:.2f}; not stated: "
                            + (", ".join(m.what for m in missing) or "(unsure)"))


def choose(order: list[Hit], prob: dict[str, float], quote_from: float) -> list[Hit]:
    """The passages to quote: those likely relevant, most likely first, at most three; at
    least the most likely one."""
    return [h for h in order if prob[h.chunk.id] >= quote_from][:MAX_QUOTES] or order[:1]


def asked_facts(question: Question, chosen: list[Hit], matcher: TermMatcher,
                titles: dict[str, str]) -> tuple[bool, list[Term]]:
    """Whether the chosen passages state the kind of fact asked (True when none is asked),
    and the names of the asking clause they do not have."""
    kind_found = True
    if question.asks:
        views = [matcher.view(h.chunk) for h in chosen]
        if question.asks == "which":
            # A particular place or thing: a name the question did not already give.
            asked = {normalize_for_index(t.text) for t in question.terms}
            kind_found = any(n not in asked for v in views for n in v.names)
        else:
            # A period (今後５年程度) answers "how long" as well as "when".
            wanted = {"quantity", "date"} if question.asks == "quantity" else {question.asks}
            kind_found = any(wanted & v.facts for v in views)
    if question.language == "en":
        return kind_found, []  # an English name cannot be found literally in Japanese passages
    scope = normalize_for_index("".join(titles.get(h.chunk.source, "") for h in chosen))
    names = [n for n in question.entities
             if normalize_for_index(n.text) not in scope and normalize_for_index(n.surface or n.text) not in scope
             and not any(matcher.literal(n, h.chunk) for h in chosen)]
    return kind_found, names


def _words(terms: list[Term]) -> str:
    return "・".join(t.surface or t.text for t in terms[:3])
