"""Build the guard benchmark (``python -m evals.guard.build``) from its three sources:

- ``transcripts/*.jsonl`` with ``transcript_labels.jsonl``: every sentence the real small
  models wrote in answer and draft calls (one item per distinct sentence of a call, with the
  count), each labelled by hand with a reason;
- ``blind.jsonl``: 240 items written blind from the plan text (160 faithful paraphrases,
  80 realistic fabrications);
- perturbations of the faithful paraphrases (``evals.guard.perturb``).

The split is drawn per group (a transcript call; a blind item with its perturbations),
half dev and half test within each stratum, from a fixed seed. ``test.jsonl`` was written
once, before any guard rule was tuned, and its SHA-256 committed; ``--check`` rebuilds in
memory and compares instead of writing.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

from evals.guard.perturb import perturb_all

HERE = Path(__file__).parent
SEED = "vision-qa guard benchmark 2026-12-01"
TITLE = "釧路・根室連携地域「地域づくり推進ビジョン」"
_LINE_RE = re.compile(r"^\[(\d+)\] \((.*)\) (.*)$")


def corpus_chunks() -> list[dict]:
    from ingest.chunker import Chunker
    from ingest.loaders import load_file
    from ingest.sources import load_sources

    root = Path(__file__).resolve().parents[2] / "corpus"
    name = "kushiro-nemuro-vision.txt"
    doc = load_file(root / name, root, load_sources(root).get(name))
    return [{"text": c.text, "section": list(c.section), "kind": c.kind, "title": c.title}
            for c in Chunker().split(doc)]


def prompt_passages(user: str) -> list[dict]:
    """The numbered passages of a transcript's user message: 「[n] (章・項目) 本文」 lines."""
    block = user.split("<passages>\n", 1)[1].split("</passages>", 1)[0]
    out = []
    for line in block.splitlines():
        m = _LINE_RE.match(line)
        if m:
            assert int(m.group(1)) == len(out) + 1, line
            out.append({"text": m.group(3), "section": m.group(2).split(" › "), "kind": "", "title": TITLE})
    return out


def transcript_items() -> list[dict]:
    calls: dict[tuple[str, int], dict] = {}
    for path in sorted((HERE / "transcripts").glob("*.jsonl")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            calls[(path.name, i)] = json.loads(line)
    items, counter = [], {}
    for line in (HERE / "transcript_labels.jsonl").read_text(encoding="utf-8").splitlines():
        label = json.loads(line)
        key = (label["file"], label["call"])
        user = calls[key]["messages"][-1]["content"]
        counter[key] = counter.get(key, 0) + 1
        model = label["file"].split("-")[0]
        items.append({
            "id": f"tr-{model}-{label['call']:02d}-{counter[key]:02d}", "source": "transcript", "kind": label["kind"],
            "sentence": label["sentence"], "passages": prompt_passages(user), "supported": label["supported"],
            "reason": label["reason"], "origin": f"{label['file']}#{label['call']}",
            "call": f"{label['file']}#{label['call']}",
            "draft": "<inquiry>" in user, "occurrences": label["occurrences"], "group": f"{model}#{label['call']}",
            "stratum": f"transcript-{model}",
        })
    return items


def blind_items(chunks: list[dict]) -> list[dict]:
    by_text = {c["text"]: c for c in chunks}
    out = []
    for line in (HERE / "blind.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        out.append({
            "id": f"b-{row['id']}", "source": "blind", "kind": row["kind"], "sentence": row["sentence"],
            "passages": [by_text[p] for p in row["passages"]], "supported": row["supported"], "reason": row["note"],
            "origin": row["id"], "draft": False, "group": row["id"], "stratum": f"blind-{row['kind']}",
        })
    return out


def assign_splits(items: list[dict]) -> None:
    """Half the groups of each stratum to dev, half to test, in the order of a seeded hash."""
    strata: dict[str, list[str]] = {}
    for it in items:
        groups = strata.setdefault(it["stratum"], [])
        if it["group"] not in groups:
            groups.append(it["group"])
    split = {}
    for groups in strata.values():
        ordered = sorted(groups, key=lambda g: hashlib.sha256(f"{SEED}:{g}".encode()).hexdigest())
        for i, g in enumerate(ordered):
            split[g] = "dev" if i < (len(ordered) + 1) // 2 else "test"
    for it in items:
        it["split"] = split[it["group"]]


def build() -> dict[str, list[dict]]:
    chunks = corpus_chunks()
    items = transcript_items() + blind_items(chunks)
    assign_splits(items)
    out: dict[str, list[dict]] = {"dev": [], "test": []}
    for split in out:
        mine = [it for it in items if it["split"] == split]
        faithful = [it for it in mine if it["source"] == "blind" and it["supported"]]
        perturbed = perturb_all(faithful, chunks)
        for p in perturbed:
            p.update(source="perturbation", draft=False, split=split, group=p["origin"], stratum="perturbation")
        out[split] = mine + perturbed
    return out


def serialize(items: list[dict]) -> str:
    keys = ("id", "split", "source", "kind", "sentence", "passages", "supported", "reason", "origin", "call",
            "draft", "occurrences")
    rows = [{k: it[k] for k in keys if k in it} for it in items]
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="rebuild in memory and compare with the files")
    parser.add_argument("--write-test", action="store_true", help="also (re)write the frozen test split")
    args = parser.parse_args(argv)
    built = {k: serialize(v) for k, v in build().items()}
    if args.check:
        same = all((HERE / f"{k}.jsonl").read_text(encoding="utf-8") == v for k, v in built.items())
        print("identical" if same else "DIFFERENT")
        return 0 if same else 1
    (HERE / "dev.jsonl").write_text(built["dev"], encoding="utf-8")
    if args.write_test:
        (HERE / "test.jsonl").write_text(built["test"], encoding="utf-8")
        digest = hashlib.sha256(built["test"].encode("utf-8")).hexdigest()
        (HERE / "test.sha256").write_text(f"{digest}  test.jsonl\n", encoding="utf-8")
    for k, v in built.items():
        print(f"{k}: {v.count(chr(10))} items")
    return 0


if __name__ == "__main__":
    sys.exit(main())
