"""The on-disk index: generations of (Chroma collection, BM25, chunks, manifest).

Every ingest builds a new generation beside the current one and then switches the
``CURRENT`` pointer with an atomic rename, so a killed ingest leaves the last good index
in place. In embedded mode each generation has its own Chroma directory; with a Chroma
server each generation is its own collection.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ingest.types import Chunk


class IndexError_(RuntimeError):
    """Base for index problems that the user can fix; the message says how."""


class IndexMissing(IndexError_):
    pass


class IndexMismatch(IndexError_):
    pass


class IndexCorrupt(IndexError_):
    pass


@dataclass(frozen=True)
class StoreSpec:
    """Where vectors live: an embedded directory, or a Chroma server."""

    data_dir: Path
    chroma_host: str = ""
    chroma_port: int = 8000

    @property
    def remote(self) -> bool:
        return bool(self.chroma_host)

    @property
    def gens_dir(self) -> Path:
        return self.data_dir / "generations"

    @property
    def current_file(self) -> Path:
        return self.data_dir / "CURRENT"

    @property
    def lock_file(self) -> Path:
        return self.data_dir / "ingest.lock"

    @property
    def cache_file(self) -> Path:
        return self.data_dir / "embedding-cache.sqlite3"


# 2: term vectors (terms.json, terms.npy) beside the chunks. An index of an older format
# is rebuilt by the next ingest, from the embedding cache.
INDEX_FORMAT = 2


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

    def save(self, path: Path) -> None:
        write_atomic(path, json.dumps(asdict(self), ensure_ascii=False, indent=1))

    @classmethod
    def load(cls, path: Path) -> "Manifest":
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def chroma_client(spec: StoreSpec, gen_dir: Path):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    settings = ChromaSettings(anonymized_telemetry=False)
    if spec.remote:
        return chromadb.HttpClient(host=spec.chroma_host, port=spec.chroma_port, settings=settings)
    return chromadb.PersistentClient(path=str(gen_dir / "chroma"), settings=settings)


def current_generation(spec: StoreSpec) -> str | None:
    try:
        name = spec.current_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return name or None


def switch_current(spec: StoreSpec, generation: str) -> None:
    write_atomic(spec.current_file, generation + "\n")


def save_chunks(path: Path, chunks: list[Chunk]) -> None:
    write_atomic(path, "".join(json.dumps(c.to_dict(), ensure_ascii=False) + "\n" for c in chunks))


def load_chunks(path: Path) -> list[Chunk]:
    with open(path, encoding="utf-8") as f:
        return [Chunk.from_dict(json.loads(line)) for line in f if line.strip()]


def prune_generations(spec: StoreSpec, keep: set[str]) -> None:
    """Delete generation folders (and server collections) other than ``keep``.

    The previous generation is kept too, so a server still reading it is not cut off.
    """
    if not spec.gens_dir.is_dir():
        return
    for d in spec.gens_dir.iterdir():
        if d.name in keep or not d.is_dir():
            continue
        if spec.remote:
            try:
                chroma_client(spec, d).delete_collection(collection_name(d.name))
            except Exception:  # already gone, or the server is down: the folder still goes
                pass
        shutil.rmtree(d, ignore_errors=True)


def collection_name(generation: str) -> str:
    return f"vq_{generation}"


class IndexReader:
    """Read side of one generation: manifest, chunks, BM25 and the Chroma collection.

    Loads lazily; ``stale`` tells when a newer generation has been switched in.
    """

    def __init__(self, spec: StoreSpec, embedder_id: str) -> None:
        self.spec = spec
        self.embedder_id = embedder_id
        gen = current_generation(spec)
        if gen is None:
            raise IndexMissing(
                f"no index in {spec.data_dir}: run `vision-qa ingest` first (or `vision-qa serve`, which ingests)"
            )
        self.generation = gen
        self.dir = spec.gens_dir / gen
        try:
            self.manifest = Manifest.load(self.dir / "manifest.json")
            self.chunks = load_chunks(self.dir / "chunks.jsonl")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexCorrupt(
                f"the index in {spec.data_dir} is damaged ({exc.__class__.__name__}: {exc}); "
                "run `vision-qa ingest --rebuild`"
            ) from exc
        if self.manifest.embedder_id != embedder_id:
            raise IndexMismatch(
                f"the index was built with embedder {self.manifest.embedder_id!r} but "
                f"{embedder_id!r} is configured: run `vision-qa ingest --rebuild`"
            )
        self.by_id = {c.id: c for c in self.chunks}
        self._bm25 = None
        self._terms = None

    @property
    def stale(self) -> bool:
        return current_generation(self.spec) != self.generation

    @property
    def bm25(self):
        if self._bm25 is None:
            import bm25s

            try:
                self._bm25 = bm25s.BM25.load(str(self.dir / "bm25"))
            except (OSError, ValueError) as exc:
                raise IndexCorrupt(
                    f"the BM25 index in {self.dir} is damaged ({exc}); run `vision-qa ingest --rebuild`"
                ) from exc
        return self._bm25

    @property
    def term_vectors(self) -> dict:
        """Content term → query-mode vector, as written by the ingest (empty for older indexes)."""
        if self._terms is None:
            from ingest.terms import TermVectors

            try:
                self._terms = TermVectors.load(self.dir).vectors
            except (OSError, ValueError) as exc:
                raise IndexCorrupt(
                    f"the term vectors in {self.dir} are damaged ({exc}); run `vision-qa ingest --rebuild`"
                ) from exc
        return self._terms

    def vectorstore(self, embeddings):
        from langchain_chroma import Chroma

        try:
            return Chroma(
                client=chroma_client(self.spec, self.dir),
                collection_name=self.manifest.collection,
                embedding_function=embeddings,
                create_collection_if_not_exists=False,
            )
        except Exception as exc:
            raise IndexCorrupt(
                f"cannot open the vector collection {self.manifest.collection!r} ({exc}); "
                "run `vision-qa ingest --rebuild`"
            ) from exc
