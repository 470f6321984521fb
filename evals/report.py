"""Writes an eval run to a folder: report.md, results.json and two PNG charts."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from evals.metrics import normalize
from evals.run import DEFAULT_CONFIG, ConfigResult, EvalResult, ItemResult

KIND_LABELS = {
    "factual": "事実", "paraphrase": "言い換え", "colloquial": "口語", "english": "英語",
    "multipart": "複数論点", "unanswerable": "回答不能", "injection": "指示注入",
    "multiturn": "複数ターン", "staff": "職員下書き", "entity": "固有名詞", "dialect": "方言・かな・誤字",
    "everyday": "日常語", "nearmiss": "惜しい質問", "metadata": "計画そのもの", "offtopic": "対象外",
}
# (results key, table header, chart label)
COLUMNS = [
    ("served", "served", "正解箇所の引用率"), ("quote_precision", "quote P", "引用の適合率"),
    ("none_on_answerable", "none|direct", "誤って記載なし"), ("direct_on_unanswerable", "direct|unans.", "誤って直接回答"),
    ("lead_section_correct", "lead ok", "前置きの節名の正しさ"), ("coverage_correct", "coverage acc", "網羅度の正解率"),
    ("hit_at_1", "hit@1", "hit@1"), ("hit_at_5", "hit@5", "hit@5"), ("mrr_at_10", "MRR@10", "MRR@10"),
    ("ndcg_at_10", "nDCG@10", "nDCG@10"), ("recall_at_5", "recall@5", "recall@5"),
    ("key_phrase_recall", "key phrases", "キーフレーズ再現率"),
    ("citation_precision", "cite P", "引用の適合率"), ("citation_recall", "cite R", "引用の再現率"),
    ("gold_citation_recall", "gold cite R", "正解根拠の引用率"), ("quote_tightness", "tightness", "引用の簡潔さ"),
    ("verbatim", "verbatim", "原文一致率"), ("abstention_accuracy", "abstain acc", "回答控えの正解率"),
    ("abstention_precision", "abstain P", "回答控えの適合率"), ("abstention_recall", "abstain R", "回答控えの再現率"),
    ("false_refusal_rate", "false refusal", "誤った回答控え率"),
    ("uncovered_recall", "要確認 R", "要確認事項の再現率"),
]
LABELS = {key: label for key, _, label in COLUMNS}
HEADERS = {key: header for key, header, _ in COLUMNS}
KIND_CHART = ("served", "quote_precision", "coverage_correct", "hit_at_5", "abstention_accuracy")
CONFIG_CHART = ("served", "quote_precision", "coverage_correct", "hit_at_5", "mrr_at_10", "abstention_accuracy")
PER_KIND_TABLE = ("served", "quote_precision", "coverage_correct", "none_on_answerable", "direct_on_unanswerable",
                  "hit_at_5", "mrr_at_10", "key_phrase_recall", "verbatim", "abstention_accuracy")
HEADLINE = ("served", "none_on_answerable", "direct_on_unanswerable", "quote_precision", "lead_section_correct",
            "verbatim", "hit_at_5", "mrr_at_10", "abstention_accuracy", "coverage_correct", "citation_precision",
            "citation_recall")


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _cell(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split()).replace("|", "｜")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _config_table(configs: dict[str, ConfigResult]) -> list[str]:
    keys = [k for k, _, _ in COLUMNS]
    lines = ["| config | " + " | ".join(HEADERS[k] for k in keys) + " | p50 ms | p95 ms | failures |",
             "|---" * (len(keys) + 4) + "|"]
    for name, c in configs.items():
        if not c.available:
            lines.append(f"| {name} | not available: {_cell(c.reason, 300)} |")
            continue
        total = c.latency_ms.get("total", {})
        lines.append(f"| {name} | " + " | ".join(_fmt(c.overall.get(k)) for k in keys)
                     + f" | {total.get('p50', 0):.0f} | {total.get('p95', 0):.0f} | {len(c.failures())} |")
    return lines


def _kind_table(c: ConfigResult) -> list[str]:
    lines = ["| kind | n | " + " | ".join(HEADERS[k] for k in PER_KIND_TABLE) + " |",
             "|---" * (len(PER_KIND_TABLE) + 2) + "|"]
    for kind, agg in c.per_kind.items():
        lines.append(f"| {kind} | {agg['n_items']:.0f} | " + " | ".join(_fmt(agg.get(k)) for k in PER_KIND_TABLE) + " |")
    return lines


def _latency_table(result: EvalResult) -> list[str]:
    lines = ["| split | config | stage | p50 ms | p95 ms |", "|---|---|---|---|---|"]
    for split, configs in result.splits.items():
        for name, c in configs.items():
            for stage, v in c.latency_ms.items():
                lines.append(f"| {split} | {name} | {stage} | {v['p50']:.0f} | {v['p95']:.0f} |")
    return lines


def _side_by_side(result: EvalResult) -> list[str]:
    """The default configuration on dev and test, and the gap between them."""
    runs = {s: c.get(DEFAULT_CONFIG) for s, c in result.splits.items()}
    runs = {s: c for s, c in runs.items() if c is not None and c.available}
    gap = result.gap(DEFAULT_CONFIG)
    lines = ["| metric | " + " | ".join(f"{s} ({c.overall['n_items']:.0f})" for s, c in runs.items())
             + (" | dev − test |" if gap else " |"), "|---" * (len(runs) + 1 + bool(gap)) + "|"]
    for k in HEADLINE:
        cells = [_fmt(c.overall.get(k)) for c in runs.values()]
        lines.append(f"| {HEADERS[k]} | " + " | ".join(cells) + (f" | {gap[k]:+.3f} |" if k in gap else
                                                                   (" | – |" if gap else " |")))
    return lines


def _confusion(c: ConfigResult) -> list[str]:
    names = ("direct", "related", "none")
    lines = ["| gold \\ graded | " + " | ".join(names) + " |", "|---|---|---|---|"]
    for g in names:
        lines.append(f"| {g} | " + " | ".join(f"{c.overall.get(f'coverage_{g}_{p}', 0):.0f}" for p in names) + " |")
    return lines


def _missing(wanted: tuple[str, ...], got: list[str]) -> list[str]:
    have = normalize("\n".join(got)).casefold()
    return [w for w in wanted if normalize(w).casefold() not in have]


def describe_failure(r: ItemResult) -> list[str]:
    item, out = r.item, r.outcome
    expected = f"{item.coverage}" + (": " + " / ".join(_cell(g, 80) for g in item.gold_evidence)
                                     if item.gold_evidence else "")
    lines = [f"### {item.id} ({item.kind}) — {', '.join(r.reasons)}", "", f"- question: {_cell(item.question, 300)}"]
    lines += [f"- history: {_cell(h, 200)}" for h in item.history]
    lines.append(f"- expected: {expected}")
    if item.uncovered:
        lines.append(f"- expected 要確認: {' / '.join(item.uncovered)}")
    missing = _missing(item.key_phrases, [out.text]) if item.coverage == "direct" else []
    if missing:
        lines.append(f"- key phrases missing from the answer: {' / '.join(missing)}")
    if out.error:
        lines.append(f"- error: {_cell(out.error, 300)}")
    lines.append(f"- graded: {out.coverage}")
    lines += [f"- retrieved #{i}: {_cell(t, 120)}" for i, t in enumerate(out.retrieved[:3], start=1)]
    lines += [f"- quote [{n}]: {_cell(q, 200)}" for n, q in out.quotes.items()]
    if out.uncovered:
        lines.append(f"- 要確認 returned: {' / '.join(_cell(u, 80) for u in out.uncovered)}")
    if item.uncovered and _missing(item.uncovered, out.uncovered):
        lines.append(f"- 要確認 not flagged: {' / '.join(_missing(item.uncovered, out.uncovered))}")
    return lines + [""]


def _notes(result: EvalResult) -> list[str]:
    notes = ["- served: a gold passage is quoted and the answer is not graded none (over gold direct and related "
             "items). quote P: the share of quoted passages that are gold. none|direct: gold direct items graded "
             "none. direct|unans.: gold related or none items graded direct. lead ok: a lead that names a section "
             "names the section of every quote under it.",
             "- Citation precision/recall judge each `[n]` line against its own quotes. An extractive answer's "
             "line *is* its quote, so 1.000 there is by construction; the numbers bite on LLM answers.",
             "- 要確認 R: share of a staff inquiry's off-plan points that the draft lists as 要確認事項.",
             "- Only dev failures are listed in full; test failures are listed by id, so that nobody tunes on them."]
    base = result.configs.get("langchain")
    if base is not None and base.available:
        n = base.system.get("chunks")
        notes.append(f"- langchain: {n} chunks of ≤500 characters in all, {base.system.get('k_per_retriever')} "
                     "per retriever, so its hit@5 and recall@5 see most of the document; read its MRR and "
                     "tightness. It keeps no chat history, never abstains and lists no 要確認事項.")
    return notes


def render_markdown(result: EvalResult, gate: list[str] | None = None, charts: list[Path] | None = None) -> str:
    lines = [f"# vision-qa eval — {', '.join(f'{s} {len(next(iter(c.values())).items) if c else 0}' for s, c in result.splits.items())} items",
             "", f"{result.created}", ""]
    if gate is not None:
        lines += ["## CI gate", "", "PASSED" if not gate else "FAILED:", *[f"- {g}" for g in gate], ""]
    lines += [f"## {DEFAULT_CONFIG}: dev and test side by side", "", *_side_by_side(result), ""]
    for split, configs in result.splits.items():
        default = configs.get(DEFAULT_CONFIG)
        lines += [f"## Configurations — {split}", "", *_config_table(configs), ""]
        if default is not None and default.available:
            lines += [f"### Coverage confusion ({DEFAULT_CONFIG}, {split})", "", *_confusion(default), "",
                      f"### Per question kind ({DEFAULT_CONFIG}, {split})", "", *_kind_table(default), ""]
    lines += [*_notes(result), "", "## Latency", "", *_latency_table(result), ""]
    for path in charts or []:
        lines += [f"![{path.stem}]({path.name})", ""]
    for split, configs in result.splits.items():
        default = configs.get(DEFAULT_CONFIG)
        if default is None or not default.available:
            continue
        failures = default.failures()
        lines += [f"## Failures ({DEFAULT_CONFIG}, {split}): {len(failures)}", ""]
        if split == "test":
            lines += [f"- {r.item.id} ({r.item.kind}): {', '.join(r.reasons)}" for r in failures] + [""]
            continue
        for r in failures:
            lines += describe_failure(r)
    return "\n".join(lines)


def _bars(ax: Any, groups: list[str], series: dict[str, list[float]], values: bool = False) -> None:
    """Grouped bars in [0, 1]; a metric that does not apply to a group is marked 対象外."""
    width = 0.8 / max(len(series), 1)
    for i, (label, ys) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        bars = ax.bar(xs, [0 if math.isnan(v) else v for v in ys], width, label=label)
        if values:
            ax.bar_label(bars, labels=["" if math.isnan(v) else f"{v:.2f}" for v in ys], fontsize=7, padding=2)
        for x, v in zip(xs, ys):
            if math.isnan(v):
                ax.text(x, 0.01, "対象外", rotation=90, ha="center", va="bottom", fontsize=7, color="0.5")
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("スコア（0〜1、高いほど良い）")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=9, ncols=min(len(series), 5), loc="upper center", bbox_to_anchor=(0.5, -0.1))


def write_charts(result: EvalResult, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib_fontja  # noqa: F401  (registers IPAexGothic so that kanji render)

    paths: list[Path] = []
    default = result.configs.get(DEFAULT_CONFIG)
    if default is not None and default.available:
        kinds = list(default.per_kind)
        series = {LABELS[k]: [default.per_kind[kd].get(k, math.nan) for kd in kinds] for k in KIND_CHART}
        fig, ax = plt.subplots(figsize=(11, 5.5), layout="constrained")
        groups = [f"{KIND_LABELS.get(k, k)}\n({default.per_kind[k]['n_items']:.0f}問)" for k in kinds]
        _bars(ax, groups, series)
        ax.set_title(f"質問の種類別の指標（{DEFAULT_CONFIG}、{default.overall['n_items']:.0f}問、{list(result.splits)[-1]}）")
        paths.append(out / "metrics_by_kind.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    runs = {n: c for n, c in result.configs.items() if c.available}
    if runs:
        series = {n: [c.overall.get(k, math.nan) for k in CONFIG_CHART] for n, c in runs.items()}
        fig, ax = plt.subplots(figsize=(11, 5.5), layout="constrained")
        _bars(ax, [LABELS[k] for k in CONFIG_CHART], series, values=True)
        ax.set_title("構成ごとの比較（検索・引用・回答控え）")
        paths.append(out / "configs.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths


def write_report(result: EvalResult, out: Path, gate: list[str] | None = None) -> list[Path]:
    """report.md, results.json and the charts in ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    charts = write_charts(result, out)
    data = result.to_dict()
    if gate is not None:
        data["gate"] = {"passed": not gate, "failures": gate}
    (out / "results.json").write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    (out / "report.md").write_text(render_markdown(result, gate, charts), encoding="utf-8")
    return [out / "report.md", out / "results.json", *charts]


def summary(result: EvalResult) -> str:
    """The headline numbers, one line per split and configuration, for the terminal."""
    keys = ("served", "quote_precision", "none_on_answerable", "direct_on_unanswerable", "lead_section_correct",
            "verbatim", "hit_at_5", "abstention_accuracy")
    lines = []
    for split, configs in result.splits.items():
        for name, c in configs.items():
            if not c.available:
                lines.append(f"{split:<5} {name:<10} not available: {c.reason}")
                continue
            nums = "  ".join(f"{HEADERS[k]} {_fmt(c.overall.get(k))}" for k in keys)
            lines.append(f"{split:<5} {name:<10} {nums}  failures {len(c.failures())}")
    gap = result.gap(DEFAULT_CONFIG)
    if gap:
        lines.append("gap (dev − test, hybrid): " + "  ".join(f"{HEADERS[k]} {v:+.3f}" for k, v in gap.items()))
    return "\n".join(lines)
