"""What a question asks, read from its grammar: the clause that asks, its content terms and
named entities, and the kind of fact an interrogative asks for.

Japanese questions often open with context (「千歳から引っ越してきた。子育ての支援はある？」,
「別海町は酪農の町なんですが、酪農は…」). The asking clause is the last clause of the last
asking sentence; clauses end at a conjunctive particle before a comma. Names in the context
are not what is asked about.

The fact kind comes from the interrogative, a closed class of words: 何 + a counter (何頭,
何％), 幾ら and どれくらい ask for a quantity; いつ and 何 + a time counter (何年) for a date;
誰 for a person or body; どこ, どの, どれ for a particular place or thing. English: how
many/much, when, who, where/which.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from assistant.types import Language
from ingest.terms import Term, TermExtractor, detect_language
from ingest.tokenize import Token

FactKind = Literal["quantity", "date", "who", "which", ""]
# The words of one question that are matched and embedded: the asking clause's first, then the
# context's. A question of 2,000 unknown words otherwise costs an embedding per word (22 CPU
# seconds measured); real questions have fewer than ten content words.
MAX_TERMS = 16

_TIME_COUNTERS = {"年", "年度", "月", "日", "時", "週", "世紀", "年代"}
# Normalized forms of interrogatives that ask for a fact of one kind on their own.
_INTERROGATIVES: dict[str, FactKind] = {
    "いつ": "date", "いつ頃": "date", "何時": "date",
    "誰": "who", "どなた": "who",
    "どこ": "which", "どちら": "which", "どっち": "which",
    "幾ら": "quantity",
}
_DEGREE = {"くらい", "ぐらい", "ほど", "だけ"}  # どれ/どの + these ask "how much"
_CLAUSE_END = {"が", "けど", "けれど", "けれども", "ので", "から", "て", "のに", "し", "ば", "たら"}
_REQUEST_VERBS = {"教える", "下さる", "頂く", "願う", "知る"}
_EN_KINDS: list[tuple[re.Pattern, FactKind]] = [
    (re.compile(r"\bhow (?:many|much)\b|\bwhat (?:percentage|share|number)\b", re.I), "quantity"),
    (re.compile(r"\bwhen\b|\bwhat (?:year|date|time)\b|\buntil when\b|\bhow long\b", re.I), "date"),
    (re.compile(r"\bwho\b|\bwhich (?:company|organi[sz]ation|body|agency|office)\b", re.I), "who"),
    (re.compile(r"\bwhere\b|\bwhich\b", re.I), "which"),
]


@dataclass(frozen=True, kw_only=True)
class Question:
    text: str
    language: Language
    terms: list[Term]  # every content term
    focus: list[Term]  # the content terms of the asking clause (all terms when it has none)
    asks: FactKind = ""  # the kind of fact an interrogative asks for
    asked: str = ""  # the words the interrogative asks about (エゾシカの駆除目標), for messages
    context: list[Term] = field(default_factory=list)  # terms outside the asking clause
    lemmas: frozenset[str] = frozenset()  # normalized forms of every word (lower-cased English words)

    @property
    def entities(self) -> list[Term]:
        """Proper nouns in the asking clause: these are what is asked about."""
        return [t for t in self.focus if t.proper]


class QuestionAnalyzer:
    def __init__(self, extractor: TermExtractor) -> None:
        self.extractor = extractor

    def analyze(self, text: str) -> Question:
        language = detect_language(text)
        terms = self.extractor.terms(text)
        if language == "en":
            clause = _english_clause(text)
            focus = (self.extractor.terms(clause) or terms)[:MAX_TERMS]
            context = [t for t in terms if t not in focus][:MAX_TERMS - len(focus)]
            kind = next((k for pattern, k in _EN_KINDS if pattern.search(clause)), "")
            return Question(text=text, language="en", terms=focus + context, focus=focus, asks=kind, context=context,
                            lemmas=frozenset(w.lower() for w in re.findall(r"[A-Za-z]+", text)))
        tokens = self.extractor.tokenizer.analyze(text)
        clause = _asking_clause(tokens, lambda span: bool(self.extractor.terms(span)))
        terms = [t for t in terms if t.text not in _INTERROGATIVES]
        focus = [t for t in self.extractor.terms(clause) if t.text not in _INTERROGATIVES] or terms
        kind, asked = _fact_kind(self.extractor.tokenizer.analyze(clause))
        focus = focus[:MAX_TERMS]
        focus_texts = {t.text for t in focus}
        context = [t for t in terms if t.text not in focus_texts][:MAX_TERMS - len(focus)]
        return Question(text=text, language="ja", terms=focus + context, focus=focus, asks=kind, asked=asked,
                        context=context, lemmas=frozenset(t.norm for t in tokens))


def _sentences(tokens: list[Token]) -> list[list[Token]]:
    out: list[list[Token]] = [[]]
    for t in tokens:
        out[-1].append(t)
        if t.pos2 == "句点" or t.surface in ("?", "!", "\n"):
            out.append([])
    return [s for s in out if any(t.pos not in ("補助記号", "空白") for t in s)]


def _asks(sentence: list[Token]) -> bool:
    """A question mark, an interrogative, a sentence-final particle or a request."""
    words = [t for t in sentence if t.pos not in ("補助記号", "空白")]
    return (any(t.surface in ("?", "？") for t in sentence) or any(_interrogative(t) for t in sentence)
            or (bool(words) and words[-1].pos2 == "終助詞") or any(t.norm in _REQUEST_VERBS for t in sentence))


def _clauses(sentence: list[Token]) -> list[list[Token]]:
    out: list[list[Token]] = [[]]
    for i, t in enumerate(sentence):
        out[-1].append(t)
        after = sentence[i + 1] if i + 1 < len(sentence) else None
        if t.pos2 == "接続助詞" and t.norm in _CLAUSE_END and after is not None and after.pos2 == "読点":
            out.append([])
    return [c for c in out if c]


def _asking_clause(tokens: list[Token], has_terms) -> str:
    """The text of the clause that asks: the last clause of the last asking sentence, or
    the nearest clause before it that has content terms."""
    sentences = _sentences(tokens)
    asking = [s for s in sentences if _asks(s)] or sentences[-1:]
    if not asking:
        return ""
    last = asking[-1]
    pieces = _clauses(last)
    earlier = [c for s in sentences[: sentences.index(last)] for c in _clauses(s)]
    for clause in reversed(earlier + pieces):
        span = "".join(t.surface for t in clause)
        if has_terms(span):
            return span
    return "".join(t.surface for t in last)


def _interrogative(t: Token) -> bool:
    return t.norm in _INTERROGATIVES or (t.pos2 == "数詞" and t.norm.startswith("何")) or t.norm in ("どの", "どれ")


def _fact_kind(tokens: list[Token]) -> tuple[FactKind, str]:
    """The fact kind the clause's interrogative asks for, and the words it asks about."""
    for i, t in enumerate(tokens):
        after = tokens[i + 1] if i + 1 < len(tokens) else None
        kind: FactKind = ""
        if t.norm in _INTERROGATIVES:
            kind = _INTERROGATIVES[t.norm]
        elif t.pos2 == "数詞" and t.norm.startswith("何"):
            # 何 + a counter: a time counter asks when (何年), any other how many (何頭, 何％).
            counter = after.norm if after is not None and ("助数詞" in after.pos2 + after.pos3
                                                           or after.pos == "接尾辞") else ""
            if counter or len(t.norm) > 1:  # 何万, 何十
                kind = "date" if counter in _TIME_COUNTERS else "quantity"
        elif t.norm in ("どの", "どれ") and not (after is not None and after.norm in ("よう", "様")):
            kind = "quantity" if after is not None and after.norm in _DEGREE else "which"
        if kind:
            return kind, _asked_words(tokens, i)
    return "", ""


