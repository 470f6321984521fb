"""Chats keep being answered while an ingest rebuilds the index under the running app,
and a second ingest on the same data folder is refused at once (one writer at a time)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gradio_client import Client

from assistant.build import build_indexer
from ingest.store import current_generation
from tests.robustness import inputs
from tests.robustness.checks import LEDGER, Sources, check_answer, kind_of
from tests.robustness.site import serving_copy

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:.*no_silent_downcasting:Warning"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated:Warning")]
ZERO_CARBON = "ゼロカーボンに関する施策を全部教えて"
UPDATE = "【更新情報】厚岸町のカキまつり\n\n厚岸町のカキまつりは、毎年１０月に厚岸町の子野日公園で開かれます。\n"
UPDATE_QUOTE = "厚岸町のカキまつりは、毎年１０月に厚岸町の子野日公園で開かれます。"


@pytest.fixture(scope="module")
def live(tmp_path_factory, vision_index, make_settings, free_port, offline_client_env):
    """The app serving a copy of the real index, which the test then changes under it."""
    root = tmp_path_factory.mktemp("live")
    with serving_copy(root, vision_index, make_settings, free_port(), residents=10) as (settings, url):
        yield settings, url, root

def ask(url: str, question: str) -> dict:
    client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    return json.loads(client.predict(question, "[]", api_name="/ask"))


def cli_env(settings, root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISION_QA_")}
    env.update(VISION_QA_DATA_DIR=str(settings.data_dir), VISION_QA_CORPUS_DIR=str(settings.corpus_dir),
               VISION_QA_CONFIG=str(root / "absent.toml"))
    return env


def test_chats_run_through_an_ingest_and_a_second_ingest_is_refused(live) -> None:
    settings, url, root = live
    before = current_generation(build_indexer(settings).store)
    (settings.corpus_dir / "update.txt").write_text(UPDATE, encoding="utf-8")

    # The first ingest holds the writer's lock and pauses when it starts embedding. The
    # second ingest is tried then, before the chats load both cores: what is measured is how
    # soon it gives up on the lock, not how slowly Python starts on a busy machine. The first
    # ingest then goes on once a few chats are answered, and switches the index under the rest.
    embedding, go_on = threading.Event(), threading.Event()
    outcome: dict = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "embed" and not embedding.is_set():
            embedding.set()
            go_on.wait(timeout=120)

    def first_ingest() -> None:
        try:
            outcome["report"] = build_indexer(settings).run(progress=progress)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    writer = threading.Thread(target=first_ingest, daemon=True)
    writer.start()
    assert embedding.wait(timeout=60), "the first ingest never started embedding"

    started = time.monotonic()
    second = subprocess.run([sys.executable, "-m", "vision_qa.cli", "ingest"], cwd=root, env=cli_env(settings, root),
                            capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started

    questions = [inputs.DEER_Q, ZERO_CARBON] * 10
    with ThreadPoolExecutor(max_workers=10) as pool:
        chats = [pool.submit(ask, url, q) for q in questions]
        for chat in chats[:4]:
            chat.result(timeout=240)
        assert writer.is_alive() and embedding.is_set()  # the first ingest still holds the lock
        go_on.set()
        answers = [c.result(timeout=240) for c in chats]
    writer.join(timeout=120)
    assert not writer.is_alive()

    assert second.returncode == 1, second.stderr
    assert "already running" in second.stderr and second.stdout == ""
    assert elapsed < 5.0, f"the second ingest took {elapsed:.1f}s to give up"

    assert "error" not in outcome, outcome.get("error")
    report = outcome["report"]
    assert (report.errors, report.files, report.added, report.removed) == ([], 2, 2, 0)  # update.txt: its heading and its paragraph
    assert current_generation(build_indexer(settings).store) == report.generation != before

    sources = Sources(settings.corpus_dir)
    for question, data in zip(questions, answers):
        LEDGER.record("ui.concurrent", check_answer(data, sources, question))
        assert data["citations"], question
        if question == inputs.DEER_Q:
            assert data["citations"][0]["quote"] == inputs.DEER
        else:
            assert (data["mode"], len(data["citations"])) == ("structure", 5)

    # The app switched to the new generation by itself: the new file is citable.
    data = ask(url, "厚岸町のカキまつりはいつ開かれますか？")
    LEDGER.record("ui.concurrent", kind_of(data))
    assert [(c["source"], c["quote"]) for c in data["citations"]][:1] == [("update.txt", UPDATE_QUOTE)]
