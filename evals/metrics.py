"""Pure metric functions for the vision-qa evals.

Matching. Texts are compared in a *normalized* form: NFKC, all whitespace removed (PDF
line wraps fall mid-word), and the Cyrillic О/о folded to Latin O/o (the vision writes
ＣО₂ with a Cyrillic О). A retrieved chunk matches a gold evidence string when the gold
lies inside the chunk, or when the chunk (at least 10 normalized characters) lies inside
the gold, i.e. the chunk is a piece of a long gold span.

Retrieval (binary relevance). hit@k: some top-k chunk matches some gold string. MRR: 1/rank
of the first matching chunk within k. recall@k: share of gold strings matched in the top k.
nDCG@k: position i earns gain 1 when its chunk is the first match of at least one gold
string (a gold string counts once); the ideal ranking has min(k, |gold|) gains at the top.
A chunk that covers several gold strings earns a single gain, so coarse chunks cap nDCG
below 1 — read it together with recall@k.

Citations, after ALCE (Gao et al. 2023) but for Japanese and without NLI. An answer is a
list of statements (sentence, [quotes of its citations]). A quote *supports* a sentence
when (a) at least half of the sentence's content-character bigrams occur in the quote,
where content characters are letters and digits other than hiragana (so particles and
inflections do not count), and (b) every number in the sentence (Arabic digits after NFKC,
２０３４ → 2034) occurs as a number in the quote. A citation is correct when its quote
matches a gold string or supports its own sentence. Citation recall: share of statements
whose quotes jointly support them (bigrams and numbers pooled over the quotes) or of which
some quote matches gold. Citation precision: share of all citations that are correct.
Unlike ALCE there is no "partial support" check for precision.

Empty inputs. When a denominator comes from the gold side (gold strings, key phrases,
latency values) and is empty, the item was mis-specified and ValueError is raised. When it
comes from the prediction side (statements, citations, quotes, predicted abstentions) and
is empty, the share is 0.0.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence

Statement = tuple[str, Sequence[str]]

_CYRILLIC_O = str.maketrans({"\u041e": "O", "\u043e": "o"})
_NUMBER = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+(?:\.[0-9]+)?")
MIN_CHUNK_CHARS = 10
SUPPORT_THRESHOLD = 0.5


def normalize(text: str) -> str:
    """NFKC, Cyrillic О/о folded to Latin, all whitespace removed."""
    return "".join(unicodedata.normalize("NFKC", text).translate(_CYRILLIC_O).split())


def evidence_match(chunk_text: str, gold: str) -> bool:
    """True when the normalized gold is inside the chunk or a ≥10-char chunk is inside the gold."""
    c, g = normalize(chunk_text), normalize(gold)
    if not g or not c:
        return False
    return g in c or (len(c) >= MIN_CHUNK_CHARS and c in g)


def _require_gold(gold: Sequence[str]) -> None:
    if not gold:
        raise ValueError("gold evidence is empty; retrieval metrics are undefined for abstain items")


def _require_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def _matches_any(text: str, gold: Sequence[str]) -> bool:
    return any(evidence_match(text, g) for g in gold)


def hit_at_k(ranked_texts: Sequence[str], gold: Sequence[str], k: int) -> float:
    """1.0 if any of the top-k chunks matches any gold string, else 0.0."""
    _require_gold(gold)
    _require_k(k)
    return 1.0 if any(_matches_any(t, gold) for t in ranked_texts[:k]) else 0.0


def reciprocal_rank(ranked_texts: Sequence[str], gold: Sequence[str], k: int = 10) -> float:
    """1/rank of the first top-k chunk matching any gold string, 0.0 if none."""
    _require_gold(gold)
    _require_k(k)
    for rank, text in enumerate(ranked_texts[:k], start=1):
        if _matches_any(text, gold):
            return 1.0 / rank
    return 0.0


def recall_at_k(ranked_texts: Sequence[str], gold: Sequence[str], k: int) -> float:
    """Share of gold strings matched by at least one of the top-k chunks."""
    _require_gold(gold)
    _require_k(k)
    top = ranked_texts[:k]
    return sum(any(evidence_match(t, g) for t in top) for g in gold) / len(gold)


def ndcg_at_k(ranked_texts: Sequence[str], gold: Sequence[str], k: int = 10) -> float:
    """Binary nDCG@k where each gold string credits only the first chunk matching it."""
    _require_gold(gold)
    _require_k(k)
    unmatched = set(range(len(gold)))
    dcg = 0.0
    for i, text in enumerate(ranked_texts[:k]):
        newly = {j for j in unmatched if evidence_match(text, gold[j])}
        if newly:
            dcg += 1.0 / math.log2(i + 2)
            unmatched -= newly
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(gold))))
    return dcg / ideal


def _content(text: str) -> str:
    norm = normalize(text).casefold()
    return "".join(
        ch for ch in norm
        if unicodedata.category(ch)[0] in "LN" and not "\u3040" <= ch <= "\u309f"
    )


def content_bigrams(text: str) -> set[str]:
    """Bigrams of the content characters (letters and digits except hiragana) of a text."""
    chars = _content(text)
    return {chars[i:i + 2] for i in range(len(chars) - 1)}


def numbers(text: str) -> set[str]:
    """Arabic numbers in a text after NFKC, thousands separators removed (２０３４ → 2034)."""
    nfkc = unicodedata.normalize("NFKC", text)
    return {m.replace(",", "") for m in _NUMBER.findall(nfkc)}


def _supported(quotes: Sequence[str], sentence: str) -> bool:
    wanted = content_bigrams(sentence)
    if not wanted:
        return False
    have: set[str] = set()
    nums: set[str] = set()
    for q in quotes:
        have |= content_bigrams(q)
        nums |= numbers(q)
    return len(wanted & have) / len(wanted) >= SUPPORT_THRESHOLD and numbers(sentence) <= nums


def supports(quote: str, sentence: str) -> bool:
    """Quote covers ≥ 50% of the sentence's content bigrams and every number in it."""
    return _supported([quote], sentence)


