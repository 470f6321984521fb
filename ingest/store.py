"""The on-disk index: generations of (Chroma vectors, BM25, chunks, term vectors, manifest).

Every ingest builds a new generation beside the current one and then switches the
``CURRENT`` pointer with an atomic rename, so a killed ingest leaves the last good index
in place (``ingest/layout.py``). In embedded mode each generation has its own Chroma
directory, copied from the previous one and changed by the difference; with a Chroma
server, generations share a collection and each knows its own records (``ingest/vectors.py``).
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ingest.layout import (  # noqa: F401  (re-exported: the index's public names live here)
    REBUILD, DiskFull, IndexCorrupt, IndexError_, IndexMismatch, IndexMissing, StoreSpec, chroma_exclusive,
    current_generation, disk_full_message, hold, is_disk_full, is_failure, prune_generations, release_reserve,
    switch_current, write_atomic,
)
from ingest.types import Chunk

# 2: term vectors (terms.json, terms.npy) beside the chunks. 3: vectors without documents,
# records of a server collection in records.json. An index of an older format is rebuilt
# by the next ingest, from the embedding cache.
INDEX_FORMAT = 3


@dataclass
class Manifest:
    generation: str
    collection: str
    embedder_id: str
    dim: int
    tokenizer: str
    chunker: str
    files: dict[str, str] = field(default_factory=dict)  # source -> sha256
    file_chunks: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # source -> reason
    created: str = ""
    format: int = 1  # INDEX_FORMAT of the ingest that wrote it (older manifests have none)
    seq: int = 0  # numbers the generations of a data dir: the previous one's + 1
    titles: dict[str, str] = field(default_factory=dict)  # source -> the title its chunks carry
    # SHA-256 of every file the ingest wrote except Chroma's (which SQLite checks), relative to
    # the generation folder: the next ingest checks them before it builds on this generation.
    checksums: dict[str, str] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        write_atomic(path, json.dumps(asdict(self), ensure_ascii=False, indent=1))

    @classmethod
    def load(cls, path: Path) -> "Manifest":
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def chroma_client(spec: StoreSpec, gen_dir: Path):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    settings = ChromaSettings(anonymized_telemetry=False)
    if spec.remote:
        return chromadb.HttpClient(host=spec.chroma_host, port=spec.chroma_port, settings=settings)
    path = str(gen_dir / "chroma")
    try:
        return chromadb.PersistentClient(path=path, settings=settings)
    except Exception:
        # Chroma caches a path's system before starting it; one that failed to start (a
        # full disk) would be handed out again to the next client of that path.
        from chromadb.api.shared_system_client import SharedSystemClient

        SharedSystemClient._identifier_to_system.pop(path, None)
        SharedSystemClient._identifier_to_refcount.pop(path, None)
        raise


def save_chunks(path: Path, chunks: list[Chunk]) -> None:
    write_atomic(path, "".join(json.dumps(c.to_dict(), ensure_ascii=False) + "\n" for c in chunks))


def load_chunks(path: Path) -> list[Chunk]:
    with open(path, encoding="utf-8") as f:
        return [Chunk.from_dict(json.loads(line)) for line in f if line.strip()]


def chunk_file(gen_dir: Path, source: str) -> Path:
    """Where a generation keeps one source's chunks. Files never change once written, so
    the next generation hard-links those of unchanged sources."""
    return gen_dir / "chunks" / (hashlib.sha256(source.encode("utf-8")).hexdigest()[:24] + ".jsonl")


def load_generation_chunks(gen_dir: Path, manifest: Manifest) -> list[Chunk]:
    """Every chunk of a generation, source by source in the manifest's order (index format
    3), or from the single ``chunks.jsonl`` of older generations."""
    if not (gen_dir / "chunks").is_dir():
        return load_chunks(gen_dir / "chunks.jsonl")
    out: list[Chunk] = []
    for source, count in manifest.file_chunks.items():
        chunks = load_chunks(chunk_file(gen_dir, source)) if count else []
        if len(chunks) != count:
            raise ValueError(f"{source}: {len(chunks)} chunks stored, the manifest says {count}")
        out.extend(chunks)
    return out


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def damaged_files(gen_dir: Path, manifest: Manifest) -> list[str]:
    """The files of a generation whose bytes are not those the ingest wrote."""
    bad = []
    for name, sha in manifest.checksums.items():
        try:
            if file_sha256(gen_dir / name) != sha:
                bad.append(name)
        except OSError:
            bad.append(name)
    return bad


def collection_name(generation: str) -> str:
    return f"vq_{generation}"


def check_sqlite(path: Path) -> str | None:
    """None when SQLite finds the file sound, else what it found (read only, no locks taken)."""
    if not path.exists():
        return "the file is missing"
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = [r[0] for r in db.execute("PRAGMA quick_check(3)")]
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None if rows == ["ok"] else "; ".join(r for r in rows if not r.startswith("***"))


class IndexReader:
    """Read side of one generation: manifest, chunks, BM25, term vectors and the vectors.

    Holds a lease on its generation while it lives, so the next ingests do not delete the
    files under it; ``close()`` (or garbage collection) releases it and the Chroma client.
    ``stale`` tells when a newer generation has been switched in.
    """

    def __init__(self, spec: StoreSpec, embedder_id: str) -> None:
        self.spec = spec
        self.embedder_id = embedder_id
        self.generation, self._lease = self._lease_current()
        self.dir = spec.gens_dir / self.generation
        try:
            self.manifest = Manifest.load(self.dir / "manifest.json")
            self.chunks = load_generation_chunks(self.dir, self.manifest)
            records = json.loads((self.dir / "records.json").read_text(encoding="utf-8")) if spec.remote else {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.close()
            raise IndexCorrupt(
                f"the index in {spec.data_dir} is damaged ({exc.__class__.__name__}: {exc}); {REBUILD}"
            ) from exc
        if self.manifest.embedder_id != embedder_id:
            self.close()
            raise IndexMismatch(
                f"the index was built with embedder {self.manifest.embedder_id!r} but "
                f"{embedder_id!r} is configured: {REBUILD}"
            )
        self.by_id = {c.id: c for c in self.chunks}
        # Vector record id → chunk id. A server collection is shared by generations, so
        # a record is this generation's only if it is listed here.
        self.records = {records.get(c.id, c.id): c.id for c in self.chunks}
        self._bm25 = None
        self._terms = None
        self._client = None
        self._collection = None
        self._opening = threading.Lock()  # requests in parallel threads share this reader

    def _lease_current(self):
        for _ in range(5):
            gen = current_generation(self.spec)
            if gen is None:
                raise IndexMissing(
                    f"no index in {self.spec.data_dir}: run `vision-qa ingest` first "
                    "(or `vision-qa serve`, which ingests)"
                )
            lease = hold(self.spec, gen)
            if lease is not None:
                return gen, lease
        raise IndexCorrupt(f"the index in {self.spec.data_dir} keeps changing; wait for the ingests to finish")

    @property
    def stale(self) -> bool:
        try:
            return current_generation(self.spec) != self.generation
        except IndexError_:
            return False  # a damaged pointer: keep answering from the generation loaded

    @property
    def bm25(self):
        if self._bm25 is None:
            import bm25s

            try:
                self._bm25 = bm25s.BM25.load(str(self.dir / "bm25"))
            except (OSError, ValueError) as exc:
                raise IndexCorrupt(f"the BM25 index in {self.dir} is damaged ({exc}); {REBUILD}") from exc
        return self._bm25

    @property
    def term_vectors(self) -> dict:
        """Content term → query-mode vector, as written by the ingest (empty for older indexes)."""
        if self._terms is None:
            from ingest.terms import TermVectors

            try:
                self._terms = TermVectors.load(self.dir).vectors
            except (OSError, ValueError) as exc:
                raise IndexCorrupt(f"the term vectors in {self.dir} are damaged ({exc}); {REBUILD}") from exc
        return self._terms

    @property
    def collection(self):
        """The Chroma collection, opened once through a client this reader owns."""
        if self._collection is not None:
            return self._collection
        with self._opening:
            if self._collection is None:
                self._open_collection()
        return self._collection

    def _open_collection(self) -> None:
        try:
            self._open()
        except BaseException as exc:
            if not is_failure(exc):
                raise
            # Chroma writes when a client starts: on a full disk, give it the reserve.
            if not (is_disk_full(exc) and release_reserve(self.spec)):
                raise self.vector_error(exc) from exc
            try:
                self._open()
            except BaseException as again:
                if not is_failure(again):
                    raise
                raise self.vector_error(again) from again

    def _open(self) -> None:
        self.close_client()
        if self.spec.remote:
            self._client = chroma_client(self.spec, self.dir)
            self._collection = self._client.get_collection(self.manifest.collection)
            return
        with chroma_exclusive(self.dir):
            self._client = chroma_client(self.spec, self.dir)
            collection = self._client.get_collection(self.manifest.collection)
            if self.manifest.dim:  # the first query loads the vectors (and Chroma rewrites their files)
                collection.query(query_embeddings=[[1.0] + [0.0] * (self.manifest.dim - 1)], n_results=1,
                                 include=[])
            self._collection = collection

    def vector_error(self, exc: BaseException) -> IndexError_:
        if is_disk_full(exc):
            return DiskFull(disk_full_message(self.spec, "so the vectors cannot be opened") +
                            "; the index itself is not damaged")
        where = f"on the Chroma server {self.spec.chroma_host}:{self.spec.chroma_port}" if self.spec.remote else \
            f"in {self.dir / 'chroma'}"
        return IndexCorrupt(f"cannot read the vector collection {self.manifest.collection!r} {where} "
                            f"({exc.__class__.__name__}: {str(exc)[:300]}); {REBUILD}")

    def nearest(self, vector: list[float], k: int) -> list[tuple[str, float]]:
        """The ``k`` nearest chunks of this generation: (chunk id, cosine distance).

        A shared server collection also holds records of the generation being written
        and of the one before; they are asked for too (more each round, rarely a second)
        and dropped, so the top ``k`` of this generation are exact.
        """
        k = min(k, len(self.chunks))
        if k <= 0:
            return []
        n = k + (8 if self.spec.remote else 0)
        while True:
            try:
                result = self.collection.query(query_embeddings=[vector], n_results=n, include=["distances"])
            except IndexError_:
                raise
            except BaseException as exc:
                if not is_failure(exc):
                    raise
                raise self.vector_error(exc) from exc
            ids, distances = result["ids"][0], result["distances"][0]
            mine = [(self.records[r], float(d)) for r, d in zip(ids, distances) if r in self.records]
            if len(mine) >= k or len(ids) < n:
                return mine[:k]
            n *= 4

    def close_client(self) -> None:
        client, self._client, self._collection = getattr(self, "_client", None), None, None
        if client is not None:
            try:
                client.close()
            except Exception:  # a server that went away: nothing is left to release
                pass

    def close(self) -> None:
        """Release the lease and the Chroma client (idempotent)."""
        self.close_client()
        lease = getattr(self, "_lease", None)
        if lease is not None:
            lease.release()

    def __del__(self) -> None:
        self.close()
