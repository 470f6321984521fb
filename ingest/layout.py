"""The index's files on disk: generations, the ``CURRENT`` pointer, leases and pruning.

``data_dir/generations/<name>/`` holds one complete index; ``data_dir/CURRENT`` names the
one that answers. A reader holds a shared ``flock`` on its generation's ``lease`` file for
as long as it uses it, and pruning deletes only generations it can lock exclusively, so a
request in flight never loses its files to the next ingest.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import uuid
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path


class IndexError_(RuntimeError):
    """Base for index problems that the user can fix; the message says how."""


class IndexMissing(IndexError_):
    pass


class IndexMismatch(IndexError_):
    pass


class IndexCorrupt(IndexError_):
    pass


class DiskFull(IndexError_):
    pass


@dataclass(frozen=True)
class StoreSpec:
    """Where vectors live: an embedded directory, or a Chroma server."""

    data_dir: Path
    chroma_host: str = ""
    chroma_port: int = 8000

    @property
    def remote(self) -> bool:
        return bool(self.chroma_host)

    @property
    def gens_dir(self) -> Path:
        return self.data_dir / "generations"

    @property
    def current_file(self) -> Path:
        return self.data_dir / "CURRENT"

    @property
    def lock_file(self) -> Path:
        return self.data_dir / "ingest.lock"

    @property
    def cache_file(self) -> Path:
        return self.data_dir / "embedding-cache.sqlite3"


GENERATION_NAME = re.compile(r"\d{8}T\d{6}-[0-9a-f]{6}")
LEASE = "lease"
CHROMA_LOCK = "chroma.lock"
RESERVE = "disk-reserve"
RESERVE_BYTES = 1_000_000
_TRASH = ".trash-"
REBUILD = "run `vision-qa ingest --rebuild`"


def new_generation_name() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not keep the half-written file
        raise


def is_failure(exc: BaseException) -> bool:
    """An error to report, not a request to stop: Chroma's Rust side raises PanicException,
    which derives from BaseException."""
    return not isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit))


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC anywhere in the exception's chain, or SQLite's and Chroma's words for it."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "disk is full" in str(exc) or "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full_message(spec: StoreSpec, doing: str) -> str:
    try:
        free = f"{shutil.disk_usage(spec.data_dir).free / 1e6:.1f} MB free"
    except OSError:
        free = "free space unknown"
    return (f"the disk holding {spec.data_dir} is full ({free}) {doing}; free some space there "
            "and run the command again")


@contextlib.contextmanager
def chroma_exclusive(gen_dir: Path):
    """Held while Chroma opens a generation's directory (it writes there when a client
    starts and when the first query loads the vectors) and while an ingest copies it."""
    fd = os.open(gen_dir / CHROMA_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def keep_reserve(spec: StoreSpec) -> None:
    """A small file the readers may delete when the disk is full: Chroma writes a little
    each time a client starts, so without free space not even the current index opens."""
    path = spec.data_dir / RESERVE
    if path.exists():
        return
    try:
        with open(path, "wb") as f:
            f.write(bytes(RESERVE_BYTES))
            f.flush()
            os.fsync(f.fileno())
    except OSError:  # no room for it now; the next ingest tries again
        path.unlink(missing_ok=True)


def release_reserve(spec: StoreSpec) -> bool:
    """Delete the reserve; False when there was none."""
    try:
        (spec.data_dir / RESERVE).unlink()
    except OSError:
        return False
    return True


def current_generation(spec: StoreSpec) -> str | None:
    """The generation ``CURRENT`` names, checked to be a generation folder in the data dir;
    None before the first ingest. A damaged pointer raises IndexCorrupt."""
    for _ in range(5):
        name = _read_current(spec)
        if name is None or (spec.gens_dir / name).is_dir():
            return name
        # Two ingests may have switched and pruned between the read and the check.
        if _read_current(spec) == name:
            raise IndexCorrupt(f"{spec.current_file} names generation {name}, which is not in {spec.gens_dir}; "
                               f"{REBUILD}")
    raise IndexCorrupt(f"{spec.current_file} keeps changing; wait for the ingests to finish")


def _read_current(spec: StoreSpec) -> str | None:
    try:
        raw = spec.current_file.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexCorrupt(f"cannot read {spec.current_file} ({exc.strerror or exc}); {REBUILD}") from exc
    try:
        name = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise IndexCorrupt(f"{spec.current_file} is damaged (not UTF-8 text); {REBUILD}") from None
    if not GENERATION_NAME.fullmatch(name):
        shown = name[:40].encode("unicode_escape").decode("ascii")
        raise IndexCorrupt(f"{spec.current_file} is damaged (it holds {shown!r}, not a generation name); {REBUILD}")
    return name


def switch_current(spec: StoreSpec, generation: str) -> None:
    write_atomic(spec.current_file, generation + "\n")


def make_generation_dir(spec: StoreSpec, generation: str) -> Path:
    gen_dir = spec.gens_dir / generation
    gen_dir.mkdir(parents=True)
    (gen_dir / LEASE).touch()
    (gen_dir / CHROMA_LOCK).touch()
    return gen_dir


class Lease:
    """A shared lock on one generation, released when the holder is closed or collected."""

    def __init__(self, fd: int) -> None:
        self._finalizer = weakref.finalize(self, os.close, fd)

    def release(self) -> None:
        self._finalizer()


def hold(spec: StoreSpec, generation: str) -> Lease | None:
    """Lease ``generation`` for reading; None when it is gone (pruned since CURRENT was read)."""
    path = spec.gens_dir / generation / LEASE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)  # generations written before leases have none
    except FileNotFoundError:
        return None
    except OSError:  # a read-only data dir: nothing can prune it either
        return Lease(os.open(os.devnull, os.O_RDONLY))
    fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while a pruner renames the folder
    try:
        still_there = os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        still_there = False
    if not still_there:
        os.close(fd)
        return None
    return Lease(fd)


def prune_generations(spec: StoreSpec, keep: set[str], drop_collection=None) -> list[str]:
    """Delete generation folders other than ``keep`` that no reader holds; returns the
    deleted names. ``drop_collection(name, folder)`` is called first for each (server mode)."""
    if not spec.gens_dir.is_dir():
        return []
    deleted = []
    for d in sorted(spec.gens_dir.iterdir()):
        if d.name.startswith(_TRASH):
            shutil.rmtree(d, ignore_errors=True)  # left by a prune that was killed
            continue
        if d.name in keep or not d.is_dir():
            continue
        trash = _take(d)
        if trash is None:
            continue  # a reader still answers from it; a later ingest prunes it
        if drop_collection is not None:
            drop_collection(d.name, trash)
        shutil.rmtree(trash, ignore_errors=True)
        deleted.append(d.name)
    return deleted


def _take(gen_dir: Path) -> Path | None:
    """Rename an unleased generation out of the way under an exclusive lock."""
    try:
        fd = os.open(gen_dir / LEASE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        fd = None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None
        trash = gen_dir.with_name(_TRASH + gen_dir.name + "-" + uuid.uuid4().hex[:6])
        os.rename(gen_dir, trash)
        return trash
    finally:
        if fd is not None:
            os.close(fd)


def remove_generation(spec: StoreSpec, generation: str) -> None:
    """Delete a generation that never became current (a failed ingest's partial one)."""
    shutil.rmtree(spec.gens_dir / generation, ignore_errors=True)


def leased(spec: StoreSpec) -> set[str]:
    """Generations some reader holds now (probed with a non-blocking exclusive lock)."""
    out = set()
    if not spec.gens_dir.is_dir():
        return out
    for d in spec.gens_dir.iterdir():
        if d.name.startswith(_TRASH) or not (d / LEASE).exists():
            continue
        fd = os.open(d / LEASE, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            out.add(d.name)
        finally:
            os.close(fd)
    return out
