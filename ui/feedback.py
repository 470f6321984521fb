"""Residents' 👍/👎 feedback, kept in SQLite. No IP address or user agent is stored.

One row per answer (``answer_id``, a random id the chat gives each answer): a later vote on
the same answer replaces the earlier one, a withdrawn vote removes the row, and a comment
written after a vote is stored on that row.

A comment is free text from anyone: NUL, other controls, bidi overrides and lone
surrogates are removed when it is stored (and again on export, for rows stored before),
and the export writes ``<``, ``>`` and ``&`` as JSON escapes, so no raw markup is in the file
while a JSON reader still gets the text back.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    rating INTEGER NOT NULL CHECK (rating IN (-1, 1)),
    comment TEXT NOT NULL DEFAULT '',
    question TEXT NOT NULL,
    rewritten_query TEXT NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,
    config TEXT NOT NULL,
    answer_id TEXT
)
"""
# Tables made before votes had one row per answer get the column; their old rows keep NULL.
_INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS feedback_answer ON feedback (answer_id)"
_COLUMNS = ("id", "time", "rating", "comment", "question", "rewritten_query", "answer", "citations", "config",
            "answer_id")
MAX_COMMENT_CHARS = 2000
_MARKUP = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def clean_comment(comment: object) -> str:
    from assistant.query import clean_text

    return clean_text(comment if isinstance(comment, str) else "").strip()[:MAX_COMMENT_CHARS]


def jsonl_line(item: dict) -> str:
    """One row as a JSON line without raw markup characters (they are JSON escapes)."""
    return json.dumps(item, ensure_ascii=False).translate(_MARKUP) + "\n"


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class FeedbackStore:
    """One SQLite file; safe to share between the server's worker threads.

    The table is created on first use, not in ``__init__``.
    """

    def __init__(self, path: str | Path, *, clock: Callable[[], str] = _utc_now):
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(self.path) as conn:
                conn.execute(_SCHEMA)
                if "answer_id" not in [row[1] for row in conn.execute("PRAGMA table_info(feedback)")]:
                    conn.execute("ALTER TABLE feedback ADD COLUMN answer_id TEXT")
                conn.execute(_INDEX)
            self._ready = True
        return sqlite3.connect(self.path)

    def vote(self, *, answer_id: str, rating: int, question: str, rewritten_query: str, answer: str,
             citations: list[dict], config: dict) -> int:
        """Store a rating (+1 or -1) for one answer, replacing an earlier vote on it (its comment
        stays); returns the row id."""
        if rating not in (1, -1):
            raise ValueError(f"rating must be +1 or -1, not {rating!r}")
        if not answer_id:
            raise ValueError("answer_id is required")
        row = (self._clock(), rating, question, rewritten_query, answer, json.dumps(citations, ensure_ascii=False),
               json.dumps(config, ensure_ascii=False, sort_keys=True), answer_id)
        with self._lock:
            conn = self._connect()
            try:
                with conn:
                    if not conn.execute("UPDATE feedback SET time = ?, rating = ? WHERE answer_id = ?",
                                        (row[0], rating, answer_id)).rowcount:
                        conn.execute("INSERT INTO feedback (time, rating, question, rewritten_query, answer, citations,"
                                     " config, answer_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
                    return int(conn.execute("SELECT id FROM feedback WHERE answer_id = ?", (answer_id,)).fetchone()[0])
            finally:
                conn.close()

    def comment(self, answer_id: str, comment: object) -> bool:
        """Put a comment on the vote of one answer; False when that answer has no vote."""
        return self._change("UPDATE feedback SET comment = ? WHERE answer_id = ?", (clean_comment(comment), answer_id))

    def withdraw(self, answer_id: str) -> bool:
        """Remove the vote of one answer (its 👍/👎 was clicked again)."""
        return self._change("DELETE FROM feedback WHERE answer_id = ?", (answer_id,))

    def _change(self, sql: str, args: tuple) -> bool:
        with self._lock:
            conn = self._connect()
            try:
                with conn:
                    return conn.execute(sql, args).rowcount > 0
            finally:
                conn.close()

    def list(self) -> list[dict]:
        """Every row, oldest first, with citations and config decoded from JSON."""
        with self._lock:
            conn = self._connect()
            try:
                rows = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM feedback ORDER BY id").fetchall()
            finally:
                conn.close()
        out = []
        for row in rows:
            item = dict(zip(_COLUMNS, row))
            item["citations"] = json.loads(item["citations"])
            item["config"] = json.loads(item["config"])
            out.append(item)
        return out

    def export(self, path: str | Path) -> int:
        """Write every row as one JSON object a line (UTF-8); returns the row count."""
        rows = self.list()
        path = Path(path)
        with path.open("w", encoding="utf-8") as f:
            for item in rows:
                f.write(jsonl_line({**item, "comment": clean_comment(item["comment"])}))
        return len(rows)
