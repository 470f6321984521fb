"""Per-chunk analyses kept with a generation as sparse matrices, so the next one takes the
rows of its unchanged chunks instead of analysing 100k texts again.

``TermRows`` is a chunks × vocabulary matrix of counts (BM25 tokens) or of 0/1 (content
terms). A new generation is a list of segments: runs of the previous generation's rows and
rows analysed now. ``bm25_index`` turns token counts into the score matrix of ``bm25s``
with numpy, equal to what ``bm25s.BM25.index`` computes with its per-document Python loops
(14 s at 100k chunks), so the library still saves, loads and searches it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp


@dataclass
class TermRows:
    matrix: sp.csr_matrix  # rows: chunks in generation order; columns: vocab
    vocab: list[str]

    @classmethod
    def empty(cls) -> "TermRows":
        return cls(sp.csr_matrix((0, 0), dtype=np.float32), [])

    def save(self, path: Path) -> None:
        m = self.matrix
        np.savez(path, data=m.data, indices=m.indices, indptr=m.indptr, shape=np.asarray(m.shape))
        path.with_suffix(".vocab.json").write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "TermRows":
        with np.load(path) as z:
            matrix = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
        vocab = json.loads(path.with_suffix(".vocab.json").read_text(encoding="utf-8"))
        if matrix.shape[1] != len(vocab):
            raise ValueError(f"{path.name} has {matrix.shape[1]} columns for {len(vocab)} vocabulary entries")
        return cls(matrix, vocab)


def assemble(prev: TermRows | None, segments: list[tuple[str, int, int]], new_rows: list[list[str]],
             binary: bool = False) -> TermRows:
    """Rows in the order of ``segments`` — ("prev", start, count) takes rows of ``prev``,
    ("new", start, count) rows of ``new_rows`` — over a vocabulary that keeps the previous
    ids and drops entries no row uses any more."""
    prev = prev or TermRows.empty()
    ids = {t: i for i, t in enumerate(prev.vocab)}
    indptr, indices, data = [0], [], []
    for row in new_rows:
        counts: dict[int, int] = {}
        for t in row:
            j = ids.setdefault(t, len(ids))
            counts[j] = 1 if binary else counts.get(j, 0) + 1
        indices.extend(counts)
        data.extend(counts.values())
        indptr.append(len(indices))
    width = len(ids)
    old = prev.matrix
    old = sp.csr_matrix((old.data, old.indices, old.indptr), shape=(old.shape[0], width))
    fresh = sp.csr_matrix((np.asarray(data, np.float32), np.asarray(indices, np.int32), np.asarray(indptr, np.int64)),
                          shape=(len(new_rows), width))
    picks = [np.arange(start, start + count) + (0 if kind == "prev" else old.shape[0])
             for kind, start, count in segments]
    order = np.concatenate(picks) if picks else np.zeros(0, np.int64)
    matrix = sp.vstack([old, fresh], format="csr")[order]
    vocab = list(ids)
    used = np.flatnonzero(np.bincount(matrix.indices, minlength=width))
    if len(used) < width:
        remap = np.full(width, -1, np.int64)
        remap[used] = np.arange(len(used))
        matrix = sp.csr_matrix((matrix.data, remap[matrix.indices], matrix.indptr), shape=(matrix.shape[0], len(used)))
        vocab = [vocab[j] for j in used]
    matrix.sort_indices()
    return TermRows(matrix.astype(np.float32), vocab)


def bm25_index(tokens: TermRows, k1: float = 1.5, b: float = 0.75):
    """A ``bm25s.BM25`` (method "lucene", its default) over the token counts, as
    ``BM25.index`` builds it: the same idf, the same length normalisation in float64,
    scores stored as float32 in a (documents × vocabulary) CSC matrix, and the empty
    token last in the vocabulary."""
    import bm25s

    tf = tokens.matrix
    n_docs, n_vocab = tf.shape
    doc_len = np.asarray(tf.sum(axis=1), dtype=np.float64).ravel()
    avg = doc_len.mean()
    df = np.bincount(tf.indices, minlength=n_vocab).astype(np.float64)
    # math.log, as bm25s computes it: numpy's own log may differ in the last bit.
    idf = np.asarray([math.log(x) for x in 1 + (n_docs - df + 0.5) / (df + 0.5)], np.float64).astype(np.float32)
    rows = np.repeat(np.arange(n_docs), np.diff(tf.indptr))
    counts = tf.data.astype(np.float64)
    tfc = counts / (k1 * ((1 - b) + b * doc_len[rows] / avg) + counts)
    scores = sp.csr_matrix(((idf[tf.indices] * tfc).astype(np.float32), tf.indices, tf.indptr),
                           shape=(n_docs, n_vocab)).tocsc()
    scores.sort_indices()
    retriever = bm25s.BM25(k1=k1, b=b)
    retriever.scores = {"data": scores.data, "indices": scores.indices.astype(np.int32),
                        "indptr": scores.indptr, "num_docs": n_docs}
    retriever.vocab_dict = {t: i for i, t in enumerate(tokens.vocab)}
    if "" not in retriever.vocab_dict:
        retriever.vocab_dict[""] = n_vocab
    retriever.unique_token_ids_set = set(retriever.vocab_dict.values())
    retriever.nonoccurrence_array = None  # "lucene" needs none
    return retriever
