"""The ingest pipeline: read the files, diff them against the current generation, write a
new generation, switch ``CURRENT``.

Reading (``ingest/reading.py``) parses only the files that changed; diffing (here) decides
what the vectors must gain and lose; writing (``ingest/generation.py``) applies that to a
copy of the previous generation, or builds everything with ``--rebuild``.
"""
from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from filelock import FileLock, Timeout

from ingest.chunker import CHUNKER_VERSION, Chunker
from ingest.embedders import BaseEmbedder, EmbeddingCache
from ingest.generation import GenerationWriter, Plan, PreviousDamaged, counts
from ingest.layout import REBUILD, disk_full_message, is_disk_full, is_failure, keep_reserve, leased
from ingest.loaders import ParseLimits
from ingest.reading import CorpusReader, MissingPath, Previous, Reading
from ingest.sandbox import SandboxedParser
from ingest.store import (
    INDEX_FORMAT, IndexError_, Manifest, StoreSpec, check_sqlite, chunk_file, current_generation, damaged_files,
    load_chunks, load_generation_chunks, prune_generations, switch_current,
)
from ingest.terms import TermExtractor
from ingest.tokenize import TOKENIZER_ID, JapaneseTokenizer
from ingest.types import Chunk
from ingest.vectors import Change

Progress = Callable[[str, int, int], None]  # (stage, done, total)


class IngestBusy(RuntimeError):
    pass