def _asked_words(tokens: list[Token], at: int) -> str:
    """The noun phrase the interrogative at ``at`` asks about: the nouns (joined by の) just
    before it, up to the particle that marks them (「エゾシカの駆除目標は年何頭」 → エゾシカの駆除目標),
    or the noun right after it (「どの市町」 → 市町)."""
    end = at
    while end > 0 and (tokens[end - 1].pos in ("助詞", "補助記号") or "助数詞" in tokens[end - 1].pos3):
        end -= 1
    start = end
    while start > 0 and (tokens[start - 1].pos in ("名詞", "接頭辞", "接尾辞")
                         or (tokens[start - 1].norm == "の" and start > 1 and tokens[start - 2].pos == "名詞")):
        start -= 1
    phrase = "".join(t.surface for t in tokens[start:end]).strip("のはがって、")
    if phrase:
        return phrase
    after = [t.surface for t in tokens[at + 1:at + 4] if t.pos in ("名詞", "接尾辞")]
    return "".join(after)


def _english_clause(text: str) -> str:
    sentences = [s for s in re.split(r"(?<=[.?!])\s+", text.strip()) if s]
    asking = [s for s in sentences if s.rstrip().endswith("?")] or sentences[-1:]
    last = asking[-1] if asking else text
    parts = [p for p in re.split(r",\s+(?=(?:is|are|does|do|can|will|what|which|who|when|where|how)\b)", last, flags=re.I)]
    return parts[-1]
