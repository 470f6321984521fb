"""The writing step of an ingest: one new generation, from nothing or from the previous one.

From the previous generation (the usual case) only the difference is written: chunk files
of unchanged sources are hard-linked, the vectors get the added and removed chunks
(``ingest/vectors.py``), BM25 and the content terms take the previous rows of unchanged
chunks and analyse only the new ones (``ingest/rows.py``). ``--rebuild`` and an unusable
previous generation write everything. Nothing is visible until the indexer switches
``CURRENT``; a failure removes the half-written generation.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from ingest.chunker import CHUNKER_VERSION
from ingest.embedders import BaseEmbedder, CachedEmbeddings, EmbeddingCache
from ingest.layout import make_generation_dir, new_generation_name, remove_generation, write_atomic
from ingest.reading import Previous, Source
from ingest.rows import TermRows, assemble, bm25_index
from ingest.store import INDEX_FORMAT, Manifest, StoreSpec, chunk_file, file_sha256, save_chunks
from ingest.terms import TERMS_ID, TermExtractor, TermVectors
from ingest.tokenize import TOKENIZER_ID, JapaneseTokenizer
from ingest.types import Chunk
from ingest.vectors import Change, writer_for

Progress = Callable[[str, int, int], None]


class PreviousDamaged(RuntimeError):
    """A file of the previous generation cannot be used; the ingest starts from nothing."""


@dataclass
class Plan:
    sources: list[Source]
    prev: Previous | None  # the generation to start from; None: write everything
    change: Change  # the vectors' difference from ``prev`` (everything when there is none)
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass
class Result:
    manifest: Manifest
    embeddings: int = 0
    term_embeddings: int = 0
    timings: dict[str, float] = field(default_factory=dict)


class GenerationWriter:
    def __init__(self, spec: StoreSpec, embedder: BaseEmbedder, tokenizer: JapaneseTokenizer,
                 extractor: TermExtractor) -> None:
        self.spec = spec
        self.embedder = embedder
        self.tokenizer = tokenizer
        self.extractor = extractor
        self.vectors = writer_for(spec)

    def write(self, plan: Plan, cache: EmbeddingCache, progress: Progress) -> Result:
        prev = plan.prev
        seq = (prev.manifest.seq if prev else 0) + 1
        generation = new_generation_name()
        gen_dir = make_generation_dir(self.spec, generation)
        timings: dict[str, float] = {}
        embeddings = CachedEmbeddings(self.embedder, cache)
        collection = None

        def step(name: str, work):
            """Run one step; its time without what the embedder spent inside it."""
            t, embedded = time.perf_counter(), embeddings.embed_seconds
            out = work()
            timings[name] = time.perf_counter() - t - (embeddings.embed_seconds - embedded)
            return out

        try:
            step("chunks", lambda: self._write_chunks(plan, gen_dir))
            written = step("vectors", lambda: self._write_vectors(plan, gen_dir, generation, seq, embeddings,
                                                                  progress))
            collection = written.collection
            segments, new_chunks = self._segments(plan)
            step("bm25", lambda: self._write_bm25(plan, gen_dir, segments, new_chunks, cache, progress))
            step("terms", lambda: self._write_terms(plan, gen_dir, segments, new_chunks, cache, embeddings, progress))
            if self.spec.remote:
                write_atomic(gen_dir / "records.json", json.dumps(written.records, ensure_ascii=False))
            checksums = step("checksums", lambda: self._checksums(plan, gen_dir))
            manifest = Manifest(
                generation=generation, collection=written.collection, embedder_id=self.embedder.id,
                dim=written.dim or (prev.manifest.dim if prev else 0), tokenizer=TOKENIZER_ID, chunker=CHUNKER_VERSION,
                files={s.name: s.sha256 for s in plan.sources},
                file_chunks={s.name: s.count for s in plan.sources},
                skipped=plan.skipped, created=datetime.now(timezone.utc).isoformat(), format=INDEX_FORMAT,
                seq=seq, titles={s.name: s.title for s in plan.sources}, checksums=checksums,
            )
            manifest.save(gen_dir / "manifest.json")
        except BaseException:
            self.vectors.abandon(prev.manifest if prev else None, generation, collection)
            remove_generation(self.spec, generation)
            raise
        timings["embed"] = embeddings.embed_seconds
        return Result(manifest, embeddings.computed, embeddings.computed_queries, timings)

    # -- chunks --------------------------------------------------------------------------
    def _write_chunks(self, plan: Plan, gen_dir: Path) -> None:
        (gen_dir / "chunks").mkdir()
        for s in plan.sources:
            target = chunk_file(gen_dir, s.name)
            if s.reused and plan.prev is not None and s.count:
                source = chunk_file(plan.prev.dir, s.name)
                if source.exists():
                    try:
                        os.link(source, target)
                    except OSError:  # a file system without hard links
                        shutil.copyfile(source, target)
                    continue
            if s.count:
                save_chunks(target, s.chunks)

    def _checksums(self, plan: Plan, gen_dir: Path) -> dict[str, str]:
        """Hashes of the files written; a hard-linked chunk file keeps the hash it had."""
        known = plan.prev.manifest.checksums if plan.prev is not None else {}
        linked = {chunk_file(gen_dir, s.name).relative_to(gen_dir).as_posix() for s in plan.sources if s.reused}
        out = {}
        for path in sorted(p for p in gen_dir.rglob("*") if p.is_file()):
            name = path.relative_to(gen_dir).as_posix()
            if name.startswith("chroma/") or name in ("lease", "chroma.lock", "manifest.json"):
                continue
            out[name] = known[name] if name in linked and name in known else file_sha256(path)
        return out

    # -- vectors -------------------------------------------------------------------------
    def _write_vectors(self, plan, gen_dir, generation, seq, embeddings: CachedEmbeddings, progress):
        total, done, dim = len(plan.change.add), 0, 0

        def embed(chunks: list[Chunk]) -> list[list[float]]:
            nonlocal done, dim
            vectors = embeddings.embed_documents([c.embed_text() for c in chunks])
            done += len(chunks)
            dim = len(vectors[0]) if vectors else dim
            progress("embed", done, total)
            return vectors

        progress("embed", 0, total)
        prev = plan.prev
        if prev is None:
            written = self.vectors.build(gen_dir, generation, seq, plan.change.add, embed)
        else:
            try:
                records = json.loads((prev.dir / "records.json").read_text(encoding="utf-8")) if self.spec.remote else {}
            except (OSError, ValueError) as exc:
                raise PreviousDamaged(f"its records.json cannot be read ({exc})") from exc
            written = self.vectors.apply(prev.manifest, prev.dir, gen_dir, generation, seq, plan.change, records, embed)
        written.dim = dim
        return written

    # -- BM25 and content terms ----------------------------------------------------------
    def _segments(self, plan: Plan) -> tuple[list[tuple[str, int, int]], list[Chunk]]:
        """Where each source's rows come from: the previous generation's rows, or new ones."""
        starts: dict[str, int] = {}
        if plan.prev is not None:
            row = 0
            for name, count in plan.prev.manifest.file_chunks.items():
                starts[name] = row
                row += count
        segments, new_chunks = [], []
        for s in plan.sources:
            if s.reused and s.name in starts and plan.prev is not None:
                segments.append(("prev", starts[s.name], s.count))
            else:
                segments.append(("new", len(new_chunks), s.count))
                new_chunks.extend(s.chunks)
        return segments, new_chunks

    def _previous_rows(self, plan: Plan, name: str) -> TermRows | None:
        if plan.prev is None:
            return None
        try:
            return TermRows.load(plan.prev.dir / name)
        except (OSError, ValueError, KeyError) as exc:
            raise PreviousDamaged(f"its {name} cannot be read ({exc})") from exc

    def _write_bm25(self, plan, gen_dir, segments, new_chunks, cache: EmbeddingCache, progress) -> None:
        progress("bm25", 0, 1)
        # Tokens of chunks analysed before come from the cache: Sudachi was a third of a 100k-chunk ingest.
        tokens = cache.analyse(TOKENIZER_ID, [c.embed_text() for c in new_chunks], self.tokenizer.tokens)
        rows = assemble(self._previous_rows(plan, "tokens.npz"), segments, tokens)
        rows.save(gen_dir / "tokens.npz")
        if rows.matrix.shape[0] == 0:  # bm25s cannot search an empty corpus: one placeholder document
            rows = assemble(None, [("new", 0, 1)], [["\x00"]])
        bm25_index(rows).save(str(gen_dir / "bm25"))
        progress("bm25", 1, 1)

    def _write_terms(self, plan, gen_dir, segments, new_chunks, cache: EmbeddingCache,
                     embeddings: CachedEmbeddings, progress) -> None:
        """Vectors of the chunks' content terms, so that answering never embeds a passage's
        terms (most of an answer's time before)."""
        per_chunk = cache.analyse(TERMS_ID, [c.text for c in new_chunks],
                                  lambda text: [t.text for t in self.extractor.terms(text)])
        rows = assemble(self._previous_rows(plan, "chunk_terms.npz"), segments, per_chunk, binary=True)
        known: dict[str, np.ndarray] = {}
        if plan.prev is not None:
            try:
                known = TermVectors.load(plan.prev.dir).vectors
            except (OSError, ValueError) as exc:
                raise PreviousDamaged(f"its term vectors cannot be read ({exc})") from exc
        missing = [t for t in rows.vocab if t not in known]
        done = 0
        progress("terms", 0, len(missing))

        def on_batch(n: int) -> None:
            nonlocal done
            done += n
            progress("terms", done, len(missing))

        fresh = TermVectors.build(missing, lambda ts: embeddings.embed_queries(ts, on_batch)).vectors
        TermVectors({t: known[t] if t in known else fresh[t] for t in rows.vocab}).save(gen_dir)
        rows.save(gen_dir / "chunk_terms.npz")
        progress("terms", len(missing), len(missing))


def counts(report, prev_chunks: list[Chunk], new_chunks: list[Chunk], unchanged_sources: int) -> None:
    """added / updated / removed / unchanged of the chunks that changed sources hold; an
    edited chunk keeps its place (source, section, order) and counts as updated."""
    old_ids = {c.id for c in prev_chunks}
    new_ids = {c.id for c in new_chunks}
    old_slots = {(c.source, c.section, c.order) for c in prev_chunks if c.id not in new_ids}
    report.unchanged = unchanged_sources + len(old_ids & new_ids)
    fresh = [c for c in new_chunks if c.id not in old_ids]
    report.updated = sum(1 for c in fresh if (c.source, c.section, c.order) in old_slots)
    report.added = len(fresh) - report.updated
    report.removed = len(old_ids - new_ids) - report.updated
