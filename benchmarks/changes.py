"""What a small change costs once the corpus is large: edit one bullet, add a 100-chunk
document. Each is ingested into the embedded store and into a Chroma server, and timed as
wall time split into embedding (inside the embedder) and everything else.

``chroma_server`` starts ``chroma run`` on a free loopback port for the run (or uses one
given as host:port).
"""
from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import synth
from benchmarks.processes import stop

CASES = ("edit_bullet", "add_document")
ADDED = "added-document.txt"


def edit_one_bullet(corpus: Path) -> str:
    """Append 「（改訂）」 to the first bullet of the middle synthetic document."""
    files = sorted(corpus.glob("synthetic-*.txt"))
    path = files[len(files) // 2]
    lines = path.read_text(encoding="utf-8").split("\n")
    i = next(i for i, line in enumerate(lines) if line.startswith("・"))
    lines[i] = lines[i].rstrip("。") + "（改訂）"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path.name


def add_document(corpus: Path, templates: synth.Templates, chunks: int = 100) -> str:
    """A new plan-like document of exactly ``chunks`` chunks, listed in sources.toml."""
    doc = synth.generate(chunks, templates, seed=1)[0]
    (corpus / ADDED).write_text(doc.text, encoding="utf-8")
    with open(corpus / "sources.toml", "a", encoding="utf-8") as f:
        f.write(f'\n[[source]]\nfile = "{ADDED}"\ntitle = "{doc.title}"\nissuer = "synthetic"\ndate = "2025"\n')
    return ADDED


def result(report) -> dict:
    embed = report.timings.get("embed", 0.0)
    return {"seconds": report.seconds, "embed_s": embed, "rest_s": report.seconds - embed,
            "embeddings": report.embeddings_computed, "term_embeddings": report.term_embeddings_computed,
            "added": report.added, "updated": report.updated, "incremental": report.incremental,
            "parsed": report.parsed, "steps": {k: v for k, v in report.timings.items() if k != "embed"}}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def chroma_server(given: str = ""):
    """(host, port) of a Chroma server: ``given`` as host:port, or ``chroma run`` started here."""
    if given:
        host, _, port = given.rpartition(":")
        yield host, int(port)
        return
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    script = Path(sys.executable).parent / "chroma"
    command = str(script) if script.is_file() else shutil.which("chroma")
    if not command:
        raise RuntimeError(f"the `chroma` command is not installed beside {sys.executable}")
    root = Path(tempfile.mkdtemp(prefix="vision-qa-bench-chroma-"))
    port = _free_port()
    log = open(root / "server.log", "wb")
    proc = subprocess.Popen([command, "run", "--path", str(root / "db"), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                chromadb.HttpClient(host="127.0.0.1", port=port,
                                    settings=ChromaSettings(anonymized_telemetry=False)).heartbeat()
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"`chroma run` did not start:\n{(root / 'server.log').read_text()}") from None
                time.sleep(0.25)
        yield "127.0.0.1", port
    finally:
        stop(proc)
        log.close()
        shutil.rmtree(root, ignore_errors=True)
