"""Hybrid retrieval: Sudachi-BM25 and dense search, fused with reciprocal rank fusion,
optionally reranked by a sentence-transformers CrossEncoder."""
from __future__ import annotations

from ingest.store import IndexReader
from ingest.tokenize import JapaneseTokenizer
from ingest.types import Chunk

from assistant.query import GENERIC_TERMS
from assistant.types import Hit

# The document title matches almost every query on place names and answers none.
_NOT_RETRIEVED = {"title"}
# What of a long question is embedded: its end, where Japanese and English put the question.
# The engine embeds long text window by window (a 2,000-character question of rare characters
# took 15 s); the longest dev question has 106 characters.
MAX_EMBEDDED_CHARS = 200


def embedded_query(query: str) -> str:
    return query[-MAX_EMBEDDED_CHARS:]


class Bm25Retriever:
    def __init__(self, index: IndexReader, tokenizer: JapaneseTokenizer) -> None:
        self.index = index
        self.tokenizer = tokenizer

    def retrieve(self, query: str, k: int = 30) -> list[Hit]:
        # Generic words (取り組み, 地域, ビジョン…) are in every passage: as query terms they
        # only add noise, and their kanji (取, 組) would outweigh a rare one like 鹿.
        tokens = self.tokenizer.tokens(query, stop=GENERIC_TERMS) or self.tokenizer.tokens(query)
        n = len(self.index.chunks)
        if not tokens or n == 0:
            return []
        # n_threads=0 scores in this thread; any other value starts a thread pool per query.
        docs, scores = self.index.bm25.retrieve([tokens], k=min(k, n), show_progress=False, n_threads=0)
        hits = []
        for idx, score in zip(docs[0], scores[0]):
            chunk = self.index.chunks[int(idx)]
            if score <= 0 or chunk.kind in _NOT_RETRIEVED:
                continue
            hits.append(Hit(chunk=chunk, score=float(score), retriever="bm25", ranks={"bm25": len(hits) + 1},
                            scores={"bm25": float(score)}))
        return hits


class DenseRetriever:
    def __init__(self, index: IndexReader, embeddings) -> None:
        self.index = index
        self.embeddings = embeddings

    @property
    def store(self):
        """The Chroma collection (opened on first use; a damaged one raises IndexCorrupt with advice)."""
        return self.index.collection

    def retrieve(self, query: str, k: int = 30, vector: list[float] | None = None) -> list[Hit]:
        """``vector``: the query's embedding when the caller has it already. The index is
        asked for ids and distances only: the chunk list holds the rest (loading each hit's
        document and metadata was half the time of a query at 100k chunks)."""
        if not self.index.chunks:
            return []
        if vector is None:
            vector = self.embeddings.embed_query(embedded_query(query))
        hits = []
        for chunk_id, distance in self.index.nearest(vector, k):
            chunk = self.index.by_id[chunk_id]
            if chunk.kind in _NOT_RETRIEVED:
                continue
            sim = 1.0 - distance  # cosine distance → similarity
            hits.append(Hit(chunk=chunk, score=sim, retriever="dense", ranks={"dense": len(hits) + 1}, scores={"dense": sim}))
        return hits


def rrf_fuse(lists: list[list[Hit]], k: int = 60, top: int = 8) -> list[Hit]:
    """Reciprocal rank fusion: score = Σ 1 / (k + rank)."""
    fused: dict[str, float] = {}
    chunks: dict[str, Chunk] = {}
    ranks: dict[str, dict[str, int]] = {}
    scores: dict[str, dict[str, float]] = {}
    for hits in lists:
        for rank, h in enumerate(hits, start=1):
            cid = h.chunk.id
            fused[cid] = fused.get(cid, 0.0) + 1.0 / (k + rank)
            chunks[cid] = h.chunk
            ranks.setdefault(cid, {}).update({h.retriever: rank})
            scores.setdefault(cid, {}).update(h.scores)
    order = sorted(fused, key=lambda c: (-fused[c], chunks[c].order))[:top]
    return [Hit(chunk=chunks[c], score=fused[c], retriever="hybrid", ranks=ranks[c], scores=scores[c]) for c in order]


class CrossEncoderReranker:
    """Reranks with a sentence-transformers CrossEncoder (name or local path)."""

    def __init__(self, model: str) -> None:
        self.model_name = model
        self._model = None

    @property
    def model(self):
        if self._model is None:
            try:
                from sentence_transformers import CrossEncoder
            except ImportError as exc:
                raise RuntimeError("a reranker needs sentence-transformers: pip install 'vision-qa[st]'") from exc
            self._model = CrossEncoder(self.model_name, device="cpu")
        return self._model

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        if not hits:
            return []
        scores = self.model.predict([(query, h.chunk.embed_text()) for h in hits], show_progress_bar=False)
        ranked = sorted(zip(hits, scores), key=lambda p: -float(p[1]))
        return [Hit(chunk=h.chunk, score=float(s), retriever="rerank", ranks=h.ranks, scores={**h.scores, "rerank": float(s)})
                for h, s in ranked]


class HybridRetriever:
    """BM25 + dense, each top ``retrieve_k``, fused to ``top_k``; ``mode`` picks one side
    only for the side-by-side evaluation."""

    def __init__(self, bm25: Bm25Retriever, dense: DenseRetriever, reranker: CrossEncoderReranker | None = None,
                 retrieve_k: int = 30, top_k: int = 8, rrf_k: int = 60, mode: str = "hybrid") -> None:
        self.bm25 = bm25
        self.dense = dense
        self.reranker = reranker
        self.retrieve_k = retrieve_k
        self.top_k = top_k
        self.rrf_k = rrf_k
        self.mode = mode

    def retrieve(self, query: str, top_k: int | None = None,
                 vector: list[float] | None = None) -> tuple[list[Hit], dict[str, list[Hit]]]:
        """The fused hits, and each retriever's own list."""
        top = top_k or self.top_k
        lists: dict[str, list[Hit]] = {}
        if self.mode in ("hybrid", "bm25"):
            lists["bm25"] = self.bm25.retrieve(query, self.retrieve_k)
        if self.mode in ("hybrid", "dense"):
            lists["dense"] = self.dense.retrieve(query, self.retrieve_k, vector)
        fused = rrf_fuse(list(lists.values()), k=self.rrf_k, top=top)
        if self.reranker is not None:
            fused = self.reranker.rerank(query, fused)
        return fused, lists
