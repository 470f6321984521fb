"""Feedback rows: stored exactly, exported as JSONL, no IP address or user agent."""
from __future__ import annotations

import json
import sqlite3

import gradio as gr
import pytest

from ui import create_app
from ui.feedback import _SCHEMA, FeedbackStore
from ui.handlers import NO_VOTE, NOTHING_TO_RATE, THANKS, VOTED, WITHDRAWN, empty_state


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


def _vote(store, answer_id, rating, question="q1"):
    return store.vote(answer_id=answer_id, rating=rating, question=question, rewritten_query=question,
                      answer="a1[1]", citations=[{"n": 1, "quote": "引用"}], config={"b": 2, "a": 1})


def test_one_row_per_answer_a_later_vote_replaces_the_earlier(store, tmp_path):
    assert _vote(store, "a1", -1) == 1
    assert store.comment("a1", "  ずれている  ")
    assert _vote(store, "a1", 1) == 1  # the same row, now 👍, the comment kept
    assert _vote(store, "a2", -1, "q2") == 2
    assert store.list() == [
        {"id": 1, "time": "2025-01-02T03:04:05+00:00", "rating": 1, "comment": "ずれている", "question": "q1",
         "rewritten_query": "q1", "answer": "a1[1]", "citations": [{"n": 1, "quote": "引用"}],
         "config": {"a": 1, "b": 2}, "answer_id": "a1"},
        {"id": 2, "time": "2025-01-02T03:04:05+00:00", "rating": -1, "comment": "", "question": "q2",
         "rewritten_query": "q2", "answer": "a1[1]", "citations": [{"n": 1, "quote": "引用"}],
         "config": {"a": 1, "b": 2}, "answer_id": "a2"},
    ]
    assert store.withdraw("a2") and not store.withdraw("a2")
    assert not store.comment("a2", "no vote")
    out = tmp_path / "feedback.jsonl"
    assert store.export(out) == 1
    assert out.read_text(encoding="utf-8") == (
        '{"id": 1, "time": "2025-01-02T03:04:05+00:00", "rating": 1, "comment": "ずれている", '
        '"question": "q1", "rewritten_query": "q1", "answer": "a1[1]", '
        '"citations": [{"n": 1, "quote": "引用"}], "config": {"a": 1, "b": 2}, "answer_id": "a1"}\n')


def test_schema_has_no_ip_or_user_agent(store):
    store.list()  # creates the table
    with sqlite3.connect(store.path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(feedback)")]
    assert columns == ["id", "time", "rating", "comment", "question", "rewritten_query", "answer",
                       "citations", "config", "answer_id"]


def test_a_table_from_before_gets_the_answer_column(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(_SCHEMA.replace(",\n    answer_id TEXT", ""))
        conn.execute("INSERT INTO feedback (time, rating, question, rewritten_query, answer, citations, config)"
                     " VALUES ('t', 1, 'q', 'q', 'a', '[]', '{}')")
    store = FeedbackStore(path, clock=lambda: "t2")
    _vote(store, "x", -1)
    assert [(r["id"], r["rating"], r["answer_id"]) for r in store.list()] == [(1, 1, None), (2, -1, "x")]


def test_rating_must_be_plus_or_minus_one(store):
    with pytest.raises(ValueError):
        _vote(store, "a", 0)
    with pytest.raises(ValueError):
        _vote(store, "", 1)


def test_default_clock_is_utc_iso(tmp_path):
    store = FeedbackStore(tmp_path / "sub" / "fb.sqlite3")
    _vote(store, "a", 1)
    assert store.list()[0]["time"].endswith("+00:00")


def _like(index, liked):
    return gr.LikeData(None, {"index": index, "value": "…", "liked": liked})


def test_chat_thumbs_store_one_row_per_answer_and_a_comment_after_the_vote(scripted, store, handlers_of):
    h = handlers_of(create_app(scripted, feedback=store))
    hidden, shown = gr.update(visible=False), gr.update(visible=True)
    assert h["feedback_like"](None, _like(1, True)) == (NOTHING_TO_RATE, hidden, empty_state())
    assert h["feedback_comment"]("x", empty_state()) == (NO_VOTE, "x", hidden)  # no vote yet: nothing stored
    state = _chat(h, "鹿肉って何か取り組みあるの？", None)
    state = _chat(h, "宇宙開発は？", state)
    status, box, state = h["feedback_like"](state, _like(1, False))  # 👎 on the first answer …
    assert (status, box) == (VOTED, shown)
    status, box, state = h["feedback_like"](state, _like(1, True))  # … then 👍: it replaces the 👎
    assert (status, box) == (VOTED, shown)
    assert h["feedback_comment"]("参考になった", state) == (THANKS, "", hidden)
    status, box, state = h["feedback_like"](state, _like(3, "Dislike"))
    assert h["feedback_like"](state, _like(2, True))[0] == NOTHING_TO_RATE  # a user message
    rows = store.list()
    assert [(r["id"], r["rating"], r["comment"], r["question"]) for r in rows] == [
        (1, 1, "参考になった", "鹿肉って何か取り組みあるの？"), (2, -1, "", "宇宙開発は？")]
    assert {k: rows[0][k] for k in DEER_ROW} == DEER_ROW
    assert rows[0]["answer_id"] == state["answers"][0]["id"] != state["answers"][1]["id"]
    assert state["votes"] == {state["answers"][0]["id"]: "Like", state["answers"][1]["id"]: "Dislike"}
    # the chat keeps showing the votes when it is redrawn for the next answer
    *_, last = h["chat_send"]("鹿は？", state, gr.Request(session_hash="s1"))
    assert last[0]["feedback_value"] == ["Like", "Dislike", None]
    # clicking the thumb again withdraws the vote: its row goes
    status, box, state = h["feedback_like"](last[3], _like(3, None))
    assert (status, box) == (WITHDRAWN, hidden)
    assert [r["question"] for r in store.list()] == ["鹿肉って何か取り組みあるの？"]


def test_a_hostile_comment_is_stored_clean_and_exported_without_markup(store, tmp_path):
    _vote(store, "a", -1)
    store.comment("a", "<img src=x onerror=alert(1)>\x00読み\u202eにくい\u2066 & <b>")
    assert store.list()[0]["comment"] == "<img src=x onerror=alert(1)>読みにくい & <b>"
    # A row stored before comments were cleaned is cleaned on the way out.
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE feedback SET comment = ?", ("a\x00b\u202ec<i>",))
    out = tmp_path / "feedback.jsonl"
    store.export(out)
    assert '"comment": "abc\\u003ci\\u003e"' in out.read_text(encoding="utf-8")
    assert json.loads(out.read_text(encoding="utf-8"))["comment"] == "abc<i>"