class IngestFailed(RuntimeError):
    """The ingest stopped; the current index is kept and still answers. The message says why
    and what to do."""


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
    parsed: int = 0  # files parsed in this run (an unchanged file is not)
    incremental: bool = False  # written as the difference from the previous generation
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step; "embed": inside the embedder
    parse_peak_rss_mb: float = 0.0  # of the worker that parsed PDF/Word/HTML files
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Indexer:
    """Builds the index. One writer at a time: a second ingest fails at once (Chroma's
    SQLite hangs with two writers), it does not wait."""

    def __init__(self, store: StoreSpec, embedder: BaseEmbedder, corpus_dir: Path,
                 max_file_bytes: int = 20_000_000, chunker: Chunker | None = None,
                 tokenizer: JapaneseTokenizer | None = None, limits: ParseLimits | None = None) -> None:
        self.store = store
        self.embedder = embedder
        self.corpus_dir = corpus_dir
        self.max_file_bytes = max_file_bytes
        self.chunker = chunker or Chunker()
        self.tokenizer = tokenizer or JapaneseTokenizer()
        self.extractor = TermExtractor(self.tokenizer)
        self.limits = limits or ParseLimits()

    def run(self, paths: list[Path] | None = None, rebuild: bool = False,
            progress: Progress | None = None) -> IngestReport:
        try:
            self.store.data_dir.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(self.store.lock_file), timeout=0)
            lock.acquire()
        except Timeout:
            raise IngestBusy(
                f"another ingest is already running on {self.store.data_dir} (lock {self.store.lock_file}); "
                "wait for it to finish"
            ) from None
        except OSError as exc:
            raise IngestFailed(self._why(exc, "to start the ingest")) from exc
        try:
            return self._run(paths or [self.corpus_dir], rebuild, progress or (lambda *a: None), partial=bool(paths))
        except (IngestFailed, IndexError_, MissingPath):
            raise
        except (OSError, sqlite3.Error, PreviousDamaged) as exc:
            raise IngestFailed(self._why(exc, "while writing the new index")) from exc
        except BaseException as exc:
            # Chroma reports a full disk as its own error type, and its Rust side panics.
            if is_disk_full(exc) or (is_failure(exc) and not isinstance(exc, Exception)):
                raise IngestFailed(self._why(exc, "while writing the new index")) from exc
            raise
        finally:
            lock.release()

    def _why(self, exc: BaseException, doing: str) -> str:
        if is_disk_full(exc):
            return disk_full_message(self.store, doing) + "; the current index is kept and still answers"
        return f"the ingest failed {doing} ({exc.__class__.__name__}: {exc}); the current index is kept"

    def _run(self, paths: list[Path], rebuild: bool, progress: Progress, partial: bool) -> IngestReport:
        t0 = time.perf_counter()
        report = IngestReport()
        cache = self._cache(rebuild, report)
        parser = SandboxedParser(self.limits)
        try:
            prev = self._previous(report)
            warnings = list(report.warnings)
            for attempt in (1, 2):
                report.errors, report.warnings = [], list(warnings)
                t = time.perf_counter()
                reading = CorpusReader(self.corpus_dir, self.chunker, parser, self.max_file_bytes, cache,
                                       self.limits).read(paths, prev, partial, reparse=rebuild, progress=progress)
                report.timings["read"] = time.perf_counter() - t
                try:
                    self._diff_and_write(reading, prev, rebuild, report, cache, progress)
                    break
                except PreviousDamaged as exc:
                    if attempt == 2 or prev is None:
                        raise
                    warnings.append(f"the current index cannot be extended ({exc}); writing a new one from the files")
                    prev = None
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):  # full, locked, I/O: not damage
                raise
            raise IndexError_(f"the embedding cache {self.store.cache_file} is damaged ({exc}); {REBUILD} "
                              "(it moves the damaged cache aside)") from exc
        finally:
            report.parse_peak_rss_mb = parser.peak_rss_mb
            parser.close()
            cache.close()
        report.seconds = time.perf_counter() - t0
        return report

    def _cache(self, rebuild: bool, report: IngestReport) -> EmbeddingCache:
        """The embedding cache; with ``--rebuild`` a damaged one is moved aside first."""
        path = self.store.cache_file
        if rebuild and path.exists() and (problem := check_sqlite(path)) is not None:
            aside = path.with_name(f"{path.name}.damaged-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}")
            for suffix in ("", "-journal", "-wal", "-shm"):
                if Path(str(path) + suffix).exists():
                    os.replace(str(path) + suffix, str(aside) + suffix)
            report.warnings.append(f"the embedding cache was damaged ({problem}); moved it aside to {aside.name} "
                                   "and started a new one (every text is embedded again)")
        return EmbeddingCache(path)

    def _previous(self, report: IngestReport) -> Previous | None:
        """The current generation, if it is sound enough to start from; else None, with a
        warning (the new generation is then written from the files)."""
        try:
            gen = current_generation(self.store)
            if gen is None:
                return None
            gen_dir = self.store.gens_dir / gen
            manifest = Manifest.load(gen_dir / "manifest.json")
        except (IndexError_, OSError, ValueError, TypeError) as exc:
            report.warnings.append(f"the current index cannot be read ({exc}); writing a new one from the files")
            return None
        if manifest.embedder_id != self.embedder.id:
            return None  # built with another embedder: every vector changes
        if manifest.format == INDEX_FORMAT:
            damaged = damaged_files(gen_dir, manifest)
            problem = None if self.store.remote else check_sqlite(gen_dir / "chroma" / "chroma.sqlite3")
            if damaged or problem is not None:
                what = f"{', '.join(damaged[:3])} changed since it was written" if damaged else \
                    f"its vectors are damaged ({problem})"
                report.warnings.append(f"the current index is damaged ({what}); writing a new one from the files")
                return None
        legacy: list[Chunk] | None = None

        def chunks_of(source: str) -> list[Chunk]:
            nonlocal legacy
            try:
                if (gen_dir / "chunks").is_dir():
                    return load_chunks(chunk_file(gen_dir, source)) if manifest.file_chunks.get(source) else []
                legacy = legacy if legacy is not None else load_generation_chunks(gen_dir, manifest)
                return [c for c in legacy if c.source == source]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise PreviousDamaged(f"the chunks of {source} cannot be read ({exc})") from exc

        return Previous(manifest, gen_dir, chunks_of)

    def _diff_and_write(self, reading: Reading, prev: Previous | None, rebuild: bool, report: IngestReport,
                        cache: EmbeddingCache, progress: Progress) -> None:
        report.files, report.parsed = reading.files, reading.parsed
        report.errors += reading.errors
        report.warnings += reading.warnings
        report.chunks = sum(s.count for s in reading.sources)
        if not reading.sources and reading.errors and prev is None:
            report.noop = True  # nothing could be read and there is no index to keep
            return
        extend = prev is not None and not rebuild and self._extendable(prev.manifest)
        if extend and self._unchanged(reading, prev.manifest):
            report.noop, report.generation, report.unchanged = True, prev.manifest.generation, report.chunks
            return
        t = time.perf_counter()
        plan = self._diff(reading, prev, extend, report)
        report.timings["diff"] = time.perf_counter() - t
        result = GenerationWriter(self.store, self.embedder, self.tokenizer, self.extractor).write(plan, cache, progress)
        report.incremental = extend
        report.embeddings_computed = result.embeddings
        report.term_embeddings_computed = result.term_embeddings
        report.timings.update(result.timings)
        t = time.perf_counter()
        self._switch(result.manifest, prev.manifest if prev else None)
        report.timings["switch"] = time.perf_counter() - t
        report.generation = result.manifest.generation

    @staticmethod
    def _diff(reading: Reading, prev: Previous | None, extend: bool, report: IngestReport) -> Plan:
        """What the vectors gain and lose. Extending ``prev``, only the files that changed
        are compared, chunk by chunk (an id names a source, section and text; the embedded
        text is compared too). Otherwise every chunk is written, and counted against ``prev``."""
        sources = reading.sources
        same = {s.name for s in sources if s.reused} if extend else set()
        old_names = [name for name in (prev.manifest.files if prev else {}) if name not in same]
        old = [c for name in old_names for c in prev.chunks_of(name)]
        new = [c for s in sources if s.name not in same for c in s.chunks]
        counts(report, old, new, sum(s.count for s in sources if s.name in same))
        if not extend:
            return Plan(sources, None, Change(add=new, remove=[]), reading.skipped)
        new_text = {c.id: c.embed_text() for c in new}
        kept = {c.id for c in old if new_text.get(c.id) == c.embed_text()}
        change = Change(add=[c for c in new if c.id not in kept], remove=[c.id for c in old if c.id not in kept])
        return Plan(sources, prev, change, reading.skipped)

    def _extendable(self, manifest: Manifest) -> bool:
        return (manifest.tokenizer, manifest.chunker, manifest.format) == (TOKENIZER_ID, CHUNKER_VERSION, INDEX_FORMAT)

    @staticmethod
    def _unchanged(reading: Reading, prev: Manifest) -> bool:
        return (all(s.reused for s in reading.sources) and [s.name for s in reading.sources] == list(prev.files)
                and reading.skipped == prev.skipped)

    def _switch(self, manifest: Manifest, prev: Manifest | None) -> None:
        """Point CURRENT at the new generation, then prune: the previous generation stays
        for readers still on it, and so does any generation a reader holds."""
        switch_current(self.store, manifest.generation)
        keep_reserve(self.store)
        keep = {manifest.generation} | ({prev.generation} if prev else set()) | leased(self.store)
        kept = [manifest] + [m for m in (self._manifest(g) for g in keep - {manifest.generation}) if m]
        in_use = {m.collection for m in kept}
        writer = GenerationWriter(self.store, self.embedder, self.tokenizer, self.extractor).vectors
        prune_generations(self.store, keep,
                          drop_collection=lambda name, path: writer.drop(self._manifest_at(path), in_use))
        if self.store.remote:
            try:
                writer.collect(kept)
            except Exception:  # the server went away: the next ingest collects
                pass

    def _manifest(self, generation: str) -> Manifest | None:
        return self._manifest_at(self.store.gens_dir / generation)

    @staticmethod
    def _manifest_at(gen_dir: Path) -> Manifest | None:
        try:
            return Manifest.load(gen_dir / "manifest.json")
        except (OSError, ValueError, TypeError):
            return None


