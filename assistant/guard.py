"""Fidelity guard: does each sentence of a generated answer rest on the passages it cites?

A sentence is supported when it cites at least one existing passage, enough of its content
words (or, for Japanese, of its character bigrams) occur in the cited passages, and every
number in it occurs there too. English sentences citing Japanese passages share almost no
words with them, so they are flagged unless their terms happen to match (ICT, CO2 …).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from ingest.normalize import normalize_for_index
from ingest.tokenize import JapaneseTokenizer
from ingest.types import Chunk

MARKER = "［要確認：出典で確認できません］"
REFUSALS = ("ビジョンには記載がありません", "the vision does not cover this")
MODES = ("mark", "remove")
_GONE = "\x00"  # stands in for a removed sentence until its line is tidied

_CITE = r"[\[［]\s*[0-9０-９]+(?:\s*[,，、\-–〜~]\s*[0-9０-９]+)*\s*[\]］]"
_CITE_RE = re.compile(_CITE)
# A sentence ends at 。！？, or at .!? before a space, a citation or the end of the line
# (so 3.5 and e.g. in mid-sentence do not split). Closing brackets and the citation markers
# right after the end belong to the sentence.
_END_RE = re.compile(rf"(?:[。！？]|[.!?](?=[\s\[［]|$))[」』）)\"'”’]*(?:\s*{_CITE})*")
_ONLY_CITES_RE = re.compile(rf"^(?:\s*{_CITE})+\s*[。.]?\s*$")
# List enumerators at the start of a line: their digits are not claims.
_ENUM_RE = re.compile(r"^\s*(?:[-*+・•●○◆■□]|\d{1,2}[.)．）]|[（(]\d{1,2}[)）]|[①-⑳])\s*")
_HEADING_RE = re.compile(r"^(?:【[^】]*】|#{1,6}\s.*|■.*|\*\*[^*]+\*\*[:：]?|要確認事項[:：]?)$")
_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")

_CONTENT_POS = ("名詞", "動詞", "形容詞", "形状詞")
_SKIP_POS2 = ("非自立可能", "数詞", "助数詞", "助動詞語幹")
# Words that frame or courteously wrap an answer but claim nothing about the plan.
_NO_CLAIM_JA = frozenset("""
ビジョン 計画 記載 記す 書く 示す 挙げる 掲げる 述べる 言う 次 以下 通り 様 よう 事 物 為る 有る 居る 成る おる
問い合わせ 問い合わせる 問う 合わせる 頂く 誠 御座る 願い 願う 致す 申す 上げる 申し上げる 回答 答える 質問 件 点
不明 気軽 下さる 宜しい 今後 確認 事項 担当 存ずる 思う 考える 参考 幸い 関する つく 就く 対する 旨 内容 当該
施策 取り組み 取組 取り組む 項目 方向 主 具体 具体的
""".split())
_EN_STOP = frozenset("""
a an the is are was were be been being am of to in on at for from by with and or but not no nor as into about
this that these those it its they them their there here which who whom what when where why how than then so
also such any some all each both more most other only very can could will would should may might must shall
do does did done has have had i we you he she our your my me us
vision plan plans states state says say said mentions mention mentioned notes lists list describes
includes include including according following follows regarding under section item items
thank thanks question questions answer please
""".split())


@dataclass(frozen=True)
class SentenceVerdict:
    sentence: str
    cited: tuple[int, ...]  # valid citation numbers in the sentence
    supported: bool
    # ok | refusal | no-claim | no-citation | invalid-citation | low-overlap | cross-language
    # | number-mismatch
    reason: str
    overlap: float = 0.0  # the better of term and bigram overlap
    invalid: tuple[int, ...] = ()
    missing_numbers: tuple[str, ...] = ()


@dataclass
class GuardResult:
    text: str  # the answer after the mode was applied
    sentences: list[SentenceVerdict] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    invalid_citations: list[int] = field(default_factory=list)
    cited: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unsupported and not self.invalid_citations


@dataclass
class _Span:
    start: int
    end: int
    checked: bool  # False for headings and the exempt 要確認事項 section


class FidelityGuard:
    """Checks generated sentences against the cited passages (``passages[i]`` is [i+1])."""

    def __init__(self, tokenizer: JapaneseTokenizer, mode: str = "mark", min_overlap: float = 0.5) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.tokenizer = tokenizer
        self.mode = mode
        self.min_overlap = min_overlap

    def check(self, text: str, passages: list[Chunk], mode: str | None = None, draft: bool = False) -> GuardResult:
        """Judge every sentence. ``draft=True`` for reply drafts: their 【見出し】 lines and the
        bullet list under 【要確認事項】 (open questions) are kept but not judged."""
        mode = mode or self.mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        text = text.replace(_GONE, "")
        spans = split_sentences(text, draft)
        verdicts: list[SentenceVerdict | None] = [
            self._judge(text[s.start:s.end].strip(), passages) if s.checked else None for s in spans
        ]
        judged = [v for v in verdicts if v is not None]
        return GuardResult(
            text=_apply(text, spans, verdicts, mode),
            sentences=judged,
            unsupported=[v.sentence for v in judged if not v.supported],
            invalid_citations=sorted({n for v in judged for n in v.invalid}),
            cited=sorted({n for v in judged for n in v.cited}),
        )

    # -- one sentence ---------------------------------------------------------------------

    def _judge(self, sentence: str, passages: list[Chunk]) -> SentenceVerdict:
        numbers = citation_numbers(sentence)
        valid = tuple(sorted({n for n in numbers if 1 <= n <= len(passages)}))
        invalid = tuple(sorted({n for n in numbers if not 1 <= n <= len(passages)}))
        claim = _claim_text(sentence)
        if _is_refusal(claim):
            return SentenceVerdict(sentence, valid, True, "refusal", invalid=invalid)
        english = not _has_japanese(claim)
        terms = self._terms(claim, english)
        figures = _numbers(claim)
        if not valid:
            if not terms and not figures and not invalid:
                return SentenceVerdict(sentence, (), True, "no-claim")
            reason = "invalid-citation" if invalid else "no-citation"
            return SentenceVerdict(sentence, (), False, reason, invalid=invalid)
        source = "\n".join(_passage_text(passages[n - 1]) for n in valid)
        missing = tuple(f for f in figures if f not in _numbers(source))
        overlap = self._overlap(claim, terms, source, english)
        if missing:
            return SentenceVerdict(sentence, valid, False, "number-mismatch", overlap, invalid, missing)
        if terms and overlap < self.min_overlap:
            reason = "cross-language" if english and _has_japanese(source) else "low-overlap"
            return SentenceVerdict(sentence, valid, False, reason, overlap, invalid)
        return SentenceVerdict(sentence, valid, True, "ok", overlap if terms else 1.0, invalid)

    def _terms(self, claim: str, english: bool) -> list[str]:
        if english:
            words = re.findall(r"[a-z][a-z0-9\-]*", normalize_for_index(claim))
            return list(dict.fromkeys(w for w in words if w not in _EN_STOP and len(w) > 1))
        out = []
        for t in self.tokenizer.analyze(claim):
            if t.pos not in _CONTENT_POS or t.pos2 in _SKIP_POS2 or t.norm in _NO_CLAIM_JA:
                continue
            if t.surface.isascii() and (t.norm in _EN_STOP or not t.norm.strip()):
                continue
            out.append(t.norm)
        return list(dict.fromkeys(out))

    def _overlap(self, claim: str, terms: list[str], source: str, english: bool) -> float:
        if not terms:
            return 0.0
        src = normalize_for_index(source)
        if english:
            words = set(re.findall(r"[a-z][a-z0-9\-]*", src))
            return sum(1 for w in terms if w in words) / len(terms)
        norms = {t.norm for t in self.tokenizer.analyze(source)}
        # A term also counts when its text occurs in the passage but Sudachi split it differently.
        share = sum(1 for w in terms if w in norms or (len(w) > 1 and w in src)) / len(terms)
        return max(share, _bigram_overlap(claim, src))


# -- sentences ------------------------------------------------------------------------------

def split_sentences(text: str, draft: bool = False) -> list[_Span]:
    """Sentence spans of ``text``; line breaks always end a sentence."""
    spans: list[_Span] = []
    exempt = False
    offset = 0
    for line in text.splitlines(keepends=True):
        body = (line.splitlines() or [""])[0]
        stripped = body.strip()
        if draft and stripped and _HEADING_RE.match(stripped):
            # The 要確認事項 list of a draft holds open questions, not claims.
            exempt = "要確認" in stripped
            spans.append(_Span(offset, offset + len(body), False))
        elif stripped:
            enum = _ENUM_RE.match(body)
            # The exempt section is the list right under its heading; prose after it is checked.
            exempt = exempt and bool(enum)
            pos = enum.end() if enum else 0
            for start, end in _line_sentences(body, pos):
                piece = body[start:end]
                if _ONLY_CITES_RE.match(piece) and spans and spans[-1].checked:
                    spans[-1].end = offset + end  # a citation left alone belongs to the sentence before
                    continue
                spans.append(_Span(offset + start, offset + end, not exempt))
        offset += len(line)
    return spans


def _line_sentences(line: str, pos: int) -> list[tuple[int, int]]:
    out = []
    start = pos
    for m in _END_RE.finditer(line, pos):
        if line[start:m.end()].strip():
            out.append((start, m.end()))
        start = m.end()
    if line[start:].strip():
        out.append((start, len(line.rstrip())))
    # Drop leading whitespace from each span so marks and removals stay tidy.
    return [(s + len(line[s:e]) - len(line[s:e].lstrip()), e) for s, e in out]


def citation_numbers(sentence: str) -> list[int]:
    out: list[int] = []
    for m in _CITE_RE.finditer(sentence):
        inner = unicodedata.normalize("NFKC", m.group())[1:-1]
        for part in re.split(r"\s*[,，、]\s*", inner.strip()):
            bounds = [int(x) for x in re.findall(r"\d+", part)]
            if len(bounds) == 2 and 0 < bounds[1] - bounds[0] <= 20:
                out.extend(range(bounds[0], bounds[1] + 1))
            else:
                out.extend(bounds)
    return out


def _apply(text: str, spans: list[_Span], verdicts: list[SentenceVerdict | None], mode: str) -> str:
    bad = [(s.start, s.end) for s, v in zip(spans, verdicts) if v is not None and not v.supported]
    if not bad:
        return text.strip()
    out, last = [], 0
    for start, end in bad:
        out.append(text[last:end] + MARKER if mode == "mark" else text[last:start] + _GONE)
        last = end
    out.append(text[last:])
    joined = "".join(out)
    if mode == "remove":
        # Drop a line whose every sentence was removed (at most a bullet or number is left);
        # blank lines that were already there stay.
        kept = []
        for ln in joined.splitlines():
            rest = ln.replace(_GONE, "")
            if _GONE in ln and (not rest.strip() or _ENUM_RE.fullmatch(rest)):
                continue
            kept.append(rest.rstrip())
        joined = "\n".join(kept)
    return joined.strip()


# -- text helpers ---------------------------------------------------------------------------

def _claim_text(sentence: str) -> str:
    """The sentence without citation markers or a leading bullet/number."""
    text = _CITE_RE.sub("", sentence)
    enum = _ENUM_RE.match(text)
    return text[enum.end():].strip() if enum else text.strip()


def _is_refusal(claim: str) -> bool:
    core = normalize_for_index(claim).strip(" 　。.!！「」\"'")
    return core in REFUSALS


def _has_japanese(text: str) -> bool:
    return any(unicodedata.name(ch, "").startswith(("CJK", "HIRAGANA", "KATAKANA")) for ch in text)


def _numbers(text: str) -> set[str]:
    # NFKC turns ２０３４ into 2034 and ① into 1; thousands separators are dropped.
    return {m.group().replace(",", "") for m in _NUMBER_RE.finditer(normalize_for_index(text))}


def _passage_text(chunk: Chunk) -> str:
    # The section path is source text too (the model sees it beside each passage).
    return "\n".join([*chunk.section, chunk.text])


def _bigram_overlap(claim: str, normalized_source: str) -> float:
    def grams(s: str) -> set[str]:
        s = re.sub(r"[\W_]+", "", s)
        return {s[i:i + 2] for i in range(len(s) - 1)}

    mine = grams(normalize_for_index(claim))
    return len(mine & grams(normalized_source)) / len(mine) if mine else 0.0
