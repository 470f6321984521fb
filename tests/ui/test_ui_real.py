"""The real app over the real assistant and the bundled corpus, asked through gradio_client."""
from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gradio_client import Client

from assistant.build import build_assistant, run_ingest
from ui import FeedbackStore, create_app, launch
from ui.gate import WebLimits
from vision_qa.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
DEER = "個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進"


@pytest.fixture(scope="module")
def real_app(tmp_path_factory, free_port):
    root = tmp_path_factory.mktemp("real")
    shutil.copytree(Path(__file__).resolve().parents[2] / "corpus", root / "corpus")
    settings = Settings(data_dir=root / "data", corpus_dir=root / "corpus", rate_limit_per_min=100)
    run_ingest(settings, quiet=True)
    # twenty residents at once, all from 127.0.0.1 in this test
    demo = create_app(build_assistant(settings), feedback=FeedbackStore(root / "fb.sqlite3"),
                      rate_limit_per_min=100, web=WebLimits(client_max_answering=20, client_max_pending=20))
    url = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True)
    try:
        yield url
    finally:
        demo.close()


def _ask(url: str, question: str) -> dict:
    client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    return json.loads(client.predict(question, "[]", api_name="/ask"))


def test_real_answer_cites_the_deer_bullet(real_app):
    data = _ask(real_app, "鹿肉って何か取り組みあるの？")
    assert data["coverage"] in ("direct", "related")
    assert data["citations"][0]["quote"] == DEER
    assert data["citations"][0]["section"] == (
        "連携地域の主な施策の方向（今後５年程度） › １ 農林水産業をはじめとする地域産業の振興")
    assert "[1]" in data["answer"]


def test_twenty_concurrent_real_requests(real_app):
    questions = ["鹿肉って何か取り組みあるの？", "ゼロカーボンに関する施策を全部教えて"] * 10
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda q: _ask(real_app, q), questions, timeout=240))
    assert len(results) == 20
    for q, data in zip(questions, results):
        assert data["citations"], q
        if q.startswith("鹿肉"):
            assert data["citations"][0]["quote"] == DEER
        else:
            assert len(data["citations"]) == 5 and data["mode"] == "structure"
