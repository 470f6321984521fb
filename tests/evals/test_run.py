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

SUBSET = ("fact-01", "en-01", "multi-01", "unans-01", "inj-01", "mt-01")  # as in conftest.py
NO_RERANKER = "no reranker configured (set VISION_QA_RERANKER_MODEL to a CrossEncoder name or path)"


@pytest.fixture(scope="module")
def result(eval_result) -> EvalResult:
    return eval_result


def test_run_eval_counts_and_structure(result):
    hybrid = result.configs["hybrid"]
    assert list(result.configs) == ["hybrid", "rerank", "langchain"]
    assert result.n_items == 6 and [r.item.id for r in hybrid.items] == list(SUBSET)
    assert (hybrid.overall["n_items"], hybrid.overall["n_answerable"]) == (6.0, 4.0)
    assert list(hybrid.per_kind) == ["factual", "english", "multipart", "unanswerable", "injection", "multiturn"]
    assert {k: v["n"] for k, v in hybrid.latency_ms.items()} == {"retrieve": 6.0, "answer": 6.0, "total": 6.0}
    assert all(r.outcome.error == "" for r in hybrid.items)


def test_run_eval_metric_coverage(result):
    items = {r.item.id: r for r in result.configs["hybrid"].items}
    retrieval = {"hit_at_1", "hit_at_3", "hit_at_5", "mrr_at_10", "ndcg_at_10", "recall_at_5", "key_phrase_recall"}
    for i in ("fact-01", "en-01", "multi-01", "mt-01"):
        assert retrieval <= set(items[i].scores)
    injection = items["inj-01"]
    assert injection.outcome.abstained is True
    assert (injection.outcome.retrieved, injection.outcome.quotes) == ([], {})
    assert injection.scores == {"abstention_correct": 1.0}
    assert set(items["unans-01"].scores) <= {"abstention_correct", "verbatim"}


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
    assert len(data["configs"]["hybrid"]["items"]) == 6
    assert data["gate"] == {"passed": False, "failures": ["hit_at_5 = 0.9000, below the minimum 0.9500"]}
    md = (tmp_path / "reports" / "report.md").read_text(encoding="utf-8")
    assert "| rerank | not available: " + NO_RERANKER + " |" in md
    assert "## Per question kind (hybrid)" in md
    for png in written[2:]:
        assert png.stat().st_size > 10_000
        with Image.open(png) as im:
            assert im.format == "PNG" and im.size == (1320, 660)
            im.verify()


# -- the gate ---------------------------------------------------------------------------

def _result(overall: dict[str, float], split: str = "all") -> EvalResult:
    return EvalResult(split, "x", 1, {"hybrid": ConfigResult("hybrid", True, overall=overall)})


GOOD = {"hit_at_5": 0.96, "mrr_at_10": 0.9, "verbatim": 1.0, "abstention_accuracy": 0.95,
        "false_refusal_rate": 0.0}


def test_gate_passes_on_good_numbers():
    assert check_gate(_result(GOOD), load_thresholds()) == []
    at_limits = {**GOOD, "mrr_at_10": 0.85 - 1e-12, "verbatim": 1.0, "false_refusal_rate": 0.05 + 1e-12}
    assert check_gate(_result(at_limits), load_thresholds()) == []  # float rounding is not a failure


def test_gate_lists_every_failure():
    bad = {**GOOD, "hit_at_5": 0.9, "verbatim": 0.98, "false_refusal_rate": 0.1}
    del bad["mrr_at_10"]
    assert check_gate(_result(bad, split="dev"), load_thresholds()) == [
        "the thresholds are for split 'all', this run used 'dev'",
        "hit_at_5 = 0.9000, below the minimum 0.9500",
        "mrr_at_10: not in the results",
        "verbatim = 0.9800, below the minimum 1.0000",
        "false_refusal_rate = 0.1000, above the maximum 0.0500",
    ]


def test_gate_fails_when_the_default_config_did_not_run():
    result = EvalResult("all", "x", 1, {"hybrid": ConfigResult("hybrid", False, "broken")})
    assert check_gate(result, load_thresholds()) == ["configuration 'hybrid' was not evaluated: broken"]


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
                "gold_evidence": [], "key_phrases": [], "abstain": False, "uncovered": [],
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
                         "splits: all, dev, test)\n"
