"""Run the gold dataset through each retrieval configuration and score every answer.

Configurations: ``hybrid`` (the default pipeline), ``bm25`` and ``dense`` (one side of the
fusion), ``rerank`` (hybrid + the configured CrossEncoder; reported as not available when
none is configured, never faked) and ``langchain`` (the tutorial baseline, evals/baseline.py).
"""
from __future__ import annotations

import time
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from evals.dataset import KINDS, SPLITS, EvalItem, load_split
from evals.scoring import Outcome, aggregate, failure_reasons, latency, score_item, severity

if TYPE_CHECKING:
    from assistant.core import Assistant
    from assistant.types import Answer, Draft, Message
    from vision_qa.settings import Settings

CONFIGS = ("hybrid", "bm25", "dense", "rerank", "langchain")
DEFAULT_CONFIG = "hybrid"
GAP_METRICS = ("served", "none_on_answerable", "direct_on_unanswerable", "quote_precision", "lead_section_correct",
               "verbatim", "hit_at_5", "mrr_at_10", "abstention_accuracy")
THRESHOLDS = Path(__file__).parent / "thresholds.toml"
CORPUS_FILE = "kushiro-nemuro-vision.txt"
_EPS = 1e-9


class System(Protocol):
    def warm_up(self) -> None: ...

    def run(self, item: EvalItem) -> Outcome: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass
class ItemResult:
    item: EvalItem
    outcome: Outcome
    scores: dict[str, float]
    reasons: list[str]  # empty when the item passed
    severity: float

    def to_dict(self) -> dict[str, Any]:
        return {"item": asdict(self.item), "outcome": asdict(self.outcome), "scores": self.scores,
                "failure_reasons": self.reasons, "severity": self.severity}


@dataclass
class ConfigResult:
    name: str
    available: bool
    reason: str = ""  # why not available
    system: dict[str, Any] = field(default_factory=dict)
    items: list[ItemResult] = field(default_factory=list)
    overall: dict[str, float] = field(default_factory=dict)
    per_kind: dict[str, dict[str, float]] = field(default_factory=dict)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0

    def failures(self) -> list[ItemResult]:
        """Failed items, worst first."""
        return sorted((r for r in self.items if r.reasons), key=lambda r: (-r.severity, r.item.id))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "available": self.available, "reason": self.reason, "system": self.system,
                "overall": self.overall, "per_kind": self.per_kind, "latency_ms": self.latency_ms,
                "seconds": self.seconds, "items": [r.to_dict() for r in self.items]}


@dataclass
class EvalResult:
    """Each configuration on each split (dev and test side by side)."""

    splits: dict[str, dict[str, ConfigResult]]  # split → config name → result
    created: str = ""

    @property
    def configs(self) -> dict[str, ConfigResult]:
        """The results of the last split run (the test split when both ran)."""
        return self.splits[list(self.splits)[-1]]

    def gap(self, config: str = DEFAULT_CONFIG) -> dict[str, float]:
        """dev − test of every metric both splits have (empty unless both ran)."""
        dev, test = (self.splits.get(s, {}).get(config) for s in SPLITS)
        if dev is None or test is None or not (dev.available and test.available):
            return {}
        return {k: dev.overall[k] - test.overall[k] for k in GAP_METRICS if k in dev.overall and k in test.overall}

    def to_dict(self) -> dict[str, Any]:
        return {"created": self.created, "splits": {s: {k: c.to_dict() for k, c in runs.items()}
                                                     for s, runs in self.splits.items()},
                "gap": {name: self.gap(name) for name in self.configs}}


# -- the assistant as a system -----------------------------------------------------------

def _lead_ok(a: "Answer") -> bool | None:
    """Does the section the lead names hold every quote under it (and is it named in the text)?"""
    if not a.lead_section:
        return None
    first = a.text.splitlines()[0] if a.text else ""
    return a.lead_section in first and all(c.label == a.lead_section for c in a.citations)


def _from_answer(a: "Answer", chunks: dict[str, str]) -> Outcome:
    return Outcome(a.text, a.coverage, [h.chunk.text for h in a.retrieved], {c.n: c.quote for c in a.citations},
                   {c.n: chunks.get(c.chunk_id, c.quote) for c in a.citations}, _lead_ok(a),
                   timings_ms=dict(a.timings_ms))


