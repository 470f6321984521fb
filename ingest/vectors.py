"""The vector side of a new generation: built from nothing, or the previous one plus a difference.

Embedded store: each generation has its own Chroma directory. A difference copies the
previous generation's directory (a file copy, about a second at 100k chunks) and applies
the deletions and additions to the copy; the previous directory is never written.

Chroma server: single-node Chroma cannot fork a collection (``Collection.fork`` is Chroma
Cloud only), so generations of one lineage share a collection. A record's id is
``<chunk id>.<seq>``, where ``seq`` numbers the generation that added it, and its metadata
says when it was added (``born``) and when it left (``dead``, ``ALIVE`` until then).
Each generation lists its own record ids (``records.json``); readers keep only those, so
records that a running ingest adds are invisible until ``CURRENT`` switches, and a killed
ingest's records are never read. The next ingest first deletes records born after the
current generation and clears ``dead`` marks set after it, then applies its difference;
after the switch, records dead for every generation still kept are deleted. ``--rebuild``
starts a new collection.
"""
from __future__ import annotations

import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from ingest.store import Manifest, StoreSpec, chroma_client, chroma_exclusive, collection_name
from ingest.types import Chunk

ALIVE = 2**53  # ``dead`` of a record no generation has removed (a JSON-safe integer)
# Chroma inserts ~25% faster in batches of 2,048 than of 256 (30k vectors on two cores);
# its limit is 5,461.
BATCH = 2048

Embed = Callable[[list[Chunk]], list[list[float]]]


@dataclass
class Change:
    """What a new generation changes in the vectors of the previous one."""

    add: list[Chunk]
    remove: list[str]  # chunk ids


@dataclass
class Written:
    collection: str
    records: dict[str, str]  # chunk id → record id (server only; the chunk id itself in embedded mode)
    dim: int = 0


class VectorWriter(Protocol):
    def build(self, gen_dir: Path, generation: str, seq: int, chunks: list[Chunk], embed: Embed) -> Written: ...

    def apply(self, prev: Manifest, prev_dir: Path, gen_dir: Path, generation: str, seq: int, change: Change,
              records: dict[str, str], embed: Embed) -> Written: ...

    def abandon(self, prev: Manifest | None, generation: str, written_collection: str | None) -> None: ...

    def collect(self, kept: list[Manifest]) -> None: ...

    def drop(self, manifest: Manifest | None, in_use: set[str]) -> None: ...


def writer_for(spec: StoreSpec) -> VectorWriter:
    return ServerVectors(spec) if spec.remote else LocalVectors(spec)


def _meta(c: Chunk) -> dict:
    return {"source": c.source}


def _add(collection, chunks: list[Chunk], ids: list[str], embed, extra: dict | None = None) -> None:
    for i in range(0, len(chunks), BATCH):
        part = chunks[i:i + BATCH]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            collection.add(ids=ids[i:i + BATCH], embeddings=embed(part),
                           metadatas=[{**_meta(c), **(extra or {})} for c in part])


def _delete(collection, ids: list[str]) -> None:
    for i in range(0, len(ids), BATCH):
        collection.delete(ids=ids[i:i + BATCH])


class LocalVectors:
    """One PersistentClient directory per generation."""

    def __init__(self, spec: StoreSpec) -> None:
        self.spec = spec

    def build(self, gen_dir, generation, seq, chunks, embed) -> Written:
        client = chroma_client(self.spec, gen_dir)
        try:
            collection = client.create_collection(collection_name(generation),
                                                  configuration={"hnsw": {"space": "cosine"}})
            _add(collection, chunks, [c.id for c in chunks], embed)
        finally:
            client.close()
        return Written(collection_name(generation), {})

    def apply(self, prev, prev_dir, gen_dir, generation, seq, change, records, embed) -> Written:
        with chroma_exclusive(prev_dir):  # a reader's Chroma may be writing there as it starts
            shutil.copytree(prev_dir / "chroma", gen_dir / "chroma")
        client = chroma_client(self.spec, gen_dir)
        try:
            collection = client.get_collection(prev.collection)
            collection.modify(name=collection_name(generation))
            _delete(collection, change.remove)
            _add(collection, change.add, [c.id for c in change.add], embed)
        finally:
            client.close()
        return Written(collection_name(generation), {})

    def abandon(self, prev, generation, written_collection) -> None:
        pass  # the generation's folder holds everything; the indexer removes it

    def collect(self, kept) -> None:
        pass

    def drop(self, manifest, in_use) -> None:
        pass


