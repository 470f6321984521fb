"""The guard benchmark (evals/guard) and its CI gate: on dev and on the frozen test split, no
unsupported transcript sentence passes, at most 2 % of the perturbations pass, and at least
90 % of the faithful paraphrases are kept. The numbers are printed either way."""
from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest

from assistant.guard import FidelityGuard
from evals.guard import bench
from evals.guard.build import build, serialize
from ingest.tokenize import JapaneseTokenizer


@pytest.fixture(scope="module")
def results() -> dict[str, bench.Scores]:
    guard = FidelityGuard(JapaneseTokenizer())
    return {split: bench.run(split, guard)[0] for split in bench.SPLITS}


def test_the_guard_meets_the_gate_on_both_splits(results, capsys) -> None:
    with capsys.disabled():
        print("\n" + bench.report(results))
    for split, scores in results.items():
        assert bench.failures(scores.gate()) == [], split


def test_the_benchmark_has_every_source_in_both_splits() -> None:
    for split in bench.SPLITS:
        items = bench.load(split)
        counts = Counter((it["source"], it["supported"]) for it in items)
        assert counts[("blind", True)] == 80 and counts[("blind", False)] == 40, counts
        assert counts[("transcript", False)] >= 150 and counts[("perturbation", False)] >= 300, counts
        assert not counts[("transcript", True)] and not counts[("perturbation", True)]
        assert {it["kind"] for it in items if it["source"] == "perturbation"} == {
            "swap", "heading", "number", "place", "negation"}
        assert all(it["reason"] for it in items)


def test_every_transcript_sentence_is_labelled_once() -> None:
    from assistant.guard import split_sentences

    labelled = Counter()
    for split in bench.SPLITS:
        for it in bench.load(split):
            if it["source"] == "transcript":
                labelled[(it["call"], it["sentence"])] += it["occurrences"]
    spoken = Counter()
    for path in sorted((bench.HERE / "transcripts").glob("*.jsonl")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            call = json.loads(line)
            user = call["messages"][-1]["content"]
            if "<passages>" not in user:
                continue  # a follow-up rewrite: tests/assistant/test_llm_replay.py checks those
            for s in split_sentences(call["output"], "<inquiry>" in user):
                spoken[(f"{path.name}#{i}", call["output"][s.start:s.end].strip())] += 1
    assert labelled == spoken


def test_the_test_split_is_the_frozen_one_and_rebuilds_identically() -> None:
    raw = (bench.HERE / "test.jsonl").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == bench.FROZEN.read_text(encoding="utf-8").split()[0]
    built = build()
    assert serialize(built["test"]).encode("utf-8") == raw
    assert serialize(built["dev"]).encode("utf-8") == (bench.HERE / "dev.jsonl").read_bytes()


def test_a_changed_test_split_is_refused(tmp_path, monkeypatch) -> None:
    copy = tmp_path / "guard"
    copy.mkdir()
    for name in ("dev.jsonl", "test.jsonl", "test.sha256"):
        (copy / name).write_bytes((bench.HERE / name).read_bytes())
    with (copy / "test.jsonl").open("a", encoding="utf-8") as f:
        f.write("\n")
    monkeypatch.setattr(bench, "HERE", copy)
    monkeypatch.setattr(bench, "FROZEN", copy / "test.sha256")
    with pytest.raises(bench.FrozenSplitChanged):
        bench.load("test")
    assert len(bench.load("dev")) == 672


def test_vision_qa_eval_guard_prints_both_splits_and_writes_the_report(tmp_path) -> None:
    from typer.testing import CliRunner

    from vision_qa.cli import app

    result = CliRunner().invoke(app, ["eval", "guard", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "| guard benchmark | dev | test |"
    assert "| transcript sentences passed (all unsupported) | 0 | 0 |" in lines
    assert lines[-1] == "guard gate passed"
    report = json.loads((tmp_path / "guard.json").read_text(encoding="utf-8"))
    assert set(report) == {"dev", "test"} and report["test"]["transcript_unsupported_passed"] == 0
    assert (tmp_path / "guard.md").read_text(encoding="utf-8").startswith("# Guard benchmark\n\n| guard benchmark |")
