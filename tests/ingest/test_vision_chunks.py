"""The vision's one-page layout, chunked: every bullet under its own direction, verbatim."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ingest.chunker import Chunker, chunk_id
from ingest.loaders import load_file
from ingest.normalize import BULLET_MARKS, squash_whitespace
from ingest.sources import load_sources
from ingest.types import Chunk, LoadedDoc

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
VISION = "kushiro-nemuro-vision.txt"
TITLE = "釧路・根室連携地域「地域づくり推進ビジョン」"
ROOT_SECTION = "連携地域の主な施策の方向（今後５年程度）"
TARGET = ("Ⅰ 地域のめざす姿",)
D1 = "１ 農林水産業をはじめとする地域産業の振興"
D2 = "２ 地域資源を活かした交流・関係人口の創出・拡大"
D3 = "３ 「ゼロカーボン北海道」と豊かな自然環境が調和する社会の構築"
D4 = "４ 人流・物流ネットワークの形成と安全・安心な暮らしを支える災害に強いしなやかな環境整備の推進"
D5 = "５ 北方領土問題の解決に向けた世論啓発・環境整備、北方領土隣接地域の振興"
DEER = "個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進"
COAL = "国内唯一の坑内掘炭鉱の保安の確保とＣО₂坑内埋め戻し技術の促進"  # О is Cyrillic U+041E

SLOGAN = ("我が国を支える食料供給力、雄大な自然を始めとする魅力的な観光資源などの多様なポテンシャルを"
          "活かした、人々が安心して住み続けられる、多様な人材・主体の共創により、輝く「釧路・根室連携地域」")
STATEMENTS = [
    "我が国最大の酪農地帯の礎となる広大な草地を活かした農業、豊富な森林資源を背景とした林業、有数の漁場を"
    "有する漁業など、農林水産業の振興を図るとともに、管内の地域資源を活かした関連産業の振興を推進します。",
    "知床世界自然遺産をはじめとした雄大で魅力ある自然や文化、食などの地域資源を活かした観光の振興や"
    "関係人口の創出・拡大の取組を推進します。",
    "自然環境・景観との調和、地域との共生に留意しつつ「ゼロカーボン北海道」の実現に向けた取組を推進します。",
    "生産空間を支える人流・物流ネットワークの形成、巨大地震・津波及び激甚化する自然災害への対策等を進め、"
    "誰もが安全・安心に暮らせる災害に強いしなやかな地域づくりを目指します。",
    "我が国固有の領土である北方領土の早期返還に向けた取組を推進するとともに、北方領土隣接地域の振興を図ります。",
    "デジタル化など急速に進む社会変化の要素も取り入れながら、官民の垣根を越えた多様な人材・主体の共創による"
    "地域づくりを進めていきます。",
]


@pytest.fixture(scope="module")
def doc() -> LoadedDoc:
    return load_file(CORPUS / VISION, CORPUS, load_sources(CORPUS)[VISION])


@pytest.fixture(scope="module")
def chunks(doc: LoadedDoc) -> list[Chunk]:
    return Chunker().split(doc)


def _of(chunks: list[Chunk], kind: str) -> list[Chunk]:
    return [c for c in chunks if c.kind == kind]


def test_27_bullets_under_five_directions_in_order(chunks: list[Chunk]) -> None:
    bullets = _of(chunks, "bullet")
    assert len(bullets) == 27
    directions = list(dict.fromkeys(c.section for c in bullets))
    assert directions == [(ROOT_SECTION, d) for d in (D1, D2, D3, D4, D5)]
    assert [sum(1 for c in bullets if c.section == d) for d in directions] == [7, 4, 5, 8, 3]
    pairs = [(c.section[-1], c.text) for c in bullets]
    assert pairs[0] == (D1, "安全・安心かつ良質な農林水産物の安定供給に向けた体質強化")
    assert pairs[4] == (D1, DEER)
    assert pairs[6] == (D1, "地域の経済・雇用を支える中小・小規模企業の振興や担い手対策の推進")
    assert pairs[7] == (D2, "自然、アイヌ文化、食など、地域が有する観光資源の連結・融合やシーニックバイウェイ、"
                            "日本遺産などの広域的な取組を活かした着地型・滞在型の観光地づくりの推進")
    assert pairs[10] == (D2, "冷涼、少雪好天な気候特性を活かした長期滞在や地域外の学生等との交流促進による"
                             "移住・定住、二地域居住等の推進")
    assert pairs[11] == (D3, "計画的な造林や間伐などの森林整備、藻場造成等のブルーカーボン等によるＣО₂吸収量の"
                             "確保など吸収源対策の推進")
    assert pairs[15] == (D3, COAL)
    assert pairs[16] == (D4, "鉄道やバス、高規格道路や国際物流ターミナルなど、地域の生活と産業を支える"
                             "交通ネットワークの維持・確保及び充実")
    assert pairs[23] == (D4, "若者、女性、高齢者・障がい者など誰もが暮らしやすい地域づくりの推進")
    assert pairs[24:] == [(D5, "北方領土隣接地域の振興"), (D5, "北方四島交流等事業の推進"),
                          (D5, "北方領土問題の啓発活動や返還要求運動の後継者育成の推進")]


def test_direction_headings_are_joined_without_breaking_words(chunks: list[Chunk]) -> None:
    headings = _of(chunks, "heading")
    assert [(c.section, c.text) for c in headings] == [((ROOT_SECTION,), d) for d in (D1, D2, D3, D4, D5)]
    assert "地域産業の振興" in headings[0].text
    assert [c.text for c in chunks if "\n" in c.text] == []  # so no 「地\n域」 either


def test_statements_belong_to_the_target_picture(chunks: list[Chunk]) -> None:
    statements = _of(chunks, "statement")
    assert [(c.section, c.text) for c in statements] == [(TARGET, s) for s in STATEMENTS]
    assert [(c.section, c.text) for c in _of(chunks, "note")] == [
        (TARGET, "〈概ね２０３４年度(※)の地域のめざす姿を示しています。〉※北海道総合開発計画及び北海道総合計画の推進期間")]


def test_title_slogan_and_section_roots(chunks: list[Chunk]) -> None:
    assert [(c.kind, c.section, c.text) for c in chunks[:4]] == [
        ("title", (), TITLE), ("slogan", (), SLOGAN), ("section", (), TARGET[0]), ("section", (), ROOT_SECTION)]
    assert len(chunks) == 43
    assert [c.order for c in chunks] == list(range(43))
    assert {(c.source, c.title, c.page) for c in chunks} == {(VISION, TITLE, None)}


def _drop_mark(s: str) -> str:
    return s[1:] if s[:1] in BULLET_MARKS else s


def test_every_chunk_is_verbatim_and_its_span_points_at_it(doc: LoadedDoc, chunks: list[Chunk]) -> None:
    whole = squash_whitespace(doc.text)
    for c in chunks:
        assert squash_whitespace(c.text) in whole, c
        assert squash_whitespace(c.text) == _drop_mark(squash_whitespace(doc.text[c.start:c.end])), c
        assert not doc.text[c.start].isspace() and not doc.text[c.end - 1].isspace(), c


def test_quotes_keep_the_source_characters(doc: LoadedDoc, chunks: list[Chunk]) -> None:
    coal = next(c for c in chunks if c.text == COAL)
    assert "\u041e" in coal.text and "O" not in coal.text and "Ｏ" not in coal.text
    assert coal.section == (ROOT_SECTION, D3)
    # The span covers the wrapped lines of the source, marks and breaks excluded.
    assert doc.text[coal.start:coal.end] == "国内唯一の坑内掘炭鉱の保安の\n確保とＣО₂坑内埋め戻し技術の\n促進"


def test_embed_text_is_the_passage_and_the_section_path_stays_on_the_chunk(chunks: list[Chunk]) -> None:
    deer = next(c for c in chunks if c.text == DEER)
    assert deer.embed_text() == DEER
    assert deer.section_label == f"{ROOT_SECTION} › {D1}"
    title = chunks[0]
    assert title.embed_text() == TITLE


def test_chunk_ids_are_stable_and_follow_the_text(doc: LoadedDoc, chunks: list[Chunk]) -> None:
    again = Chunker().split(doc)
    assert [c.id for c in again] == [c.id for c in chunks]
    assert len({c.id for c in chunks}) == 43
    deer = next(c for c in chunks if c.text == DEER)
    # Pinned: ids are keys of the index, the embedding cache and saved feedback.
    assert deer.id == "8975551d8529e71aeb1a" == chunk_id(VISION, (ROOT_SECTION, D1), DEER)

    edited = replace(doc, text=doc.text.replace("エゾシカの有効活用の促進", "エゾシカの有効活用の一層の促進"))
    changed = Chunker().split(edited)
    new_deer = next(c for c in changed if c.order == deer.order)
    assert new_deer.text == DEER.replace("の促進と", "の一層の促進と")
    assert new_deer.id != deer.id
    assert [c.id for c in changed if c.order != deer.order] == [c.id for c in chunks if c.order != deer.order]
    renamed = Chunker().split(replace(doc, source="copy/" + VISION))
    assert {c.id for c in renamed}.isdisjoint(c.id for c in chunks)


# ---- a generic document -----------------------------------------------------------------

SENTENCES = [f"釧路・根室地域では第{i}期の取組として農林水産業の振興と観光資源の活用を一体的に進めます。"
             for i in range(1, 13)]  # 44 characters each for 1–9, 45 for 10–12


def _wrap(text: str, width: int) -> str:
    """Wrap like a PDF text layer: hard breaks at a fixed width, inside words."""
    lines = [text[i:i + width] for i in range(0, len(text), width)]
    # Keep the wraps unambiguous: no line opens with 「・」 (a bullet) or splits a number.
    assert not any(ln.startswith("・") for ln in lines)
    assert not any(a[-1].isdigit() and b[0].isdigit() for a, b in zip(lines, lines[1:]))
    return "\n".join(lines)


def test_long_paragraph_splits_at_sentence_ends() -> None:
    para = _wrap("".join(SENTENCES), 33)
    text = para + "\n"
    doc = LoadedDoc(source="long.txt", text=text, title="long", sha256="0")
    chunks = Chunker().split(doc)
    assert [(c.kind, c.text) for c in chunks] == [
        ("paragraph", "".join(SENTENCES[:9])),  # 396 characters; one more sentence would pass 400
        ("paragraph", "".join(SENTENCES[9:])),
    ]
    assert all(len(c.text) <= 400 for c in chunks)
    first, second = chunks
    assert first.start == 0 and second.end == len(para)
    assert text[first.end - 1] == "。" and text[second.start] == "釧"
    assert text[first.end:second.start].strip() == ""
    for c in chunks:
        assert squash_whitespace(text[c.start:c.end]) == c.text


def test_one_sentence_over_the_limit_is_cut_at_the_limit() -> None:
    sentence = "地域" * 250 + "。"  # 501 characters, no sentence end before the last
    doc = LoadedDoc(source="run-on.txt", text=sentence, title="run-on", sha256="0")
    chunks = Chunker().split(doc)
    assert [(len(c.text), c.start, c.end) for c in chunks] == [(400, 0, 400), (101, 400, 501)]
    assert "".join(c.text for c in chunks) == sentence


def test_short_fragments_merge_but_bullets_stay_alone() -> None:
    longer = "三つ目の段落はもう少し長く書いて、四十文字を超えるようにしておきます。これで十分な長さです。"
    text = f"短い段落です。\n\n次も短い。\n\n{longer}\n\n・短い項目\n\n{longer}\n\n以上。\n"
    doc = LoadedDoc(source="short.txt", text=text, title="short", sha256="0")
    chunks = Chunker().split(doc)
    assert [(c.kind, c.text) for c in chunks] == [
        ("paragraph", f"短い段落です。\n次も短い。\n{longer}"),
        ("bullet", "短い項目"),
        ("paragraph", f"{longer}\n以上。"),  # a short fragment at the end joins the one before
    ]
    assert [(c.start, c.end) for c in chunks] == [
        (0, text.index("\n\n・")), (text.index("短い項目"), text.index("短い項目") + 4),
        (text.rindex(longer), len(text) - 1)]
    for c in chunks:
        assert squash_whitespace(text[c.start:c.end]) == squash_whitespace(c.text)