def _citation_correct(quote: str, sentence: str, gold: Sequence[str]) -> bool:
    return _matches_any(quote, gold) or supports(quote, sentence)


def citation_recall(statements: Sequence[Statement], gold: Sequence[str]) -> float:
    """Share of statements whose citations jointly support them or include a gold match."""
    if not statements:
        return 0.0
    ok = sum(
        bool(quotes) and (any(_matches_any(q, gold) for q in quotes) or _supported(quotes, s))
        for s, quotes in statements
    )
    return ok / len(statements)


def citation_precision(statements: Sequence[Statement], gold: Sequence[str]) -> float:
    """Share of all citations whose quote matches gold or supports its own sentence."""
    judged = [_citation_correct(q, s, gold) for s, quotes in statements for q in quotes]
    return sum(judged) / len(judged) if judged else 0.0


def gold_citation_recall(quotes: Sequence[str], gold: Sequence[str]) -> float:
    """Share of gold strings matched by at least one cited quote."""
    _require_gold(gold)
    return sum(any(evidence_match(q, g) for q in quotes) for g in gold) / len(gold)


def verbatim_rate(quotes: Sequence[str], source_text: str) -> float:
    """Share of quotes found in the source with whitespace stripped but characters kept (no NFKC)."""
    if not quotes:
        return 0.0
    source = "".join(source_text.split())
    return sum("".join(q.split()) in source for q in quotes) / len(quotes)


def _covered(quote: str, golds: Sequence[str], min_run: int) -> int:
    """Characters of a normalized quote inside some run of ≥ min_run chars shared with a gold."""
    covered = [False] * len(quote)
    for start in range(len(quote)):
        end = start
        # Substring containment is monotone, so the longest run from `start` grows greedily.
        while end < len(quote) and any(quote[start:end + 1] in g for g in golds):
            end += 1
        if end - start >= min_run:
            covered[start:end] = [True] * (end - start)
    return sum(covered)


def quote_tightness(quotes: Sequence[str], gold: Sequence[str], min_run: int = 4) -> float:
    """Share of normalized quoted characters lying in runs of ≥ min_run chars shared with gold."""
    _require_gold(gold)
    golds = [normalize(g) for g in gold]
    normed = [normalize(q) for q in quotes]
    total = sum(len(q) for q in normed)
    if total == 0:
        return 0.0
    return sum(_covered(q, golds, min_run) for q in normed) / total


def abstention_scores(pred: Sequence[bool], gold: Sequence[bool]) -> dict[str, float]:
    """Precision, recall, accuracy of abstaining (positive class) and the false refusal rate."""
    if len(pred) != len(gold):
        raise ValueError(f"pred has {len(pred)} items but gold has {len(gold)}")
    if not gold:
        raise ValueError("no items")
    tp = sum(p and g for p, g in zip(pred, gold))
    fp = sum(p and not g for p, g in zip(pred, gold))
    fn = sum(g and not p for p, g in zip(pred, gold))
    answerable = sum(not g for g in gold)
    return {
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "accuracy": sum(p == g for p, g in zip(pred, gold)) / len(gold),
        "false_refusal_rate": fp / answerable if answerable else 0.0,
    }


def key_phrase_recall(answer_text: str, phrases: Sequence[str]) -> float:
    """Share of key phrases found in the answer (normalized, case-folded)."""
    if not phrases:
        raise ValueError("no key phrases")
    answer = normalize(answer_text).casefold()
    return sum(normalize(p).casefold() in answer for p in phrases) / len(phrases)


def percentile(values: Sequence[float], p: float) -> float:
    """p-th percentile (0–100) by linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("no values")
    if not 0 <= p <= 100:
        raise ValueError(f"p must be in [0, 100], got {p}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * p / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
