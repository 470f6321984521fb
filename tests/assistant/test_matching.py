"""Term matching without word lists: readings, one typo, Sudachi's normalized forms, kanji."""
from __future__ import annotations

import pytest

from assistant.build import build_assistant
from assistant.matching import one_typo_in
from ingest.terms import TermExtractor
from ingest.tokenize import JapaneseTokenizer

SHIRETOKO = "知床世界自然遺産や国立・国定公園、道立自然公園など特色ある豊かな自然環境の保全と利用の促進"
WETLAND = "釧路湿原等のラムサール条約湿地を始めとする、豊かな自然環境の保全・再生の取組の推進"
DEER = "個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進"


@pytest.fixture(scope="module")
def gen(vision_index):
    return build_assistant(vision_index).current()


@pytest.fixture(scope="module")
def extractor() -> TermExtractor:
    return TermExtractor(JapaneseTokenizer())


def _chunk(gen, text):
    return next(c for c in gen.index.chunks if c.text == text)


def _term(extractor, word):
    """The first content term of a word as the question analysis sees it."""
    return extractor.terms(word)[0]


def test_a_place_written_in_kana_matches_by_reading(gen, extractor) -> None:
    assert gen.matcher.literal(_term(extractor, "しれとこ"), _chunk(gen, SHIRETOKO))
    assert gen.matcher.literal(_term(extractor, "くしろ"), _chunk(gen, WETLAND))
    assert not gen.matcher.literal(_term(extractor, "しれとこ"), _chunk(gen, WETLAND))


def test_kana_words_are_searched_with_the_plans_spelling(gen, extractor) -> None:
    assert gen.matcher.spellings(_term(extractor, "しれとこ")) == ["知床"]
    assert "釧路" in gen.matcher.spellings(_term(extractor, "くしろ"))
    assert gen.matcher.spellings(_term(extractor, "知床")) == []  # written in kanji already


def test_one_wrong_character_still_matches_but_two_do_not(gen, extractor) -> None:
    assert one_typo_in("釧路湿現", "釧路湿原等のラムサール")
    assert not one_typo_in("釧路沼現", "釧路湿原等のラムサール")
    assert gen.matcher.literal(_term(extractor, "ラムサール"), _chunk(gen, WETLAND))
    assert gen.matcher.literal(_term(extractor, "ラムサーノ"), _chunk(gen, WETLAND))


def test_sudachi_normalized_forms_bridge_spellings(gen, extractor) -> None:
    # エゾシカ is 蝦夷鹿 to Sudachi, so 鹿 is found in the deer bullet; 鹿肉 is not, though its kanji 鹿 is.
    deer = _chunk(gen, DEER)
    assert gen.matcher.literal(_term(extractor, "鹿"), deer)
    assert not gen.matcher.literal(_term(extractor, "鹿肉"), deer)
    share = gen.matcher.kanji_share(_term(extractor, "鹿肉"), deer, gen.idf)
    assert 0.4 < share < 1.0


@pytest.mark.parametrize(("question", "passage"), [
    ("しれとこのしぜんまもるの？", SHIRETOKO),  # kana for 知床
    ("畑がシカにやられて困ってる。何か対策ある？", DEER),  # everyday words for エゾシカ
    ("くしろしつげんって守られるの？", WETLAND),
])
def test_everyday_and_kana_questions_quote_the_right_passage_first(vision_index, question, passage) -> None:
    answer = build_assistant(vision_index).ask(question)
    assert answer.coverage in ("direct", "related")
    assert answer.citations[0].quote == passage
