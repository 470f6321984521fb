"""Settings come from VISION_QA_* variables and vision-qa.toml; answer logs are JSON lines
with per-stage timings and no question text unless allowed."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from assistant import logs
from assistant.build import build_assistant
from vision_qa.settings import Settings


def test_env_beats_toml_and_toml_beats_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("VISION_QA_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vision-qa.toml").write_text('top_k = 5\nretrieve_k = 12\ndata_dir = "idx"\n', encoding="utf-8")
    monkeypatch.setenv("VISION_QA_TOP_K", "3")
    s = Settings()
    assert (s.top_k, s.retrieve_k, s.data_dir) == (3, 12, Path("idx"))
    assert (s.feedback_db, s.log_file) == (Path("idx/feedback.sqlite3"), Path("idx/vision-qa.log.jsonl"))
    assert s.llm_enabled is False


def test_config_file_named_by_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "other.toml"
    cfg.write_text('llm_base_url = "http://127.0.0.1:9/v1"\nllm_model = "m"\n', encoding="utf-8")
    monkeypatch.setenv("VISION_QA_CONFIG", str(cfg))
    assert Settings().llm_enabled is True


@pytest.fixture
def log_file(tmp_path: Path):
    path = tmp_path / "log.jsonl"
    logs.configure(path)
    yield path
    for handler in list(logs.LOGGER.handlers):
        logs.LOGGER.removeHandler(handler)
        handler.close()
    logs.LOGGER.setLevel(logging.NOTSET)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_answer_log_has_timings_and_no_question_text(vision_index, log_file: Path) -> None:
    question = "鹿肉って何か取り組みあるの？"
    build_assistant(vision_index).ask(question)
    [entry] = _lines(log_file)
    assert entry["event"] == "answer"
    assert (entry["mode"], entry["coverage"], entry["citations"], entry["question_chars"]) == (
        "extractive", "related", 1, len(question))
    assert set(entry["timings_ms"]) == {"retrieve", "answer", "total"}
    assert question not in log_file.read_text(encoding="utf-8")


def test_question_text_is_logged_only_when_allowed(vision_index, log_file: Path) -> None:
    allowed = vision_index.model_copy(update={"log_inquiries": True})
    build_assistant(allowed).ask("鹿肉って何か取り組みあるの？")
    [entry] = _lines(log_file)
    assert entry["question"] == "鹿肉って何か取り組みあるの？"
