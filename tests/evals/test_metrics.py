import math

import pytest

from evals.metrics import (
    abstention_scores,
    citation_precision,
    citation_recall,
    content_bigrams,
    evidence_match,
    gold_citation_recall,
    hit_at_k,
    key_phrase_recall,
    ndcg_at_k,
    normalize,
    numbers,
    percentile,
    quote_tightness,
    recall_at_k,
    reciprocal_rank,
    supports,
    verbatim_rate,
)

DEER = "個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進"
BOSAI = "地震や津波、火山、大雨などに対する防災体制及び施設の充実・強化"
A = "エゾシカの有効活用の促進"
B = "防災体制及び施設の充実・強化"
MISS = "北方四島交流等事業の推進"


# --- normalization and matching

def test_normalize_folds_cyrillic_o_nfkc_and_whitespace():
    assert normalize("ＣО₂ 吸収\n量") == "CO2吸収量"
    assert normalize("ｏ") == "o" and normalize("\u043e") == "o"


def test_evidence_match_gold_inside_chunk_across_line_wrap():
    assert evidence_match("・担い手の育成・確保に向けた取\n組の促進やＩＣＴ", "担い手の育成・確保に向けた取組の促進")


def test_evidence_match_cyrillic_co2_equals_latin():
    assert evidence_match("藻場造成等のブルーカーボン等によるＣО₂吸収量の確保", "CO2吸収量")


def test_evidence_match_chunk_inside_gold_needs_ten_chars():
    assert evidence_match("エゾシカの有効活用の", DEER)  # 10 chars
    assert not evidence_match("エゾシカの有効活用", DEER)  # 9 chars


def test_evidence_match_empty_and_unrelated():
    assert not evidence_match(DEER, "")
    assert not evidence_match(DEER, MISS)


# --- retrieval

def test_hit_at_k():
    assert hit_at_k([MISS, DEER], [A], k=1) == 0.0
    assert hit_at_k([MISS, DEER], [A], k=2) == 1.0


def test_reciprocal_rank():
    assert reciprocal_rank([MISS, DEER], [A]) == 0.5
    assert reciprocal_rank([MISS, MISS, DEER], [A], k=2) == 0.0
    assert reciprocal_rank([DEER, BOSAI], [B, A]) == 1.0


def test_recall_at_k():
    assert recall_at_k([DEER, MISS, BOSAI], [A, B], k=2) == 0.5
    assert recall_at_k([DEER, MISS, BOSAI], [A, B], k=3) == 1.0


def test_ndcg_hit_at_ranks_two_and_three():
    expected = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k([MISS, DEER, BOSAI], [A, B], k=3) == pytest.approx(expected)
    assert expected == pytest.approx(0.6934264, abs=1e-7)


def test_ndcg_gold_string_counts_once():
    # The second deer chunk earns nothing: 1 + 0 + 1/log2(4) over 1 + 1/log2(3).
    got = ndcg_at_k([DEER, "捕獲したエゾシカの有効活用の促進", BOSAI], [A, B], k=3)
    assert got == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert got == pytest.approx(0.9197208, abs=1e-7)


def test_ndcg_perfect_and_cut_off():
    assert ndcg_at_k([BOSAI, DEER], [A, B]) == 1.0
    assert ndcg_at_k([DEER], [A, B], k=1) == 1.0


def test_ndcg_one_chunk_covering_two_golds_earns_one_gain():
    assert ndcg_at_k([DEER + BOSAI], [A, B]) == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_retrieval_metrics_reject_empty_gold_and_bad_k():
    with pytest.raises(ValueError):
        hit_at_k([DEER], [], k=1)
    with pytest.raises(ValueError):
        ndcg_at_k([DEER], [A], k=0)


# --- support and citations

def test_content_bigrams_skip_hiragana_and_punctuation():
    assert content_bigrams("地域の振興。") == {"地域", "域振", "振興"}
    assert content_bigrams("はい。") == set()


def test_numbers_after_nfkc():
    assert numbers("２，０００円と1,500円、ＣО₂は２０３４年度") == {"2000", "1500", "2", "2034"}


