"""Opt-in: LLM mode against a real OpenAI-compatible server (not part of CI).

Set VISION_QA_TEST_LLM_BASE_URL (e.g. http://127.0.0.1:8091/v1, a llama.cpp ``llama-server``)
and optionally VISION_QA_TEST_LLM_MODEL; VISION_QA_TEST_LLM_BUDGET_S raises the answers' time
budget (a small model on one CPU thread may need more than the default 60 s to reach the
guard at all); VISION_QA_TEST_LLM_REPORT names a JSONL file that receives every answer. Only what holds for any model is asserted: no crash; the mode is llm
or extractive-fallback; every sentence shown unmarked passes the guard and cites only listed
passages; timeouts, a spent budget and a down server fall back; streaming yields more than one
piece; closing a stream stops the server's work (checked on llama.cpp's /slots).
"""
from __future__ import annotations

import json
import os
import socket
import time

import httpx
import pytest

from assistant import prompts
from assistant.build import build_assistant
from assistant.core import Assistant
from assistant.guard import MARKER, FidelityGuard, citation_numbers, split_sentences
from assistant.llm import Limits, LlmAnswerer, LlmUnavailable, make_chat_model, prompt_echo, render_messages
from assistant.types import Answer
from ingest.types import Chunk
from vision_qa.cli import format_answer, format_draft
from vision_qa.settings import Settings

BASE_URL = os.environ.get("VISION_QA_TEST_LLM_BASE_URL", "")
MODEL = os.environ.get("VISION_QA_TEST_LLM_MODEL", "test-model")
REPORT = os.environ.get("VISION_QA_TEST_LLM_REPORT", "")
BUDGET = {"llm_budget_s": float(os.environ["VISION_QA_TEST_LLM_BUDGET_S"])} \
    if os.environ.get("VISION_QA_TEST_LLM_BUDGET_S") else {}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not BASE_URL, reason="VISION_QA_TEST_LLM_BASE_URL is not set: the real-LLM suite is opt-in "
                                            "(start an OpenAI-compatible server, see README › LLM mode)"),
]

QUESTIONS = ["エゾシカの活用についてどんな取り組みがありますか", "観光振興の方向性を教えて", "医療や福祉はどうなりますか",
             "交通ネットワークについて", "防災の取り組みは", "What does the plan say about tourism?"]
INQUIRY = "お世話になっております。エゾシカの活用について教えてください。"


def _settings(vision_index: Settings, **changes) -> Settings:
    return vision_index.model_copy(update={"llm_base_url": BASE_URL, "llm_model": MODEL, **changes})


@pytest.fixture(scope="module")
def assistants(vision_index: Settings) -> dict[str, Assistant]:
    out = {mode: build_assistant(_settings(vision_index, guard_mode=mode, **BUDGET)) for mode in ("mark", "remove")}
    return {**out, "quotes": build_assistant(vision_index)}


def _record(kind: str, payload: dict) -> None:
    print(json.dumps({"kind": kind, **payload}, ensure_ascii=False))
    if REPORT:
        with open(REPORT, "a", encoding="utf-8") as f:
            f.write(json.dumps({"kind": kind, "model": MODEL, **payload}, ensure_ascii=False) + "\n")


def _passages(assistant: Assistant, answer: Answer) -> list[Chunk]:
    """The numbered passages of the answer's citations (unlisted numbers: empty stand-ins)."""
    by_id = assistant.current().index.by_id
    size = max((c.n for c in answer.citations), default=0)
    out = [Chunk(id=f"none{i}", text="", source="", title="", section=(), start=0, end=0, kind="bullet", order=0)
           for i in range(size)]
    for c in answer.citations:
        out[c.n - 1] = by_id[c.chunk_id]
    return out


@pytest.mark.parametrize("mode", ["mark", "remove"])
@pytest.mark.parametrize("question", QUESTIONS)
def test_answers_show_only_what_the_guard_lets_through(assistants, question: str, mode: str) -> None:
    assistant = assistants[mode]
    answer = assistant.ask(question)
    _record("answer", {"mode": mode, "question": question, "answer_mode": answer.mode, "coverage": answer.coverage,
                       "text": answer.text, "rejected": len(answer.rejected), "unsupported": len(answer.unsupported),
                       "notes": answer.notes[:1], "ms": round(answer.timings_ms.get("total", 0))})
    quotes = assistants["quotes"].ask(question)
    if quotes.coverage != "direct" or quotes.mode != "extractive":  # the model is not asked
        assert (answer.mode, answer.text) == (quotes.mode, quotes.text)
        return
    assert answer.mode in ("llm", "extractive-fallback")
    if answer.mode == "extractive-fallback":  # exactly the quotes and one line, none of the rejected text
        why = "withheld" if answer.notes[0].startswith("the LLM answer had no supported") else "unavailable"
        assert answer.text == f"{quotes.text}\n{prompts.render('answer', f'{why}_{answer.language}')}"
        assert format_answer(answer).replace(answer.text, "") == format_answer(quotes).replace(quotes.text, "")
        return
    assert not [s for s in answer.rejected if s in answer.text]
    passages = _passages(assistant, answer)
    listed = {c.n for c in answer.citations}
    shown = [answer.text[s.start:s.end].strip() for s in split_sentences(answer.text)]
    marked = [s for s in shown if MARKER in s]
    assert len(marked) == len(answer.unsupported) and (mode == "mark" or not marked)
    guard = FidelityGuard(assistant.tokenizer)
    echo = prompt_echo(render_messages("answer", question, passages, answer.language), question, passages)
    for sentence in shown:
        if MARKER in sentence:
            continue
        assert set(citation_numbers(sentence)) <= listed, sentence
        assert guard.judge(sentence, passages, echo).supported, sentence