def _from_draft(d: "Draft", chunks: dict[str, str]) -> Outcome:
    # The points' rankings interleaved (1st of each point, then 2nd, ...), each chunk once.
    lists = [p.answer.retrieved for p in d.points]
    seen: dict[str, str] = {}
    for rank in range(max((len(x) for x in lists), default=0)):
        for hits in lists:
            if rank < len(hits):
                seen.setdefault(hits[rank].chunk.id, hits[rank].chunk.text)
    timings = {stage: sum(p.answer.timings_ms.get(stage, 0.0) for p in d.points) for stage in ("retrieve", "answer")}
    timings["total"] = d.timings_ms.get("total", 0.0)
    grades = {p.answer.coverage for p in d.points}
    coverage = next((c for c in ("direct", "related") if c in grades), "none")
    return Outcome(d.text, coverage, list(seen.values()), {c.n: c.quote for c in d.citations},
                   {c.n: chunks.get(c.chunk_id, c.quote) for c in d.citations}, None, list(d.uncovered), timings)


class AssistantSystem:
    def __init__(self, assistant: "Assistant") -> None:
        self.assistant = assistant

    def run(self, item: EvalItem) -> Outcome:
        chunks = {c.id: c.text for c in self.assistant.current().index.chunks}
        if item.kind == "staff":
            return _from_draft(self.assistant.draft(item.question), chunks)
        history: list["Message"] = []
        for q in item.history:
            earlier = self.assistant.ask(q, list(history))
            history += [{"role": "user", "content": q}, {"role": "assistant", "content": earlier.text}]
        return _from_answer(self.assistant.ask(item.question, history), chunks)

    def warm_up(self) -> None:
        self.assistant.warm_up()

    def describe(self) -> dict[str, Any]:
        return self.assistant.config()


def _make_system(name: str, settings: "Settings", embedder: Any, corpus_text: str) -> tuple[System | None, str]:
    """The system for a configuration, or None and the reason it is not available."""
    from assistant.build import build_assistant

    if name in ("hybrid", "bm25", "dense"):
        plain = settings.model_copy(update={"reranker_model": ""})  # a configured reranker is its own config
        return AssistantSystem(build_assistant(plain, retrieval_mode=name, embedder=embedder)), ""
    if name == "rerank":
        if not settings.reranker_model:
            return None, "no reranker configured (set VISION_QA_RERANKER_MODEL to a CrossEncoder name or path)"
        assistant = build_assistant(settings, retrieval_mode="hybrid", embedder=embedder)
        try:
            _ = assistant.reranker.model
        except Exception as exc:  # a missing package or model is reported, not raised
            return None, f"reranker {settings.reranker_model!r} could not be loaded: {exc}"
        return AssistantSystem(assistant), ""
    if name == "langchain":
        from evals.baseline import LangChainBaseline, missing_requirements

        reason = missing_requirements()
        if reason:
            return None, reason
        return LangChainBaseline(corpus_text, embedder, settings.data_dir / "baseline", k=settings.top_k), ""
    raise ValueError(f"unknown configuration {name!r} (expected one of {', '.join(CONFIGS)})")


# -- running -----------------------------------------------------------------------------

def evaluate(name: str, system: System, items: list[EvalItem], corpus_text: str,
             on_item: Callable[[], None] | None = None) -> ConfigResult:
    """Every item through one system, scored and aggregated."""
    t0 = time.perf_counter()
    results: list[ItemResult] = []
    for item in items:
        try:
            out = system.run(item)
        except Exception as exc:  # one broken item is a failure in the report, not a crashed run
            out = Outcome("", "none", [], {}, error=f"{type(exc).__name__}: {exc}")
        scores = score_item(item, out, corpus_text)
        reasons = failure_reasons(item, out, scores)
        results.append(ItemResult(item, out, scores, reasons, severity(reasons, scores) if reasons else 0.0))
        if on_item is not None:
            on_item()
    per_kind: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        group = [r for r in results if r.item.kind == kind]
        if group:
            per_kind[kind] = aggregate([r.item for r in group], [r.scores for r in group],
                                       [r.outcome.coverage for r in group])
    return ConfigResult(
        name, True, system=system.describe(), items=results,
        overall=aggregate([r.item for r in results], [r.scores for r in results],
                          [r.outcome.coverage for r in results]),
        per_kind=per_kind, latency_ms=latency([r.outcome.timings_ms for r in results]),
        seconds=time.perf_counter() - t0)


