"""The eval runner end to end on a real index, plus the gate, feedback import and statements."""
from __future__ import annotations

import json
import warnings

import pytest
from PIL import Image
from typer.testing import CliRunner

from evals.cli import eval_app
from evals.feedback_import import import_feedback, write_candidates
from evals.report import write_report
from evals.run import ConfigResult, EvalResult, check_gate, load_thresholds
from evals.scoring import cited_numbers, statements

SUBSET = ("fact-01", "en-01", "multi-01", "unans-01", "inj-01", "mt-01", "staff-01")  # as in conftest.py
NO_RERANKER = "no reranker configured (set VISION_QA_RERANKER_MODEL to a CrossEncoder name or path)"


@pytest.fixture(scope="module")
def result(eval_result) -> EvalResult:
    return eval_result


def test_run_eval_counts_and_structure(result):
    hybrid = result.configs["hybrid"]
    assert list(result.splits) == ["dev"] and list(result.configs) == ["hybrid", "rerank", "langchain"]
    assert [r.item.id for r in hybrid.items] == list(SUBSET)
    assert (hybrid.overall["n_items"], hybrid.overall["n_answerable"]) == (7.0, 5.0)
    assert list(hybrid.per_kind) == ["factual", "english", "multipart", "unanswerable", "injection", "multiturn",
                                     "staff"]
    assert {k: v["n"] for k, v in hybrid.latency_ms.items()} == {"retrieve": 7.0, "answer": 7.0, "total": 7.0}
    assert all(r.outcome.error == "" for r in hybrid.items)
    # The coverage confusion matrix counts every item once.
    assert sum(hybrid.overall[f"coverage_{g}_{p}"] for g in ("direct", "related", "none")
               for p in ("direct", "related", "none")) == 7.0
    assert result.gap() == {}  # one split only


def test_run_eval_metric_coverage(result):
    items = {r.item.id: r for r in result.configs["hybrid"].items}
    retrieval = {"hit_at_1", "hit_at_3", "hit_at_5", "mrr_at_10", "ndcg_at_10", "recall_at_5", "served",
                 "none_on_topical", "none_on_answerable", "key_phrase_recall"}
    for i in ("fact-01", "en-01", "multi-01", "mt-01"):
        assert retrieval <= set(items[i].scores), i
    injection = items["inj-01"]
    assert (injection.outcome.coverage, injection.outcome.abstained) == ("none", True)
    assert (injection.outcome.retrieved, injection.outcome.quotes) == ([], {})
    assert injection.scores == {"abstention_correct": 1.0, "coverage_correct": 1.0, "direct_on_unanswerable": 0.0}
    assert "served" not in items["unans-01"].scores and "direct_on_unanswerable" in items["unans-01"].scores
    assert "uncovered_recall" in items["staff-01"].scores


def test_every_quote_is_verbatim(result):
    hybrid = result.configs["hybrid"]
    assert hybrid.overall["verbatim"] == 1.0
    assert sum(len(r.outcome.quotes) for r in hybrid.items) > 0


def test_rerank_is_reported_unavailable_not_faked(result):
    rerank = result.configs["rerank"]
    assert (rerank.available, rerank.reason, rerank.items) == (False, NO_RERANKER, [])


