"""Real embeddings of a sample, and derived vectors for the rest of a large corpus.

Embedding 100k passages with e5-small takes hours on two cores, so the index is filled
with the real vectors of a sample plus perturbed copies of them: a real vector, small
Gaussian noise, renormalised. They go into the project's own ``EmbeddingCache`` under the
real embedder id, so the real ``Indexer`` runs unchanged and simply finds every vector.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from ingest.embedders import BaseEmbedder, EmbeddingCache

NOISE_SIGMA = 0.01  # per dimension: ‖noise‖ ≈ 0.2 for 384 dims, cosine to the source ≈ 0.98


@dataclass
class FillReport:
    texts: int = 0  # distinct texts asked for
    cached: int = 0  # already in the cache: real vectors (or derived ones of an earlier size)
    derived: int = 0  # perturbed copies written now


def embed_real(embedder: BaseEmbedder, texts: list[str]) -> tuple[np.ndarray, float]:
    """The vectors of ``texts`` and the seconds it took (model already loaded)."""
    t0 = time.perf_counter()
    vectors = np.asarray(embedder.embed_documents(texts), dtype=np.float32)
    return vectors, time.perf_counter() - t0


def real_vectors(cache_file: Path, embedder_id: str, texts: list[str]) -> np.ndarray:
    """The cached vectors of ``texts`` (all of them must be there)."""
    cache = EmbeddingCache(cache_file)
    try:
        found = cache.get_many(embedder_id, texts)
    finally:
        cache.close()
    missing = [t for t in texts if EmbeddingCache.key(t) not in found]
    if missing:
        raise ValueError(f"{len(missing)} texts have no cached vector in {cache_file}")
    return np.asarray([found[EmbeddingCache.key(t)] for t in texts], dtype=np.float32)


def derive(base: np.ndarray, texts: list[str], seed: int = 0, sigma: float = NOISE_SIGMA) -> np.ndarray:
    """One perturbed copy of a base vector per text; the text's hash picks the base and
    seeds the noise, so a text always gets the same vector."""
    out = np.empty((len(texts), base.shape[1]), dtype=np.float32)
    for i, text in enumerate(texts):
        h = int.from_bytes(hashlib.sha256(f"{seed}\x1f{text}".encode("utf-8")).digest()[:8], "little")
        rng = np.random.default_rng(h)
        v = base[h % len(base)] + rng.normal(0.0, sigma, base.shape[1]).astype(np.float32)
        out[i] = v / np.linalg.norm(v)
    return out


def fill_cache(cache_file: Path, embedder_id: str, texts: list[str], base: np.ndarray,
               seed: int = 0, batch: int = 5000) -> FillReport:
    """Put derived vectors for every text of ``texts`` that the cache lacks."""
    unique = list(dict.fromkeys(texts))
    report = FillReport(texts=len(unique))
    cache = EmbeddingCache(cache_file)
    try:
        for i in range(0, len(unique), batch):
            part = unique[i:i + batch]
            found = cache.get_many(embedder_id, part)
            missing = [t for t in part if EmbeddingCache.key(t) not in found]
            report.cached += len(part) - len(missing)
            if missing:
                cache.put_many(embedder_id, missing, derive(base, missing, seed))
                report.derived += len(missing)
    finally:
        cache.close()
    return report


class MemoEmbeddings(Embeddings):
    """The real embedder, remembering query vectors. With ``serve`` on, a query seen before
    is answered from memory: that times the index search without the query embedding."""

    def __init__(self, embedder: BaseEmbedder) -> None:
        self.embedder = embedder
        self.serve = False
        self._memo: dict[str, list[float]] = {}

    @property
    def id(self) -> str:
        return self.embedder.id

    @property
    def batch_size(self) -> int:
        return self.embedder.batch_size

    def warm_up(self) -> None:
        self.embedder.warm_up()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        if self.serve and text in self._memo:
            return self._memo[text]
        v = self.embedder.embed_query(text)
        self._memo[text] = v
        return v

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        """One batch, as the assistant embeds a query with its unknown terms; remembered alike."""
        if self.serve and all(t in self._memo for t in texts):
            return [self._memo[t] for t in texts]
        vectors = self.embedder.embed_queries(texts)
        self._memo.update(zip(texts, vectors))
        return vectors
