from pathlib import Path

import pytest

from ingest.generic import heading_level, parse_generic
from ingest.loaders import load_file
from ingest.normalize import squash_whitespace
from ingest.types import Heading, LoadedDoc

REPO_CORPUS = Path(__file__).resolve().parents[2] / "corpus"

PLAN = """\
第1章　計画の概要

1. 計画の目的
本計画は、釧路・根室地
域の将来像を示すものです。
あわせて、施策の方
向を定めます。

(1) 計画の期間
計画期間は２０２４年度から２０３４年度までの
１０年間とします。

①　対象地域
・釧路市、釧路町、厚岸
町など
○ 根室市など
◆ 北方領土隣
接地域

■ 現状と課題
人口減少が進んでいます。
2.5倍の差が
あります。

【基本方針】
・地域産業の振興を図る。
それに加えて観光を推進する。

第2章　施策の展開

２ 地域資源を活かした交流・関
係人口の創出・拡大

（１）農林水産業
・担い手の育成・確保
ＩＣＴ
and AI
"""


def _doc(text: str, headings: tuple[Heading, ...] = ()) -> LoadedDoc:
    return LoadedDoc(source="plan.txt", text=text, title="plan", sha256="0", headings=headings)


def _checked(doc: LoadedDoc) -> list[tuple[str, tuple[str, ...], str]]:
    units = parse_generic(doc)
    for u in units:
        assert squash_whitespace(u.text) == squash_whitespace(doc.text[u.start:u.end]), u
        assert "\n" not in u.text, u
    return [(u.kind, u.section, u.text) for u in units]


def test_plan_text_units() -> None:
    ch1 = ("第1章　計画の概要",)
    p1 = ch1 + ("1. 計画の目的",)
    q1 = p1 + ("(1) 計画の期間",)
    ch2 = ("第2章　施策の展開",)
    d2 = ch2 + ("２ 地域資源を活かした交流・関係人口の創出・拡大",)
    assert _checked(_doc(PLAN)) == [
        ("heading", (), "第1章　計画の概要"),
        ("heading", ch1, "1. 計画の目的"),
        ("paragraph", p1, "本計画は、釧路・根室地域の将来像を示すものです。あわせて、施策の方向を定めます。"),
        ("heading", p1, "(1) 計画の期間"),
        ("paragraph", q1, "計画期間は２０２４年度から２０３４年度までの１０年間とします。"),
        ("heading", q1, "①　対象地域"),
        ("bullet", q1 + ("①　対象地域",), "・釧路市、釧路町、厚岸町など"),
        ("bullet", q1 + ("①　対象地域",), "○ 根室市など"),
        ("bullet", q1 + ("①　対象地域",), "◆ 北方領土隣接地域"),
        ("heading", ch1, "現状と課題"),
        ("paragraph", ch1 + ("現状と課題",), "人口減少が進んでいます。2.5倍の差があります。"),
        ("heading", ch1, "【基本方針】"),
        ("bullet", ch1 + ("【基本方針】",), "・地域産業の振興を図る。"),
        ("paragraph", ch1 + ("【基本方針】",), "それに加えて観光を推進する。"),
        ("heading", (), "第2章　施策の展開"),
        ("heading", ch2, "２ 地域資源を活かした交流・関係人口の創出・拡大"),
        ("heading", d2, "（１）農林水産業"),
        ("bullet", d2 + ("（１）農林水産業",), "・担い手の育成・確保ＩＣＴand AI"),
    ]


def test_heading_marker_is_outside_the_span() -> None:
    doc = _doc("■ 現状と課題\n本文です。")
    head = parse_generic(doc)[0]
    assert (head.text, doc.text[head.start:head.end]) == ("現状と課題", "現状と課題")


@pytest.mark.parametrize(("line", "level"), [
    ("第３章 地域の将来像", 1), ("第十二章", 1), ("Ⅱ 施策", 1), ("第2節 農業", 2),
    ("● 重点", 2), ("【重点施策】", 2), ("１．目的", 3), ("12 概要", 3), ("（２）期間", 4),
    ("(3)対象", 4), ("⑤ 観光", 5),
    ("1.5倍に増加", None), ("2030年の姿", None), ("・農業", None), ("本文です", None),
    ("第1章 総論を示す。", None), ("１．" + "あ" * 60, None),
])
def test_heading_level(line: str, level: int | None) -> None:
    assert heading_level(line) == level


def test_known_headings_replace_patterns() -> None:
    text = "はじめに\n第1章 本文です\n\n# 方針\n・農業\n・観光"
    heads = (Heading(0, 4, 1), Heading(text.index("方針"), text.index("方針") + 2, 2))
    assert _checked(_doc(text, heads)) == [
        ("heading", (), "はじめに"),
        ("paragraph", ("はじめに",), "第1章 本文です"),
        ("heading", ("はじめに",), "方針"),
        ("bullet", ("はじめに", "方針"), "・農業"),
        ("bullet", ("はじめに", "方針"), "・観光"),
    ]


def test_known_heading_over_two_lines() -> None:
    text = "地域づくり\n推進ビジョン\n本文です。"
    assert _checked(_doc(text, (Heading(0, 12, 1),))) == [
        ("heading", (), "地域づくり推進ビジョン"),
        ("paragraph", ("地域づくり推進ビジョン",), "本文です。"),
    ]


def test_vision_text_keeps_the_invariant() -> None:
    doc = load_file(REPO_CORPUS / "kushiro-nemuro-vision.txt", REPO_CORPUS)
    units = _checked(doc)
    assert ("heading", ("Ⅰ 地域のめざす姿", "連携地域の主な施策の方向（今後５年程度）"),
            "１ 農林水産業をはじめとする地域産業の振興") in units
    assert sum(kind == "bullet" for kind, _, _ in units) == doc.text.count("\n・") == 33
