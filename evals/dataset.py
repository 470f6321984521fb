"""The gold dataset: one JSON object per line, loaded into frozen `EvalItem`s."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.metrics import normalize

KINDS = (
    "factual", "paraphrase", "colloquial", "english", "multipart", "unanswerable", "injection", "multiturn",
    "staff", "entity", "dialect", "everyday", "nearmiss", "metadata", "offtopic",
)
SPLITS = ("dev", "test")
COVERAGES = ("direct", "related", "none")
DATASETS = Path(__file__).parent / "datasets"
FROZEN = DATASETS / "test.sha256"  # the SHA-256 of test.jsonl, committed before any tuning
_STR_LISTS = ("history", "gold_evidence", "missing", "key_phrases", "uncovered")
FIELDS = ("id", "kind", "split", "question", "history", "coverage", "gold_evidence", "missing", "key_phrases",
          "uncovered", "origin")


@dataclass(frozen=True, kw_only=True)
class EvalItem:
    id: str
    kind: str
    split: str
    question: str
    history: tuple[str, ...]
    coverage: str  # direct | related | none
    gold_evidence: tuple[str, ...]  # one string per passage a good answer quotes
    missing: tuple[str, ...]  # related: what the plan does not state
    key_phrases: tuple[str, ...]
    uncovered: tuple[str, ...]  # staff: the inquiry's points the plan does not cover
    origin: str = ""

    @property
    def abstain(self) -> bool:
        """The plan does not state what was asked (related or none)."""
        return self.coverage != "direct"


def normalize_for_match(text: str) -> str:
    """NFKC, all whitespace removed, Cyrillic О/о folded to Latin O/o."""
    return normalize(text)


def corpus_contains(corpus_text: str, s: str) -> bool:
    """True when the normalized string is a substring of the normalized corpus."""
    needle = normalize_for_match(s)
    return bool(needle) and needle in normalize_for_match(corpus_text)


def _problem(obj: Any) -> str | None:
    """The first thing wrong with one parsed line, or None."""
    if not isinstance(obj, dict):
        return "line is not a JSON object"
    missing = [f for f in FIELDS if f not in obj]
    if missing:
        return f"missing field(s): {', '.join(missing)}"
    unknown = sorted(set(obj) - set(FIELDS))
    if unknown:
        return f"unknown field(s): {', '.join(unknown)}"
    for f in ("id", "kind", "split", "question", "coverage"):
        if not isinstance(obj[f], str) or not obj[f].strip():
            return f"{f} must be a non-empty string"
    if not isinstance(obj["origin"], str):
        return "origin must be a string"
    for f in _STR_LISTS:
        if not isinstance(obj[f], list) or not all(isinstance(x, str) and x.strip() for x in obj[f]):
            return f"{f} must be a list of non-empty strings"
    if obj["kind"] not in KINDS:
        return f"unknown kind {obj['kind']!r} (expected one of {', '.join(KINDS)})"
    if obj["split"] not in SPLITS:
        return f"unknown split {obj['split']!r} (expected dev or test)"
    if obj["coverage"] not in COVERAGES:
        return f"unknown coverage {obj['coverage']!r} (expected direct, related or none)"
    if obj["coverage"] == "none" and obj["gold_evidence"]:
        return "coverage is none but gold_evidence is not empty"
    if obj["coverage"] != "none" and not obj["gold_evidence"]:
        return f"coverage is {obj['coverage']} but gold_evidence is empty"
    if obj["coverage"] == "related" and not obj["missing"]:
        return "coverage is related but missing is empty"
    if obj["kind"] == "multiturn" and not 1 <= len(obj["history"]) <= 2:
        return "multiturn items need 1 or 2 history questions"
    if obj["kind"] != "multiturn" and obj["history"]:
        return "history is only allowed for multiturn items"
    if obj["kind"] != "staff" and obj["uncovered"]:
        return "uncovered is only allowed for staff items"
    return None


def iter_jsonl(path: Path):
    """(line number, object) for each non-blank line; ValueError naming file:line on bad JSON."""
    with Path(path).open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from exc


def load_dataset(path: str | Path) -> list[EvalItem]:
    """Read and validate a JSONL dataset; raises ValueError naming file:line on the first bad line."""
    path = Path(path)
    items: list[EvalItem] = []
    seen: dict[str, int] = {}
    for lineno, obj in iter_jsonl(path):
        problem = _problem(obj)
        if problem is None and obj["id"] in seen:
            problem = f"duplicate id {obj['id']!r} (first on line {seen[obj['id']]})"
        if problem:
            raise ValueError(f"{path}:{lineno}: {problem}")
        seen[obj["id"]] = lineno
        items.append(EvalItem(
            id=obj["id"], kind=obj["kind"], split=obj["split"], question=obj["question"],
            history=tuple(obj["history"]), coverage=obj["coverage"], gold_evidence=tuple(obj["gold_evidence"]),
            missing=tuple(obj["missing"]), key_phrases=tuple(obj["key_phrases"]),
            uncovered=tuple(obj["uncovered"]), origin=obj["origin"],
        ))
    return items


def test_split_digest() -> str:
    """The SHA-256 of the frozen test split as it is on disk."""
    return hashlib.sha256((DATASETS / "test.jsonl").read_bytes()).hexdigest()


def frozen_digest() -> str:
    return FROZEN.read_text(encoding="utf-8").split()[0]


def load_split(split: str) -> list[EvalItem]:
    """``dev``, ``test`` or ``all`` (dev, then test). Each file's items must carry its split,
    and the test split must still be the one that was frozen."""
    if split not in (*SPLITS, "all"):
        raise ValueError(f"unknown split {split!r} (expected dev, test or all)")
    if split in ("test", "all") and test_split_digest() != frozen_digest():
        raise ValueError(f"{DATASETS / 'test.jsonl'} differs from the frozen split ({FROZEN}); "
                         "the test split must not change after it was frozen")
    items: list[EvalItem] = []
    for name in (SPLITS if split == "all" else (split,)):
        path = DATASETS / f"{name}.jsonl"
        loaded = load_dataset(path)
        wrong = [i.id for i in loaded if i.split != name]
        if wrong:
            raise ValueError(f"{path}: items of another split: {', '.join(wrong[:5])}")
        items += loaded
    return items
