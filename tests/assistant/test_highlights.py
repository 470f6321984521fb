"""Answer.highlights: the question's rare words (by the index's IDF), as the quotes spell them."""
from __future__ import annotations

import pytest

from assistant.build import build_assistant
from assistant.core import RARE_SHARE, Assistant
from vision_qa.settings import Settings


@pytest.fixture(scope="module")
def assistant(vision_index: Settings) -> Assistant:
    return build_assistant(vision_index)


@pytest.mark.parametrize(("question", "expected"), [
    # 蝦夷鹿 is marked as the quote writes it; 有効 and 活用 are each in one or two passages
    ("エゾシカの有効活用について教えて", ["エゾシカ", "有効", "活用"]),
    ("釧路湿原の保全は？", ["釧路", "湿原", "保全"]),
    # a word written in kana is marked in the plan's spelling
    ("しれとこの自然は守られる？", ["知床"]),
    # 資源 (6 of 43 passages) and 活かす (8) are too common: nothing to mark
    ("地域資源を活かした取り組みは？", []),
])
def test_highlights_are_the_rare_question_words_found_in_the_quotes(assistant, question, expected):
    answer = assistant.ask(question)
    assert answer.highlights == expected
    assert answer.to_dict()["highlights"] == expected
    quotes = " ".join(c.quote for c in answer.citations)
    assert all(word in quotes for word in answer.highlights)


def test_generic_words_are_never_highlighted(assistant):
    gen = assistant.current()
    limit = RARE_SHARE * gen.idf.n
    for word in ("地域", "資源", "生かす"):  # the normalized form of 活かした
        assert gen.idf.df[word] > limit, word
    answer = assistant.ask("地域の資源を活かした観光について教えて")
    assert not {"地域", "資源", "活かし", "活かした", "生かす"} & set(answer.highlights)
