"""Scoring one evaluated item, and aggregating items overall and per kind.

Which items count for which metric (gold coverage from the dataset, predicted from the answer):
- coverage: every item. ``none_on_answerable``: gold direct items graded none; ``none_on_topical``:
  gold direct or related graded none; ``direct_on_unanswerable``: gold related or none graded
  direct. A 3×3 confusion matrix (``coverage_<gold>_<predicted>`` counts).
- served: gold direct or related; 1 when the answer is not graded none and quotes a gold passage.
- quote precision: gold direct or related answered with quotes (not graded none): the share of
  quoted passages that are gold.
- lead-section correctness: answers whose lead names a section.
- retrieval (hit@k, MRR@10, nDCG@10, recall@5): items with gold passages.
- key-phrase recall: gold direct items.
- citation precision/recall, gold citation recall, quote tightness: gold direct items graded direct.
- verbatim rate: every item that came back with quotes.
- abstention (not direct): every item.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from evals import metrics as m
from evals.dataset import COVERAGES, EvalItem

# [1], [1][3], [1, 3], [2-4], full-width ［１］
_CITE = re.compile(r"[\[［]\s*([0-9０-９]+(?:\s*[,，、\-–〜~]\s*[0-9０-９]+)*)\s*[\]］]")


@dataclass
class Outcome:
    """What a system returned for one item, in the shape the metrics need."""

    text: str
    coverage: str  # direct | related | none
    retrieved: list[str]  # chunk texts, best first
    quotes: dict[int, str]  # citation number → quote
    cited: dict[int, str] = field(default_factory=dict)  # citation number → the whole passage quoted
    lead_ok: bool | None = None  # None when the lead names no section
    uncovered: list[str] = field(default_factory=list)  # staff drafts: the 要確認事項
    timings_ms: dict[str, float] = field(default_factory=dict)
    error: str = ""

    @property
    def abstained(self) -> bool:
        return self.coverage != "direct"


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
    s: dict[str, float] = {"abstention_correct": float(out.abstained == item.abstain),
                           "coverage_correct": float(out.coverage == item.coverage)}
    quotes = list(out.quotes.values())
    if quotes:
        s["verbatim"] = m.verbatim_rate(quotes, corpus_text)
    if out.lead_ok is not None:
        s["lead_section_correct"] = float(out.lead_ok)
    if item.coverage == "direct":
        s["none_on_answerable"] = float(out.coverage == "none")
    if item.coverage != "direct":
        s["direct_on_unanswerable"] = float(out.coverage == "direct")
    if item.uncovered:
        s["uncovered_recall"] = sum(any(_contains(u, g) for u in out.uncovered)
                                    for g in item.uncovered) / len(item.uncovered)
    if item.coverage == "none":
        return s
    gold = item.gold_evidence
    s["none_on_topical"] = float(out.coverage == "none")
    passages = list(out.cited.values())
    good = [any(m.evidence_match(p, g) for g in gold) for p in passages]
    s["served"] = float(out.coverage != "none" and any(good))
    if out.coverage != "none" and passages:
        s["quote_precision"] = sum(good) / len(good)
    ranked = out.retrieved
    s.update(hit_at_1=m.hit_at_k(ranked, gold, 1), hit_at_3=m.hit_at_k(ranked, gold, 3),
             hit_at_5=m.hit_at_k(ranked, gold, 5), mrr_at_10=m.reciprocal_rank(ranked, gold, 10),
             ndcg_at_10=m.ndcg_at_k(ranked, gold, 10), recall_at_5=m.recall_at_k(ranked, gold, 5))
    if item.coverage == "direct" and item.key_phrases:
        s["key_phrase_recall"] = m.key_phrase_recall(out.text, item.key_phrases)
    if item.coverage == "direct" and out.coverage == "direct":
        stmts = statements(out.text, out.quotes)
        s.update(citation_precision=m.citation_precision(stmts, gold),
                 citation_recall=m.citation_recall(stmts, gold),
                 gold_citation_recall=m.gold_citation_recall(quotes, gold),
                 quote_tightness=m.quote_tightness(quotes, gold))
    return s


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def aggregate(items: Sequence[EvalItem], scores: Sequence[dict[str, float]], predicted: Sequence[str],
              ) -> dict[str, float]:
    """Means of every metric over the items that have it, the abstention scores, the coverage
    confusion matrix, and counts."""
    if not items:
        return {}
    names = sorted({k for s in scores for k in s} - {"abstention_correct"})  # = abstention_accuracy
    agg: dict[str, float] = {k: _mean([s[k] for s in scores if k in s]) for k in names}
    ab = m.abstention_scores([p != "direct" for p in predicted], [i.abstain for i in items])
    agg.update({f"abstention_{k}" if k != "false_refusal_rate" else k: v for k, v in ab.items()})
    for gold in COVERAGES:
        for pred in COVERAGES:
            agg[f"coverage_{gold}_{pred}"] = float(sum(i.coverage == gold and p == pred
                                                       for i, p in zip(items, predicted)))
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
_WEIGHTS = {"error": 5.0, "not verbatim": 4.0, "lead names the wrong section": 4.0, "answered, should abstain": 3.0,
            "not covered, but the plan has it": 3.0, "gold passage not quoted": 2.0, "coverage wrong": 1.5,
            "quotes off-topic passages": 1.0, "gold not in top 5": 1.0, "uncovered point not flagged": 1.5,
            "key phrases missing": 0.5}


def failure_reasons(item: EvalItem, out: Outcome, s: dict[str, float]) -> list[str]:
    reasons: list[str] = []
    if out.error:
        reasons.append("error")
    if s.get("verbatim", 1.0) < 1.0:
        reasons.append("not verbatim")
    if s.get("lead_section_correct", 1.0) < 1.0:
        reasons.append("lead names the wrong section")
    if s.get("direct_on_unanswerable", 0.0) > 0:
        reasons.append("answered, should abstain")
    if s.get("none_on_topical", 0.0) > 0:
        reasons.append("not covered, but the plan has it")
    if not s.get("coverage_correct", 1.0) and not reasons[-1:] in (["answered, should abstain"],
                                                                    ["not covered, but the plan has it"]):
        reasons.append("coverage wrong")
    if s.get("served", 1.0) < 1.0 and out.coverage != "none":
        reasons.append("gold passage not quoted")
    if s.get("quote_precision", 1.0) < 0.5:
        reasons.append("quotes off-topic passages")
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
