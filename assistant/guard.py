"""Fidelity guard: does each sentence of a generated answer rest on the passages it cites?

Per sentence, in order:
1. the refusal sentence of the prompt passes as it is;
2. a prompt echo (``assistant.echo``) is removed, whatever the mode, and never counts;
3. a citation to a passage that does not exist is an error;
4. a sentence that claims something must cite, and each part of it (the text before each
   group of citation markers) must be supported by the passages that group cites
   (``assistant.support``: numbers, names, polarity and content words, from the passages'
   own text only). A cited passage that does not support its part is an error even when
   another passage would.

``mark`` shows unsupported sentences with a marker, ``remove`` drops them. Whether the kept
sentences answer anything at all (``GuardResult.answers``) is the caller's fallback test.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

from assistant.echo import PromptEcho
from assistant.sentences import sentence_spans
from assistant.support import SupportChecker, flat
from ingest.normalize import normalize_for_index
from ingest.terms import EN_STOP
from ingest.tokenize import JapaneseTokenizer
from ingest.types import Chunk

MARKER = "［要確認：出典で確認できません］"
REFUSALS = ("ビジョンには記載がありません", "the vision does not cover this")
GuardMode = Literal["mark", "remove"]
MODES: tuple[GuardMode, ...] = ("mark", "remove")
Reason = Literal["ok", "refusal", "no-claim", "echo", "no-citation", "invalid-citation", "unsupported-citation",
                 "low-overlap", "number-mismatch", "name-mismatch", "negation", "cross-language"]
# Removed in either mode and never marked: an echo of the prompt, and a sentence with nothing
# to check at all (a stray 「エ」 cut off by the token limit, 「はい。」).
DROPPED = ("echo", "no-claim")
_GONE = "\x00"  # stands in for a removed sentence until its line is tidied

CITE = r"[\[［]\s*[0-9０-９]+(?:\s*[,，、\-–〜~]\s*[0-9０-９]+)*\s*[\]］]"
_CITE_RE = re.compile(CITE)
_CITES_RE = re.compile(rf"(?:\s*{CITE})+")
_ONLY_CITES_RE = re.compile(rf"^(?:\s*{CITE})+\s*[。.]?\s*$")
# List enumerators at the start of a line: their digits are not claims.
_ENUM_RE = re.compile(r"^\s*(?:[-*+・•●○◆■□]|\d{1,2}[.)．）]|[（(]\d{1,2}[)）]|[①-⑳])\s*")
_HEADING_RE = re.compile(r"^(?:【[^】]*】|#{1,6}\s.*|■.*|\*\*[^*]+\*\*[:：]?)$")
_EN_WORD_RE = re.compile(r"[a-z][a-z0-9\-]*")
_EN_FRAMING = frozenset("vision plan states says mentions lists includes notes describes aims promotes".split())


@dataclass(frozen=True, kw_only=True)
class SentenceVerdict:
    sentence: str
    cited: tuple[int, ...]  # valid citation numbers in the sentence
    supported: bool
    reason: Reason
    overlap: float = 0.0  # weighted share of the claim's words found in the cited text
    invalid: tuple[int, ...] = ()
    missing: tuple[str, ...] = ()  # numbers, names or words the cited text lacks
    heading: bool = False  # a heading line (## …, 【…】): it can be kept but answers nothing

    @property
    def answers(self) -> bool:
        """A supported sentence that states something from the passages."""
        return self.supported and self.reason == "ok" and not self.heading


@dataclass(frozen=True, kw_only=True)
class GuardResult:
    text: str  # the answer after the mode was applied (echoes always removed)
    sentences: list[SentenceVerdict] = field(default_factory=list)

    @property
    def unsupported(self) -> list[str]:
        """Sentences judged and not supported (marked in ``mark`` mode, gone in ``remove``)."""
        return [v.sentence for v in self.sentences if not v.supported and v.reason not in DROPPED]

    @property
    def dropped(self) -> list[str]:
        """Prompt echoes and sentences without any claim: removed in either mode."""
        return [v.sentence for v in self.sentences if v.reason in DROPPED]

    @property
    def rejected(self) -> list[str]:
        """Every sentence the guard did not let through as supported, in order, for debugging.
        A prompt echo is named, not quoted: the prompt's text is shown to nobody."""
        return [echo_note(v.sentence) if v.reason == "echo" else v.sentence for v in self.sentences if not v.supported]

    @property
    def invalid_citations(self) -> list[int]:
        return sorted({n for v in self.sentences for n in v.invalid})

    @property
    def cited(self) -> list[int]:
        """The passages that supported sentences cite (rejected sentences' citations do not count)."""
        return sorted({n for v in self.sentences if v.supported for n in v.cited})

    @property
    def answers(self) -> bool:
        """At least one kept sentence states something the passages support (not only a
        heading, a greeting, an echo or nothing at all)."""
        return any(v.answers for v in self.sentences)

    @property
    def ok(self) -> bool:
        return not self.rejected


