"""``vision-qa ask`` and ``vision-qa draft`` end to end: env → settings → real index → output."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vision_qa import cli
from vision_qa.cli import app
from vision_qa.settings import Settings

QUESTION = "鹿肉って何か取り組みあるの？"
TITLE = "釧路・根室連携地域「地域づくり推進ビジョン」"
DIRECTIONS = "連携地域の主な施策の方向（今後５年程度）"
D1 = "１ 農林水産業をはじめとする地域産業の振興"
DEER = "個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進"
PLAIN = f"""ビジョンの「{D1}」に、次の記載があります。
・{DEER} [1]

出典：
[1] {TITLE} › {DIRECTIONS} › {D1}
"""
EMPTY = "質問が空です。知りたいことを入力してください。"


@pytest.fixture(scope="module")
def built() -> dict:
    return {}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, vision_index: Settings, built: dict):
    """Environment for the CLI: only our VISION_QA_* variables, no config file.

    ``build_assistant`` still runs for real the first time; later commands of this module
    reuse the assistant it built for the same settings, so the model loads once.
    """
    for name in list(os.environ):
        if name.startswith("VISION_QA_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VISION_QA_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("VISION_QA_DATA_DIR", str(vision_index.data_dir))
    monkeypatch.setenv("VISION_QA_CORPUS_DIR", str(vision_index.corpus_dir))
    real = cli._assistant

    def reuse(settings):
        key = settings.model_dump_json()
        if key not in built:
            built[key] = real(settings)
        return built[key]

    monkeypatch.setattr(cli, "_assistant", reuse)
    return monkeypatch


def _invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), input=input)


def test_ask_json_prints_one_object_with_the_citation(env) -> None:
    result = _invoke("ask", "--json", QUESTION)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["question"], data["abstained"], data["mode"]) == (QUESTION, False, "extractive")
    assert [(c["n"], c["quote"], c["section"], c["source"]) for c in data["citations"]] == [
        (1, DEER, f"{DIRECTIONS} › {D1}", "kushiro-nemuro-vision.txt")]
    assert data["answer"] == f"ビジョンの「{D1}」に、次の記載があります。\n・{DEER} [1]"
    assert result.stderr == ""


def test_ask_prints_the_answer_and_its_sources(env) -> None:
    result = _invoke("ask", QUESTION)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == PLAIN
    assert result.stderr == ""


def test_ask_with_history_shows_the_rewritten_query(env, tmp_path: Path) -> None:
    history = tmp_path / "history.json"
    history.write_text(json.dumps([{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "…"}],
                                  ensure_ascii=False), encoding="utf-8")
    result = _invoke("ask", "--history", str(history), "それについてもっと詳しく")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "（検索した質問：鹿肉）\n" + PLAIN


def test_ask_abstains_on_what_the_plan_does_not_say(env) -> None:
    result = _invoke("ask", "--json", "札幌市の観光予算はいくら？")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert (data["abstained"], data["citations"]) == (True, [])
    assert data["answer"].startswith("ビジョンには記載がありません。")


@pytest.mark.parametrize("question", ["", "   ", "\u200b"])
def test_ask_empty_question_exits_2_with_the_japanese_message(env, question: str) -> None:
    result = _invoke("ask", question)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f"error: {EMPTY}\n"


def test_ask_without_an_index_exits_3_and_says_to_ingest(env, tmp_path: Path) -> None:
    empty = tmp_path / "no-index"
    empty.mkdir()
    env.setenv("VISION_QA_DATA_DIR", str(empty))
    result = _invoke("ask", QUESTION)
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == (f"error: no index in {empty}: run `vision-qa ingest` first "
                             "(or `vision-qa serve`, which ingests)\n")
    assert list(empty.iterdir()) == []  # asking creates nothing


def test_draft_without_an_index_exits_3(env, tmp_path: Path) -> None:
    env.setenv("VISION_QA_DATA_DIR", str(tmp_path / "missing"))
    result = _invoke("draft", input="エゾシカの活用について教えてください。")
    assert result.exit_code == 3
    assert "vision-qa ingest" in result.stderr


def test_draft_json_reads_the_inquiry_from_stdin(env) -> None:
    inquiry = "お世話になっております。\nエゾシカの活用について教えてください。\n事業の予算はいくらですか？\nよろしくお願いいたします。\n"
    result = _invoke("draft", "--json", input=inquiry)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["inquiry"] == inquiry.strip()
    assert [p["question"] for p in data["points"]] == ["エゾシカの活用について教えてください。", "事業の予算はいくらですか？"]
    assert [p["abstained"] for p in data["points"]] == [False, True]
    assert data["uncovered"] == ["事業の予算はいくらですか？"]
    assert [(c["n"], c["quote"]) for c in data["citations"]] == [(1, DEER)]
    assert data["draft"].startswith("このたびは、お問い合わせいただき誠にありがとうございます。\n")
    assert f"・{DEER} [1]" in data["draft"]
    assert "【要確認事項（ビジョンに記載のない点）】\n・事業の予算はいくらですか？（要確認）" in data["draft"]


def test_draft_of_empty_stdin_exits_2(env) -> None:
    result = _invoke("draft", input="  \n")
    assert result.exit_code == 2
    assert result.stderr == f"error: {EMPTY}\n"
