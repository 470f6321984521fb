"""The gold dataset: one JSON object per line, loaded into frozen `EvalItem`s."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.metrics import normalize

KINDS = (
    "factual", "paraphrase", "colloquial", "english", "multipart",
    "unanswerable", "injection", "multiturn", "staff",
)
SPLITS = ("dev", "test")
_STR_LISTS = ("history", "gold_evidence", "key_phrases", "uncovered")
FIELDS = ("id", "kind", "split", "question", *_STR_LISTS, "abstain")


@dataclass(frozen=True)
class EvalItem:
    id: str
    kind: str
    split: str
    question: str
    history: tuple[str, ...]
    gold_evidence: tuple[str, ...]
    key_phrases: tuple[str, ...]
    abstain: bool
    uncovered: tuple[str, ...]


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
    for f in ("id", "kind", "split", "question"):
        if not isinstance(obj[f], str) or not obj[f].strip():
            return f"{f} must be a non-empty string"
    for f in _STR_LISTS:
        if not isinstance(obj[f], list) or not all(isinstance(x, str) and x.strip() for x in obj[f]):
            return f"{f} must be a list of non-empty strings"
    if not isinstance(obj["abstain"], bool):
        return "abstain must be true or false"
    if obj["kind"] not in KINDS:
        return f"unknown kind {obj['kind']!r} (expected one of {', '.join(KINDS)})"
    if obj["split"] not in SPLITS:
        return f"unknown split {obj['split']!r} (expected dev or test)"
    if obj["abstain"] and obj["gold_evidence"]:
        return "abstain is true but gold_evidence is not empty"
    if not obj["abstain"] and not obj["gold_evidence"]:
        return "abstain is false but gold_evidence is empty"
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
            history=tuple(obj["history"]), gold_evidence=tuple(obj["gold_evidence"]),
            key_phrases=tuple(obj["key_phrases"]), abstain=obj["abstain"],
            uncovered=tuple(obj["uncovered"]),
        ))
    return items
