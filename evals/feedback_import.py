"""Thumbs-down feedback from the UI export → candidate dataset items for a human to finish.

A candidate keeps the rejected answer under ``review`` and carries ``needs_review: true``.
Both are fields that ``load_dataset`` rejects, so a candidate cannot enter the gold set
until someone has set ``coverage`` and filled in ``gold_evidence`` and ``key_phrases`` (and
``missing`` for a related item), checked ``kind``, and deleted those two fields. Candidates
go to the dev split: the frozen test split never changes.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evals.dataset import iter_jsonl

REQUIRED = ("id", "rating", "question")


def _candidate(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"fb-{row['id']}", "kind": "factual", "split": "dev", "question": row["question"],
        "history": [], "coverage": "direct", "gold_evidence": [], "missing": [], "key_phrases": [], "uncovered": [],
        "origin": "feedback",
        "review": {"comment": row.get("comment", ""), "answer": row.get("answer", ""),
                   "citations": row.get("citations", []), "rewritten_query": row.get("rewritten_query", ""),
                   "config": row.get("config", {}), "time": row.get("time", "")},
        "needs_review": True,
    }


def import_feedback(jsonl_path: str | Path) -> list[dict[str, Any]]:
    """One candidate per thumbs-down row, in file order, each feedback id once. Raises
    ValueError naming file:line on a line that is not a feedback row."""
    path = Path(jsonl_path)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for lineno, row in iter_jsonl(path):
        if not isinstance(row, dict) or any(k not in row for k in REQUIRED):
            raise ValueError(f"{path}:{lineno}: a feedback row needs {', '.join(REQUIRED)}")
        if row["rating"] not in (1, -1):
            raise ValueError(f"{path}:{lineno}: rating must be 1 or -1, not {row['rating']!r}")
        if row["rating"] != -1 or not str(row["question"]).strip() or str(row["id"]) in seen:
            continue
        seen.add(str(row["id"]))
        out.append(_candidate(row))
    return out


def write_candidates(candidates: list[dict[str, Any]], out_path: str | Path) -> int:
    """Write candidates as JSONL (UTF-8, Japanese unescaped); returns how many."""
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for c in candidates:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    return len(candidates)
