"""Run the fidelity guard over the guard benchmark and score it.

Each item's sentence is checked as a one-sentence answer against its numbered passages, with
the echo check built from the prompt it was (or would have been) generated from: a
transcript's own messages, or the current answer prompt rendered with the item's passages.
It *passes* when the guard (in ``remove`` mode) shows it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from assistant.echo import PromptEcho
from assistant.guard import FidelityGuard
from ingest.types import Chunk

HERE = Path(__file__).parent
SPLITS = ("dev", "test")
FROZEN = HERE / "test.sha256"
# The CI gate (issue 12); checked on both splits by tests/evals/test_guard_bench.py.
GATE = {"transcript_unsupported_passed_max": 0, "perturbation_passed_rate_max": 0.02, "faithful_kept_rate_min": 0.90}


class FrozenSplitChanged(RuntimeError):
    pass


def load(split: str) -> list[dict]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} (one of {SPLITS})")
    raw = (HERE / f"{split}.jsonl").read_bytes()
    if split == "test":
        want = FROZEN.read_text(encoding="utf-8").split()[0]
        if hashlib.sha256(raw).hexdigest() != want:
            raise FrozenSplitChanged(f"{HERE / 'test.jsonl'} no longer matches {FROZEN}: the frozen split was edited")
    return [json.loads(line) for line in raw.decode("utf-8").splitlines()]


@lru_cache(maxsize=8)
def _transcript(file: str) -> list[dict]:
    return [json.loads(line) for line in (HERE / "transcripts" / file).read_text(encoding="utf-8").splitlines()]


def chunks_of(item: dict) -> list[Chunk]:
    return [Chunk(id=f"{item['id']}/{i}", text=p["text"], source="kushiro-nemuro-vision.txt", title=p["title"],
                  section=tuple(p["section"]), start=0, end=len(p["text"]), kind=p["kind"] or "bullet", order=i)
            for i, p in enumerate(item["passages"])]


def echo_of(item: dict, passages: list[Chunk]) -> PromptEcho:
    from assistant.llm import prompt_echo, render_messages

    if item.get("call"):
        file, index = item["call"].split("#")
        messages = [m["content"] for m in _transcript(file)[int(index)]["messages"]]
        user = messages[-1]
        tag = "inquiry" if item.get("draft") else "question"
        asked = user.split(f"<{tag}>\n", 1)[1].split(f"\n</{tag}>", 1)[0] if f"<{tag}>" in user else ""
        return prompt_echo(messages, asked, passages)
    return prompt_echo(render_messages("draft" if item.get("draft") else "answer", "", passages, "ja"), "", passages)


@dataclass
class Scores:
    items: int = 0
    supported: int = 0
    passed: int = 0
    true_passed: int = 0
    by_group: dict[str, list[int]] = field(default_factory=dict)  # group → [items, passed]

    @property
    def precision(self) -> float:
        return self.true_passed / self.passed if self.passed else 1.0

    @property
    def recall(self) -> float:
        return self.true_passed / self.supported if self.supported else 1.0

    def rate(self, group: str) -> float:
        n, p = self.by_group.get(group, [0, 0])
        return p / n if n else 0.0

    def gate(self) -> dict[str, float]:
        return {"transcript_unsupported_passed": self.by_group.get("transcript", [0, 0])[1],
                "perturbation_passed_rate": self.rate("perturbation"),
                "faithful_kept_rate": self.rate("blind-faithful")}


@dataclass
class Outcome:
    item: dict
    passed: bool
    reason: str


def run(split: str, guard: FidelityGuard) -> tuple[Scores, list[Outcome]]:
    scores, outcomes = Scores(), []
    for item in load(split):
        passages = chunks_of(item)
        result = guard.check(item["sentence"], passages, mode="remove", draft=item.get("draft", False),
                             echo=echo_of(item, passages))
        passed = bool(result.text.strip())
        reasons = [v.reason for v in result.sentences] or ["kept unjudged"]
        outcomes.append(Outcome(item, passed, ",".join(reasons)))
        scores.items += 1
        scores.supported += item["supported"]
        scores.passed += passed
        scores.true_passed += passed and item["supported"]
        group = item["source"] if item["source"] != "blind" else f"blind-{item['kind']}"
        for g in (group, f"{item['source']}:{item['kind']}"):
            counts = scores.by_group.setdefault(g, [0, 0])
            counts[0] += 1
            counts[1] += passed
    return scores, outcomes


def failures(gate: dict[str, float]) -> list[str]:
    out = []
    if gate["transcript_unsupported_passed"] > GATE["transcript_unsupported_passed_max"]:
        out.append(f"{gate['transcript_unsupported_passed']:.0f} unsupported transcript sentence(s) passed (max 0)")
    if gate["perturbation_passed_rate"] > GATE["perturbation_passed_rate_max"]:
        out.append(f"perturbations passed {gate['perturbation_passed_rate']:.1%} (max 2 %)")
    if gate["faithful_kept_rate"] < GATE["faithful_kept_rate_min"]:
        out.append(f"faithful paraphrases kept {gate['faithful_kept_rate']:.1%} (min 90 %)")
    return out


def report(results: dict[str, Scores]) -> str:
    """A Markdown table, dev and test side by side."""
    splits = list(results)
    rows = [("precision (supported)", lambda s: f"{s.precision:.3f}"),
            ("recall (supported)", lambda s: f"{s.recall:.3f}"),
            ("items", lambda s: str(s.items)),
            ("transcript sentences passed (all unsupported)", lambda s: str(s.gate()["transcript_unsupported_passed"])),
            ("perturbations passed", lambda s: f"{s.gate()['perturbation_passed_rate']:.1%}"),
            ("faithful paraphrases kept", lambda s: f"{s.gate()['faithful_kept_rate']:.1%}"),
            ("blind fabrications passed", lambda s: f"{s.rate('blind-unsupported'):.1%}")]
    kinds = sorted({g for s in results.values() for g in s.by_group if g.startswith("perturbation:")})
    rows += [(f"  {k.split(':')[1]} passed", lambda s, k=k: f"{s.rate(k):.1%}") for k in kinds]
    lines = ["| guard benchmark | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
    lines += [f"| {name} | " + " | ".join(fmt(results[sp]) for sp in splits) + " |" for name, fmt in rows]
    return "\n".join(lines)


def evaluate(splits: tuple[str, ...] = SPLITS, out: Path | None = None) -> tuple[str, list[str]]:
    """Run both splits, write ``guard.md`` and ``guard.json`` to ``out`` (when given) and
    return the table and the gate failures (``split: …``)."""
    from ingest.tokenize import JapaneseTokenizer

    guard = FidelityGuard(JapaneseTokenizer())
    results, misses = {}, {}
    for split in splits:
        scores, outcomes = run(split, guard)
        results[split] = scores
        # Test failures are listed by id only: reading test items to fix them is tuning on test.
        misses[split] = [o.item["id"] if split == "test" else f"{o.item['id']} ({o.reason}): {o.item['sentence']}"
                         for o in outcomes if o.passed != o.item["supported"]]
    table = report(results)
    failed = [f"{split}: {f}" for split, s in results.items() for f in failures(s.gate())]
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        lines = ["# Guard benchmark", "", table, ""]
        for split, items in misses.items():
            lines += [f"## Misjudged on {split} ({len(items)})", ""] + [f"- {m}" for m in items] + [""]
        (out / "guard.md").write_text("\n".join(lines), encoding="utf-8")
        data = {split: {"precision": s.precision, "recall": s.recall, "items": s.items, **s.gate(),
                        "groups": s.by_group, "misjudged": misses[split]} for split, s in results.items()}
        (out / "guard.json").write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return table, failed
