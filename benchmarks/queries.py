"""The benchmark questions: a fixed mix taken from the eval set, plus questions about the
synthetic documents' towns."""
from __future__ import annotations

import json
from pathlib import Path

# The dev split only: the frozen test split is for evaluation, never for anything we tune.
DATASET = Path(__file__).resolve().parents[1] / "evals" / "datasets" / "dev.jsonl"
# How many single-turn questions of each kind; the order of the eval file is kept.
MIX = {"factual": 8, "paraphrase": 6, "colloquial": 5, "multipart": 3, "unanswerable": 3, "english": 2}
QUICK_MIX = {"factual": 2, "paraphrase": 2, "colloquial": 1, "multipart": 1, "unanswerable": 1}
SYNTHETIC = (
    "厚岸におけるエゾシカの有効活用について教えてください。",
    "別海地域で再生可能エネルギーの導入はどう進めますか？",
    "羅臼の防災体制や施設の強化について何が書かれていますか？",
)


def benchmark_queries(quick: bool = False, dataset: Path = DATASET) -> list[str]:
    mix = QUICK_MIX if quick else MIX
    taken = {kind: 0 for kind in mix}
    out: list[str] = []
    for line in dataset.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        kind = row.get("kind")
        if kind in mix and not row.get("history") and taken[kind] < mix[kind]:
            taken[kind] += 1
            out.append(row["question"])
    return out + list(SYNTHETIC[: 1 if quick else len(SYNTHETIC)])
