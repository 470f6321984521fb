"""``vision-qa eval``: run the gold set, write the report, apply the CI gate."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from evals.dataset import SPLITS
from evals.run import CONFIGS, THRESHOLDS

eval_app = typer.Typer(help="Evaluate retrieval, citations and abstention on the gold dataset.",
                       pretty_exceptions_enable=False)


@eval_app.callback(invoke_without_command=True)
def run(ctx: typer.Context,
        config: Optional[list[str]] = typer.Option(
            None, "--config", help=f"repeatable: {', '.join(CONFIGS)} (default: all; unavailable ones are reported)"),
        out: Path = typer.Option(Path("reports"), "--out", help="folder for report.md, results.json and charts"),
        split: str = typer.Option("both", "--split", help="both (dev and test side by side) | dev | test"),
        gate: bool = typer.Option(True, "--gate/--no-gate", help="exit 1 when the default config misses a threshold"),
        thresholds: Path = typer.Option(THRESHOLDS, "--thresholds", help="the gate's TOML file"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bar")) -> None:
    """Run every configuration over the dataset and write the report (the default command)."""
    if ctx.invoked_subcommand is not None:
        return
    from evals.report import summary, write_report
    from evals.run import check_gate, load_thresholds, run_eval
    from vision_qa.settings import Settings

    configs = tuple(dict.fromkeys(config)) if config else CONFIGS
    bad = [c for c in configs if c not in CONFIGS]
    if bad or split not in (*SPLITS, "both"):
        what = f"unknown config {', '.join(bad)}" if bad else f"unknown split {split}"
        typer.secho(f"error: {what} (configs: {', '.join(CONFIGS)}; splits: {', '.join(SPLITS)})", fg="red", err=True)
        raise typer.Exit(2)
    from evals.guard.bench import evaluate as guard_eval

    result = run_eval(Settings(), configs, SPLITS if split == "both" else (split,), progress=not quiet)
    failures = check_gate(result, load_thresholds(thresholds)) if gate else None
    written = write_report(result, out, failures)
    typer.echo(summary(result))
    guard_table, guard_failures = guard_eval(SPLITS if split == "both" else (split,), out)
    typer.echo("\n" + guard_table)
    typer.echo(f"wrote {', '.join(str(p) for p in written)}, {out / 'guard.md'}")
    if failures is None:
        return
    failures = failures + [f"guard {f}" for f in guard_failures]
    if failures:
        typer.secho(f"CI gate FAILED ({thresholds}):", fg="red", err=True)
        for f in failures:
            typer.secho(f"  - {f}", fg="red", err=True)
        raise typer.Exit(1)
    typer.secho("CI gate passed", fg="green")


@eval_app.command("guard")
def guard_cmd(out: Path = typer.Option(Path("reports"), "--out", help="folder for guard.md and guard.json"),
              gate: bool = typer.Option(True, "--gate/--no-gate", help="exit 1 when the guard misses its gate")) -> None:
    """The fidelity guard on its benchmark (evals/guard): precision and recall, dev and test."""
    from evals.guard.bench import evaluate

    table, failures = evaluate(out=out)
    typer.echo(table)
    typer.echo(f"wrote {out / 'guard.md'}, {out / 'guard.json'}")
    if gate and failures:
        for f in failures:
            typer.secho(f"  - {f}", fg="red", err=True)
        raise typer.Exit(1)
    if gate:
        typer.secho("guard gate passed", fg="green")


@eval_app.command("calibrate")
def calibrate_cmd(out: Path = typer.Option(Path(__file__).resolve().parents[1] / "assistant" / "calibration.json",
                                           "--out", help="where to write the fitted relevance model")) -> None:
    """Fit the relevance model and its thresholds on the dev split (never on test)."""
    import json

    from evals.calibrate import calibrate
    from vision_qa.settings import Settings

    meta = calibrate(Settings(), out)
    typer.echo(json.dumps({k: meta[k] for k in ("items", "passages", "passage_auc_out_of_fold", "topic_auc_out_of_fold",
                                                "direct_auc_out_of_fold", "dev_out_of_fold")},
                          ensure_ascii=False, indent=1))
    typer.echo(f"wrote {out}")


@eval_app.command("import-feedback")
def import_feedback_cmd(file: Path = typer.Argument(..., help="the UI's feedback export (JSONL)"),
                        out: Path = typer.Option(Path("candidates.jsonl"), "--out", help="candidate items (JSONL)")
                        ) -> None:
    """Turn thumbs-down feedback into candidate dataset items for review."""
    from evals.feedback_import import import_feedback, write_candidates

    try:
        candidates = import_feedback(file)
    except (OSError, ValueError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2)
    n = write_candidates(candidates, out)
    typer.echo(f"{n} candidate item(s) written to {out}; fill in gold_evidence and key_phrases, "
               "then delete review and needs_review")
