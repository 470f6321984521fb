"""The CI gate: the whole dataset through the default (hybrid) configuration must meet
evals/thresholds.toml. The numbers are printed either way, and the report is written to
reports/ci/ so a failing run can be read."""
from __future__ import annotations

from pathlib import Path

import pytest

from evals.report import write_report
from evals.run import check_gate, load_thresholds, run_eval

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_default_configuration_meets_the_thresholds(indexed_settings, capsys):
    thresholds = load_thresholds()
    result = run_eval(indexed_settings, configs=[thresholds["config"]], split=thresholds["split"], progress=False)
    failures = check_gate(result, thresholds)
    write_report(result, ROOT / "reports" / "ci", failures)
    overall = result.configs[thresholds["config"]].overall
    with capsys.disabled():
        print("\neval gate (hybrid, all items): " + "  ".join(
            f"{k}={overall[k]:.3f}" for k in ("hit_at_5", "mrr_at_10", "verbatim", "abstention_accuracy",
                                              "false_refusal_rate", "citation_precision", "citation_recall",
                                              "quote_tightness") if k in overall))
    assert failures == []
