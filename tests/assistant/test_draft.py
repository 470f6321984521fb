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
D1_LABEL = "主な施策の方向１（農林水産業・地域産業）"
D3_LABEL = "主な施策の方向３（ゼロカーボン北海道・自然環境）"
TITLE = "釧路・根室連携地域「地域づくり推進ビジョン」"
EXPECTED = f"""{OPENING}

1．{Q1}
ビジョンでは、次のとおり記載されております。
・{DEER} [1]

2．{Q2}
ビジョンでは、次のとおり記載されております。
・{RENEWABLE} [2]

3．{Q3}
ビジョンには、事業の予算額についての具体的な記載はございませんが、関連して次のとおり記載されております。
・{RENEWABLE} [2]

今後とも、釧路・根室地域の地域づくりにご理解とご協力を賜りますよう、よろしくお願い申し上げます。

【出典】
[1] {TITLE} › {D1_LABEL}
[2] {TITLE} › {D3_LABEL}"""
# What staff must check: the point the plan does not cover, read with the points before it.
UNCOVERED = ["再生可能エネルギー・導入について、これらの事業の予算額はいくらですか。（ビジョンに記載のない点：事業の予算額）"]


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
    assert [p.answer.coverage for p in draft.points] == ["direct", "direct", "related"]
    assert draft.uncovered == UNCOVERED
    assert draft.mode == "extractive"


def test_draft_text_is_the_exact_send_ready_reply(draft: Draft) -> None:
    assert draft.text == EXPECTED
    # Nothing for staff only is in the reply: no 要確認 heading, no marker.
    assert "要確認" not in draft.text


def test_every_citation_number_is_resolved_in_the_closing_sources(draft: Draft) -> None:
    reply, sources = draft.text.split("【出典】\n")
    cited = sorted({int(n) for n in re.findall(r"\[(\d+)\]", reply)})
    assert [int(line.split("]")[0][1:]) for line in sources.splitlines()] == cited == [1, 2]


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
    # 鹿肉 itself is not in the plan: staff see it as a point to check, the resident does not.
    assert [p.answer.coverage for p in result.points] == ["direct", "related", "direct"]
    assert result.uncovered == ["鹿肉って何か取り組みあるの？（関連する記載を引用しました。ご質問の点そのものへの回答になっているか確認してください）"]


def test_to_dict_points_use_the_draft_numbering(draft: Draft) -> None:
    d = draft.to_dict()
    assert [p["citations"] for p in d["points"]] == [[1], [2], [2]]
    assert [p["coverage"] for p in d["points"]] == ["direct", "direct", "related"]
    assert d["points"][2]["missing"] == ["事業の予算額"]


def test_to_dict_has_the_documented_keys(draft: Draft) -> None:
    d = draft.to_dict()
    assert (d["inquiry"], d["draft"], d["mode"], d["uncovered"]) == (INQUIRY, EXPECTED, "extractive", UNCOVERED)
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
    assert [(p.question, p.answer.coverage, p.numbers) for p in result.points] == [
        ("エゾシカの活用", "direct", [1]),
        ("その予算について教えてください。", "related", [1]),
    ]
    assert result.points[1].answer.rewritten_query == "エゾシカ・活用について、その予算について教えてください。"
    assert [c.quote for c in result.citations] == [DEER]
    assert result.uncovered == ["エゾシカ・活用について、その予算について教えてください。（ビジョンに記載のない点：予算）"]


def test_many_sub_questions_beyond_the_cap_go_to_the_open_points(assistant: Assistant) -> None:
    from assistant.draft import MAX_POINTS

    questions = [f"エゾシカの活用について{i}回目の質問ですか？" for i in range(MAX_POINTS + 2)]
    result = assistant.draft("".join(questions))
    assert len(result.points) == MAX_POINTS
    assert result.uncovered[-2:] == questions[-2:]
