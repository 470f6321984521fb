"""The quick benchmark end to end: every measure present, finite and positive, and the
report files written. It times nothing and asserts no speed."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks.run import CHANGE_MEASURES, MEASURES, SIZE_COUNTS, SIZE_MEASURES, main, results_dir
from benchmarks.report import goals

ROOT = Path(__file__).resolve().parents[2]


def _get(data: dict, dotted: str):
    for part in dotted.split("."):
        data = data[part]
    return data


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    corpus_before = sorted(p.name for p in (ROOT / "corpus").iterdir())
    out = tmp_path_factory.mktemp("bench")
    path = main(["--quick", "--out", str(out)])
    assert sorted(p.name for p in (ROOT / "corpus").iterdir()) == corpus_before  # nothing synthetic there
    return out, json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_every_measure_is_a_finite_positive_number(quick: tuple[Path, dict]) -> None:
    _, data = quick
    assert [s["chunks"] for s in data["sizes"]] == [300, 1000]
    for key in MEASURES:
        value = _get(data, key)
        assert isinstance(value, float) and math.isfinite(value) and value > 0, key
    for size in data["sizes"]:
        for key in SIZE_MEASURES:
            value = _get(size, key)
            assert isinstance(value, float) and math.isfinite(value) and value > 0, (size["chunks"], key)
        for key in SIZE_COUNTS:
            assert isinstance(_get(size, key), int) and _get(size, key) >= 0, (size["chunks"], key)
        for store in ("embedded", "server"):
            for case in ("edit_bullet", "add_document"):
                for key in CHANGE_MEASURES:
                    value = size["changes"][store][case][key]
                    assert isinstance(value, float) and math.isfinite(value) and value > 0, (store, case, key)


@pytest.mark.slow
def test_counts_are_exact(quick: tuple[Path, dict]) -> None:
    _, data = quick
    assert data["ingest_ratio"]["embeddings_computed"] == data["embedding"]["sample"]
    assert data["ingest_ratio"]["term_embeddings_computed"] > 0  # the ratio includes the content-term vectors
    for size in data["sizes"]:
        # every vector was in the cache, and an unchanged corpus is not embedded again
        assert (size["ingest_embeddings"], size["reingest_embeddings"], size["reingest_noop"]) == (0, 0, True)
        assert size["vectors"]["real"] + size["vectors"]["derived"] == size["vectors"]["distinct"]
        assert size["vectors"]["real"] <= data["embedding"]["sample"]
        assert size["ours"]["chunks"] == size["chunks"]
        assert size["ours"]["ask_ms"]["n"] == size["ours"]["retrieve_ms"]["n"] == data["meta"]["queries"]
        # A change is written as a difference, embedding only the new text, in both stores.
        for store in ("embedded", "server"):
            edit, add = size["changes"][store]["edit_bullet"], size["changes"][store]["add_document"]
            assert (edit["incremental"], edit["updated"], edit["added"], edit["embeddings"], edit["parsed"]) == (
                True, 1, 0, 1, 1), store
            assert (add["incremental"], add["added"], add["updated"], add["parsed"]) == (True, 10, 0, 1), store
            assert 0 < add["embeddings"] <= 10
        assert size["terms"]["distinct"] > 0


@pytest.mark.slow
def test_goals_are_reported_not_asserted(quick: tuple[Path, dict]) -> None:
    _, data = quick
    assert [g["met"] for g in data["goals"]][1:] == [None] * 13  # 10k and 100k were not run
    assert any(g["goal"].startswith("p50 ≤ 50 ms (full extractive answer") for g in data["goals"])
    assert any(g["goal"].startswith("answer p50 ≤ 1.5× the query-embedding p50") for g in data["goals"])
    assert data["goals"][0]["met"] is (data["ingest_ratio"]["ratio"] <= 1.3)


@pytest.mark.slow
def test_report_files(quick: tuple[Path, dict]) -> None:
    out, data = quick
    assert json.loads((out / "latest.json").read_text(encoding="utf-8")) == data
    md = (out / "latest.md").read_text(encoding="utf-8")
    assert "| ingest ÷ embedding |" in md
    assert "## What is real and what is derived" in md
    # latency, size and content-term rows, and two changes in each store
    assert md.count("\n| 300 |") == md.count("\n| 1,000 |") == 7
    assert md.count("\n| 300 | embedded |") == md.count("\n| 300 | server |") == 2
    assert (out / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "tmp").exists() or not any((out / "tmp").iterdir())  # work files are removed


def test_only_the_full_run_writes_the_committed_results() -> None:
    committed = ROOT / "benchmarks" / "results"
    assert results_dir(quick=False, sizes="", out=None) == committed
    for quick, sizes in ((True, ""), (False, "1000")):
        temporary = results_dir(quick=quick, sizes=sizes, out=None)
        assert temporary.is_dir() and not temporary.is_relative_to(ROOT) and not any(temporary.iterdir())
        temporary.rmdir()
    assert results_dir(quick=True, sizes="", out=Path("/elsewhere")) == Path("/elsewhere")


def test_the_answer_is_compared_with_the_embedding_of_the_same_run() -> None:
    data = json.loads((ROOT / "benchmarks" / "results" / "latest.json").read_text(encoding="utf-8"))
    at = next(s for s in data["sizes"] if s["chunks"] == 100_000)["ours"]
    goal = next(g for g in goals(data) if g["goal"].startswith("answer p50 ≤ 1.5×"))
    ratio = at["ask_ms"]["p50"] / at["query_embed_ms"]["p50"]
    assert goal == {**goal, "size": 100_000, "value": round(ratio, 2), "met": ratio <= 1.5}
