"""The ingest pipeline: files → chunks → embeddings (cached) → a new index generation."""
from __future__ import annotations

import time
import uuid
from collections import Counter
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from filelock import FileLock, Timeout

from ingest.chunker import CHUNKER_VERSION, Chunker
from ingest.embedders import BaseEmbedder, CachedEmbeddings, EmbeddingCache
from ingest.loaders import SUPPORTED, LoadError, Skipped, load_file
from ingest.sources import load_sources
from ingest.store import (
    INDEX_FORMAT, IndexReader, IndexError_, Manifest, StoreSpec, chroma_client, collection_name, current_generation,
    load_chunks, prune_generations, save_chunks, switch_current,
)
from ingest.terms import TERMS_ID, TermExtractor, TermVectors
from ingest.tokenize import TOKENIZER_ID, JapaneseTokenizer
from ingest.types import Chunk

Progress = Callable[[str, int, int], None]  # (stage, done, total)


class IngestBusy(RuntimeError):
    pass


@dataclass
class IngestReport:
    files: int = 0
    chunks: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    embeddings_computed: int = 0
    term_embeddings_computed: int = 0  # query-mode vectors of new content terms
    seconds: float = 0.0
    generation: str = ""
    noop: bool = False
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def discover(paths: list[Path]) -> list[Path]:
    """Supported files under the given files or folders, sorted, without duplicates."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found.extend(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUPPORTED)
        elif p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return sorted(dict.fromkeys(f.resolve() for f in found))


class Indexer:
    """Builds the index. One writer at a time: a second ingest fails at once (Chroma's
    SQLite hangs with two writers), it does not wait."""

    def __init__(self, store: StoreSpec, embedder: BaseEmbedder, corpus_dir: Path,
                 max_file_bytes: int = 20_000_000, chunker: Chunker | None = None,
                 tokenizer: JapaneseTokenizer | None = None) -> None:
        self.store = store
        self.embedder = embedder
        self.corpus_dir = corpus_dir
        self.max_file_bytes = max_file_bytes
        self.chunker = chunker or Chunker()
        self.tokenizer = tokenizer or JapaneseTokenizer()
        self.extractor = TermExtractor(self.tokenizer)

    def run(self, paths: list[Path] | None = None, rebuild: bool = False,
            progress: Progress | None = None) -> IngestReport:
        self.store.data_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.store.lock_file), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise IngestBusy(
                f"another ingest is already running on {self.store.data_dir} (lock {self.store.lock_file}); "
                "wait for it to finish"
            ) from None
        try:
            return self._run(paths or [self.corpus_dir], rebuild, progress or (lambda *a: None), partial=bool(paths))
        finally:
            lock.release()

    def _previous(self) -> tuple[Manifest | None, list[Chunk]]:
        if current_generation(self.store) is None:
            return None, []
        try:
            reader = IndexReader(self.store, self.embedder.id)
            return reader.manifest, reader.chunks
        except IndexError_:
            return None, []  # damaged or built with another embedder: rebuild from scratch

    def _run(self, paths: list[Path], rebuild: bool, progress: Progress, partial: bool = False) -> IngestReport:
        """``partial``: the paths are added to (or updated in) the index, which keeps its
        other files; otherwise the index mirrors the corpus folder."""
        t0 = time.perf_counter()
        report = IngestReport()
        prev, prev_chunks = self._previous()
        sources = load_sources(self.corpus_dir)
        files = discover(paths)
        report.files = len(files)

        docs, hashes, skipped, failed = [], {}, {}, set()
        for i, path in enumerate(files):
            progress("read", i, len(files))
            root = self.corpus_dir.resolve() if path.is_relative_to(self.corpus_dir.resolve()) else path.parent
            rel = path.relative_to(root).as_posix()
            meta = sources.get(rel)
            try:
                doc = load_file(path, root, meta, self.max_file_bytes)
            except Skipped as exc:
                skipped[rel] = str(exc)
                report.warnings.append(str(exc))
                continue
            except LoadError as exc:
                report.errors.append(str(exc))
                failed.add(rel)
                continue
            if doc.sha256 in hashes.values():
                twin = next(s for s, h in hashes.items() if h == doc.sha256)
                report.warnings.append(f"{rel}: identical to {twin}; indexed once")
                continue
            if meta is None:
                report.warnings.append(f"{rel}: no entry in sources.toml; using the file name as its title")
            hashes[rel] = doc.sha256
            docs.append(doc)
        progress("read", len(files), len(files))

        if not docs and report.errors:
            # Nothing could be read: keep the index that answers now.
            report.noop = True
            report.generation = prev.generation if prev else ""
            report.chunks = report.unchanged = len(prev_chunks)
            report.seconds = time.perf_counter() - t0
            return report
        # Sources to carry over from the previous generation unchanged: a file that fails
        # now but was indexed before (bad input loses nothing), and, with explicit paths,
        # every indexed file that was not named.
        carried = set(failed)
        if partial and prev is not None:
            carried |= {s for s in prev.files if s not in hashes and s not in skipped}
        compatible = prev is not None and (prev.embedder_id, prev.tokenizer, prev.chunker, prev.format) == (
            self.embedder.id, TOKENIZER_ID, CHUNKER_VERSION, INDEX_FORMAT)
        same_files = prev is not None and all(prev.files.get(s) == h for s, h in hashes.items()) and (
            set(prev.files) == set(hashes) | carried)
        if not rebuild and compatible and not failed and same_files:
            report.noop, report.generation = True, prev.generation
            report.chunks = report.unchanged = len(prev_chunks)
            report.seconds = time.perf_counter() - t0
            return report

        chunks = [c for doc in docs for c in self.chunker.split(doc)]
        kept = [c for c in prev_chunks if c.source in carried]
        for source in sorted({c.source for c in kept}):
            if source in failed:
                report.warnings.append(f"{source}: kept the previously indexed version")
            hashes[source] = prev.files.get(source, "") if prev else ""
        chunks += kept
        self._diff(report, prev_chunks, chunks)
        report.chunks = len(chunks)

        generation = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        gen_dir = self.store.gens_dir / generation
        gen_dir.mkdir(parents=True)
        cache = EmbeddingCache(self.store.cache_file)
        try:
            dim = self._write_vectors(gen_dir, generation, chunks, cache, report, progress)
            self._write_terms(gen_dir, chunks, cache, report, progress)
            progress("bm25", 0, 1)
            self._write_bm25(gen_dir, chunks, cache)
            progress("bm25", 1, 1)
        finally:
            cache.close()
        save_chunks(gen_dir / "chunks.jsonl", chunks)
        per_file = Counter(c.source for c in chunks)
        Manifest(
            generation=generation, collection=collection_name(generation), embedder_id=self.embedder.id,
            dim=dim, tokenizer=TOKENIZER_ID, chunker=CHUNKER_VERSION, files=hashes,
            file_chunks={s: per_file[s] for s in hashes},
            skipped=skipped, created=datetime.now(timezone.utc).isoformat(), format=INDEX_FORMAT,
        ).save(gen_dir / "manifest.json")
        switch_current(self.store, generation)
        prune_generations(self.store, keep={generation} | ({prev.generation} if prev else set()))
        report.generation = generation
        report.seconds = time.perf_counter() - t0
        return report

    @staticmethod
    def _diff(report: IngestReport, old: list[Chunk], new: list[Chunk]) -> None:
        old_ids = {c.id for c in old}
        new_ids = {c.id for c in new}
        old_slots = {(c.source, c.section, c.order) for c in old if c.id not in new_ids}
        report.unchanged = len(old_ids & new_ids)
        fresh = [c for c in new if c.id not in old_ids]
        report.updated = sum(1 for c in fresh if (c.source, c.section, c.order) in old_slots)
        report.added = len(fresh) - report.updated
        report.removed = len(old_ids - new_ids) - report.updated

    def _write_vectors(self, gen_dir: Path, generation: str, chunks: list[Chunk], cache: EmbeddingCache,
                       report: IngestReport, progress: Progress) -> int:
        from langchain_chroma import Chroma

        done = 0
        total = len(chunks)

        def on_batch(n: int) -> None:
            progress("embed", min(done + n, total), total)

        embeddings = CachedEmbeddings(self.embedder, cache, on_batch=on_batch)
        client = chroma_client(self.store, gen_dir)
        client.create_collection(collection_name(generation), configuration={"hnsw": {"space": "cosine"}})
        store = Chroma(client=client, collection_name=collection_name(generation), embedding_function=embeddings)
        progress("embed", 0, total)
        dim = 0
        # Chroma inserts ~25% faster in batches of 2,048 than of 256 (30k vectors on two
        # cores); its limit is 5,461.
        batch = 2048
        for i in range(0, total, batch):
            part = chunks[i:i + batch]
            before = embeddings.computed
            ids = [c.id for c in part]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                store.add_texts([c.embed_text() for c in part], metadatas=[_meta(c) for c in part], ids=ids)
            done += len(part)
            report.embeddings_computed += embeddings.computed - before
            progress("embed", done, total)
        if total:
            dim = len(embeddings.embed_documents([chunks[0].embed_text()])[0])
        return dim

    def _write_terms(self, gen_dir: Path, chunks: list[Chunk], cache: EmbeddingCache, report: IngestReport,
                     progress: Progress) -> None:
        """Vectors of the chunks' content terms, so that answering never embeds a passage's
        terms (most of an answer's time before)."""
        per_chunk = cache.analyse(TERMS_ID, [c.text for c in chunks],
                                  lambda text: [t.text for t in self.extractor.terms(text)])
        terms = list(dict.fromkeys(t for chunk_terms in per_chunk for t in chunk_terms))
        done = 0
        progress("terms", 0, len(terms))

        def on_batch(n: int) -> None:
            nonlocal done
            done += n
            progress("terms", done, len(terms))

        embeddings = CachedEmbeddings(self.embedder, cache)
        TermVectors.build(terms, lambda ts: embeddings.embed_queries(ts, on_batch)).save(gen_dir)
        report.term_embeddings_computed = embeddings.computed_queries
        progress("terms", len(terms), len(terms))

    def _write_bm25(self, gen_dir: Path, chunks: list[Chunk], cache: EmbeddingCache) -> None:
        import bm25s

        retriever = bm25s.BM25()
        # Tokens of unchanged chunks come from the cache: Sudachi was a third of a 100k-chunk ingest.
        corpus_tokens = cache.analyse(TOKENIZER_ID, [c.embed_text() for c in chunks], self.tokenizer.tokens)
        # bm25s cannot index an empty corpus; a one-token placeholder keeps the files valid.
        retriever.index(corpus_tokens or [["\x00"]], show_progress=False)
        retriever.save(str(gen_dir / "bm25"))


def _meta(c: Chunk) -> dict:
    meta = {"source": c.source, "title": c.title, "section": c.section_label, "kind": c.kind, "order": c.order}
    if c.page is not None:
        meta["page"] = c.page
    return meta
