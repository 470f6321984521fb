"""Japanese tokenization for BM25 and for content-term checks (SudachiPy)."""
from __future__ import annotations

import threading
from dataclasses import dataclass

from ingest.normalize import normalize_for_index

# Particles, auxiliaries and symbols carry no topic; dropping them keeps BM25 on content.
_DROP_POS = {"助詞", "助動詞", "補助記号", "記号", "空白"}
TOKENIZER_ID = "sudachi-core-A-normalized-kanji-v2"


def is_kanji(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


@dataclass(frozen=True)
class Token:
    surface: str
    norm: str  # Sudachi normalized form of the index-normalized text
    pos: str  # top-level part of speech
    pos2: str
    pos3: str = ""


class JapaneseTokenizer:
    """SudachiPy in split mode A (short units, so 再生可能エネルギー also matches 再生).

    The dictionary loads on first use; each thread gets its own tokenizer, because a
    Sudachi tokenizer is not safe to share between threads.
    """

    def __init__(self, mode: str = "A") -> None:
        self.mode = mode
        self._dictionary = None
        self._local = threading.local()
        self._lock = threading.Lock()

    @property
    def _tokenizer(self):
        tok = getattr(self._local, "tok", None)
        if tok is None:
            with self._lock:
                if self._dictionary is None:
                    from sudachipy import Dictionary

                    self._dictionary = Dictionary(dict="core")
                tok = self._dictionary.tokenizer(mode=self.mode)
            self._local.tok = tok
        return tok

    def analyze(self, text: str) -> list[Token]:
        norm = normalize_for_index(text)
        out = []
        # Sudachi refuses inputs over ~49k bytes; analyse long text in slices.
        for i in range(0, len(norm), 4000):
            for m in self._tokenizer.tokenize(norm[i:i + 4000]):
                pos = m.part_of_speech()
                out.append(Token(m.surface(), m.normalized_form().lower(), pos[0], pos[1], pos[3]))
        return out

    def tokens(self, text: str, stop: frozenset[str] = frozenset()) -> list[str]:
        """BM25 terms: normalized forms without particles, auxiliaries or symbols, plus the
        single kanji of compound nouns.

        Sudachi normalizes エゾシカ to 蝦夷鹿, but a resident asks about 鹿肉: the shared
        kanji 鹿 is the only link, and BM25's IDF keeps common kanji from adding noise.
        """
        out = []
        for t in self.analyze(text):
            if t.pos in _DROP_POS or not t.norm.strip() or t.norm in stop or t.surface in stop:
                continue
            out.append(t.norm)
            if t.pos == "名詞":
                kanji = [ch for ch in t.norm if is_kanji(ch)]
                if len(kanji) >= 2:
                    out.extend(kanji)
        return out

    def tokens_many(self, texts: list[str]) -> list[list[str]]:
        return [self.tokens(t) for t in texts]
