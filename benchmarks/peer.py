"""The plain LangChain stack of ``evals/baseline.py``, split into build and open so that
serving can be measured in a process of its own.

Same parts and parameters as the baseline: ``RecursiveCharacterTextSplitter(500, 50)``,
Chroma (cosine) with the same embedder, ``BM25Retriever`` with its default whitespace
preprocessing, an ``EnsembleRetriever`` with equal weights, k = 8 each.
"""
from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from langchain_core.embeddings import Embeddings

COLLECTION = "baseline"


@dataclass
class PeerBuild:
    chunks: int
    seconds: float  # split + Chroma insert with every vector already cached


def split(text: str, chunk_size: int = 500, chunk_overlap: int = 50) -> list[str]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap).split_text(text)


def _client(directory: Path):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    return chromadb.PersistentClient(path=str(directory / "chroma"), settings=ChromaSettings(anonymized_telemetry=False))


def build(text: str, embeddings: Embeddings, directory: Path) -> PeerBuild:
    """Split, embed (from the cache) and store; the chunk texts go to chunks.json."""
    from langchain_chroma import Chroma
    from langchain_core.documents import Document

    t0 = time.perf_counter()
    chunks = split(text)
    directory.mkdir(parents=True, exist_ok=True)
    client = _client(directory)
    store = Chroma(collection_name=COLLECTION, embedding_function=embeddings, client=client,
                   collection_metadata={"hnsw:space": "cosine"})
    docs = [Document(page_content=t, metadata={"i": i}) for i, t in enumerate(chunks)]
    # One add_documents call, as in the tutorial, fails over Chroma's max batch (5,461 in
    # chromadb 1.5); the usual fix is to add in batches of that size.
    step = client.get_max_batch_size()
    for i in range(0, len(docs), step):
        store.add_documents(docs[i:i + step])
    (directory / "chunks.json").write_text(json.dumps(chunks, ensure_ascii=False), encoding="utf-8")
    return PeerBuild(len(chunks), time.perf_counter() - t0)


def open_retriever(directory: Path, embeddings: Embeddings, k: int = 8):
    """The ensemble over a built directory. BM25 lives in memory only, so it is rebuilt
    here, as the tutorial stack does at every start."""
    from langchain_chroma import Chroma
    from langchain_classic.retrievers import EnsembleRetriever
    from langchain_core.documents import Document

    with warnings.catch_warnings():  # langchain-community announces its sunset on import
        warnings.simplefilter("ignore")
        from langchain_community.retrievers import BM25Retriever

    chunks = json.loads((directory / "chunks.json").read_text(encoding="utf-8"))
    docs = [Document(page_content=t, metadata={"i": i}) for i, t in enumerate(chunks)]
    store = Chroma(collection_name=COLLECTION, embedding_function=embeddings, client=_client(directory),
                   create_collection_if_not_exists=False)
    bm25 = BM25Retriever.from_documents(docs, k=k)
    return EnsembleRetriever(retrievers=[bm25, store.as_retriever(search_kwargs={"k": k})], weights=[0.5, 0.5])
