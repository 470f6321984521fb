"""Explicit paths add to the index; a run in which nothing can be read keeps the index."""
from __future__ import annotations

from assistant.build import build_indexer
from ingest.store import IndexReader

NOTE = "釧路湿原の木道を補修し、散策路の案内板を多言語化します。"


def _sources(settings) -> set[str]:
    reader = IndexReader(build_indexer(settings).store, build_indexer(settings).embedder.id)
    return {c.source for c in reader.chunks}


def test_explicit_path_is_added_and_the_rest_kept(fresh_settings):
    indexer = build_indexer(fresh_settings)
    first = indexer.run()
    extra = fresh_settings.corpus_dir / "notes" / "boardwalk.txt"
    extra.parent.mkdir()
    extra.write_text(NOTE, encoding="utf-8")

    report = indexer.run([extra])

    assert (report.noop, report.errors, report.added, report.removed) == (False, [], 1, 0)
    assert report.chunks == first.chunks + 1
    assert _sources(fresh_settings) == {"kushiro-nemuro-vision.txt", "notes/boardwalk.txt"}
    # Naming the same unchanged file again does nothing.
    again = indexer.run([extra])
    assert (again.noop, again.embeddings_computed) == (True, 0)


def test_run_where_nothing_can_be_read_keeps_the_index(fresh_settings):
    indexer = build_indexer(fresh_settings)
    first = indexer.run()
    bad = fresh_settings.corpus_dir / "broken.txt"
    bad.write_bytes(b"\x00\x01\xff" * 100)

    report = indexer.run([bad])

    assert report.noop is True
    assert report.generation == first.generation
    assert len(report.errors) == 1 and "broken.txt" in report.errors[0]
    assert _sources(fresh_settings) == {"kushiro-nemuro-vision.txt"}
