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


def test_a_broken_sources_toml_is_a_clear_error_and_keeps_the_index(invoke, fresh_settings) -> None:
    assert invoke("ingest").exit_code == 0
    generation = current_generation(store_spec(fresh_settings))
    manifest = fresh_settings.corpus_dir / "sources.toml"
    manifest.write_text(manifest.read_text(encoding="utf-8") + "\nこれは TOML ではない\n", encoding="utf-8")
    result = invoke("ingest")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip().startswith(f"error: {manifest}: invalid TOML: ")
    assert result.stderr.rstrip().endswith("(nothing was indexed; the current index is kept)")
    assert current_generation(store_spec(fresh_settings)) == generation


def test_serve_answers_from_the_current_index_when_the_ingest_cannot_run(invoke, fresh_settings,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    launched = []
    monkeypatch.setattr(importlib.import_module("ui.launch"), "launch",
                        lambda demo, host, port: launched.append((host, port)))
    manifest = fresh_settings.corpus_dir / "sources.toml"
    broken = manifest.read_text(encoding="utf-8") + "\n[[source\n"

    manifest.write_text(broken, encoding="utf-8")  # no index yet: nothing to serve
    result = invoke("serve")
    assert result.exit_code == 2 and launched == []
    assert "invalid TOML" in result.stderr and "run `vision-qa ingest` first" in result.stderr

    manifest.write_text(broken.replace("\n[[source\n", "\n"), encoding="utf-8")
    assert invoke("ingest").exit_code == 0
    manifest.write_text(broken, encoding="utf-8")
    result = invoke("serve", "--port", "7999")
    assert result.exit_code == 0, result.output
    assert "invalid TOML" in result.stderr and "serving the current index" in result.stderr
    assert launched == [("127.0.0.1", 7999)]