def test_streaming_yields_more_than_one_piece(vision_index: Settings) -> None:
    s = _settings(vision_index)
    answerer = LlmAnswerer(make_chat_model(BASE_URL, MODEL, timeout_s=s.llm_timeout_s),
                           FidelityGuard(build_assistant(s).tokenizer), Limits(answer_tokens=32))
    passage = Chunk(id="c", text="個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進", source="v", title="t",
                    section=("a",), start=0, end=1, kind="bullet", order=0)
    pieces = list(answerer.stream("エゾシカの活用は？", [passage], "ja"))
    _record("stream", {"pieces": len(pieces), "text": "".join(pieces)})
    assert len(pieces) > 1


@pytest.mark.parametrize("changes, why", [
    ({"llm_timeout_s": 0.001}, "a read timeout"),
    ({"llm_budget_s": 0.001}, "a spent time budget"),
])
def test_timeouts_fall_back(vision_index: Settings, changes: dict, why: str) -> None:
    answer = build_assistant(_settings(vision_index, **changes)).ask(QUESTIONS[0])
    _record("timeout", {"why": why, "answer_mode": answer.mode, "notes": answer.notes[:1]})
    assert answer.mode == "extractive-fallback", why
    assert answer.text.endswith(prompts.render("answer", "unavailable_ja"))


def test_a_down_server_falls_back(vision_index: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = vision_index.model_copy(update={"llm_base_url": f"http://127.0.0.1:{port}/v1", "llm_model": MODEL})
    answer = build_assistant(settings).ask(QUESTIONS[0])
    assert (answer.mode, answer.notes[0].split("（")[0]) == (
        "extractive-fallback", "LLM unavailable, extractive answer instead: 言語モデルから回答を得られませんでした")


def test_closing_a_stream_stops_the_server(vision_index: Settings) -> None:
    root = BASE_URL.rstrip("/").removesuffix("/v1")
    try:
        slots = httpx.get(f"{root}/slots", timeout=5)
        slots.raise_for_status()
        slots.json()[0]["is_processing"]
    except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
        pytest.skip(f"the server has no llama.cpp /slots endpoint to watch ({exc.__class__.__name__})")
    asked = 3000
    answerer = LlmAnswerer(make_chat_model(BASE_URL, MODEL, timeout_s=60), FidelityGuard(build_assistant(
        _settings(vision_index)).tokenizer), Limits(answer_tokens=asked, budget_s=600))
    passage = Chunk(id="c", text="釧路湿原等のラムサール条約湿地を始めとする、豊かな自然環境の保全・再生の取組の推進", source="v",
                    title="t", section=("a",), start=0, end=1, kind="bullet", order=0)
    stream = answerer.stream("ラムサール条約湿地について、できるだけ長く詳しく説明してください。", [passage], "ja")
    first = [next(stream) for _ in range(3)]
    busy = httpx.get(f"{root}/slots", timeout=5).json()
    decoded = [s["next_token"][0]["n_decoded"] for s in busy if s.get("is_processing")]
    stream.close()
    deadline = time.monotonic() + 120  # a generous bound: 3000 tokens would take minutes on a CPU
    while time.monotonic() < deadline:
        state = httpx.get(f"{root}/slots", timeout=5).json()
        if not any(s.get("is_processing") for s in state):
            break
        decoded += [s["next_token"][0]["n_decoded"] for s in state if s.get("is_processing")]
        time.sleep(0.05)
    _record("cancel", {"first": "".join(first), "max_tokens": asked, "n_decoded_seen": max(decoded, default=0),
                       "idle": not any(s.get("is_processing") for s in state)})
    assert not any(s.get("is_processing") for s in state)
    assert max(decoded, default=0) < asked


def test_a_draft_is_sendable_whatever_the_model_wrote(vision_index: Settings) -> None:
    draft = build_assistant(_settings(vision_index, **BUDGET)).draft(INQUIRY)
    _record("draft", {"draft_mode": draft.mode, "text": draft.text, "rejected": len(draft.rejected),
                      "notice": draft.notice})
    assert draft.mode in ("llm", "extractive-fallback")
    assert MARKER not in draft.text and "【出典】" in draft.text
    if draft.mode == "extractive-fallback":  # the quotes' reply, and the notice for staff only
        quotes = build_assistant(vision_index).draft(INQUIRY)
        assert draft.text == quotes.text and draft.notice
        assert format_draft(draft) == f"{format_draft(quotes)}\n\n※{draft.notice}"
    else:
        assert not [s for s in draft.rejected if s in draft.text]


def test_a_follow_up_is_rewritten_by_the_model_or_by_the_rules(vision_index: Settings) -> None:
    assistant = build_assistant(_settings(vision_index))
    history = [{"role": "user", "content": QUESTIONS[0]}]
    answer = assistant.ask("それの予算は？", history)
    _record("rewrite", {"rewritten_query": answer.rewritten_query, "problem": assistant.llm_rewriter.last_problem,
                        "answer_mode": answer.mode, "coverage": answer.coverage})
    assert answer.rewritten_query
    if assistant.llm_rewriter.last_problem:
        assistant.llm_rewriter = None
        assert answer.rewritten_query == assistant.ask("それの予算は？", history).rewritten_query

