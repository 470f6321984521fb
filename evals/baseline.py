"""The plain LangChain tutorial stack, for a side-by-side with our pipeline.

``RecursiveCharacterTextSplitter(500, 50)`` over the raw corpus text, Chroma (cosine) with
the same embedder object as ours, ``BM25Retriever`` with its default whitespace
preprocessing, and an ``EnsembleRetriever`` with equal weights. Its "answer" quotes the top
chunks whole; it has no abstention, no follow-up rewriting and no 要確認事項.

Japanese has no spaces, so the default BM25 preprocessing turns each *line* into one token:
that, and the 500-character quotes, are what our Japanese handling is measured against.
"""
from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from evals.dataset import EvalItem
from evals.scoring import Outcome

COLLECTION = "baseline"
REQUIREMENTS = "langchain-text-splitters langchain-community langchain-classic rank-bm25 langchain-chroma"


def missing_requirements() -> str:
    """Empty when the baseline can run, else why not."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import langchain_chroma  # noqa: F401
            import langchain_classic.retrievers  # noqa: F401
            import langchain_community.retrievers  # noqa: F401
            import langchain_text_splitters  # noqa: F401
            import rank_bm25  # noqa: F401
    except ImportError as exc:
        return f"{exc}; pip install {REQUIREMENTS}"
    return ""


def split(text: str, chunk_size: int = 500, chunk_overlap: int = 50) -> list[str]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap).split_text(text)


def documents(chunks: list[str]) -> list:
    from langchain_core.documents import Document

    return [Document(page_content=t, metadata={"i": i}) for i, t in enumerate(chunks)]


def chroma_client(directory: Path):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    return chromadb.PersistentClient(path=str(directory), settings=ChromaSettings(anonymized_telemetry=False))


def build_store(docs: list, embedder: Embeddings, directory: Path):
    """Chroma (cosine) holding ``docs``. One ``add_documents`` call, as in the tutorial,
    fails over Chroma's max batch (5,461 in chromadb 1.5); the usual fix is to add in
    batches of that size."""
    from langchain_chroma import Chroma

    client = chroma_client(directory)
    store = Chroma(collection_name=COLLECTION, embedding_function=embedder, client=client,
                   collection_metadata={"hnsw:space": "cosine"})
    step = client.get_max_batch_size()
    for i in range(0, len(docs), step):
        store.add_documents(docs[i:i + step])
    return store


def ensemble(docs: list, store, k: int = 8):
    """BM25 (default whitespace preprocessing) and the vector store, equal weights."""
    from langchain_classic.retrievers import EnsembleRetriever

    with warnings.catch_warnings():  # langchain-community announces its sunset on import
        warnings.simplefilter("ignore")
        from langchain_community.retrievers import BM25Retriever

    bm25 = BM25Retriever.from_documents(docs, k=k)
    return EnsembleRetriever(retrievers=[bm25, store.as_retriever(search_kwargs={"k": k})], weights=[0.5, 0.5])


class LangChainBaseline:
    """Builds its index on first use in a fresh directory under ``work_dir``; ``close()``
    deletes it."""

    def __init__(self, corpus_text: str, embedder: Embeddings, work_dir: Path, chunk_size: int = 500,
                 chunk_overlap: int = 50, k: int = 8, answer_k: int = 4) -> None:
        self.corpus_text = corpus_text
        self.embedder = embedder
        self.work_dir = Path(work_dir)
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.k = k
        self.answer_k = answer_k
        self._chunks: list[str] | None = None
        self._ensemble: Any = None
        self._dir: Path | None = None

    @property
    def chunks(self) -> list[str]:
        if self._chunks is None:
            self._chunks = split(self.corpus_text, self.chunk_size, self.chunk_overlap)
        return self._chunks

    def warm_up(self) -> None:
        if self._ensemble is not None:
            return
        docs = documents(self.chunks)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix="chroma-", dir=self.work_dir))
        self._ensemble = ensemble(docs, build_store(docs, self.embedder, self._dir), self.k)

    def retrieve(self, query: str) -> list[str]:
        """Chunk texts, best first (the ensemble's RRF order)."""
        self.warm_up()
        return [d.page_content for d in self._ensemble.invoke(query)]

    def run(self, item: EvalItem) -> Outcome:
        """The final question alone: the tutorial stack keeps no chat history."""
        t0 = time.perf_counter()
        retrieved = self.retrieve(item.question)
        t1 = time.perf_counter()
        quotes = {n: text for n, text in enumerate(retrieved[: self.answer_k], start=1)}
        # Each quote on one line so that its [n] marker belongs to all of it; PDF line
        # wraps in Japanese are joined without a space.
        lines = ["関連する記述です。"] + [f"・{''.join(q.splitlines())} [{n}]" for n, q in quotes.items()]
        t2 = time.perf_counter()
        timings = {"retrieve": (t1 - t0) * 1000, "answer": (t2 - t1) * 1000, "total": (t2 - t0) * 1000}
        return Outcome("\n".join(lines), "direct", retrieved, quotes, cited=dict(quotes), timings_ms=timings)

    def describe(self) -> dict[str, Any]:
        return {"system": "langchain-baseline", "chunk_size": self.chunk_size, "chunk_overlap": self.chunk_overlap,
                "chunks": len(self.chunks), "k_per_retriever": self.k, "answer_k": self.answer_k,
                "embedder": getattr(self.embedder, "id", type(self.embedder).__name__),
                "bm25_preprocess": "whitespace (default)", "weights": [0.5, 0.5]}

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._ensemble = None