class ServerVectors:
    """Generations of one lineage share a collection on a Chroma server (see the module doc)."""

    def __init__(self, spec: StoreSpec) -> None:
        self.spec = spec

    def _client(self):
        return chroma_client(self.spec, self.spec.data_dir)

    def build(self, gen_dir, generation, seq, chunks, embed) -> Written:
        records = {c.id: f"{c.id}.{seq}" for c in chunks}
        client = self._client()
        try:
            collection = client.create_collection(collection_name(generation),
                                                  configuration={"hnsw": {"space": "cosine"}})
            _add(collection, chunks, [records[c.id] for c in chunks], embed, {"born": seq, "dead": ALIVE})
        finally:
            client.close()
        return Written(collection_name(generation), records)

    def apply(self, prev, prev_dir, gen_dir, generation, seq, change, records, embed) -> Written:
        client = self._client()
        try:
            collection = client.get_collection(prev.collection)
            self._undo_after(collection, prev.seq)
            gone = [records[cid] for cid in change.remove]
            for i in range(0, len(gone), BATCH):
                part = gone[i:i + BATCH]
                collection.update(ids=part, metadatas=[{"dead": seq}] * len(part))
            added = {c.id: f"{c.id}.{seq}" for c in change.add}
            _add(collection, change.add, [added[c.id] for c in change.add], embed, {"born": seq, "dead": ALIVE})
        finally:
            client.close()
        removed = set(change.remove)
        mine = {cid: rid for cid, rid in records.items() if cid not in removed} | added
        return Written(prev.collection, mine)

    @staticmethod
    def _undo_after(collection, seq: int) -> None:
        """Take back what killed ingests after generation ``seq`` wrote: their records, and
        the ``dead`` marks they set on records that generation ``seq`` still has."""
        collection.delete(where={"born": {"$gt": seq}})
        marked = collection.get(where={"$and": [{"dead": {"$gt": seq}}, {"dead": {"$lt": ALIVE}}]}, include=[])["ids"]
        for i in range(0, len(marked), BATCH):
            part = marked[i:i + BATCH]
            collection.update(ids=part, metadatas=[{"dead": ALIVE}] * len(part))

    def abandon(self, prev, generation, written_collection) -> None:
        """Best effort right after a failure; the next ingest does the same before it writes."""
        client = self._client()
        try:
            if prev is not None and written_collection == prev.collection:
                self._undo_after(client.get_collection(prev.collection), prev.seq)
            elif written_collection:
                client.delete_collection(written_collection)
        except Exception:  # the server may be what failed
            pass
        finally:
            client.close()

    def collect(self, kept: list[Manifest]) -> None:
        """Delete the records that no kept generation of a collection can see."""
        by_collection: dict[str, int] = {}
        for m in kept:
            by_collection[m.collection] = min(m.seq, by_collection.get(m.collection, m.seq))
        client = self._client()
        try:
            for name, oldest in by_collection.items():
                client.get_collection(name).delete(where={"dead": {"$lte": oldest}})
        finally:
            client.close()

    def drop(self, manifest: Manifest | None, in_use: set[str]) -> None:
        if manifest is None or manifest.collection in in_use:
            return
        client = self._client()
        try:
            client.delete_collection(manifest.collection)
        except Exception:  # already gone, or the server is down: the folder still goes
            pass
        finally:
            client.close()