def test_supports_threshold_is_half_of_sentence_bigrams():
    assert supports("地域振興", "地域の振興")  # 3/3
    assert supports("域振興", "地域の振興")  # 2/3
    assert not supports("振興", "地域の振興")  # 1/3


def test_supports_numbers_must_appear_in_quote():
    quote = "概ね２０３４年度(※)の地域のめざす姿を示しています。"
    assert supports(quote, "2034年度の地域のめざす姿です。")
    assert not supports(quote, "2030年度の地域のめざす姿です。")


def test_supports_sentence_without_content_is_not_supported():
    assert not supports(DEER, "はい。")


STATEMENTS = [
    ("エゾシカの有効活用を推進します。", [DEER]),
    ("観光地づくりを推進します。", ["道東自動車道の延伸"]),
    ("２０３４年度の姿です。", []),
]


def test_citation_recall_and_precision():
    assert citation_recall(STATEMENTS, [A]) == pytest.approx(1 / 3)
    assert citation_precision(STATEMENTS, [A]) == 0.5


def test_joint_support_counts_for_recall_but_not_precision():
    # Each quote alone covers 4 of the sentence's 11 bigrams; together 8 of 11.
    statements = [("エゾシカの活用と防災体制の強化", ["エゾシカの有効活用", "防災体制及び施設の充実・強化"])]
    assert citation_recall(statements, [MISS]) == 1.0
    assert citation_precision(statements, [MISS]) == 0.0


def test_citation_metrics_empty_prediction_is_zero():
    assert citation_recall([], [A]) == 0.0
    assert citation_precision([("文です。", [])], [A]) == 0.0


def test_gold_citation_recall():
    assert gold_citation_recall([DEER, "防災体制"], [A, B]) == 0.5
    assert gold_citation_recall([DEER, BOSAI], [A, B]) == 1.0


# --- quotes

def test_verbatim_rate_keeps_characters_but_ignores_whitespace():
    source = "藻場造成等のブルーカーボン等によるＣО₂吸収量の確\n保など"
    quotes = ["ＣО₂吸収量の確保", "CO2吸収量の確保", "ＣО₂ 吸収量"]
    assert verbatim_rate(quotes, source) == pytest.approx(2 / 3)
    assert verbatim_rate([], source) == 0.0


def test_quote_tightness_counts_characters_inside_gold():
    assert quote_tightness(["エゾシカの有効活用の促進と、地域ブランド化の推進"], [A]) == 0.5
    assert quote_tightness([A, "防災体制"], [A]) == 0.75
    assert quote_tightness(["ＣО₂吸収量"], ["CO2吸収量の確保"]) == 1.0


def test_quote_tightness_min_run():
    assert quote_tightness(["シカの有"], [A]) == 1.0
    assert quote_tightness(["シカの有"], [A], min_run=5) == 0.0


# --- abstention, key phrases, latency

def test_abstention_scores():
    scores = abstention_scores([True, True, False, False, True], [True, False, False, True, True])
    assert scores == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "accuracy": 0.6, "false_refusal_rate": 0.5}
    )


def test_abstention_scores_without_predicted_abstentions():
    assert abstention_scores([False, False], [True, False]) == {
        "precision": 0.0, "recall": 0.0, "accuracy": 0.5, "false_refusal_rate": 0.0,
    }


def test_abstention_scores_length_mismatch():
    with pytest.raises(ValueError):
        abstention_scores([True], [True, False])


def test_key_phrase_recall_normalized_and_case_folded():
    answer = "ＩＣＴの導入とCO2吸収量の確保、担い手の育\n成を進めます。"
    assert key_phrase_recall(answer, ["ict", "ＣО₂", "ブランド化"]) == pytest.approx(2 / 3)
    assert key_phrase_recall(answer, ["担い手の育成"]) == 1.0
    with pytest.raises(ValueError):
        key_phrase_recall(answer, [])


def test_percentile_linear_interpolation():
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile([10, 20, 30, 40, 50], 95) == pytest.approx(48.0)
    assert percentile([10, 20, 30, 40, 50], 0) == 10
    assert percentile([10, 20, 30, 40, 50], 100) == 50
    assert percentile([7.0], 95) == 7.0


def test_percentile_rejects_bad_input():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)
