"""Japanese tokenization for BM25 and for content-term checks (SudachiPy)."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

from ingest.normalize import normalize_for_index

# Particles, auxiliaries and symbols carry no topic; dropping them keeps BM25 on content.
_DROP_POS = {"助詞", "助動詞", "補助記号", "記号", "空白"}
TOKENIZER_ID = "sudachi-core-A-normalized-kanji-v2"


def is_kanji(ch: str) -> bool:
    """A CJK ideograph: the unified blocks, extension A, B and later, and compatibility forms."""
    o = ord(ch)
    return 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x3134F


@dataclass(frozen=True)
class Token:
    surface: str
    norm: str  # Sudachi normalized form of the index-normalized text
    pos: str  # top-level part of speech (名詞)
    pos2: str  # 固有名詞, 普通名詞, 数詞 …
    pos3: str = ""  # 地名, 人名, 組織名, 助数詞 …
    pos4: str = ""  # 一般, 国 …
    reading: str = ""  # katakana reading (シレトコ)


_dictionary = None  # Sudachi's core dictionary, shared by every SudachiTokenizers
_dictionary_lock = threading.Lock()


class SudachiTokenizers:
    """One Sudachi tokenizer per thread in split ``mode`` (a Sudachi tokenizer is not safe to
    share between threads), from the core dictionary, which loads on first use."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._local = threading.local()

    def get(self):
        tok = getattr(self._local, "tok", None)
        if tok is None:
            global _dictionary
            with _dictionary_lock:
                if _dictionary is None:
                    from sudachipy import Dictionary

                    _dictionary = Dictionary(dict="core")
                tok = _dictionary.tokenizer(mode=self.mode)
            self._local.tok = tok
        return tok


class JapaneseTokenizer:
    """SudachiPy in split mode A (short units, so 再生可能エネルギー also matches 再生); the
    dictionary loads on first use (SudachiTokenizers)."""

    def __init__(self, mode: str = "A") -> None:
        self.mode = mode
        self._tokenizers = SudachiTokenizers(mode)
        # Per-id POS tuples and per-form kanji lists: building them anew for every
        # morpheme cost more than Sudachi's own analysis when indexing.
        self._pos: dict[int, tuple[str, ...]] = {}
        self._kanji: dict[str, list[str]] = {}

    @property
    def _tokenizer(self):
        return self._tokenizers.get()

    def _sudachi(self, text: str):
        """Sudachi's morphemes of the index form of ``text``, with cached POS tuples."""
        norm = normalize_for_index(text)
        tokenizer, pos_cache = self._tokenizer, self._pos
        # Sudachi refuses inputs over ~49k bytes; analyse long text in slices.
        for i in range(0, len(norm), 4000):
            for m in tokenizer.tokenize(norm[i:i + 4000]):
                pos = pos_cache.get(m.part_of_speech_id())
                if pos is None:
                    pos = pos_cache[m.part_of_speech_id()] = m.part_of_speech()
                yield m, pos

    def _morphemes(self, text: str) -> Iterator[tuple[str, str, tuple[str, ...]]]:
        """(surface, lower-cased normalized form, POS tuple) of each morpheme."""
        for m, pos in self._sudachi(text):
            yield m.surface(), m.normalized_form().lower(), pos

    def analyze(self, text: str) -> list[Token]:
        return [Token(m.surface(), m.normalized_form().lower(), pos[0], pos[1], pos[2], pos[3], m.reading_form())
                for m, pos in self._sudachi(text)]

    def tokens(self, text: str, stop: frozenset[str] = frozenset()) -> list[str]:
        """BM25 terms: normalized forms without particles, auxiliaries or symbols, plus the
        single kanji of compound nouns.

        Sudachi normalizes エゾシカ to 蝦夷鹿, but a resident asks about 鹿肉: the shared
        kanji 鹿 is the only link, and BM25's IDF keeps common kanji from adding noise.
        """
        out = []
        for surface, norm, pos in self._morphemes(text):
            if pos[0] in _DROP_POS or not norm.strip() or norm in stop or surface in stop:
                continue
            out.append(norm)
            if pos[0] == "名詞":
                kanji = self._kanji.get(norm)
                if kanji is None:
                    kanji = [ch for ch in norm if is_kanji(ch)]
                    if len(self._kanji) < 100_000:  # a long-running server sees unbounded OOV forms
                        self._kanji[norm] = kanji
                if len(kanji) >= 2:
                    out.extend(kanji)
        return out
