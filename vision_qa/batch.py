"""``vision-qa ask --batch``: many questions through one assistant (the models load once).

Input, one item per line: a plain question, or a JSON object ``{"question": "…", "history":
[{"role": "user", "content": "…"}, …]}``. Output, one JSON object per line in input order:
the answer (as ``ask --json``) with its ``line`` number, or ``{"line": n, "error": "…"}`` for a
line that cannot be answered. A bad line never stops the batch.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

from assistant.types import InputError

MAX_LINE_CHARS = 1_000_000  # a question and its history; the assistant bounds both further


def _item(line: str) -> tuple[str, list]:
    """(question, history) of one input line; ValueError for a malformed one."""
    if not line.lstrip().startswith("{"):
        return line, []
    data = json.loads(line)
    if not isinstance(data, dict) or not isinstance(data.get("question"), str):
        raise ValueError('a JSON line needs "question" (a string)')
    history = data.get("history", [])
    if not isinstance(history, list) or not all(
            isinstance(m, dict) and isinstance(m.get("content"), str) for m in history):
        raise ValueError('"history" must be a list of {"role": …, "content": "…"} objects')
    return data["question"], history


def answers(ask: Callable, lines: Iterable[str], done: Callable[[], None] = lambda: None) -> Iterator[dict]:
    """One result per non-blank line."""
    for n, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        try:
            if len(line) > MAX_LINE_CHARS:
                raise ValueError(f"the line is longer than {MAX_LINE_CHARS:,} characters")
            question, history = _item(line)
            yield {"line": n, **ask(question, history).to_dict()}
        except (InputError, ValueError) as exc:
            yield {"line": n, "error": str(exc)}
        done()


def run(ask: Callable, source: TextIO, out: TextIO, total: int | None, progress_console) -> tuple[int, int]:
    """Answer every line of ``source`` into ``out``; a progress bar on ``progress_console``.
    Returns (answered, failed)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    ok = failed = 0
    columns = (TextColumn("質問"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=progress_console) as bar:
        task = bar.add_task("ask", total=total)
        for result in answers(ask, source, lambda: bar.advance(task)):
            out.write(json.dumps(result, ensure_ascii=False) + "\n")
            out.flush()
            failed += "error" in result
            ok += "error" not in result
    return ok, failed
