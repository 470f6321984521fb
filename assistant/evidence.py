"""Deciding whether the retrieved passages answer the question.

A raw similarity threshold does not work here: unanswerable questions get top cosine
0.83–0.86, the same as answerable ones. So the decision rests on evidence: are the
question's content terms found in the top passages (literally, or as a near-synonym by
term embedding), and does it ask for a kind of fact (a budget, a population, a place)
that the passages do not contain?
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np

from assistant.query import Term, TermExtractor, detect_language
from assistant.types import Hit
from ingest.normalize import normalize_for_index
from ingest.tokenize import is_kanji

MAX_CACHED_TERMS = 50_000  # per cache; cleared when full
# Questions for facts of these kinds need that fact in the passages, not just the topic.
DATA_TERMS = frozenset("""
予算 費用 金額 円 額 人口 人数 何人 税 税率 時刻 時刻表 日程 スケジュール 日時 担当 窓口 電話 住所 営業 料金
補助金 交付金 給付 件数 割合 統計 ランキング 市長 町長 知事 議員 選挙 開催 締め切り 締切 申請 応募
budget cost costs price population tax schedule timetable phone address mayor governor statistics
amount fee fees funding subsidy 時間 診療時間 営業時間 開館時間 hours
""".split())
_INJECTION = re.compile(
    r"(指示|命令|ルール|設定).{0,6}(無視|忘れ)|システム\s*プロンプト|プロンプト.{0,6}(表示|教え|出力|見せ)|"
    r"ignore\s+(all\s+|any\s+|your\s+|the\s+|previous\s+|prior\s+|above\s+)*(instructions|rules|prompts?)|"
    r"出典.{0,4}(付けず|つけず|なし|不要|省略)|管理者.{0,4}(指示|命令|モード)|指示に従|"
    r"system\s+prompt|hidden\s+prompt|developer\s+mode|jailbreak|you\s+are\s+now\b|disregard\s+(all|your|previous)|"
    r"ignore\s+(all\s+|any\s+)?(prior|previous|above)\s+\w+|"
    r"api\s*keys?|APIキー|パスワード|password|環境変数|environment variables|your (?:configuration|settings|model name)",
    re.I,
)


_QUANTITY = re.compile(r"何[万千百億]*(?:人|円|件|名|割|パーセント|%|世帯|社|校|台)|いくら|"
                       r"どのくらいの(?:人|金|予算|費用)|how many|how much", re.I)
_WHEN = re.compile(r"いつ|時期|何年|何月|何日|日程|スケジュール|開通予定|完成予定|\bwhen\b|(?:which|what) year", re.I)
_HAS_DATE = re.compile(r"[0-9０-９]+\s*(?:年|月|日|か月|ヶ月)|年度|期間|令和|平成")
_HAS_AMOUNT = re.compile(r"[0-9０-９]+\s*(?:人|名|円|件|%|％|割|世帯|ha|ヘクタール|トン|t\b)")


def strip_injection(question: str) -> tuple[str, bool]:
    """Drop the sentences of a question that try to steer the assistant.

    Returns what is left and whether anything was dropped.
    """
    parts = [p for p in re.split(r"(?<=[。！？!?\n])|(?<=\.\s)", question) if p.strip()]
    # NFKC first: ＳＹＳＴＥＭ ＰＲＯＭＰＴ in full-width letters is the same request.
    kept = [p for p in parts if not _INJECTION.search(unicodedata.normalize("NFKC", p))]
    return "".join(kept).strip(), len(kept) != len(parts)


def _bounded(cache: dict, key: str, make):
    """``cache[key]``, made on a miss; a full cache starts over (a long-running server
    meets endless new passages)."""
    value = cache.get(key)
    if value is None:
        if len(cache) > MAX_CACHED_TERMS:
            cache.clear()
        value = cache[key] = make()
    return value


@dataclass
class Verdict:
    answerable: bool
    covered: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    reason: str = ""


class EvidenceJudge:
    """Checks term coverage of the top passages.

    ``term_sim`` is the cosine above which a question term and a passage term count as
    the same concept (e5-small: 病院/医療 0.94, 再エネ/再生可能エネルギー 0.91, while
    unrelated pairs stay under 0.89).
    """

    def __init__(self, extractor: TermExtractor, embeddings, top_n: int = 5, term_sim: float = 0.905,
                 min_coverage: float = 0.5) -> None:
        self.extractor = extractor
        self.embeddings = embeddings
        self.top_n = top_n
        self.term_sim = term_sim
        self.min_coverage = min_coverage
        self._indexed: dict[str, np.ndarray] = {}  # the index's term vectors (see use_index)
        self._term_vectors: dict[str, np.ndarray] = {}  # terms embedded here, questions' mostly
        self._chunk_terms: dict[str, list[str]] = {}
        self._chunk_tokens: dict[str, set[str]] = {}
        self._chunk_text: dict[str, str] = {}  # normalized embed text

    def use_index(self, term_vectors: dict[str, np.ndarray]) -> None:
        """The vectors the ingest computed for every term of the indexed chunks."""
        self._indexed = term_vectors
        self._chunk_terms, self._chunk_tokens, self._chunk_text = {}, {}, {}

    def unknown(self, terms: list[str]) -> list[str]:
        """The terms that have no vector yet."""
        return [t for t in dict.fromkeys(terms) if t not in self._indexed and t not in self._term_vectors]

    def remember(self, terms: list[str], vectors) -> None:
        """Vectors of terms, embedded here or with the query in one batch."""
        if len(self._term_vectors) > MAX_CACHED_TERMS:  # a long-running server meets endless new words
            self._term_vectors.clear()
        for t, v in zip(terms, vectors):
            self._term_vectors[t] = np.asarray(v, dtype=np.float32)

    def _embed_missing(self, terms: list[str]) -> None:
        """Embed the terms not known yet in one batch (one call instead of dozens)."""
        todo = self.unknown(terms)
        if not todo:
            return
        embed_many = getattr(self.embeddings, "embed_queries", None)
        self.remember(todo, embed_many(todo) if embed_many else [self.embeddings.embed_query(t) for t in todo])

    def _vec(self, term: str) -> np.ndarray:
        v = self._indexed.get(term)
        if v is None:
            v = self._term_vectors.get(term)
        if v is None:
            self.remember([term], [self.embeddings.embed_query(term)])
            v = self._term_vectors[term]
        return v

    def _terms_of(self, hit: Hit) -> list[str]:
        return _bounded(self._chunk_terms, hit.chunk.id,
                        lambda: [t.text for t in self.extractor.terms(hit.chunk.text)])

    def _tokens_of(self, hit: Hit) -> set[str]:
        return _bounded(self._chunk_tokens, hit.chunk.id, lambda: set(self.extractor.tokenizer.tokens(hit.chunk.text)))

    def term_score(self, term: Term, hits: list[Hit]) -> float:
        """1 when the term (or a near-synonym) is in the passages; 0.5 when only one of
        its kanji is (鹿肉 against 蝦夷鹿, Sudachi's normal form of エゾシカ); else 0."""
        if self.term_in(term, hits):
            return 1.0
        kanji = [ch for ch in term.text if is_kanji(ch)]
        if len(kanji) >= 2 and any(ch in self._tokens_of(h) for h in hits for ch in kanji):
            return 0.5
        return 0.0

    def _text_of(self, hit: Hit) -> str:
        return _bounded(self._chunk_text, hit.chunk.id, lambda: normalize_for_index(hit.chunk.embed_text()))

    def term_in(self, term: Term, hits: list[Hit]) -> bool:
        if self.literal_in(term, hits):
            return True
        passage_terms = list(dict.fromkeys(t for h in hits for t in self._terms_of(h)))
        if not passage_terms:
            return False
        self._embed_missing([term.text, *passage_terms])
        q = self._vec(term.text)
        sims = np.stack([self._vec(t) for t in passage_terms]) @ q
        return float(sims.max()) >= self.term_sim

    def _best(self, terms: list[Term], hits: list[Hit]) -> Hit:
        """The passage that holds the most question terms (the first on a tie)."""
        return max(hits, key=lambda h: sum(self.term_score(t, [h]) for t in terms)) if terms else hits[0]

    def literal_in(self, term: Term, hits: list[Hit]) -> bool:
        needle = normalize_for_index(term.text)
        return any(needle in self._text_of(h) for h in hits)

    def judge(self, query: str, hits: list[Hit], question: str = "") -> Verdict:
        """``question`` is the user's own wording when ``query`` is a rewrite of it."""
        if not hits:
            return Verdict(False, reason="no passages")
        terms = self.extractor.terms(query)
        top = hits[: self.top_n]
        if _QUANTITY.search(f"{question} {query}") and not any(_HAS_AMOUNT.search(h.chunk.text) for h in top):
            return Verdict(False, reason="asks for an amount and no passage states one")
        # The question's terms that need a vector, in one batch rather than one call each.
        self._embed_missing([t.text for t in terms if not self.literal_in(t, top)])
        if _WHEN.search(f"{question} {query}") and not _HAS_DATE.search(self._best(terms, top).chunk.text):
            return Verdict(False, reason="asks when, and the best passage states no date or period")
        english = detect_language(query) == "en"
        if not terms:
            return Verdict(True, reason="no content terms; answered from the top passages")
        covered, missing, score = [], [], 0.0
        for t in terms:
            s = self.term_score(t, top)
            score += s
            (covered if s == 1.0 else missing).append(t)
        # Names and facts must be there literally: 知事 is close to 知床 as a vector.
        strict = [t for t in terms if (t.proper or t.text in DATA_TERMS) and not self.literal_in(t, top)]
        missing = list(dict.fromkeys(missing + strict))
        names = [t.text for t in missing]
        if english:
            # Term embeddings do not bridge English and Japanese reliably (deer/エゾシカ
            # 0.83), so English questions abstain only on facts the plan cannot hold.
            if any(t.text in DATA_TERMS for t in missing):
                return Verdict(False, [t.text for t in covered], names, "asks for a fact the passages do not hold")
            return Verdict(True, [t.text for t in covered], names, "english: no fact-type gap")
        if any(t.proper for t in missing):
            return Verdict(False, [t.text for t in covered], names, "a named place or body is not in the passages")
        if any(t.text in DATA_TERMS for t in missing):
            return Verdict(False, [t.text for t in covered], names, "asks for a fact the passages do not hold")
        if len(terms) >= 2 and not covered:
            return Verdict(False, [], names, "no question term is found whole in the passages")
        coverage = score / len(terms)
        if coverage < self.min_coverage:
            return Verdict(False, [t.text for t in covered], names, f"term coverage {coverage:.2f}")
        return Verdict(True, [t.text for t in covered], names, f"term coverage {coverage:.2f}")