@dataclass
class _Span:
    start: int
    end: int
    checked: bool  # False for a draft's headings: kept, only echo-checked
    heading: bool = False


class FidelityGuard:
    """Checks generated sentences against the cited passages (``passages[i]`` is [i+1])."""

    def __init__(self, tokenizer: JapaneseTokenizer, mode: GuardMode = "mark") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.tokenizer = tokenizer
        self.mode = mode
        self.support = SupportChecker(tokenizer)

    def check(self, text: str, passages: list[Chunk], mode: GuardMode | None = None, draft: bool = False,
              echo: PromptEcho | None = None) -> GuardResult:
        """Judge every sentence. ``echo``: the prompt the text was generated from. ``draft=True``
        for reply drafts: their 【見出し】 lines are kept without being judged, unless they
        echo the prompt."""
        mode = mode or self.mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        text = text.replace(_GONE, "")
        spans = split_sentences(text, draft)
        verdicts: list[SentenceVerdict | None] = []
        for s in spans:
            sentence = text[s.start:s.end].strip()
            if not s.checked:
                echoed = echo is not None and echo.is_echo(sentence)
                verdicts.append(SentenceVerdict(sentence=sentence, cited=(), supported=False, reason="echo")
                                if echoed else None)
            else:
                verdicts.append(self.judge(sentence, passages, echo, heading=s.heading))
        return GuardResult(text=_apply(text, spans, verdicts, mode), sentences=[v for v in verdicts if v])

    def judge(self, sentence: str, passages: list[Chunk], echo: PromptEcho | None = None,
              heading: bool = False) -> SentenceVerdict:
        """The verdict on one sentence."""
        numbers = citation_numbers(sentence)
        valid = tuple(sorted({n for n in numbers if 1 <= n <= len(passages)}))
        invalid = tuple(sorted({n for n in numbers if not 1 <= n <= len(passages)}))
        claim = claim_text(sentence)

        def verdict(supported: bool, reason: Reason, **more) -> SentenceVerdict:
            return SentenceVerdict(sentence=sentence, cited=valid, supported=supported, reason=reason,
                                   invalid=invalid, heading=heading, **more)

        if _is_refusal(claim):
            return verdict(True, "refusal")
        if echo is not None and echo.is_echo(sentence):
            return verdict(False, "echo")
        if invalid:
            return verdict(False, "invalid-citation")
        if not _has_japanese(claim):
            return self._judge_english(claim, valid, passages, verdict)
        parts = [(self.support.claim(part), cites) for part, cites in segments(sentence)]
        framing = echo.words if echo is not None else ""
        if not valid:
            if all(c.empty or self.support.framing_only(c, framing) for c, _ in parts):
                return verdict(False, "no-claim")
            return verdict(False, "no-citation")
        overlap = 1.0
        for claim_part, cites in parts:
            if claim_part.empty:
                continue
            if not cites:
                return verdict(False, "no-citation")
            cited = [passages[n - 1] for n in cites]
            found = self.support.check(claim_part, [c.text for c in cited], titles=[c.title for c in cited],
                                       headings=[c.section_label for c in cited])
            if not found.ok:
                return verdict(False, found.reason, overlap=found.overlap, missing=found.missing)
            overlap = min(overlap, found.overlap)
        return verdict(True, "ok", overlap=overlap)

    @staticmethod
    def _judge_english(claim: str, valid: tuple[int, ...], passages: list[Chunk], verdict) -> SentenceVerdict:
        # English words cannot be matched against Japanese passages: an English sentence is
        # supported only when its words occur there (ICT, CO2 …). Mixed sentences that quote
        # the Japanese are judged on the quote (the Japanese branch above).
        words = [w for w in _EN_WORD_RE.findall(normalize_for_index(claim))
                 if w not in EN_STOP and w not in _EN_FRAMING]
        if not valid:
            return verdict(False, "no-claim") if not words else verdict(False, "no-citation")
        source = flat("\n".join(passages[n - 1].text for n in valid))
        lacking = tuple(w for w in words if w not in source)
        if lacking:
            return verdict(False, "cross-language", missing=lacking)
        return verdict(True, "ok", overlap=1.0)


