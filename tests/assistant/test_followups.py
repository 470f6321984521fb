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
    assert (answer.question, answer.rewritten_query) == ("それについてもっと詳しく", "鹿肉")
    assert (answer.abstained, answer.mode) == (False, "extractive")
    assert [c.quote for c in answer.citations] == [DEER]


def test_its_budget_is_rewritten_and_abstains(assistant: Assistant) -> None:
    answer = assistant.ask("その予算は？", HISTORY)
    assert answer.rewritten_query == "鹿肉 予算"
    assert (answer.abstained, answer.citations) == (True, [])
    assert answer.text.startswith("ビジョンには記載がありません。")
    assert answer.notes == ["abstained: asks for a fact the passages do not hold; missing: 鹿肉, 予算"]


def test_a_standalone_question_after_history_is_not_rewritten(assistant: Assistant) -> None:
    question = "ゼロカーボンに関する施策を全部教えて"
    answer = assistant.ask(question, HISTORY)
    assert answer.rewritten_query == question
    assert (answer.mode, len(answer.citations)) == ("structure", 5)


# -- the rewriter alone ------------------------------------------------------------------------

def test_no_user_turn_means_no_follow_up(rewriter: FollowUpRewriter) -> None:
    assert not rewriter.is_follow_up("それについてもっと詳しく", [])
    assert not rewriter.is_follow_up("それについてもっと詳しく", [{"role": "assistant", "content": "こんにちは"}])
    assert rewriter.rewrite("それについてもっと詳しく", []) == "それについてもっと詳しく"


@pytest.mark.parametrize(("question", "rewritten"), [
    ("それについてもっと詳しく", "鹿肉"),
    ("他には？", "鹿肉"),
    ("その予算は？", "鹿肉 予算"),
    ("もっと教えて", "鹿肉"),
    ("エゾシカの取り組みは？", "エゾシカの取り組みは？"),  # its own topic: left alone
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
    assert rewriter.rewrite("他には？", history) == "鹿肉"
