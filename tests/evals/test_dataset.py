import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest

from evals.dataset import (DATASETS, FROZEN, EvalItem, corpus_contains, frozen_digest, load_dataset, load_split,
                           normalize_for_match, test_split_digest)

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "corpus" / "kushiro-nemuro-vision.txt"
# Kinds the blind writers covered, each in both splits.
BLIND_KINDS = ("entity", "dialect", "everyday", "nearmiss", "metadata", "offtopic", "english", "multiturn", "staff",
               "paraphrase")


@pytest.fixture(scope="module")
def items() -> list[EvalItem]:
    return load_split("all")


@pytest.fixture(scope="module")
def corpus() -> str:
    return CORPUS.read_text(encoding="utf-8")


def test_dataset_size_and_the_frozen_test_share(items):
    assert len(items) >= 300
    test = [i for i in items if i.split == "test"]
    assert len(test) / len(items) >= 0.40
    counts = Counter(it.kind for it in test)
    assert all(counts[kind] >= 10 for kind in BLIND_KINDS), counts
    assert Counter(i.coverage for i in test).keys() == {"direct", "related", "none"}


def test_the_test_split_is_the_frozen_one():
    # test.sha256 was committed before any rule was fitted; the file may never change.
    assert test_split_digest() == frozen_digest()
    assert FROZEN.read_text(encoding="utf-8").split()[1] == "test.jsonl"


def test_a_changed_test_split_is_refused(tmp_path, monkeypatch):
    import evals.dataset as ds

    copy = tmp_path / "datasets"
    copy.mkdir()
    for name in ("dev.jsonl", "test.jsonl", "test.sha256"):
        (copy / name).write_bytes((DATASETS / name).read_bytes())
    with (copy / "test.jsonl").open("a", encoding="utf-8") as f:
        f.write("\n")
    monkeypatch.setattr(ds, "DATASETS", copy)
    monkeypatch.setattr(ds, "FROZEN", copy / "test.sha256")
    with pytest.raises(ValueError, match="differs from the frozen split"):
        ds.load_split("test")
    assert len(ds.load_split("dev")) > 0  # dev may be read (and grown) freely


def test_no_test_item_was_written_by_the_project(items):
    # The project's own 113 items were tuned on; the test split holds only blind-written items.
    assert {i.origin for i in items if i.split == "test"} <= {"blind-A", "blind-B", "blind-C"}


def test_ids_are_unique(items):
    assert len({it.id for it in items}) == len(items)


def test_every_gold_string_occurs_in_corpus(items, corpus):
    missing = [(it.id, g) for it in items for g in it.gold_evidence if not corpus_contains(corpus, g)]
    assert missing == []


def test_every_key_phrase_occurs_in_corpus(items, corpus):
    missing = [
        (it.id, p) for it in items if not it.abstain
        for p in it.key_phrases if not corpus_contains(corpus, p)
    ]
    assert missing == []


def test_direct_items_have_key_phrases_and_related_items_say_what_is_missing(items):
    assert [it.id for it in items if it.coverage == "direct" and not it.key_phrases] == []
    assert [it.id for it in items if it.coverage == "related" and not it.missing] == []


def test_normalize_for_match_and_corpus_contains(corpus):
    assert normalize_for_match("ＣО₂ 吸収\n量") == "CO2吸収量"
    assert corpus_contains(corpus, "CO2吸収量")
    assert corpus_contains(corpus, "担い手の育成・確保に向けた取組の促進")
    assert not corpus_contains(corpus, "札幌市")
    assert not corpus_contains(corpus, " ")


def test_items_are_frozen(items):
    with pytest.raises(dataclasses.FrozenInstanceError):
        items[0].question = "x"  # type: ignore[misc]


GOOD = {
    "id": "fact-01", "kind": "factual", "split": "dev", "question": "エゾシカは？",
    "history": [], "coverage": "direct", "gold_evidence": ["エゾシカの有効活用"], "missing": [],
    "key_phrases": ["エゾシカ"], "uncovered": [], "origin": "project",
}


def _without(key: str) -> dict:
    return {k: v for k, v in GOOD.items() if k != key}


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        (json.dumps({**GOOD, "id": "x", "kind": "trivia"}), "unknown kind 'trivia'"),
        (json.dumps({**GOOD, "id": "x", "split": "train"}), "unknown split 'train'"),
        (json.dumps(_without("question")), "missing field(s): question"),
        (json.dumps({**GOOD, "id": "x", "extra": 1}), "unknown field(s): extra"),
        (json.dumps({**GOOD, "id": "x", "coverage": "none"}), "coverage is none but gold_evidence is not empty"),
        (json.dumps({**GOOD, "id": "x", "gold_evidence": []}), "coverage is direct but gold_evidence is empty"),
        (json.dumps({**GOOD, "id": "x", "coverage": "related"}), "coverage is related but missing is empty"),
        (json.dumps({**GOOD, "id": "x", "coverage": "partly"}), "unknown coverage 'partly'"),
        (json.dumps({**GOOD, "id": "x", "history": ["前の質問"]}), "history is only allowed for multiturn"),
        (json.dumps({**GOOD, "id": "x", "kind": "multiturn"}), "multiturn items need 1 or 2 history"),
        (json.dumps({**GOOD, "id": "x", "uncovered": ["予算"]}), "uncovered is only allowed for staff"),
        (json.dumps({**GOOD, "id": "x", "origin": 1}), "origin must be a string"),
        (json.dumps({**GOOD, "id": "x", "key_phrases": "エゾシカ"}), "key_phrases must be a list"),
        (json.dumps(GOOD), "duplicate id 'fact-01' (first on line 1)"),
        ("{not json", "invalid JSON"),
        ("[1, 2]", "line is not a JSON object"),
    ],
)
def test_validation_errors_name_file_and_line(tmp_path, bad_line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GOOD, ensure_ascii=False) + "\n" + bad_line + "\n", encoding="utf-8")
    with pytest.raises(ValueError) as exc:
        load_dataset(path)
    assert str(exc.value).startswith(f"{path}:2: ")
    assert message in str(exc.value)


def test_blank_lines_are_skipped_and_counted(tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_text("\n" + json.dumps(GOOD) + "\n\n" + json.dumps(_without("coverage")) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r":4: missing field\(s\): coverage"):
        load_dataset(path)


def test_load_valid_file(tmp_path):
    path = tmp_path / "ok.jsonl"
    staff = {**GOOD, "id": "staff-01", "kind": "staff", "uncovered": ["予算"]}
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(staff) + "\n", encoding="utf-8")
    loaded = load_dataset(path)
    assert loaded[1] == EvalItem(
        id="staff-01", kind="staff", split="dev", question="エゾシカは？", history=(), coverage="direct",
        gold_evidence=("エゾシカの有効活用",), missing=(), key_phrases=("エゾシカ",), uncovered=("予算",),
        origin="project",
    )
    assert not loaded[1].abstain
