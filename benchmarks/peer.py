"""The plain LangChain stack of ``evals/baseline.py``, split into build and open so that
serving can be measured in a process of its own (same parts and parameters).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from langchain_core.embeddings import Embeddings

from evals.baseline import COLLECTION, build_store, chroma_client, documents, ensemble, split

__all__ = ["PeerBuild", "build", "open_retriever", "split"]


@dataclass
class PeerBuild:
    chunks: int
    seconds: float  # split + Chroma insert with every vector already cached


def build(text: str, embeddings: Embeddings, directory: Path) -> PeerBuild:
    """Split, embed (from the cache) and store; the chunk texts go to chunks.json."""
    t0 = time.perf_counter()
    chunks = split(text)
    directory.mkdir(parents=True, exist_ok=True)
    build_store(documents(chunks), embeddings, directory / "chroma")
    (directory / "chunks.json").write_text(json.dumps(chunks, ensure_ascii=False), encoding="utf-8")
    return PeerBuild(len(chunks), time.perf_counter() - t0)


def open_retriever(directory: Path, embeddings: Embeddings, k: int = 8):
    """The ensemble over a built directory. BM25 lives in memory only, so it is rebuilt
    here, as the tutorial stack does at every start."""
    from langchain_chroma import Chroma

    chunks = json.loads((directory / "chunks.json").read_text(encoding="utf-8"))
    store = Chroma(collection_name=COLLECTION, embedding_function=embeddings,
                   client=chroma_client(directory / "chroma"), create_collection_if_not_exists=False)
    return ensemble(documents(chunks), store, k)