def run_eval(settings: "Settings", configs: tuple[str, ...] | list[str] = CONFIGS,
             splits: tuple[str, ...] = SPLITS, items: list[EvalItem] | None = None,
             progress: bool = True) -> EvalResult:
    """Index the corpus if needed, then evaluate each configuration on each split (``items``,
    when given, replaces the dataset; their own split fields group them)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from assistant.build import run_ingest
    from ingest.embedders import make_embedder

    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise ValueError(f"unknown configuration(s) {', '.join(unknown)} (expected {', '.join(CONFIGS)})")
    chosen = {split: [i for i in (items if items is not None else load_split(split)) if i.split == split]
              for split in splits}
    corpus_text = (Path(settings.corpus_dir) / CORPUS_FILE).read_text(encoding="utf-8")
    report = run_ingest(settings, quiet=True)
    if report.errors:
        raise RuntimeError(f"ingest failed: {'; '.join(report.errors)}")
    embedder = make_embedder(settings.embedder_spec())  # one model, shared by every configuration
    result = EvalResult({split: {} for split in splits}, datetime.now(timezone.utc).isoformat(timespec="seconds"))
    columns = (TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar:
        for name in configs:
            system, reason = _make_system(name, settings, embedder, corpus_text)
            if system is None:
                for split in splits:
                    result.splits[split][name] = ConfigResult(name, False, reason)
                continue
            system.warm_up()  # model and index loading stay out of the per-item latency
            try:
                for split in splits:
                    task = bar.add_task(f"{name} {split}", total=len(chosen[split]))
                    result.splits[split][name] = evaluate(name, system, chosen[split], corpus_text,
                                                          lambda: bar.advance(task))
            finally:
                close = getattr(system, "close", None)
                if close is not None:
                    close()
    return result


# -- the CI gate -------------------------------------------------------------------------

def load_thresholds(path: Path = THRESHOLDS) -> dict[str, Any]:
    with open(path, "rb") as f:
        return tomllib.load(f)


def check_gate(result: EvalResult, thresholds: dict[str, Any]) -> list[str]:
    """One line per failed threshold. ``name`` is a minimum, ``name_max`` a maximum, on the
    configuration and split named by the string keys ``config`` and ``split``; ``gap_max`` bounds
    |dev − test| of every gated metric. A value equal to a limit up to float rounding meets it."""
    config = thresholds.get("config", DEFAULT_CONFIG)
    split = thresholds.get("split", "test")
    run = result.splits.get(split, {}).get(config)
    if run is None or not run.available:
        why = f": {run.reason}" if run is not None else ""
        return [f"configuration {config!r} was not evaluated on the {split} split{why}"]
    failures: list[str] = []
    gap = result.gap(config)
    for key, limit in thresholds.items():
        if isinstance(limit, str) or key == "gap_max":
            continue
        name, is_max = (key[:-4], True) if key.endswith("_max") else (key, False)
        value = run.overall.get(name)
        if value is None:
            failures.append(f"{name}: not in the results")
        elif is_max and value > limit + _EPS:
            failures.append(f"{name} = {value:.4f}, above the maximum {limit:.4f}")
        elif not is_max and value < limit - _EPS:
            failures.append(f"{name} = {value:.4f}, below the minimum {limit:.4f}")
        if "gap_max" in thresholds and name in gap and abs(gap[name]) > thresholds["gap_max"] + _EPS:
            failures.append(f"{name}: dev − test gap {gap[name]:+.4f} exceeds {thresholds['gap_max']:.4f}")
    if "gap_max" in thresholds and not gap:
        failures.append("the dev–test gap needs both splits in the run")
    return failures
