"""Damaged index files and a full disk, through the real ``vision-qa`` CLI and ``serve``.

Every damaged file gives one clear message naming the command that fixes it, the command
fixes it, and nothing already indexed is lost (M3, M4 and the CURRENT finding of issue 13).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.robustness.checks import LEDGER
from tests.robustness.site import DEER, DEER_Q, Site, ask_app

pytestmark = pytest.mark.slow
CORPUS = Path(__file__).resolve().parents[2] / "corpus"
EXTRA = "補足資料です。釧路・根室地域の観光と農林水産業の連携について、関係機関と協議を重ねてまいります。\n"
REBUILD = "run `vision-qa ingest --rebuild`"


@pytest.fixture
def site(tmp_path: Path, vision_index) -> Site:
    return Site(tmp_path, vision_index.data_dir, CORPUS)


def _current(site: Site) -> str:
    return (site.data / "CURRENT").read_text(encoding="utf-8").strip()


def _answers(site: Site) -> int:
    """The CLI answers the deer question from the index; returns the chunks it holds."""
    assert site.ask()["citations"][0]["quote"] == DEER
    return site.chunks()


@pytest.mark.parametrize("content, problem", [
    (b"\xff\xfe\x00\x81garbage\n", "is damaged (not UTF-8 text)"),
    (b"../../../etc\n", "is damaged (it holds '../../../etc', not a generation name)"),
    (b"/etc/passwd\n", "is damaged (it holds '/etc/passwd', not a generation name)"),
    (b"20991231T235959-abcdef\n", "names generation 20991231T235959-abcdef, which is not in "),
], ids=["not-utf8", "dot-dot", "absolute", "missing-generation"])
def test_a_damaged_current_pointer(site: Site, content: bytes, problem: str) -> None:
    before = site.chunks()
    (site.data / "CURRENT").write_bytes(content)
    run = site.cli("ask", DEER_Q)
    assert (run.code, run.stdout) == (3, "")
    assert run.lines() == [f"error: {site.data / 'CURRENT'} {problem}"
                           + (f"{site.data / 'generations'}; {REBUILD}" if "not in" in problem else f"; {REBUILD}")]

    # `ingest` (with or without --rebuild) writes a new generation from the files.
    fixed = site.cli("ingest", "--rebuild")
    assert fixed.code == 0, fixed.stderr
    assert any(line.startswith("warning: the current index cannot be read (") for line in fixed.lines())
    LEDGER.record("index.damage", "recovered", lost=max(0, before - _answers(site)))


def test_a_damaged_embedding_cache(site: Site, offline_client_env) -> None:
    before = site.chunks()
    generation = _current(site)
    cache = site.data / "embedding-cache.sqlite3"
    with open(cache, "r+b") as f:
        f.write(os.urandom(4096))  # the header and first page
    (site.corpus / "extra.txt").write_text(EXTRA, encoding="utf-8")

    run = site.cli("ingest")
    assert (run.code, run.stdout) == (1, "")
    assert run.lines()[-1] == (f"error: the embedding cache {cache} is damaged (file is not a database); {REBUILD} "
                               "(it moves the damaged cache aside)")
    assert _current(site) == generation and _answers(site) == before

    # serve still starts: it warns and answers from the current index.
    with site.serve() as (url, log):
        assert ask_app(url)["citations"][0]["quote"] == DEER
    assert "is damaged (file is not a database)" in log.read_text(encoding="utf-8")
    assert "serving the current index" in log.read_text(encoding="utf-8")

    fixed = site.cli("ingest", "--rebuild")
    assert fixed.code == 0, fixed.stderr
    aside = [p.name for p in site.data.iterdir() if p.name.startswith("embedding-cache.sqlite3.damaged-")]
    assert len(aside) == 1
    assert (f"warning: the embedding cache was damaged (file is not a database); moved it aside to {aside[0]} and "
            "started a new one (every text is embedded again)") in fixed.lines()
    assert fixed.stdout.startswith(f"files: 2  chunks: {before + 1}  ")
    LEDGER.record("index.damage", "recovered", lost=max(0, before - _answers(site)))


def test_overwritten_bytes_in_chromas_sqlite(site: Site) -> None:
    before = site.chunks()
    generation = _current(site)
    with open(site.data / "generations" / generation / "chroma" / "chroma.sqlite3", "r+b") as f:
        f.write(os.urandom(4096))

    run = site.cli("ask", DEER_Q)
    assert (run.code, run.stdout) == (3, "")
    assert run.lines()[-1].startswith(f"error: cannot read the vector collection 'vq_{generation}' in ")
    assert run.lines()[-1].endswith(f"(InternalError: error returned from database: (code: 26) file is not a "
                                    f"database); {REBUILD}")
    assert "Traceback" not in run.stderr

    # A plain ingest notices the damage (it no longer says "unchanged") and writes a new index.
    fixed = site.cli("ingest")
    assert fixed.code == 0, fixed.stderr
    assert ("warning: the current index is damaged (its vectors are damaged (file is not a database)); writing a "
            "new one from the files") in fixed.lines()
    assert "unchanged, nothing to do" not in fixed.stdout
    LEDGER.record("index.damage", "recovered", lost=max(0, before - _answers(site)))


@pytest.fixture
def tmpfs(tmp_path: Path):
    """A 24 MB tmpfs, the data folder's file system (needs root; CI runs as root)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the full-disk test needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path) -> Path:
    """Fill the file system of ``path`` to the last byte."""
    filler = path / f"filler-{uuid.uuid4().hex[:6]}"
    with open(filler, "wb", buffering=0) as f:  # unbuffered: nothing is left to flush on close
        for size in (1 << 16, 4096, 512, 1):
            try:
                while True:
                    f.write(bytes(size))
            except OSError:
                pass
    assert shutil.disk_usage(path).free < 4096
    return filler


def test_a_full_disk_keeps_the_index_answering(site: Site, tmpfs: Path, offline_client_env) -> None:
    data = tmpfs / "data"
    shutil.copytree(site.data, data)
    site.data = data
    before = site.chunks()
    generation = _current(site)
    (site.corpus / "extra.txt").write_text(EXTRA, encoding="utf-8")
    filler = _fill(tmpfs)

    run = site.cli("ingest")
    assert (run.code, run.stdout) == (1, "")
    assert run.lines()[-1].startswith(f"error: the disk holding {data} is full (")
    assert run.lines()[-1].endswith(" MB free) while writing the new index; free some space there and run the "
                                    "command again; the current index is kept and still answers")
    assert "Traceback" not in run.stderr
    assert {d.name for d in (data / "generations").iterdir()} == {generation}  # the partial one is gone

    # serve starts, warns and answers (Chroma writes as it starts: the reserve kept beside the
    # index gives it room) …
    assert shutil.disk_usage(tmpfs).free < 4096
    with site.serve() as (url, log):
        assert ask_app(url)["citations"][0]["quote"] == DEER
    text = log.read_text(encoding="utf-8")
    assert f"the disk holding {data} is full" in text and "serving the current index" in text
    # … and so does ask.
    assert _answers(site) == before

    # With space again, the same ingest completes.
    for f in tmpfs.glob("filler-*"):
        f.unlink()
    assert not filler.exists()
    again = site.cli("ingest")
    assert again.code == 0, again.stderr
    assert again.stdout.startswith(f"files: 2  chunks: {before + 1}  added: 1  ")
    LEDGER.record("disk.full", "recovered", lost=max(0, before - _answers(site)))
