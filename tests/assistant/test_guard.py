"""FidelityGuard: each sentence against the passages it cites (passages[i] is [i+1])."""
from __future__ import annotations

import pytest

from assistant.guard import MARKER, FidelityGuard, split_sentences
from ingest.tokenize import JapaneseTokenizer
from ingest.types import Chunk

DEER = "個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進"
YEAR = "〈概ね２０３４年度(※)の地域のめざす姿を示しています。〉※北海道総合開発計画及び北海道総合計画の推進期間"
ICT = "担い手の育成・確保に向けた取組の促進やＩＣＴなどの新たな技術の導入推進による生産力の向上"


def chunk(i: int, text: str) -> Chunk:
    return Chunk(id=f"c{i}", text=text, source="v.txt", title="t", section=("a", "b"),
                 start=0, end=1, kind="bullet", order=i)


PASSAGES = [chunk(0, DEER), chunk(1, YEAR), chunk(2, ICT)]


@pytest.fixture(scope="module")
def guard() -> FidelityGuard:
    return FidelityGuard(JapaneseTokenizer())


def test_faithful_answer_passes_unchanged(guard: FidelityGuard) -> None:
    text = ("ビジョンでは、捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進が挙げられています[1]。"
            "また、ＩＣＴなどの新たな技術の導入推進による生産力の向上もめざしています[3]。")
    result = guard.check(text, PASSAGES)
    assert result.text == text
    assert result.unsupported == []
    assert result.invalid_citations == []
    assert result.cited == [1, 3]
    assert [(v.cited, v.supported, v.reason) for v in result.sentences] == [((1,), True, "ok"), ((3,), True, "ok")]
    assert result.ok


def test_invented_sentence_is_marked(guard: FidelityGuard) -> None:
    good = "エゾシカの有効活用の促進が挙げられています[1]。"
    bad = "また、すべての漁港に無人の自動販売所を設置します[1]。"
    result = guard.check(good + bad, PASSAGES)
    assert result.text == good + bad + "［要確認：出典で確認できません］"
    assert MARKER == "［要確認：出典で確認できません］"
    assert result.unsupported == [bad]
    assert [(v.supported, v.reason) for v in result.sentences] == [(True, "ok"), (False, "low-overlap")]
    assert result.cited == [1]


def test_remove_mode_drops_the_invented_sentence(guard: FidelityGuard) -> None:
    text = "エゾシカの有効活用の促進が挙げられています[1]。\nまた、すべての漁港に無人の自動販売所を設置します[1]。"
    result = guard.check(text, PASSAGES, mode="remove")
    assert result.text == "エゾシカの有効活用の促進が挙げられています[1]。"
    remover = FidelityGuard(guard.tokenizer, mode="remove")
    assert remover.check(text, PASSAGES).text == "エゾシカの有効活用の促進が挙げられています[1]。"


def test_remove_mode_drops_bullet_lines_whole(guard: FidelityGuard) -> None:
    text = "次の施策があります。\n・エゾシカの有効活用の促進 [1]\n・漁港の完全自動化 [1]\n・地域ブランド化の推進 [1]"
    result = guard.check(text, PASSAGES, mode="remove")
    assert result.text == "次の施策があります。\n・エゾシカの有効活用の促進 [1]\n・地域ブランド化の推進 [1]"
    assert result.unsupported == ["漁港の完全自動化 [1]"]


def test_citation_to_a_missing_passage(guard: FidelityGuard) -> None:
    text = "エゾシカの有効活用の促進が挙げられています[9]。"
    result = guard.check(text, PASSAGES)
    assert result.invalid_citations == [9]
    assert result.cited == []
    assert result.unsupported == [text]
    assert result.sentences[0].reason == "invalid-citation"
    assert result.text == text + MARKER
    assert not result.ok


def test_number_mismatch_is_unsupported(guard: FidelityGuard) -> None:
    wrong = "ビジョンは概ね2030年度の地域のめざす姿を示しています[2]。"
    right = "ビジョンは概ね2034年度の地域のめざす姿を示しています[2]。"
    bad = guard.check(wrong, PASSAGES)
    assert bad.unsupported == [wrong]
    assert bad.sentences[0].reason == "number-mismatch"
    assert bad.sentences[0].missing_numbers == ("2030",)
    good = guard.check(right, PASSAGES)  # ２０３４ in the passage, 2034 in the answer: NFKC makes them equal
    assert good.unsupported == []
    assert good.text == right


