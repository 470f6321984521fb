"""Follow-up questions: the rule-based rewriter carries the earlier topic forward."""
from __future__ import annotations


import pytest

from assistant.build import build_assistant
from assistant.core import Assistant
from assistant.query import FollowUpRewriter, TermExtractor
from assistant.types import Message
from ingest.tokenize import JapaneseTokenizer
from vision_qa.settings import Settings

FIRST = "鹿肉って何か取り組みあるの？"
DEER = "個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進"
HISTORY: list[Message] = [
    {"role": "user", "content": FIRST},
    {"role": "assistant", "content": f"ビジョンの「１ 農林水産業をはじめとする地域産業の振興」に、次の記載があります。\n・{DEER} [1]"},
]


@pytest.fixture(scope="module")
def assistant(vision_index: Settings) -> Assistant:
    return build_assistant(vision_index)


@pytest.fixture(scope="module")
def rewriter() -> FollowUpRewriter:
    return FollowUpRewriter(TermExtractor(JapaneseTokenizer()))


# -- through the assistant ---------------------------------------------------------------------

def test_tell_me_more_carries_the_deer_meat_topic(assistant: Assistant) -> None:
    answer = assistant.ask("それについてもっと詳しく", HISTORY)
    assert (answer.question, answer.rewritten_query) == ("それについてもっと詳しく", "鹿肉について、それについてもっと詳しく")
    assert answer.mode == "extractive" and answer.coverage in ("direct", "related")
    assert [c.quote for c in answer.citations][:1] == [DEER]


def test_its_budget_is_related_the_plan_has_the_topic_not_the_budget(assistant: Assistant) -> None:
    answer = assistant.ask("その予算は？", HISTORY)
    assert answer.rewritten_query == "鹿肉について、その予算は？"
    assert (answer.coverage, answer.missing) == ("related", ["予算"])
    assert [c.quote for c in answer.citations] == [DEER]
    assert answer.text.startswith("ビジョンには、予算についての個別の記載はありません。関連して、")


def test_a_short_question_naming_nothing_in_the_plan_continues_the_topic(assistant: Assistant) -> None:
    history: list[Message] = [{"role": "user", "content": "エゾシカについて何か書いてある？"},
                              {"role": "assistant", "content": DEER}]
    answer = assistant.ask("年間何頭ぐらい獲る目標なの？", history)
    assert answer.rewritten_query == "エゾシカについて、年間何頭ぐらい獲る目標なの？"
    assert (answer.coverage, [c.quote for c in answer.citations]) == ("related", [DEER])


def test_a_standalone_question_after_history_is_not_rewritten(assistant: Assistant) -> None:
    question = "ゼロカーボンに関する施策を全部教えて"
    answer = assistant.ask(question, HISTORY)
    assert answer.rewritten_query == question
    assert (answer.mode, len(answer.citations)) == ("structure", 5)


def test_history_is_bounded_before_it_is_used(assistant: Assistant) -> None:
    from assistant.query import HISTORY_TURN_CHARS, HISTORY_TURNS, bound_history

    long: list[Message] = [{"role": "user", "content": "エゾシカ" * 2000}] * 50
    bounded = bound_history(long)
    assert len(bounded) == HISTORY_TURNS and all(len(m["content"]) == HISTORY_TURN_CHARS for m in bounded)
    answer = assistant.ask("他には？", long)
    assert len(answer.rewritten_query) < 100


# -- the rewriter alone ------------------------------------------------------------------------

def test_no_user_turn_means_no_follow_up(rewriter: FollowUpRewriter) -> None:
    assert not rewriter.is_follow_up("それについてもっと詳しく", [])
    assert not rewriter.is_follow_up("それについてもっと詳しく", [{"role": "assistant", "content": "こんにちは"}])
    assert rewriter.rewrite("それについてもっと詳しく", []) == "それについてもっと詳しく"


@pytest.mark.parametrize(("question", "rewritten"), [
    ("それについてもっと詳しく", "鹿肉について、それについてもっと詳しく"),
    ("他には？", "鹿肉について、他には？"),
    ("その予算は？", "鹿肉について、その予算は？"),
    ("もっと教えて", "鹿肉について、もっと教えて"),
    ("エゾシカの取り組みは？", "エゾシカの取り組みは？"),  # its own topic: left alone
    ("What about it?", "About 鹿肉: What about it?"),
])
def test_rule_based_rewrites(rewriter: FollowUpRewriter, question: str, rewritten: str) -> None:
    assert rewriter.rewrite(question, HISTORY) == rewritten


def test_topic_comes_from_the_last_user_turn_that_had_one(rewriter: FollowUpRewriter) -> None:
    history: list[Message] = [
        {"role": "user", "content": "再生可能エネルギーについて知りたい"},
        {"role": "assistant", "content": "…"},
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": "…"},
        {"role": "user", "content": "もっと詳しく"},
        {"role": "assistant", "content": "…"},
    ]
    assert rewriter.rewrite("他には？", history) == "鹿肉について、他には？"
