"""The CI gate: the default (hybrid) configuration on dev and on the frozen test split must
meet evals/thresholds.toml. The numbers are printed either way, and the report is written to
reports/ci/ so a failing run can be read."""
from __future__ import annotations

from pathlib import Path

import pytest

from evals.report import write_report
from evals.run import GAP_METRICS, check_gate, load_thresholds, run_eval

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_default_configuration_meets_the_thresholds(indexed_settings, capsys):
    thresholds = load_thresholds()
    result = run_eval(indexed_settings, configs=[thresholds["config"]], progress=False)
    failures = check_gate(result, thresholds)
    write_report(result, ROOT / "reports" / "ci", failures)
    with capsys.disabled():
        for split, configs in result.splits.items():
            overall = configs[thresholds["config"]].overall
            print(f"\neval gate ({thresholds['config']}, {split}): " + "  ".join(
                f"{k}={overall[k]:.3f}" for k in GAP_METRICS if k in overall))
        print("dev − test: " + "  ".join(f"{k}={v:+.3f}" for k, v in result.gap().items()))
    assert failures == []
    # Invariants over every item of both splits: a lead that names a section names the section of
    # every quote under it, and every quote is verbatim.
    for configs in result.splits.values():
        overall = configs[thresholds["config"]].overall
        assert (overall["lead_section_correct"], overall["verbatim"]) == (1.0, 1.0)
