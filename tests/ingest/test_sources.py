from pathlib import Path

import pytest

from ingest.sources import SourceMeta, load_sources

REPO_CORPUS = Path(__file__).resolve().parents[2] / "corpus"


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "sources.toml").write_text(text, encoding="utf-8")
    return tmp_path


def test_repo_manifest_has_the_vision() -> None:
    assert load_sources(REPO_CORPUS)["kushiro-nemuro-vision.txt"] == SourceMeta(
        file="kushiro-nemuro-vision.txt",
        title="釧路・根室連携地域「地域づくり推進ビジョン」",
        issuer="北海道", date="2024", language="ja",
    )


def test_missing_manifest_is_empty(tmp_path: Path) -> None:
    assert load_sources(tmp_path) == {}


def test_entries_keyed_by_posix_path(tmp_path: Path) -> None:
    _write(tmp_path, '''
[[source]]
file = "plans\\\\a.pdf"
title = " 計画A "

[[source]]
file = "b.txt"
title = "B"
issuer = "釧路市"
date = "2023-04"
language = "en"
''')
    assert load_sources(tmp_path) == {
        "plans/a.pdf": SourceMeta("plans/a.pdf", "計画A", "", "", "ja"),
        "b.txt": SourceMeta("b.txt", "B", "釧路市", "2023-04", "en"),
    }
    assert load_sources(tmp_path)["b.txt"].as_meta() == {"issuer": "釧路市", "date": "2023-04", "language": "en"}


@pytest.mark.parametrize(("text", "problem"), [
    ('[[source]\nfile = "a"', "invalid TOML"),
    ('[[source]]\ntitle = "A"', "missing required key 'file'"),
    ('[[source]]\nfile = "a.txt"', "missing required key 'title'"),
    ('[[source]]\nfile = "a.txt"\ntitle = "  "', "'title' is empty"),
    ('[[source]]\nfile = "a.txt"\ntitle = "A"\ndate = 2024-03-01', "'date' must be a quoted string, got date"),
    ('[[source]]\nfile = "a.txt"\ntitle = "A"\nauthor = "x"', "unknown key(s) ['author']"),
    ('[[sources]]\nfile = "a.txt"\ntitle = "A"', "unknown top-level key(s) ['sources']"),
    ('source = "a.txt"', "'source' must be an array of tables"),
    ('[[source]]\nfile = "../x.txt"\ntitle = "A"', "must be a path inside the corpus folder"),
    ('[[source]]\nfile = "a.txt"\ntitle = "A"\n[[source]]\nfile = "a.txt"\ntitle = "B"',
     "[[source]] #2: file 'a.txt' is listed twice"),
])
def test_malformed_manifest_names_file_and_problem(tmp_path: Path, text: str, problem: str) -> None:
    _write(tmp_path, text)
    with pytest.raises(ValueError) as err:
        load_sources(tmp_path)
    assert str(err.value).startswith(f"{tmp_path / 'sources.toml'}: ")
    assert problem in str(err.value)


def test_manifest_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "sources.toml").write_bytes('[[source]]\nfile = "a"\ntitle = "計画"\n'.encode("cp932"))
    with pytest.raises(ValueError, match="sources.toml: not UTF-8 text"):
        load_sources(tmp_path)
