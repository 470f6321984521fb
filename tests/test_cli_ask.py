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

QUESTION = "エゾシカの取り組みは？"
TITLE = "釧路・根室連携地域「地域づくり推進ビジョン」"
DIRECTIONS = "連携地域の主な施策の方向（今後５年程度）"
D1 = "１ 農林水産業をはじめとする地域産業の振興"
D1_LABEL = "主な施策の方向１（農林水産業・地域産業）"
DEER = "個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進"
PLAIN = f"""ビジョンの「{D1_LABEL}」に、次の記載があります。
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
    assert (data["question"], data["coverage"], data["missing"], data["abstained"], data["mode"]) == (
        QUESTION, "direct", [], False, "extractive")
    assert [(c["n"], c["quote"], c["section"], c["source"]) for c in data["citations"]] == [
        (1, DEER, f"{DIRECTIONS} › {D1}", "kushiro-nemuro-vision.txt")]
    assert data["answer"] == f"ビジョンの「{D1_LABEL}」に、次の記載があります。\n・{DEER} [1]"
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
    assert result.stdout == "（検索した質問：エゾシカについて、それについてもっと詳しく）\n" + PLAIN


def test_ask_says_what_the_plan_does_not_state(env) -> None:
    result = _invoke("ask", "--json", "エゾシカの駆除目標は年何頭？")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert (data["coverage"], data["missing"], data["abstained"]) == ("related", ["エゾシカの駆除目標"], True)
    assert [c["quote"] for c in data["citations"]] == [DEER]
    assert data["answer"].startswith("ビジョンには、エゾシカの駆除目標の具体的な数値は書かれていません。")


def test_ask_off_topic_says_where_to_ask(env) -> None:
    data = json.loads(_invoke("ask", "--json", "ゴミの収集日は？").stdout)
    assert (data["coverage"], data["abstained"]) == ("none", True)
    assert "振興局" in data["answer"].splitlines()[0]


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


INQUIRY = "お世話になっております。\nエゾシカの活用について教えてください。\n事業の予算はいくらですか？\nよろしくお願いいたします。\n"


def test_draft_json_reads_the_inquiry_from_stdin(env) -> None:
    result = _invoke("draft", "--json", input=INQUIRY)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["inquiry"] == INQUIRY.strip()
    assert [p["question"] for p in data["points"]] == ["エゾシカの活用について教えてください。", "事業の予算はいくらですか？"]
    assert [p["coverage"] for p in data["points"]][0] == "direct"
    assert data["points"][1]["coverage"] in ("related", "none")
    assert data["uncovered"] and data["uncovered"][0].startswith("事業の予算はいくらですか？")
    assert (data["citations"][0]["n"], data["citations"][0]["quote"]) == (1, DEER)
    assert data["draft"].startswith("このたびは、お問い合わせいただき誠にありがとうございます。\n")
    assert f"・{DEER} [1]" in data["draft"]
    assert "要確認" not in data["draft"]  # the reply is send-ready; open points are their own field


def test_draft_prints_the_reply_then_the_sources_then_the_open_points(env) -> None:
    result = _invoke("draft", input=INQUIRY)
    assert result.exit_code == 0, result.stderr
    reply, rest = result.stdout.split("\n\n======== 引用箇所（職員確認用） ========\n")
    sources, open_points = rest.split("\n\n======== 要確認事項（職員向け・返信文には含まれません） ========\n")
    assert f"【出典】\n[1] {TITLE} › {D1_LABEL}" in reply and "要確認" not in reply
    assert sources.splitlines()[:2] == [f"[1] {TITLE} › {DIRECTIONS} › {D1}", f"    「{DEER}」"]
    assert open_points.splitlines()[0].startswith("・事業の予算はいくらですか？")


def test_draft_of_empty_stdin_exits_2(env) -> None:
    result = _invoke("draft", input="  \n")
    assert result.exit_code == 2
    assert result.stderr == f"error: {EMPTY}\n"


def test_ask_batch_answers_every_line_with_one_assistant(env, tmp_path: Path, built: dict) -> None:
    source = tmp_path / "questions.txt"
    history = [{"role": "user", "content": "エゾシカについて教えて"}]
    source.write_text("\n".join([
        QUESTION, "", json.dumps({"question": "その予算は？", "history": history}, ensure_ascii=False),
        json.dumps({"question": 3}), "   \u200b", "ゴミの収集日は？"]) + "\n", encoding="utf-8")
    before = len(built)
    result = _invoke("ask", "--batch", str(source))
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["line"] for r in rows] == [1, 3, 4, 5, 6]
    assert (rows[0]["question"], rows[0]["coverage"], rows[0]["citations"][0]["quote"]) == (QUESTION, "direct", DEER)
    assert (rows[1]["rewritten_query"], rows[1]["coverage"], rows[1]["missing"]) == (
        "エゾシカについて、その予算は？", "related", ["予算"])
    assert rows[2] == {"line": 4, "error": 'a JSON line needs "question" (a string)'}
    assert rows[3] == {"line": 5, "error": EMPTY}
    assert rows[4]["coverage"] == "none"
    assert len(built) - before <= 1  # one assistant for the whole batch
    assert result.stderr.endswith("3 answered, 2 not answerable as given\n")


def test_ask_batch_reads_stdin_and_refuses_a_question_beside_it(env) -> None:
    result = _invoke("ask", "--batch", "-", input=QUESTION + "\n")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["citations"][0]["quote"] == DEER
    refused = _invoke("ask", "--batch", "-", QUESTION)
    assert refused.exit_code == 2 and "give no QUESTION" in refused.stderr
    assert _invoke("ask").exit_code == 2
