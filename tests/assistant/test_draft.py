"""Reply drafts for staff: one point per sub-question, one citation number per passage."""
from __future__ import annotations

import re

import pytest

from assistant.build import build_assistant
from assistant.core import Assistant
from assistant.draft import split_inquiry
from assistant.types import Draft, InputError
from vision_qa.settings import Settings

DEER = "個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進"
RENEWABLE = ("自然環境・景観との調和、地域との共生に留意しつつ、地域の特性を活かしたバイオマス、太陽光、地熱など"
             "再生可能エネルギーの導入促進とエネルギーの地産地消の推進")
Q1 = "エゾシカの活用についてどのような取り組みがありますか。"
Q2 = "再生可能エネルギーの導入について教えてください。"
Q3 = "これらの事業の予算額はいくらですか。"
INQUIRY = f"""お世話になっております。釧路市在住の山田と申します。
ビジョンについて3点お伺いします。
1. {Q1}
2. {Q2}
3. {Q3}
よろしくお願いいたします。"""
OPENING = ("このたびは、お問い合わせいただき誠にありがとうございます。\n"
           "お尋ねの件につきまして、「釧路・根室連携地域 地域づくり推進ビジョン」の記載に基づき、次のとおりご回答いたします。")
EXPECTED = f"""{OPENING}

1．{Q1}
ビジョンでは、次のとおり記載されております。
・{DEER} [1]

2．{Q2}
ビジョンでは、次のとおり記載されております。
・{RENEWABLE} [2]

3．{Q3}
この点につきましては、ビジョンに記載がございません。担当部署に確認のうえ、改めてご回答いたします。

今後とも、釧路・根室地域の地域づくりにご理解とご協力を賜りますよう、よろしくお願い申し上げます。

【要確認事項（ビジョンに記載のない点）】
・{Q3}（要確認）

出典：北海道「釧路・根室連携地域 地域づくり推進ビジョン」"""


@pytest.fixture(scope="module")
def assistant(vision_index: Settings) -> Assistant:
    return build_assistant(vision_index)


@pytest.fixture(scope="module")
def draft(assistant: Assistant) -> Draft:
    return assistant.draft(INQUIRY)


def test_split_inquiry_keeps_only_the_questions() -> None:
    assert split_inquiry(INQUIRY) == [Q1, Q2, Q3]


def test_split_inquiry_without_a_question_mark_keeps_the_whole_text() -> None:
    assert split_inquiry("  エゾシカの活用  ") == ["エゾシカの活用"]


def test_draft_has_one_point_per_question(draft: Draft) -> None:
    assert [p.question for p in draft.points] == [Q1, Q2, Q3]
    assert [p.answer.abstained for p in draft.points] == [False, False, True]
    assert draft.uncovered == [Q3]
    assert draft.mode == "extractive"


def test_draft_text_is_the_exact_formal_reply(draft: Draft) -> None:
    assert draft.text.startswith(OPENING + "\n\n")
    assert "【要確認事項" in draft.text
    assert draft.text == EXPECTED


def test_citation_numbers_are_unique_across_the_draft(draft: Draft) -> None:
    assert [(c.n, c.quote) for c in draft.citations] == [(1, DEER), (2, RENEWABLE)]
    assert len({c.chunk_id for c in draft.citations}) == 2
    assert sorted({int(n) for n in re.findall(r"\[(\d+)\]", draft.text)}) == [1, 2]


def test_a_passage_cited_twice_keeps_its_first_number(assistant: Assistant) -> None:
    result = assistant.draft(f"{Q1}\n鹿肉って何か取り組みあるの？\n{Q2}")
    assert [c.quote for c in result.citations] == [DEER, RENEWABLE]
    assert [[c.n for c in p.answer.citations] for p in result.points] == [[1], [1], [1]]  # each answer's own numbering
    assert result.text.count(f"・{DEER} [1]") == 2
    assert f"・{RENEWABLE} [2]" in result.text
    assert "【要確認事項" not in result.text and result.uncovered == []


def test_to_dict_points_use_the_draft_numbering(draft: Draft) -> None:
    d = draft.to_dict()
    assert [p["citations"] for p in d["points"]] == [[1], [2], []]


def test_to_dict_has_the_documented_keys(draft: Draft) -> None:
    d = draft.to_dict()
    assert (d["inquiry"], d["draft"], d["mode"], d["uncovered"]) == (INQUIRY, EXPECTED, "extractive", [Q3])
    assert [p["question"] for p in d["points"]] == [Q1, Q2, Q3]
    assert [c["n"] for c in d["citations"]] == [1, 2]
    assert set(d["timings_ms"]) == {"total"}


@pytest.mark.parametrize("inquiry", ["", "   \n\t", "\u200b\ufeff"])
def test_empty_inquiry_is_refused(assistant: Assistant, inquiry: str) -> None:
    with pytest.raises(InputError) as exc:
        assistant.draft(inquiry)
    assert str(exc.value) == "質問が空です。知りたいことを入力してください。"


def test_over_long_inquiry_is_refused(assistant: Assistant) -> None:
    with pytest.raises(InputError) as exc:
        assistant.draft("あ" * 10001)
    assert str(exc.value) == "質問が長すぎます（10,001文字）。10,000文字以内で入力してください。"


def test_a_joined_question_is_split_so_the_covered_topic_is_answered(assistant: Assistant) -> None:
    result = assistant.draft("お世話になっております。エゾシカの活用と、その予算について教えてください。")
    assert [(p.question, p.answer.abstained, p.numbers) for p in result.points] == [
        ("エゾシカの活用", False, [1]),
        ("その予算について教えてください。", True, []),
    ]
    assert [c.quote for c in result.citations] == [DEER]
    assert result.uncovered == ["その予算について教えてください。"]


def test_many_sub_questions_beyond_the_cap_go_to_the_open_points(assistant: Assistant) -> None:
    from assistant.draft import MAX_POINTS

    questions = [f"エゾシカの活用について{i}回目の質問ですか？" for i in range(MAX_POINTS + 2)]
    result = assistant.draft("".join(questions))
    assert len(result.points) == MAX_POINTS
    assert result.uncovered[-2:] == questions[-2:]