def test_report_files(result, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = write_report(result, tmp_path / "reports", gate=["hit_at_5 = 0.9000, below the minimum 0.9500"])
    # matplotlib warns "Glyph … missing from font(s)" when the kanji would render as boxes.
    assert [str(w.message) for w in caught if "missing from font" in str(w.message)] == []
    assert [p.name for p in written] == ["report.md", "results.json", "metrics_by_kind.png", "configs.png"]
    data = json.loads((tmp_path / "reports" / "results.json").read_text(encoding="utf-8"))
    assert len(data["splits"]["dev"]["hybrid"]["items"]) == 7
    assert data["gate"] == {"passed": False, "failures": ["hit_at_5 = 0.9000, below the minimum 0.9500"]}
    md = (tmp_path / "reports" / "report.md").read_text(encoding="utf-8")
    assert "| rerank | not available: " + NO_RERANKER + " |" in md
    assert "### Per question kind (hybrid, dev)" in md
    assert "### Coverage confusion (hybrid, dev)" in md
    for png in written[2:]:
        assert png.stat().st_size > 10_000
        with Image.open(png) as im:
            assert im.format == "PNG" and im.size == (1320, 660)
            im.verify()


# -- the gate ---------------------------------------------------------------------------

def _result(test: dict[str, float], dev: dict[str, float] | None = None) -> EvalResult:
    splits = {"test": {"hybrid": ConfigResult("hybrid", True, overall=test)}}
    if dev is not None:
        splits = {"dev": {"hybrid": ConfigResult("hybrid", True, overall=dev)}, **splits}
    return EvalResult(splits)


THRESHOLDS = {"config": "hybrid", "split": "test", "served": 0.8, "quote_precision": 0.75,
              "direct_on_unanswerable_max": 0.08, "verbatim": 1.0, "gap_max": 0.05}
GOOD = {"served": 0.85, "quote_precision": 0.8, "direct_on_unanswerable": 0.04, "verbatim": 1.0}


def test_gate_passes_on_good_numbers():
    assert check_gate(_result(GOOD, GOOD), THRESHOLDS) == []
    at_limits = {**GOOD, "served": 0.8 - 1e-12, "direct_on_unanswerable": 0.08 + 1e-12}
    assert check_gate(_result(at_limits, at_limits), THRESHOLDS) == []  # float rounding is not a failure


def test_gate_lists_every_failure():
    bad = {**GOOD, "served": 0.7, "verbatim": 0.98, "direct_on_unanswerable": 0.1}
    del bad["quote_precision"]
    assert check_gate(_result(bad, {**GOOD, "served": 0.9}), THRESHOLDS) == [
        "served = 0.7000, below the minimum 0.8000",
        "served: dev − test gap +0.2000 exceeds 0.0500",
        "quote_precision: not in the results",
        "direct_on_unanswerable = 0.1000, above the maximum 0.0800",
        "direct_on_unanswerable: dev − test gap -0.0600 exceeds 0.0500",
        "verbatim = 0.9800, below the minimum 1.0000",
    ]


def test_gate_needs_both_splits_for_the_gap():
    assert check_gate(_result(GOOD), THRESHOLDS) == ["the dev–test gap needs both splits in the run"]


def test_gate_fails_when_the_default_config_did_not_run():
    result = EvalResult({"test": {"hybrid": ConfigResult("hybrid", False, "broken")}})
    assert check_gate(result, THRESHOLDS) == ["configuration 'hybrid' was not evaluated on the test split: broken"]


def test_the_shipped_thresholds_gate_the_frozen_test_split():
    shipped = load_thresholds()
    assert (shipped["config"], shipped["split"]) == ("hybrid", "test")
    assert shipped["verbatim"] == 1.0 and shipped["lead_section_correct"] == 1.0


# -- statements and feedback -------------------------------------------------------------

def test_statements_parse_markers():
    text = "ビジョンには、次の記載があります。\n・エゾシカの有効活用 [1]\n・二つの根拠です［２］[3]\nThe end [1, 4-5]"
    quotes = {1: "A", 2: "B", 3: "C", 5: "E"}
    assert statements(text, quotes) == [("・エゾシカの有効活用", ["A"]), ("・二つの根拠です", ["B", "C"]),
                                        ("The end", ["A", "E"])]
    assert cited_numbers("１、３") == [1, 3]


FEEDBACK = [
    {"id": 1, "time": "t1", "rating": 1, "comment": "", "question": "良い", "rewritten_query": "良い",
     "answer": "a", "citations": [], "config": {}},
    {"id": 2, "time": "t2", "rating": -1, "comment": "出典が違う", "question": "エゾシカは？",
     "rewritten_query": "エゾシカ", "answer": "記載がありません", "citations": [{"n": 1, "quote": "q", "section": "s"}],
     "config": {"retrieval": "hybrid"}},
    {"id": 2, "time": "t2", "rating": -1, "comment": "dup", "question": "エゾシカは？", "rewritten_query": "",
     "answer": "", "citations": [], "config": {}},
]


def test_import_feedback_and_cli(tmp_path):
    src = tmp_path / "feedback.jsonl"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in FEEDBACK) + "\n", encoding="utf-8")
    expected = {"id": "fb-2", "kind": "factual", "split": "dev", "question": "エゾシカは？", "history": [],
                "coverage": "direct", "gold_evidence": [], "missing": [], "key_phrases": [], "uncovered": [],
                "origin": "feedback",
                "review": {"comment": "出典が違う", "answer": "記載がありません",
                           "citations": [{"n": 1, "quote": "q", "section": "s"}], "rewritten_query": "エゾシカ",
                           "config": {"retrieval": "hybrid"}, "time": "t2"},
                "needs_review": True}
    assert import_feedback(src) == [expected]
    out = tmp_path / "c" / "candidates.jsonl"
    res = CliRunner().invoke(eval_app, ["import-feedback", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output == (f"1 candidate item(s) written to {out}; fill in gold_evidence and key_phrases, "
                          "then delete review and needs_review\n")
    assert [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] == [expected]
    assert write_candidates([], tmp_path / "empty.jsonl") == 0


def test_import_feedback_rejects_bad_lines(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"id": 1, "rating": -1, "question": "q"}\n{"id": 2, "rating": 0, "question": "q"}\n',
                   encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: rating must be 1 or -1, not 0"):
        import_feedback(src)


def test_cli_rejects_unknown_config():
    res = CliRunner().invoke(eval_app, ["--config", "bogus"])
    assert res.exit_code == 2
    assert res.output == "error: unknown config bogus (configs: hybrid, bm25, dense, rerank, langchain; " \
                         "splits: dev, test)\n"