# -- sentences ------------------------------------------------------------------------------

def split_sentences(text: str, draft: bool = False) -> list[_Span]:
    """Sentence spans of ``text`` (the project's one splitter; a line break always ends a
    sentence, and citation markers right after the end belong to the sentence). A heading
    line is one span; in a draft it is not judged (「【エゾシカの活用について】」)."""
    spans: list[_Span] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        body = (line.splitlines() or [""])[0]
        stripped = body.strip()
        if stripped and _HEADING_RE.match(stripped):
            start = offset + len(body) - len(body.lstrip())
            spans.append(_Span(start, offset + len(body.rstrip()), not draft, True))
        elif stripped:
            enum = _ENUM_RE.match(body)
            for start, end in sentence_spans(body, enum.end() if enum else 0, CITE):
                if _ONLY_CITES_RE.match(body[start:end]) and spans and spans[-1].checked:
                    spans[-1].end = offset + end  # a citation left alone belongs to the sentence before
                    continue
                spans.append(_Span(offset + start, offset + end, True))
        offset += len(line)
    return spans


def segments(sentence: str) -> list[tuple[str, tuple[int, ...]]]:
    """The parts of a sentence, each with the citation group that follows it. Text after the
    last group belongs to that group, and a group with no text before it (「[1] 本文」) to the
    text after it."""
    out: list[tuple[str, tuple[int, ...]]] = []
    pending: tuple[int, ...] = ()
    last = 0
    for m in _CITES_RE.finditer(sentence):
        numbers = tuple(citation_numbers(m.group()))
        part = claim_text(sentence[last:m.start()])
        if part:
            out.append((part, tuple(dict.fromkeys(pending + numbers))))
            pending = ()
        else:
            pending += numbers
        last = m.end()
    tail = claim_text(sentence[last:])
    if tail.strip("。.、,!！?？ 　"):
        if pending or not out:
            out.append((tail, pending))
        else:
            text, cites = out[-1]
            out[-1] = (text + tail, cites)
    return out


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


def _apply(text: str, spans: list[_Span], verdicts: list[SentenceVerdict | None], mode: GuardMode) -> str:
    out, last = [], 0
    for s, v in zip(spans, verdicts):
        if v is None or v.supported:
            continue
        if mode == "mark" and v.reason not in DROPPED:
            out.append(text[last:s.end] + MARKER)
        else:
            out.append(text[last:s.start] + _GONE)
        last = s.end
    out.append(text[last:])
    joined = "".join(out)
    if _GONE in joined:
        # Drop a line whose every sentence was removed (at most a bullet or number is left);
        # blank lines that were already there stay, runs of them left behind do not.
        kept: list[str] = []
        for ln in joined.splitlines():
            rest = ln.replace(_GONE, "")
            if _GONE in ln and (not rest.strip() or _ENUM_RE.fullmatch(rest)):
                continue
            if not rest.strip() and kept and not kept[-1].strip():
                continue
            kept.append(rest.rstrip())
        joined = "\n".join(kept)
    return joined.strip()


# -- text helpers ---------------------------------------------------------------------------

def echo_note(sentence: str) -> str:
    return f"［プロンプトの反復（{len(sentence)}文字）］"


def claim_text(sentence: str) -> str:
    """The sentence without citation markers or a leading bullet/number."""
    text = _CITE_RE.sub("", sentence)
    enum = _ENUM_RE.match(text)
    return text[enum.end():].strip() if enum else text.strip()


def _is_refusal(claim: str) -> bool:
    core = flat(claim).strip("。.!！「」\"'")
    return core in {flat(r) for r in REFUSALS}


def _has_japanese(text: str) -> bool:
    return any(unicodedata.name(ch, "").startswith(("CJK", "HIRAGANA", "KATAKANA")) for ch in text)

