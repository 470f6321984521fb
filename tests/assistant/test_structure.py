"""Structure answers over a corpus with a second document: the overview stays the
vision's own, a direction is taken from the document it belongs to, and the outline is
rebuilt when a new generation is switched in."""
from __future__ import annotations

from assistant.build import build_assistant, build_indexer

OTHER = """厚岸町 森と海の保全計画（試行版）

1. 森林の保全
・町民と協力して植林活動を進めます。
・間伐材を木質バイオマスの燃料として使います。

2. 海辺の保全
・海岸清掃を毎月行います。
"""
VISION_DIRECTIONS = 5


def test_other_documents_do_not_enter_the_overview_and_keep_their_own_directions(fresh_settings) -> None:
    (fresh_settings.corpus_dir / "akkeshi-forest.txt").write_text(OTHER, encoding="utf-8")
    assert build_indexer(fresh_settings).run().files == 2
    assistant = build_assistant(fresh_settings)

    overview = assistant.ask("このビジョンの概要は？")
    assert overview.mode == "structure"
    assert {c.source for c in overview.citations} == {"kushiro-nemuro-vision.txt"}
    assert len(overview.citations) == 1 + VISION_DIRECTIONS

    forest = assistant.ask("森林の保全の施策を全部教えて")
    assert forest.mode == "structure"
    assert [c.quote for c in forest.citations] == ["町民と協力して植林活動を進めます。",
                                                    "間伐材を木質バイオマスの燃料として使います。"]
    first_line = forest.text.splitlines()[0]
    assert first_line == "「akkeshi-forest」の「森林の保全」には、次の2項目の施策が挙げられています。"

    outline = assistant.current().outline
    (fresh_settings.corpus_dir / "akkeshi-forest.txt").write_text(
        OTHER + "・藻場の再生に取り組みます。\n", encoding="utf-8")
    build_indexer(fresh_settings).run()
    sea = assistant.ask("海辺の保全に関する施策を全部教えて")
    assert assistant.current().outline is not outline
    assert [c.quote for c in sea.citations] == ["海岸清掃を毎月行います。", "藻場の再生に取り組みます。"]


def test_a_heading_two_files_share_lists_the_bullets_of_one_file(fresh_settings) -> None:
    (fresh_settings.corpus_dir / "akkeshi-forest.txt").write_text(OTHER, encoding="utf-8")
    (fresh_settings.corpus_dir / "hamanaka-forest.txt").write_text(
        "浜中町 森林計画（試行版）\n\n1. 森林の保全\n・防風林を守ります。\n", encoding="utf-8")
    assert build_indexer(fresh_settings).run().files == 3
    answer = build_assistant(fresh_settings).ask("森林の保全の施策を全部教えて")
    assert answer.mode == "structure"
    assert len({c.source for c in answer.citations}) == 1
    assert [c.quote for c in answer.citations] in (
        ["町民と協力して植林活動を進めます。", "間伐材を木質バイオマスの燃料として使います。"], ["防風林を守ります。"])
