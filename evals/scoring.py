"""Scoring one evaluated item, and aggregating items overall and per kind.

Which items count for which metric:
- retrieval (hit@k, MRR@10, nDCG@10, recall@5): answerable items (``abstain`` false);
- key-phrase recall: answerable items, abstained or not (a wrong refusal costs);
- citation precision/recall, gold citation recall, quote tightness: answerable items that
  were answered (not abstained);
- verbatim rate: every item that came back with quotes;
- abstention: every item.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from evals import metrics as m
from evals.dataset import EvalItem

# [1], [1][3], [1, 3], [2-4], full-width ［１］
_CITE = re.compile(r"[\[［]\s*([0-9０-９]+(?:\s*[,，、\-–〜~]\s*[0-9０-９]+)*)\s*[\]］]")


@dataclass
class Outcome:
    """What a system returned for one item, in the shape the metrics need."""

    text: str
    abstained: bool
    retrieved: list[str]  # chunk texts, best first
    quotes: dict[int, str]  # citation number → quote
    uncovered: list[str] = field(default_factory=list)  # staff drafts: the 要確認事項
    timings_ms: dict[str, float] = field(default_factory=dict)
    error: str = ""


def cited_numbers(marker_body: str) -> list[int]:
    """'1, 3' → [1, 3]; '2-4' → [2, 3, 4] (digits may be full-width)."""
    body = unicodedata.normalize("NFKC", marker_body)
    out: list[int] = []
    for part in re.split(r"\s*[,、]\s*", body):
        ends = [int(x) for x in re.split(r"\s*[-–〜~]\s*", part) if x.strip()]
        out.extend(range(ends[0], ends[-1] + 1) if len(ends) == 2 and ends[0] <= ends[1] else ends)
    return out


def statements(text: str, quotes: dict[int, str]) -> list[m.Statement]:
    """ALCE statements: each answer line carrying [n] markers, without the markers, with the
    quotes of the numbers it cites (unknown numbers cite nothing)."""
    out: list[m.Statement] = []
    for line in text.splitlines():
        found = _CITE.findall(line)
        if not found:
            continue
        sentence = _CITE.sub("", line).strip()
        numbers = list(dict.fromkeys(n for body in found for n in cited_numbers(body)))
        out.append((sentence, [quotes[n] for n in numbers if n in quotes]))
    return out


def _contains(haystack: str, needle: str) -> bool:
    return m.normalize(needle).casefold() in m.normalize(haystack).casefold()


def score_item(item: EvalItem, out: Outcome, corpus_text: str) -> dict[str, float]:
    """The metrics that apply to this item (see the module docstring)."""
    s: dict[str, float] = {"abstention_correct": float(out.abstained == item.abstain)}
    quotes = list(out.quotes.values())
    if quotes:
        s["verbatim"] = m.verbatim_rate(quotes, corpus_text)
    if item.abstain:
        return s
    gold = item.gold_evidence
    ranked = out.retrieved
    s.update(hit_at_1=m.hit_at_k(ranked, gold, 1), hit_at_3=m.hit_at_k(ranked, gold, 3),
             hit_at_5=m.hit_at_k(ranked, gold, 5), mrr_at_10=m.reciprocal_rank(ranked, gold, 10),
             ndcg_at_10=m.ndcg_at_k(ranked, gold, 10), recall_at_5=m.recall_at_k(ranked, gold, 5))
    if item.key_phrases:
        s["key_phrase_recall"] = m.key_phrase_recall(out.text, item.key_phrases)
    if item.uncovered:
        s["uncovered_recall"] = sum(any(_contains(u, g) for u in out.uncovered)
                                    for g in item.uncovered) / len(item.uncovered)
    if not out.abstained:
        stmts = statements(out.text, out.quotes)
        s.update(citation_precision=m.citation_precision(stmts, gold),
                 citation_recall=m.citation_recall(stmts, gold),
                 gold_citation_recall=m.gold_citation_recall(quotes, gold),
                 quote_tightness=m.quote_tightness(quotes, gold))
    return s


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def aggregate(items: Sequence[EvalItem], scores: Sequence[dict[str, float]], abstained: Sequence[bool],
              ) -> dict[str, float]:
    """Means of every metric over the items that have it, the abstention scores, and counts."""
    if not items:
        return {}
    names = sorted({k for s in scores for k in s} - {"abstention_correct"})  # = abstention_accuracy
    agg: dict[str, float] = {k: _mean([s[k] for s in scores if k in s]) for k in names}
    ab = m.abstention_scores(list(abstained), [i.abstain for i in items])
    agg.update({f"abstention_{k}" if k != "false_refusal_rate" else k: v for k, v in ab.items()})
    agg["n_items"] = float(len(items))
    agg["n_answerable"] = float(sum(not i.abstain for i in items))
    agg["n_answered"] = float(sum("citation_precision" in s for s in scores))
    return agg


def latency(timings: Sequence[dict[str, float]], stages: Sequence[str] = ("retrieve", "answer", "total"),
            ) -> dict[str, dict[str, float]]:
    """p50/p95 per stage, over the items that recorded it."""
    out: dict[str, dict[str, float]] = {}
    for stage in stages:
        values = [t[stage] for t in timings if stage in t]
        if values:
            out[stage] = {"p50": m.percentile(values, 50), "p95": m.percentile(values, 95), "n": float(len(values))}
    return out


# Why an item failed, and how much it weighs when ranking the worst failures.
_WEIGHTS = {"error": 5.0, "not verbatim": 4.0, "answered, should abstain": 3.0, "false refusal": 3.0,
            "gold not in top 5": 2.0, "uncovered point not flagged": 1.5, "key phrases missing": 1.0}


def failure_reasons(item: EvalItem, out: Outcome, s: dict[str, float]) -> list[str]:
    reasons: list[str] = []
    if out.error:
        reasons.append("error")
    if s.get("verbatim", 1.0) < 1.0:
        reasons.append("not verbatim")
    if item.abstain and not out.abstained:
        reasons.append("answered, should abstain")
    if not item.abstain and out.abstained:
        reasons.append("false refusal")
    if s.get("hit_at_5", 1.0) < 1.0:
        reasons.append("gold not in top 5")
    if s.get("uncovered_recall", 1.0) < 1.0:
        reasons.append("uncovered point not flagged")
    if s.get("key_phrase_recall", 1.0) < 1.0:
        reasons.append("key phrases missing")
    return reasons


def severity(reasons: Sequence[str], s: dict[str, float]) -> float:
    """Sum of the reasons' weights, plus what was lost in MRR and key phrases."""
    return (sum(_WEIGHTS[r] for r in reasons) + (1.0 - s.get("mrr_at_10", 1.0))
            + (1.0 - s.get("key_phrase_recall", 1.0)))
