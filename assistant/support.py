"""Does the text of the cited passages support a claim? General signals only, from Sudachi:

- numbers: every number of the claim occurs in the cited text (NFKC: ２０３４ = 2034);
- names: every proper noun (with a one-character suffix such as 市 or 湖 it names another
  thing: 釧路市 is not 釧路湿原) and every Latin word (ICT, CO2) occurs there;
- polarity: a negated claim (〜しません, 〜ない) needs a negated passage;
- content: enough of the claim's nouns (and, at half weight, its verbs and adjectives: that
  is where paraphrase lives) occur there, and every cited passage holds its share of them.

Only the passages' own text counts, never their section headings: a heading is shared by
every bullet under it, so it cannot tell which bullet a claim rests on.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from ingest.normalize import normalize_for_index
from ingest.tokenize import JapaneseTokenizer, Token

# Tuned on the guard benchmark's dev split only (evals/guard, `vision-qa eval guard`).
MIN_SHARE = 0.6  # weighted share of the claim's terms found in the cited text
MIN_EACH = 0.3  # share of the claim's terms each cited passage must hold on its own
MIN_GROUNDED = 0.5  # the same share with heading words counted as not found
MAX_NEW_NOUNS = 2  # nouns a claim may add that the cited text lacks (paraphrase: 後押し, 方針)
VERB_WEIGHT = 0.5

_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")
_ACRONYM_RE = re.compile(r"[A-Za-z\u0400-\u04ff][A-Za-z0-9\u0400-\u04ff]*")
_NEGATION = frozenset({"ない", "ず", "ぬ", "無い"})
_SKIP_POS2 = frozenset({"非自立可能", "数詞", "助数詞", "助動詞語幹"})
_WEIGHT = {"名詞": 1.0, "動詞": VERB_WEIGHT, "形容詞": VERB_WEIGHT, "形状詞": VERB_WEIGHT}


@dataclass(frozen=True)
class Term:
    norm: str
    surface: str
    reading: str
    weight: float


@dataclass(frozen=True)
class Claim:
    terms: tuple[Term, ...]
    names: tuple[str, ...]
    numbers: tuple[str, ...]
    negated: bool

    @property
    def empty(self) -> bool:
        """Nothing to check: no content word, name or number (a greeting, a bare 「以上です」)."""
        return not (self.terms or self.names or self.numbers)


@dataclass(frozen=True)
class Source:
    """The cited text, analysed once."""

    flat: str  # index form without white space
    norms: frozenset[str]
    readings: frozenset[str]
    negated: bool


@dataclass(frozen=True)
class Support:
    ok: bool
    reason: str  # ok | number-mismatch | name-mismatch | negation | low-overlap | unsupported-citation
    overlap: float = 0.0
    missing: tuple[str, ...] = ()


def flat(text: str) -> str:
    return re.sub(r"\s+", "", normalize_for_index(text))


def numbers(text: str) -> tuple[str, ...]:
    # NFKC turns ２０３４ into 2034 and ① into 1; thousands separators are dropped.
    return tuple(dict.fromkeys(m.group().replace(",", "") for m in _NUMBER_RE.finditer(flat(text))))


class SupportChecker:
    def __init__(self, tokenizer: JapaneseTokenizer) -> None:
        self.tokenizer = tokenizer
        self._source = lru_cache(maxsize=256)(self._analyse_source)

    def claim(self, text: str) -> Claim:
        tokens = self.tokenizer.analyze(text)
        terms: list[Term] = []
        names: list[str] = []
        for i, t in enumerate(tokens):
            if t.pos2 == "固有名詞":
                nxt = tokens[i + 1] if i + 1 < len(tokens) else None
                suffix = nxt.surface if nxt and (nxt.pos == "接尾辞" or nxt.pos == "名詞" and len(nxt.surface) == 1) else ""
                names.append(t.surface + suffix)
            elif t.surface.isascii():
                continue  # Latin words: acronyms and codes are names (below), other words say nothing checkable
            elif _is_term(t):
                terms.append(Term(t.norm, t.surface, t.reading, _WEIGHT[t.pos]))
        # ICT, CO2, DX: an acronym or a code is a name (case is lost in the index form).
        names += [flat(w) for w in _ACRONYM_RE.findall(unicodedata.normalize("NFKC", text))
                  if (w.isupper() and len(w) > 1) or (re.search(r"\d", w) and re.search(r"[^\W\d_]", w))]
        unique = {t.norm: t for t in terms}
        return Claim(terms=tuple(unique.values()), names=tuple(dict.fromkeys(names)), numbers=numbers(text),
                     negated=_negated(tokens))

    def framing_only(self, claim: Claim, framing: str) -> bool:
        """The claim's words are all the prompt's own (ビジョン, 記載, 次): it talks about the
        answer, not about the plan (「ビジョンには次の記載があります。」)."""
        if claim.names or claim.numbers or not framing:
            return False
        words = self._source(framing)
        return all(_found(t, words) for t in claim.terms)

    def check(self, claim: Claim, cited: list[str], titles: list[str] | tuple[str, ...] = (),
              headings: list[str] | tuple[str, ...] = ()) -> Support:
        """``cited``: the text of each cited passage; ``titles``: their documents' titles (a
        claim may name the plan), which count for the claim as a whole, not per passage;
        ``headings``: their section paths. A word or name found only in a heading locates the
        claim in the plan (「施策の方向に掲げられ」) but supports nothing: it is left out of the
        share, and a claim made of heading words alone is not supported. Numbers must be in
        the text itself (every bullet's heading says 今後５年程度)."""
        sources = [self._source(t) for t in cited]
        every = self._source("\n".join([*cited, *dict.fromkeys(titles)]))
        heads = self._source("\n".join(dict.fromkeys(headings)))
        missing = tuple(n for n in claim.numbers if n not in numbers(every.flat))
        if missing:
            return Support(ok=False, reason="number-mismatch", missing=missing)
        missing = tuple(n for n in claim.names if flat(n) not in every.flat and flat(n) not in heads.flat)
        if missing:
            return Support(ok=False, reason="name-mismatch", missing=missing)
        if claim.negated and not any(s.negated for s in sources):
            return Support(ok=False, reason="negation")
        if not claim.terms:
            return Support(ok=True, reason="ok", overlap=1.0)
        terms = [t for t in claim.terms if _found(t, every) or not _found(t, heads)]
        total = sum(t.weight for t in terms)
        share = sum(t.weight for t in terms if _found(t, every)) / total if total else 0.0
        if share < MIN_SHARE:
            lacking = tuple(t.surface for t in terms if not _found(t, every)) or tuple(t.surface for t in claim.terms)
            return Support(ok=False, reason="low-overlap", overlap=share, missing=lacking)
        # Heading words are left out of the share, but a claim that is mostly heading with a
        # word or two of the text (地域) is the heading's claim, not the passage's.
        grounded = sum(t.weight for t in claim.terms if _found(t, every)) / sum(t.weight for t in claim.terms)
        if grounded < MIN_GROUNDED:
            return Support(ok=False, reason="low-overlap", overlap=grounded,
                           missing=tuple(t.surface for t in claim.terms if not _found(t, every)))
        new = tuple(t.surface for t in terms if t.weight == 1.0 and not _found(t, every))
        if len(new) > MAX_NEW_NOUNS:
            return Support(ok=False, reason="low-overlap", overlap=share, missing=new)
        for text, source in zip(cited, sources):
            own = sum(t.weight for t in terms if _found(t, source)) / total
            if own < MIN_EACH:
                return Support(ok=False, reason="unsupported-citation", overlap=share, missing=(text[:20],))
        return Support(ok=True, reason="ok", overlap=share)

    def _analyse_source(self, text: str) -> Source:
        tokens = self.tokenizer.analyze(text)
        return Source(flat=flat(text), norms=frozenset(t.norm for t in tokens),
                      readings=frozenset(t.reading for t in tokens if len(t.reading) > 1),
                      negated=_negated(tokens))


def _is_term(t: Token) -> bool:
    if t.pos not in _WEIGHT or t.pos2 in _SKIP_POS2:
        return False
    # Words written in hiragana alone are the grammar of the sentence in this register (こと,
    # ため, について's つい, という's いう); content words are written in kanji or katakana.
    # A lone katakana or a symbol is no content word either.
    return not re.fullmatch(r"[\u3040-\u309f\u30fc]+", t.surface) and \
        (len(t.surface) > 1 or not re.fullmatch(r"[\u30a0-\u30ff\W]", t.surface))


def _found(term: Term, source: Source) -> bool:
    if term.norm in source.norms or flat(term.surface) in source.flat:
        return True
    if len(term.norm) > 1 and term.norm in source.flat:  # Sudachi split the passage differently
        return True
    return len(term.reading) > 2 and term.reading in source.readings


def _negated(tokens: list[Token]) -> bool:
    return any(t.norm in _NEGATION and t.pos in ("助動詞", "形容詞") for t in tokens)