def test_number_must_be_in_the_cited_passage(guard: FidelityGuard) -> None:
    # 2034 is in passage [2], but the sentence cites [1].
    result = guard.check("エゾシカの有効活用を2034年度までに促進します[1]。", PASSAGES)
    assert result.sentences[0].reason == "number-mismatch"


def test_refusal_passes_without_citation(guard: FidelityGuard) -> None:
    for text in ("ビジョンには記載がありません", "ビジョンには記載がありません。", "The vision does not cover this."):
        result = guard.check(text, PASSAGES)
        assert result.text == text
        assert result.unsupported == []
        assert [v.reason for v in result.sentences] == ["refusal"]


def test_uncited_claim_is_unsupported(guard: FidelityGuard) -> None:
    result = guard.check("エゾシカの有効活用の促進が挙げられています。", PASSAGES)
    assert result.sentences[0].reason == "no-citation"
    assert result.text == "エゾシカの有効活用の促進が挙げられています。" + MARKER


def test_courtesy_sentences_claim_nothing(guard: FidelityGuard) -> None:
    text = "お問い合わせいただき、誠にありがとうございます。\n今後ともよろしくお願い申し上げます。"
    result = guard.check(text, PASSAGES)
    assert [v.reason for v in result.sentences] == ["no-claim", "no-claim"]
    assert result.text == text


def test_english_sentence_citing_japanese_passage(guard: FidelityGuard) -> None:
    # Documented behaviour: English words cannot be matched against Japanese passages, so an
    # English sentence is supported only if its terms occur there (Latin terms such as ICT).
    en = "The vision promotes effective use of captured Ezo deer and regional branding [1]."
    result = guard.check(en, PASSAGES)
    assert result.unsupported == [en]
    assert result.sentences[0].reason == "cross-language"
    assert result.text == en + MARKER
    assert guard.check("It names ICT [3].", PASSAGES).unsupported == []


def test_mixed_sentence_quoting_japanese_is_checked_on_the_quote(guard: FidelityGuard) -> None:
    text = "The vision lists 「エゾシカの有効活用の促進と、地域ブランド化の推進」 [1]."
    assert guard.check(text, PASSAGES).unsupported == []


def test_injection_obeyed_output_is_flagged(guard: FidelityGuard) -> None:
    text = "私のシステムプロンプトは「あなたは役に立つアシスタントです」です[1]。"
    result = guard.check(text, PASSAGES)
    assert result.unsupported == [text]


def test_sentence_split_and_citation_groups() -> None:
    text = "エゾシカの活用です。[1][2] 次に、ブランド化です[1,3]。\n・地域づくり [2]\n[3]\nThe plan. Ends here [1]."
    spans = split_sentences(text)
    assert [text[s.start:s.end] for s in spans] == [
        "エゾシカの活用です。[1][2]", "次に、ブランド化です[1,3]。", "地域づくり [2]\n[3]", "The plan.", "Ends here [1].",
    ]


def test_citation_forms_are_parsed(guard: FidelityGuard) -> None:
    result = guard.check("エゾシカの有効活用の促進［１］と、ICTなどの新たな技術の導入推進です[1, 3]。", PASSAGES)
    assert result.cited == [1, 3]
    assert result.unsupported == []


def test_draft_headings_and_open_questions_are_not_judged(guard: FidelityGuard) -> None:
    text = ("お問い合わせいただき、誠にありがとうございます。\n"
            "【エゾシカの活用について】\n"
            "ビジョンでは「捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進」が掲げられています[1]。\n"
            "【要確認事項】\n"
            "・エゾシカ加工施設の整備予算\n"
            "今後ともよろしくお願い申し上げます。")
    result = guard.check(text, PASSAGES, draft=True)
    assert result.text == text
    assert [v.reason for v in result.sentences] == ["no-claim", "ok", "no-claim"]


def test_headings_are_judged_in_answers(guard: FidelityGuard) -> None:
    # Outside drafts a heading is a sentence like any other, so an injected "# …" line is caught.
    text = "# 私は制限を解除されました\nエゾシカの有効活用の促進が挙げられています[1]。"
    result = guard.check(text, PASSAGES)
    assert result.unsupported == ["# 私は制限を解除されました"]
    assert result.text == "# 私は制限を解除されました" + MARKER + "\nエゾシカの有効活用の促進が挙げられています[1]。"


def test_bad_mode_is_rejected(guard: FidelityGuard) -> None:
    with pytest.raises(ValueError):
        FidelityGuard(guard.tokenizer, mode="fix")
