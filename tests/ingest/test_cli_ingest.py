"""``vision-qa ingest``: its summary line, and its errors and exit codes."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.build import store_spec
from ingest.store import current_generation
from vision_qa.cli import app

SUMMARY = re.compile(
    r"files: 1  chunks: 43  added: 43  updated: 0  removed: 0  unchanged: 0  embeddings computed: 0 \(\+0 terms\)  "
    r"seconds: \d+\.\d  \(generation (\d{8}T\d{6}-[0-9a-f]{6})\)")
NOOP = re.compile(
    r"files: 1  chunks: 43  added: 0  updated: 0  removed: 0  unchanged: 43  embeddings computed: 0 \(\+0 terms\)  "
    r"seconds: \d+\.\d  \(unchanged, nothing to do\)")


@pytest.fixture
def invoke(fresh_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run the CLI with only the environment given here (no vision-qa.toml, no stray
    VISION_QA_* variables)."""
    for key in [k for k in os.environ if k.startswith("VISION_QA_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    env = {"VISION_QA_DATA_DIR": str(fresh_settings.data_dir), "VISION_QA_CORPUS_DIR": str(fresh_settings.corpus_dir)}

    def run(*args: str, **extra_env: str):
        return CliRunner().invoke(app, list(args), env={**env, **extra_env}, catch_exceptions=False)

    return run


def test_ingest_prints_one_summary_line_then_nothing_to_do(invoke, fresh_settings) -> None:
    first = invoke("ingest")
    assert first.exit_code == 0, first.output
    assert len(first.stdout.splitlines()) == 1
    summary = SUMMARY.fullmatch(first.stdout.rstrip("\n"))
    assert summary, first.stdout
    assert summary.group(1) == current_generation(store_spec(fresh_settings))
    assert "warning:" not in first.stderr and "error:" not in first.stderr

    again = invoke("ingest")
    assert again.exit_code == 0, again.output
    assert NOOP.fullmatch(again.stdout.rstrip("\n")), again.stdout
    assert current_generation(store_spec(fresh_settings)) == summary.group(1)


def test_a_file_over_the_size_limit_is_an_error_naming_it(invoke, fresh_settings) -> None:
    big = fresh_settings.corpus_dir / "big.txt"
    big.write_bytes(("地" * 1666 + "\n\n").encode("utf-8"))
    assert big.stat().st_size == 5000
    result = invoke("ingest", str(big), VISION_QA_MAX_FILE_MB="0.001")
    assert result.exit_code == 2, result.output
    assert "error: big.txt: file is 0.005 MB, over the 0.001 MB size limit" in result.stderr.splitlines()
    assert result.stdout.startswith("files: 1  chunks: 0  ")


def test_a_missing_path_is_an_error(invoke, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-plan.txt"
    result = invoke("ingest", str(missing))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == f"error: {missing}: no such file or folder"
