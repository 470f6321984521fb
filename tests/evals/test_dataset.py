import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest

from evals.dataset import EvalItem, corpus_contains, load_dataset, normalize_for_match

ROOT = Path(__file__).resolve().parents[2]
DATASET = ROOT / "evals" / "datasets" / "vision.jsonl"
CORPUS = ROOT / "corpus" / "kushiro-nemuro-vision.txt"
MINIMUMS = {
    "factual": 14, "paraphrase": 12, "colloquial": 12, "english": 8, "multipart": 8,
    "unanswerable": 14, "injection": 6, "multiturn": 8, "staff": 8,
}


@pytest.fixture(scope="module")
def items() -> list[EvalItem]:
    return load_dataset(DATASET)


@pytest.fixture(scope="module")
def corpus() -> str:
    return CORPUS.read_text(encoding="utf-8")


def test_dataset_size_and_kind_minimums(items):
    assert len(items) >= 80
    counts = Counter(it.kind for it in items)
    for kind, minimum in MINIMUMS.items():
        assert counts[kind] >= minimum, kind


def test_ids_are_unique(items):
    assert len({it.id for it in items}) == len(items)


def test_both_splits_in_every_kind_with_about_forty_percent_dev(items):
    for kind in MINIMUMS:
        assert {it.split for it in items if it.kind == kind} == {"dev", "test"}, kind
    dev_share = sum(it.split == "dev" for it in items) / len(items)
    assert 0.35 <= dev_share <= 0.45


def test_every_gold_string_occurs_in_corpus(items, corpus):
    missing = [(it.id, g) for it in items for g in it.gold_evidence if not corpus_contains(corpus, g)]
    assert missing == []


def test_every_key_phrase_occurs_in_corpus(items, corpus):
    missing = [
        (it.id, p) for it in items if not it.abstain
        for p in it.key_phrases if not corpus_contains(corpus, p)
    ]
    assert missing == []


def test_answerable_items_have_key_phrases(items):
    assert [it.id for it in items if not it.abstain and not it.key_phrases] == []


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
    "history": [], "gold_evidence": ["エゾシカの有効活用"], "key_phrases": ["エゾシカ"],
    "abstain": False, "uncovered": [],
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
        (json.dumps({**GOOD, "id": "x", "abstain": True}), "abstain is true but gold_evidence is not empty"),
        (json.dumps({**GOOD, "id": "x", "gold_evidence": []}), "abstain is false but gold_evidence is empty"),
        (json.dumps({**GOOD, "id": "x", "history": ["前の質問"]}), "history is only allowed for multiturn"),
        (json.dumps({**GOOD, "id": "x", "kind": "multiturn"}), "multiturn items need 1 or 2 history"),
        (json.dumps({**GOOD, "id": "x", "uncovered": ["予算"]}), "uncovered is only allowed for staff"),
        (json.dumps({**GOOD, "id": "x", "abstain": "no"}), "abstain must be true or false"),
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
    path.write_text("\n" + json.dumps(GOOD) + "\n\n" + json.dumps(_without("abstain")) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r":4: missing field\(s\): abstain"):
        load_dataset(path)


def test_load_valid_file(tmp_path):
    path = tmp_path / "ok.jsonl"
    staff = {**GOOD, "id": "staff-01", "kind": "staff", "uncovered": ["予算"]}
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(staff) + "\n", encoding="utf-8")
    loaded = load_dataset(path)
    assert loaded[1] == EvalItem(
        id="staff-01", kind="staff", split="dev", question="エゾシカは？", history=(),
        gold_evidence=("エゾシカの有効活用",), key_phrases=("エゾシカ",), abstain=False,
        uncovered=("予算",),
    )
