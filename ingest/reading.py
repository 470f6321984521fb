"""The reading step of an ingest: which files, their bytes, and chunks for the changed ones.

A file whose bytes and title are those of the previous generation is not parsed again: its
chunks come from that generation. A file that could not be read before and has not changed
gets the same outcome without being parsed again either. PDF, Word and HTML are parsed in
a worker process under limits (``ingest/sandbox.py``).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ingest.chunker import CHUNKER_VERSION, Chunker
from ingest.embedders import EmbeddingCache
from ingest.loaders import SUPPORTED, LoadError, Parse, ParseLimits, Skipped, make_doc, read_file, shown, source_name
from ingest.sources import load_sources
from ingest.store import Manifest
from ingest.types import Chunk

Progress = Callable[[str, int, int], None]  # (stage, done, total)


class MissingPath(FileNotFoundError):
    """A path given to the ingest does not exist."""


@dataclass
class Found:
    files: list[Path] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # messages, one per refused path


def discover(paths: list[Path], corpus_dir: Path) -> Found:
    """Supported files under the given files or folders, sorted, without duplicates.

    A symbolic link in the corpus folder that leads outside it is refused (its target is
    not named: the message may be shown to whoever runs the ingest). Links inside the
    folder are read as the file they point to; linked folders are not entered.
    """
    found = Found()
    corpus = corpus_dir.resolve()
    for p in paths:
        if p.is_dir():
            root = p.resolve()
            for entry in _walk(p):
                if entry.is_symlink():
                    target = entry.resolve()
                    inside = target.is_relative_to(root) or target.is_relative_to(corpus)
                    if not inside and (entry.is_dir() or entry.suffix.lower() in SUPPORTED):
                        found.refused.append(f"{shown(source_name(entry, p))}: a symbolic link that leads outside "
                                             "the corpus folder; not indexed")
                        continue
                    if not inside or not entry.is_file():
                        continue
                if entry.is_file() and entry.suffix.lower() in SUPPORTED:
                    found.files.append(entry)
        elif p.is_file():
            if p.is_symlink() and p.absolute().is_relative_to(corpus) and not p.resolve().is_relative_to(corpus):
                found.refused.append(f"{shown(source_name(p, corpus_dir))}: a symbolic link that leads outside "
                                     "the corpus folder; not indexed")
                continue
            found.files.append(p)
        else:
            raise MissingPath(f"{p}: no such file or folder")
    found.files = sorted(dict.fromkeys(f.resolve() for f in found.files))
    return found


def _walk(folder: Path):
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        base = Path(dirpath)
        for name in dirnames:
            if (base / name).is_symlink():
                yield base / name
        for name in filenames:
            yield base / name


class Source:
    """One file of the new generation: its chunks, parsed now or the previous generation's
    (read from there only if a step needs them)."""

    def __init__(self, name: str, sha256: str, title: str, chunks: list[Chunk] | None = None,
                 count: int = 0, load: Callable[[], list[Chunk]] | None = None) -> None:
        self.name = name
        self.sha256 = sha256
        self.title = title
        self.reused = chunks is None  # not parsed again
        self.count = len(chunks) if chunks is not None else count
        self._chunks = chunks
        self._load = load

    @property
    def chunks(self) -> list[Chunk]:
        if self._chunks is None:
            self._chunks = self._load()
        return self._chunks


@dataclass
class Reading:
    sources: list[Source] = field(default_factory=list)  # what the new generation holds, in order
    skipped: dict[str, str] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)  # could not be read now
    files: int = 0  # files found
    parsed: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Previous:
    """What a new generation may take from the last one: its manifest and its chunks."""

    def __init__(self, manifest: Manifest, gen_dir: Path, chunks_of: Callable[[str], list[Chunk]]) -> None:
        self.manifest = manifest
        self.dir = gen_dir
        self.chunks_of = chunks_of

    def same(self, name: str, sha256: str, title: str) -> bool:
        m = self.manifest
        return m.chunker == CHUNKER_VERSION and m.files.get(name) == sha256 and m.titles.get(name) == title

    def source(self, name: str) -> Source:
        m = self.manifest
        return Source(name, m.files[name], m.titles.get(name, ""), count=m.file_chunks.get(name, 0),
                      load=lambda: self.chunks_of(name))


class CorpusReader:
    """``cache`` remembers, by the bytes' hash, why a file could not be read, so an unchanged
    hostile file costs nothing the next time (``--rebuild`` tries every file again)."""

    def __init__(self, corpus_dir: Path, chunker: Chunker, parse: Parse, max_file_bytes: int,
                 cache: EmbeddingCache, limits: ParseLimits) -> None:
        self.corpus_dir = corpus_dir
        self.chunker = chunker
        self.parse = parse
        self.max_file_bytes = max_file_bytes
        self.cache = cache
        limits_id = ",".join(f"{k}={v}" for k, v in sorted(limits.__dict__.items()))
        self.problem_kind = f"unreadable-v1|{CHUNKER_VERSION}|{limits_id}"

    def read(self, paths: list[Path], prev: Previous | None, partial: bool, reparse: bool,
             progress: Progress) -> Reading:
        """``partial``: the paths are added to (or updated in) the index, which keeps its
        other files; otherwise the index mirrors the corpus folder. ``reparse``: parse
        every file, even unchanged ones (``--rebuild``)."""
        out = Reading()
        sources = load_sources(self.corpus_dir)
        found = discover(paths, self.corpus_dir)
        out.errors += found.refused
        files = found.files
        out.files = len(files) + len(found.refused)
        corpus = self.corpus_dir.resolve()
        by_hash: dict[str, str] = {}
        for i, path in enumerate(files):
            progress("read", i, len(files))
            root = corpus if path.is_relative_to(corpus) else path.parent
            name = source_name(path, root)
            meta = sources.get(name)
            title = (meta.title if meta else "") or path.stem
            try:
                raw = read_file(path, root, self.max_file_bytes)
            except LoadError as exc:
                out.errors.append(str(exc))
                out.failed.add(name)
                continue
            sha = hashlib.sha256(raw).hexdigest()
            if sha in by_hash:
                out.warnings.append(f"{shown(name)}: identical to {shown(by_hash[sha])}; indexed once")
                continue
            if meta is None:
                out.warnings.append(f"{shown(name)}: no entry in sources.toml; using the file name as its title")
            known = None if reparse else self.cache.note(self.problem_kind, sha)
            if prev is not None and not reparse and prev.same(name, sha, title):
                out.sources.append(prev.source(name))
            elif known is not None:
                kind, reason = json.loads(known)
                self._unreadable(out, name, reason, kind == "skipped")
                continue
            elif not self._parse(out, path, root, name, sha, raw, meta):
                continue
            by_hash[sha] = name
        progress("read", len(files), len(files))
        self._carry(out, prev, partial)
        return out

    def _parse(self, out: Reading, path: Path, root: Path, name: str, sha: str, raw: bytes, meta) -> bool:
        out.parsed += 1
        try:
            parsed = self.parse(path.suffix.lower(), raw)
            doc = make_doc(path, root, raw, parsed, meta)
        except (LoadError, Skipped) as exc:
            skipped = isinstance(exc, Skipped)
            self.cache.set_note(self.problem_kind, sha, json.dumps(["skipped" if skipped else "error", exc.problem]))
            self._unreadable(out, name, exc.problem, skipped)
            return False
        out.sources.append(Source(name, sha, doc.title, self.chunker.split(doc)))
        return True

    @staticmethod
    def _unreadable(out: Reading, name: str, reason: str, skipped: bool) -> None:
        message = f"{shown(name)}: {reason}"
        if skipped:
            out.skipped[name] = message
            out.warnings.append(message)
        else:
            out.errors.append(message)
            out.failed.add(name)

    @staticmethod
    def _carry(out: Reading, prev: Previous | None, partial: bool) -> None:
        """Keep, from the previous generation, a file that fails now but was indexed before
        (bad input loses nothing), and, with explicit paths, every file not named."""
        if prev is None:
            return
        present = {s.name for s in out.sources} | set(out.skipped)
        carried = [name for name in prev.manifest.files if name not in present and (
            name in out.failed or partial)]
        for name in carried:
            if name in out.failed:
                out.warnings.append(f"{shown(name)}: kept the previously indexed version")
            out.sources.append(prev.source(name))
        out.sources.sort(key=lambda s: s.name)
