"""The corpus manifest, ``corpus/sources.toml``: bibliographic data for each file.

One ``[[source]]`` table per file::

    [[source]]
    file = "kushiro-nemuro-vision.txt"   # relative to the corpus folder
    title = "釧路・根室連携地域「地域づくり推進ビジョン」"
    issuer = "北海道"
    date = "2024"
    language = "ja"
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MANIFEST = "sources.toml"
_REQUIRED = ("file", "title")
_OPTIONAL = ("issuer", "date", "language")


@dataclass(frozen=True)
class SourceMeta:
    file: str  # path relative to the corpus folder, with forward slashes
    title: str
    issuer: str = ""
    date: str = ""
    language: str = "ja"

    def as_meta(self) -> dict[str, str]:
        """The fields that go into ``LoadedDoc.meta`` (empty ones left out)."""
        fields = {"issuer": self.issuer, "date": self.date, "language": self.language}
        return {k: v for k, v in fields.items() if v}


class SourcesError(ValueError):
    """``sources.toml`` cannot be used; the message names the file and the problem."""


def load_sources(corpus_dir: Path) -> dict[str, SourceMeta]:
    """Read ``corpus_dir/sources.toml`` into ``{file: SourceMeta}``.

    A missing manifest gives an empty dict. A malformed one raises SourcesError naming the
    file and the problem, so a typo is never silently ignored.
    """
    path = corpus_dir / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise SourcesError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SourcesError(f"{path}: invalid TOML: {exc}") from exc

    unknown = sorted(set(data) - {"source"})
    if unknown:
        raise SourcesError(f"{path}: unknown top-level key(s) {unknown}; expected [[source]] tables")
    tables = data.get("source", [])
    if not isinstance(tables, list):
        raise SourcesError(f"{path}: 'source' must be an array of tables, written [[source]]")

    out: dict[str, SourceMeta] = {}
    for n, table in enumerate(tables, start=1):
        meta = _parse_entry(path, n, table)
        if meta.file in out:
            raise SourcesError(f"{path}: [[source]] #{n}: file {meta.file!r} is listed twice")
        out[meta.file] = meta
    return out


def _parse_entry(path: Path, n: int, table: object) -> SourceMeta:
    where = f"{path}: [[source]] #{n}"
    if not isinstance(table, dict):
        raise SourcesError(f"{where}: must be a table")
    unknown = sorted(set(table) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise SourcesError(f"{where}: unknown key(s) {unknown}")
    for key in _REQUIRED:
        if key not in table:
            raise SourcesError(f"{where}: missing required key {key!r}")
    for key, value in table.items():
        if not isinstance(value, str):
            # An unquoted date = 2024-03-01 parses as a TOML date, not a string.
            raise SourcesError(f"{where}: {key!r} must be a quoted string, got {type(value).__name__}")
        if key in _REQUIRED and not value.strip():
            raise SourcesError(f"{where}: {key!r} is empty")

    file = PurePosixPath(table["file"].replace("\\", "/"))
    if file.is_absolute() or ".." in file.parts:
        raise SourcesError(f"{where}: file {table['file']!r} must be a path inside the corpus folder")
    return SourceMeta(
        file=file.as_posix(),
        title=table["title"].strip(),
        issuer=table.get("issuer", "").strip(),
        date=table.get("date", "").strip(),
        language=table.get("language", "ja").strip() or "ja",
    )
