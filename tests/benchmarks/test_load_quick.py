"""The load test's quick mode end to end: the real ``vision-qa serve``, simulated residents
(a Locust run) asking dev questions at 1 and 5 at once. It checks what was answered, never
how fast."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.load import dev_questions, main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick(tmp_path_factory, vision_index) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("load")
    path = main(["--quick", "--out", str(out), "--data", str(vision_index.data_dir)])
    return json.loads(path.read_text(encoding="utf-8")), (out / "load-latest.md").read_text(encoding="utf-8")


def test_every_resident_is_answered_with_citations_or_an_abstention(quick) -> None:
    data, _ = quick
    (run,) = data["runs"]
    assert run["concurrency"] == data["meta"]["default_concurrency"] == 2
    assert [lv["users"] for lv in run["levels"]] == [1, 5]
    for level in run["levels"]:
        assert level["asked"] == level["answers"] == level["users"] * 3
        assert (level["error"], level["busy"], level["uncited"], level["errors_detail"]) == (0, 0, 0, [])
        assert level["cited"] + level["abstained"] == level["answers"] and level["cited"] > 0
        for key in ("answers_per_s", "p50_ms", "p95_ms", "cpu_s_per_answer", "cpu_bound_per_s", "bound_ratio"):
            assert level[key] > 0, key


def test_the_dev_split_only_and_a_report(quick) -> None:
    data, md = quick
    questions = dev_questions()
    assert data["meta"]["questions"] == len(questions) == 182
    test_split = Path(__file__).resolve().parents[2] / "evals" / "datasets" / "test.jsonl"
    test_questions = {json.loads(line)["question"] for line in test_split.read_text(encoding="utf-8").splitlines()
                      if line.strip()}
    assert not test_questions & set(questions)
    assert md.startswith("# Load test (quick, ") and "| 5 | 15 |" in md
