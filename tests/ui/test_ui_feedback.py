"""Feedback rows: stored exactly, exported as JSONL, no IP address or user agent."""
from __future__ import annotations

import json
import sqlite3

import gradio as gr
import pytest

from ui import create_app
from ui.feedback import FeedbackStore
from ui.handlers import NOTHING_TO_RATE, THANKS


def _chat(handlers, question, state, session="s1"):
    *_, last = handlers["chat_send"](question, state, gr.Request(session_hash=session))
    return last[3]  # the new state


DEER_ROW = {
    "question": "鹿肉って何か取り組みあるの？",
    "rewritten_query": "鹿肉って何か取り組みあるの？",
    "answer": "捕獲したエゾシカの有効活用と地域ブランド化を推進するとしています[1]。",
    "citations": [{"n": 1, "chunk_id": "vision-0042", "source": "kushiro-nemuro-vision.txt",
                   "title": "釧路・根室連携地域「地域づくり推進ビジョン」",
                   "section": "Ⅰ 地域のめざす姿 › １ 農林水産業をはじめとする地域産業の振興",
                   "quote": "個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進",
                   "page": 2, "label": ""}],
    "config": {"assistant": "scripted", "mode": "extractive", "version": 1},
}


def test_store_add_list_export_exact(store, tmp_path):
    first = store.add(rating=1, comment="  わかりやすい  ", question="q1", rewritten_query="q1",
                      answer="a1[1]", citations=[{"n": 1, "quote": "引用"}], config={"b": 2, "a": 1})
    second = store.add(rating=-1, question="q2", rewritten_query="q1 q2", answer="a2",
                       citations=[], config={})
    assert (first, second) == (1, 2)
    assert store.list() == [
        {"id": 1, "time": "2025-01-02T03:04:05+00:00", "rating": 1, "comment": "わかりやすい",
         "question": "q1", "rewritten_query": "q1", "answer": "a1[1]",
         "citations": [{"n": 1, "quote": "引用"}], "config": {"a": 1, "b": 2}},
        {"id": 2, "time": "2025-01-02T03:04:05+00:00", "rating": -1, "comment": "",
         "question": "q2", "rewritten_query": "q1 q2", "answer": "a2", "citations": [], "config": {}},
    ]
    out = tmp_path / "feedback.jsonl"
    assert store.export(out) == 2
    assert out.read_text(encoding="utf-8") == (
        '{"id": 1, "time": "2025-01-02T03:04:05+00:00", "rating": 1, "comment": "わかりやすい", '
        '"question": "q1", "rewritten_query": "q1", "answer": "a1[1]", '
        '"citations": [{"n": 1, "quote": "引用"}], "config": {"a": 1, "b": 2}}\n'
        '{"id": 2, "time": "2025-01-02T03:04:05+00:00", "rating": -1, "comment": "", '
        '"question": "q2", "rewritten_query": "q1 q2", "answer": "a2", "citations": [], "config": {}}\n'
    )


def test_schema_has_no_ip_or_user_agent(store):
    store.list()  # creates the table
    with sqlite3.connect(store.path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(feedback)")]
    assert columns == ["id", "time", "rating", "comment", "question", "rewritten_query", "answer",
                       "citations", "config"]


def test_rating_must_be_plus_or_minus_one(store):
    with pytest.raises(ValueError):
        store.add(rating=0, question="q", rewritten_query="q", answer="a", citations=[], config={})


def test_default_clock_is_utc_iso(tmp_path):
    store = FeedbackStore(tmp_path / "sub" / "fb.sqlite3")
    store.add(rating=1, question="q", rewritten_query="q", answer="a", citations=[], config={})
    assert store.list()[0]["time"].endswith("+00:00")


def test_thumbs_buttons_store_latest_answer_with_comment(scripted, store, handlers_of):
    h = handlers_of(create_app(scripted, feedback=store))
    assert h["feedback_up"]("", {"history": [], "answers": []}, gr.Request(session_hash="s1")) == (NOTHING_TO_RATE, "")
    state = _chat(h, "鹿肉って何か取り組みあるの？", None)
    assert h["feedback_up"]("参考になった", state, gr.Request(session_hash="s1")) == (THANKS, "")
    state = _chat(h, "宇宙開発は？", state)
    assert h["feedback_down"]("", state, gr.Request(session_hash="s1")) == (THANKS, "")
    rows = store.list()
    assert [(r["id"], r["rating"], r["comment"]) for r in rows] == [(1, 1, "参考になった"), (2, -1, "")]
    assert {k: rows[0][k] for k in DEER_ROW} == DEER_ROW
    assert (rows[1]["question"], rows[1]["rewritten_query"]) == (
        "宇宙開発は？", "鹿肉って何か取り組みあるの？ 宇宙開発は？")


def test_like_on_a_chat_bubble_rates_that_answer(scripted, store, handlers_of):
    h = handlers_of(create_app(scripted, feedback=store))
    state = _chat(h, "鹿肉って何か取り組みあるの？", None)
    state = _chat(h, "宇宙開発は？", state)
    like = gr.LikeData(None, {"index": 1, "value": "…", "liked": True})
    dislike = gr.LikeData(None, {"index": 3, "value": "…", "liked": False})
    on_user_message = gr.LikeData(None, {"index": 2, "value": "…", "liked": True})
    assert h["feedback_like"]("", state, like) == (THANKS, "")
    assert h["feedback_like"]("ずれている", state, dislike) == (THANKS, "")
    assert h["feedback_like"]("x", state, on_user_message) == (NOTHING_TO_RATE, "x")
    rows = store.list()
    assert [(r["rating"], r["question"], r["comment"]) for r in rows] == [
        (1, "鹿肉って何か取り組みあるの？", ""), (-1, "宇宙開発は？", "ずれている")]
    assert {k: rows[0][k] for k in DEER_ROW} == DEER_ROW
    assert rows[1]["citations"] == [] and rows[1]["answer"] == "ビジョンには、この質問に答える記述が見つかりませんでした。"
    assert json.dumps(rows[1]["config"]) == '{"assistant": "scripted", "mode": "extractive", "version": 1}'


def test_a_hostile_comment_is_stored_clean_and_exported_without_markup(store, tmp_path):
    store.add(rating=-1, comment="<img src=x onerror=alert(1)>\x00読み\u202eにくい\u2066 & <b>", question="q",
              rewritten_query="q", answer="a", citations=[], config={})
    assert store.list()[0]["comment"] == "<img src=x onerror=alert(1)>読みにくい & <b>"
    # A row stored before comments were cleaned is cleaned on the way out.
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE feedback SET comment = ?", ("a\x00b\u202ec<i>",))
    out = tmp_path / "feedback.jsonl"
    store.export(out)
    assert out.read_text(encoding="utf-8") == (
        '{"id": 1, "time": "2025-01-02T03:04:05+00:00", "rating": -1, "comment": "abc\\u003ci\\u003e", '
        '"question": "q", "rewritten_query": "q", "answer": "a", "citations": [], "config": {}}\n')
    assert json.loads(out.read_text(encoding="utf-8"))["comment"] == "abc<i>"
