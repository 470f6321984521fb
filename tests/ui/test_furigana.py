"""ふりがな: Sudachi's readings over kanji words only, and the reading dictionary in corpus/."""
from __future__ import annotations

from pathlib import Path

import pytest

from ui import render
from ui.furigana import Furigana, Piece, align, load_entries

READINGS = Path(__file__).resolve().parents[2] / "corpus" / "readings.toml"
ENTRIES = load_entries(READINGS)


@pytest.fixture(scope="module")
def furigana() -> Furigana:
    return Furigana.from_file(READINGS)


def readings_over(pieces: list[Piece], text: str, word: str) -> str:
    """The readings of the pieces that make up ``word`` in ``text``."""
    start = text.index(word)
    out, pos = [], 0
    for p in pieces:
        if start <= pos < start + len(word):
            out.append(p.reading or p.base)
        pos += len(p.base)
    return "".join(out)


def test_ezo_deer_and_the_kushiro_marsh(furigana):
    text = "エゾシカの有効活用"
    pieces = furigana.pieces(text)
    assert pieces == [Piece("エゾシカ"), Piece("の"), Piece("有効", "ゆうこう"), Piece("活用", "かつよう")]
    assert readings_over(pieces, text, "有効活用") == "ゆうこうかつよう"
    assert readings_over(furigana.pieces("釧路湿原等のラムサール条約湿地"), "釧路湿原等のラムサール条約湿地",
                         "釧路湿原") == "くしろしつげん"


def test_readings_only_over_kanji_and_the_text_is_kept(furigana):
    text = "担い手の育成・確保に向けた取組の促進やＩＣＴなどの新たな技術"
    pieces = furigana.pieces(text)
    assert "".join(p.base for p in pieces) == text
    assert all(p.reading == "" for p in pieces if not any("\u4e00" <= ch <= "\u9fff" for ch in p.base))
    assert pieces[:3] == [Piece("担", "にな"), Piece("い"), Piece("手", "て")]  # okurigana carry no ruby
    assert Piece("新", "あら") in pieces and Piece("ＩＣＴ") in pieces


def test_align_falls_back_to_the_whole_word():
    assert align("我が国", "わがくに") == [Piece("我", "わ"), Piece("が"), Piece("国", "くに")]
    assert align("支える", "ささえる") == [Piece("支", "ささ"), Piece("える")]
    assert align("地域", "") == [Piece("地域")]
    assert align("行う", "おこなった") == [Piece("行う", "おこなった")]  # the kana do not line up


def test_ruby_markup_is_escaped_and_a_mark_over_whole_words_holds_their_rubies(furigana):
    html = render.rich("捕獲したエゾシカの有効活用<b>", furigana, marks=["エゾシカ", "有効", "活用"])
    assert html == ("<ruby>捕獲<rt>ほかく</rt></ruby>したエゾシカの".replace("エゾシカ", "<mark>エゾシカ</mark>")
                    + "<mark><ruby>有効<rt>ゆうこう</rt></ruby><ruby>活用<rt>かつよう</rt></ruby></mark>"
                    "&lt;b&gt;")


def test_a_mark_over_part_of_a_word_stays_inside_its_ruby(furigana):
    html = render.rich("有効活用", furigana, marks=["効活"])
    assert html == "<ruby>有<mark>効</mark><rt>ゆうこう</rt></ruby><ruby><mark>活</mark>用<rt>かつよう</rt></ruby>"


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.word for e in ENTRIES])
def test_each_reading_dictionary_entry(furigana, entry):
    # what Sudachi reads on its own is as the file says (so a fixed or changed Sudachi shows up) …
    assert "".join(r for _, _, r in Furigana().sudachi(entry.word)) == entry.sudachi
    assert entry.why or entry.sudachi == entry.reading  # a correction says why
    # … and the ふりがな shows the dictionary's reading, alone and in a sentence.
    assert furigana.pieces(entry.word) == [Piece(entry.word, entry.reading)]
    sentence = f"{entry.word}の取組を推進します"
    assert readings_over(furigana.pieces(sentence), sentence, entry.word) == entry.reading


def test_a_dictionary_word_inside_a_longer_sudachi_word_keeps_the_rest(furigana):
    assert furigana.pieces("別海町と標津町") == [Piece("別海", "べつかい"), Piece("町", "ちょう"), Piece("と"),
                                             Piece("標津", "しべつ"), Piece("町", "ちょう")]
