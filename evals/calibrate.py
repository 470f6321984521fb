"""Fit the three coverage models and their thresholds on the dev split only.

Every dev item that reaches the coverage decision (not answered from the outline, not a staff
inquiry, not a refused injection) runs through the real pipeline: follow-ups rewritten,
passages retrieved, features computed. A passage is relevant when it holds one of the item's
gold strings; a question's topic is in the plan unless its gold coverage is none; it is direct
when its gold coverage is.

Items written blind (like the test split and the questions the product meets) weigh twice as
much as the project's own first items, which earlier rules were tuned on.

Thresholds are chosen on out-of-fold probabilities (5 folds grouped by item, so no item
scores itself), then the models are refitted on all of dev:
- ``quote_from``: the most served + quote precision over the items whose topic is in the plan;
- ``topic_from``: at most 3 % of the items whose topic is in the plan graded none; within that,
  the most off-topic items graded none;
- ``direct_from``: at most 5 % of the related/none items graded direct; within that, the most
  direct items graded direct.

``vision-qa eval calibrate`` writes ``assistant/calibration.json`` (or --out).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from assistant.coverage import QUOTABLE, asked_facts, choose
from assistant.relevance import (PASSAGE_FEATURES, QUESTION_FEATURES, TOPIC_FEATURES, Calibration, Logistic,
                                 passage_features, question_features, topic_features)
from evals.dataset import DATASETS, EvalItem, load_split
from evals.metrics import evidence_match

if TYPE_CHECKING:
    from assistant.core import Assistant, Generation
    from assistant.question import Question
    from assistant.types import Hit
    from vision_qa.settings import Settings

MAX_NONE_ON_TOPICAL = 0.03
MAX_DIRECT_ON_UNANSWERABLE = 0.05
BLIND_WEIGHT = 2.0
_GRID = np.round(np.arange(0.02, 0.99, 0.01), 2)
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
        searched = assistant._searched(gen, parsed)
        hits, _ = gen.retriever.retrieve(searched, vector=assistant._encode(gen, parsed, searched))
        if not hits or assistant.structure.find(parsed, gen.outline, hits[0].chunk) is not None:
            continue
        hits = [h for h in hits if h.chunk.kind in QUOTABLE]  # what the judge grades
        if not hits:
            continue
        labels = np.array([any(evidence_match(h.chunk.text, g) for g in item.gold_evidence) for h in hits], float)
        out.append(Sample(item, parsed, hits, passage_features(parsed, hits, gen.matcher, gen.idf), labels))
    return out, gen


def _weight(item: EvalItem) -> float:
    return BLIND_WEIGHT if item.origin.startswith("blind") else 1.0


def _logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, names: tuple[str, ...]) -> Logistic:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    lr = LogisticRegression(max_iter=3000).fit(scaler.transform(x), y, sample_weight=w)
    return Logistic(names, scaler.mean_, np.where(scaler.scale_ > 0, scaler.scale_, 1.0), lr.coef_[0],
                    float(lr.intercept_[0]))


def _out_of_fold(x: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray,
                 names: tuple[str, ...]) -> np.ndarray:
    from sklearn.model_selection import GroupKFold

    oof = np.zeros(len(y))
    for train, test in GroupKFold(n_splits=FOLDS).split(x, y, groups):
        oof[test] = _logistic(x[train], y[train], w[train], names).probabilities(x[test])
    return oof


def _share(mask: np.ndarray, of: np.ndarray, w: np.ndarray) -> float:
    """The weighted share of the items ``of`` for which ``mask`` holds."""
    return float((w * (mask & of)).sum() / max((w * of).sum(), 1e-9))


def _quote_metrics(samples: list[Sample], probs: list[np.ndarray], quote_from: float) -> tuple[float, float]:
    """Weighted served rate and quote precision over the items whose topic is in the plan."""
    served = precision = total = 0.0
    for s, p in zip(samples, probs):
        if s.item.coverage == "none":
            continue
        prob = {h.chunk.id: float(x) for h, x in zip(s.hits, p)}
        order = [s.hits[i] for i in np.argsort(-p, kind="stable")]
        good = [s.labels[s.hits.index(h)] for h in choose(order, prob, quote_from)]
        w = _weight(s.item)
        served += w * max(good)
        precision += w * sum(good) / len(good)
        total += w
    return served / total, precision / total


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

    # 1. Passage relevance.
    x = np.vstack([s.features for s in samples])
    y = np.concatenate([s.labels for s in samples])
    w = np.concatenate([[_weight(s.item)] * len(s.labels) for s in samples])
    groups = np.concatenate([[i] * len(s.labels) for i, s in enumerate(samples)])
    oof = _out_of_fold(x, y, w, groups, PASSAGE_FEATURES)
    per_item = [oof[groups == i] for i in range(len(samples))]
    quote_from = max(_GRID, key=lambda t: sum(_quote_metrics(samples, per_item, t)))
    served, precision = _quote_metrics(samples, per_item, quote_from)

    # 2. Is the topic in the plan?
    iw = np.array([_weight(s.item) for s in samples])
    tx = np.vstack([topic_features(s.question, s.hits, p, gen.matcher, gen.idf) for s, p in zip(samples, per_item)])
    ty = np.array([s.item.coverage != "none" for s in samples])
    t_oof = _out_of_fold(tx, ty.astype(float), iw, np.arange(len(samples)), TOPIC_FEATURES)
    ok = [t for t in _GRID if _share(t_oof < t, ty, iw) <= MAX_NONE_ON_TOPICAL]
    if not ok:
        raise RuntimeError("no topic threshold keeps dev's false 'none' rate within bounds")
    topic_from = max(ok, key=lambda t: _share(t_oof < t, ~ty, iw))

    # 3. Does the plan state what was asked? Over the items graded topical.
    keep = np.flatnonzero(t_oof >= topic_from)
    qx = _question_rows([samples[i] for i in keep], [per_item[i] for i in keep], quote_from, gen)
    qy = np.array([samples[i].item.coverage == "direct" for i in keep])
    qw = iw[keep]
    q_oof = _out_of_fold(qx, qy.astype(float), qw, np.arange(len(keep)), QUESTION_FEATURES)
    ok = [t for t in _GRID if _share(q_oof >= t, ~qy, qw) <= MAX_DIRECT_ON_UNANSWERABLE]
    if not ok:
        raise RuntimeError("no direct threshold keeps dev's false 'direct' rate within bounds")
    direct_from = max(ok, key=lambda t: (_share(q_oof >= t, qy, qw), -t))

    direct_gold = np.array([s.item.coverage == "direct" for s in samples])
    report = {"items": len(samples), "passages": int(len(y)), "relevant": int(y.sum()),
              "passage_auc_out_of_fold": float(roc_auc_score(y, oof)),
              "topic_auc_out_of_fold": float(roc_auc_score(ty, t_oof)),
              "direct_auc_out_of_fold": float(roc_auc_score(qy, q_oof)),
              "dev_out_of_fold": {  # weighted, blind items twice
                  "served_if_topical": served, "quote_precision": precision,
                  "none_on_topical": _share(t_oof < topic_from, ty, iw),
                  "none_on_direct": _share(t_oof < topic_from, direct_gold, iw),
                  "none_recall": _share(t_oof < topic_from, ~ty, iw),
                  "direct_recall": _share(q_oof >= direct_from, qy, qw),
                  "direct_on_unanswerable": _share(q_oof >= direct_from, ~qy, qw)}}
    cal = Calibration(_logistic(x, y, w, PASSAGE_FEATURES), _logistic(tx, ty.astype(float), iw, TOPIC_FEATURES),
                      _logistic(qx, qy.astype(float), qw, QUESTION_FEATURES), float(topic_from), float(quote_from),
                      float(direct_from), {"fitted_on": "dev", **report})
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
                             "topic": dict(zip(TOPIC_FEATURES, np.round(cal.topic.coef, 3).tolist())),
                             "direct": dict(zip(QUESTION_FEATURES, np.round(cal.direct.coef, 3).tolist()))}}
    cal = Calibration(cal.relevance, cal.topic, cal.direct, cal.topic_from, cal.quote_from, cal.direct_from, meta)
    out.write_text(cal.to_json() + "\n", encoding="utf-8")
    return meta
