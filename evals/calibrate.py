"""Fit the two coverage models and their thresholds on the dev split only.

Every dev item that reaches the coverage decision (not answered from the outline, not a staff
inquiry, not a refused injection) runs through the real pipeline: follow-ups rewritten,
passages retrieved, features computed. A passage is relevant when it holds one of the item's
gold strings; a question is direct when its gold coverage is.

Thresholds are chosen on out-of-fold probabilities (5 folds grouped by item, so no item
scores itself), then both models are refitted on all of dev:
- ``none_below`` and ``quote_from``: at most 2 % of dev's direct items graded none; within
  that, the most served + quote precision + none recall;
- ``direct_from``: at most 5 % of dev's related/none items graded direct; within that, the
  most direct items graded direct.

``vision-qa eval calibrate`` writes ``assistant/calibration.json`` (or --out).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from assistant.coverage import QUOTABLE, asked_facts, choose
from assistant.relevance import (PASSAGE_FEATURES, QUESTION_FEATURES, Calibration, Logistic, passage_features,
                                 question_features)
from evals.dataset import DATASETS, EvalItem, load_split
from evals.metrics import evidence_match

if TYPE_CHECKING:
    from assistant.core import Assistant, Generation
    from assistant.question import Question
    from assistant.types import Hit
    from vision_qa.settings import Settings

MAX_NONE_ON_ANSWERABLE = 0.02
MAX_DIRECT_ON_UNANSWERABLE = 0.05
_GRID_NONE = np.round(np.arange(0.02, 0.61, 0.01), 2)
_GRID_QUOTE = np.round(np.arange(0.10, 0.91, 0.02), 2)
_GRID_DIRECT = np.round(np.arange(0.05, 0.96, 0.01), 2)
FOLDS = 5


@dataclass
class Sample:
    item: EvalItem
    question: "Question"
    hits: list["Hit"]
    features: np.ndarray  # PASSAGE_FEATURES, one row per retrieved passage
    labels: np.ndarray  # 1 when the passage holds a gold string


def collect(assistant: "Assistant", items: list[EvalItem]) -> tuple[list[Sample], "Generation"]:
    from assistant.injection import strip_injection

    gen = assistant.current()
    out: list[Sample] = []
    for item in items:
        if item.kind == "staff":
            continue
        query, _ = strip_injection(item.question)
        if not query:
            continue
        history = [m for q in item.history for m in ({"role": "user", "content": q},
                                                     {"role": "assistant", "content": ""})]
        query = assistant.rewrite(query, history, gen)
        parsed = assistant.analyzer.analyze(query)
        hits, _ = gen.retriever.retrieve(query, vector=assistant._encode(gen, parsed))
        if not hits or assistant.structure.find(parsed, gen.outline, hits[0].chunk) is not None:
            continue
        hits = [h for h in hits if h.chunk.kind in QUOTABLE]  # what the judge grades
        if not hits:
            continue
        labels = np.array([any(evidence_match(h.chunk.text, g) for g in item.gold_evidence) for h in hits], float)
        out.append(Sample(item, parsed, hits, passage_features(parsed, hits, gen.matcher, gen.idf), labels))
    return out, gen


def _logistic(x: np.ndarray, y: np.ndarray, names: tuple[str, ...]) -> Logistic:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    lr = LogisticRegression(max_iter=3000).fit(scaler.transform(x), y)
    return Logistic(names, scaler.mean_, np.where(scaler.scale_ > 0, scaler.scale_, 1.0), lr.coef_[0],
                    float(lr.intercept_[0]))


def _out_of_fold(x: np.ndarray, y: np.ndarray, groups: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    from sklearn.model_selection import GroupKFold

    oof = np.zeros(len(y))
    for train, test in GroupKFold(n_splits=FOLDS).split(x, y, groups):
        oof[test] = _logistic(x[train], y[train], names).probabilities(x[test])
    return oof


def _passage_metrics(samples: list[Sample], probs: list[np.ndarray], none_below: float, quote_from: float) -> dict:
    none_direct = none_topical = none_correct = 0
    served, precision = [], []
    for s, p in zip(samples, probs):
        cov = s.item.coverage
        graded_none = float(p.max()) < none_below
        if cov == "none":
            none_correct += graded_none
            continue
        none_topical += graded_none
        none_direct += graded_none and cov == "direct"
        if graded_none:
            served.append(0.0)
            continue
        prob = {h.chunk.id: float(x) for h, x in zip(s.hits, p)}
        order = [s.hits[i] for i in np.argsort(-p, kind="stable")]
        good = [s.labels[s.hits.index(h)] for h in choose(order, prob, quote_from)]
        served.append(float(max(good)))
        precision.append(sum(good) / len(good))
    n = {c: sum(s.item.coverage == c for s in samples) for c in ("direct", "related", "none")}
    return {"none_on_answerable": none_direct / max(n["direct"], 1),
            "none_on_topical": none_topical / max(n["direct"] + n["related"], 1),
            "none_recall": none_correct / max(n["none"], 1),
            "served": float(np.mean(served)) if served else 0.0,
            "quote_precision": float(np.mean(precision)) if precision else 0.0}


def _question_rows(samples: list[Sample], probs: list[np.ndarray], quote_from: float, gen: "Generation",
                   ) -> np.ndarray:
    rows = []
    for s, p in zip(samples, probs):
        prob = {h.chunk.id: float(x) for h, x in zip(s.hits, p)}
        order = [s.hits[i] for i in np.argsort(-p, kind="stable")]
        chosen = choose(order, prob, quote_from)
        kind_found, names = asked_facts(s.question, chosen, gen.matcher, gen.outline.titles)
        rows.append(question_features(s.question, chosen, p, gen.matcher, gen.idf, bool(names), kind_found))
    return np.vstack(rows)


def fit(samples: list[Sample], gen: "Generation") -> tuple[Calibration, dict]:
    from sklearn.metrics import roc_auc_score

    x = np.vstack([s.features for s in samples])
    y = np.concatenate([s.labels for s in samples])
    groups = np.concatenate([[i] * len(s.labels) for i, s in enumerate(samples)])
    oof = _out_of_fold(x, y, groups, PASSAGE_FEATURES)
    per_item = [oof[groups == i] for i in range(len(samples))]
    best, best_score = None, -1.0
    for none_below in _GRID_NONE:
        for quote_from in _GRID_QUOTE:
            m = _passage_metrics(samples, per_item, none_below, quote_from)
            score = m["served"] + m["quote_precision"] + m["none_recall"]
            if m["none_on_answerable"] <= MAX_NONE_ON_ANSWERABLE and score > best_score:
                best, best_score = (float(none_below), float(quote_from), m), score
    if best is None:
        raise RuntimeError("no threshold keeps dev's false 'none' rate within bounds")
    none_below, quote_from, passage_dev = best

    # The direct model sees the items the passage model does not grade none.
    keep = [i for i, p in enumerate(per_item) if p.max() >= none_below]
    qx = _question_rows([samples[i] for i in keep], [per_item[i] for i in keep], quote_from, gen)
    qy = np.array([samples[i].item.coverage == "direct" for i in keep], float)
    q_oof = _out_of_fold(qx, qy, np.arange(len(keep)), QUESTION_FEATURES)
    unanswerable = qy == 0
    chosen = None
    for t in _GRID_DIRECT:
        wrong = float(((q_oof >= t) & unanswerable).sum() / max(unanswerable.sum(), 1))
        recall = float(((q_oof >= t) & ~unanswerable).sum() / max((~unanswerable).sum(), 1))
        if wrong <= MAX_DIRECT_ON_UNANSWERABLE and (chosen is None or recall > chosen[1]):
            chosen = (float(t), recall, wrong)
    if chosen is None:
        raise RuntimeError("no direct threshold keeps dev's false 'direct' rate within bounds")
    direct_from, direct_recall, direct_wrong = chosen
    report = {"items": len(samples), "passages": int(len(y)), "relevant": int(y.sum()),
              "passage_auc_out_of_fold": float(roc_auc_score(y, oof)),
              "direct_auc_out_of_fold": float(roc_auc_score(qy, q_oof)) if 0 < qy.sum() < len(qy) else None,
              "dev_out_of_fold": {**passage_dev, "direct_recall": direct_recall,
                                  "direct_on_unanswerable": direct_wrong}}
    cal = Calibration(_logistic(x, y, PASSAGE_FEATURES), _logistic(qx, qy, QUESTION_FEATURES),
                      none_below, quote_from, direct_from, {"fitted_on": "dev", **report})
    return cal, report


def calibrate(settings: "Settings", out: Path) -> dict:
    from assistant.build import build_assistant, run_ingest

    report = run_ingest(settings, quiet=True)
    if report.errors:
        raise RuntimeError(f"ingest failed: {'; '.join(report.errors)}")
    assistant = build_assistant(settings)
    samples, gen = collect(assistant, load_split("dev"))
    cal, summary = fit(samples, gen)
    meta = {**cal.meta, "embedder": assistant.embedder.id,
            "dev_sha256": hashlib.sha256((DATASETS / "dev.jsonl").read_bytes()).hexdigest(),
            "coefficients": {"relevance": dict(zip(PASSAGE_FEATURES, np.round(cal.relevance.coef, 3).tolist())),
                             "direct": dict(zip(QUESTION_FEATURES, np.round(cal.direct.coef, 3).tolist()))}}
    cal = Calibration(cal.relevance, cal.direct, cal.none_below, cal.quote_from, cal.direct_from, meta)
    out.write_text(cal.to_json() + "\n", encoding="utf-8")
    return meta
