"""Writing: input checks, write transactions, and new documents written as segments.

One writer at a time holds SQLite's write lock (``Writer.transaction``). Inside it, documents are
written in chunks of at most ``chunk_tokens`` tokens, each chunk one new segment (files first, fsynced,
then its rows), and the transaction's commit makes all of them visible at once; a rollback or a crash
leaves only unreferenced files, which the next transaction deletes before it writes anything.

An index without a codec keeps exact vectors until it holds ``params.MIN_CODEC_TOKENS`` tokens; then
the writer asks for a rebuild (``compaction.rebuild``, passed in as ``rebuild``), which trains the
codec and re-encodes what is stored.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from polycolbert.documents import DocumentBatch, duplicates
from polycolbert.index import params as P
from polycolbert.index import store
from polycolbert.index.codec import Codec
from polycolbert.index.store import RAW, DocumentRow, Segment


class Document(NamedTuple):
    """One checked document on its way in."""

    text: str
    id: str
    metadata: dict[str, Any]
    vectors: np.ndarray  # [tokens, dims] float32


# Rewrites the stored documents inside the caller's transaction (``compaction.rebuild``); ``ahead``
# holds the vectors of documents about to be written, sampled for a new codec but not written.
Rebuild = Callable[[sqlite3.Connection, Sequence[np.ndarray]], None]
# Vectors for a batch's texts: the given ones checked, or the texts encoded by the index's model.
VectorsFor = Callable[[list[str], Sequence[np.ndarray] | None], list[np.ndarray]]


def documents(
    texts: list[str], ids: list[str], metadata: list[dict[str, Any]], vectors: list[np.ndarray]
) -> list[Document]:
    return [Document(*columns) for columns in zip(texts, ids, metadata, vectors, strict=True)]


# ----------------------------------------------------------------- input checks
def check_batch(
    texts: Sequence[str], ids: Sequence[str] | None, metadata: Sequence[dict[str, Any]] | None
) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """The batch as lists (random ids when none are given), or a ValueError that says what is wrong."""
    texts = list(texts)
    if not texts:
        raise ValueError("no documents given: pass at least one text")
    if not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must be strings")
    ids = [uuid.uuid4().hex for _ in texts] if ids is None else [str(i) for i in ids]
    if len(ids) != len(texts):
        raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
    dupes = duplicates(ids)
    if dupes:
        raise ValueError(f"duplicate ids in the batch: {dupes[:10]}")
    if any(not i for i in ids):
        raise ValueError("ids must be non-empty strings")
    metadata = [{} for _ in texts] if metadata is None else list(metadata)
    if len(metadata) != len(texts) or not all(isinstance(m, dict) for m in metadata):
        raise ValueError("metadata must be one JSON object per text")
    for i, m in enumerate(metadata):
        try:
            json.dumps(m)
        except (TypeError, ValueError) as error:
            raise ValueError(f"metadata[{i}] is not JSON-serialisable: {error}") from None
    return texts, ids, metadata


def refuse_taken(db: sqlite3.Connection, ids: list[str]) -> None:
    """Ids repeated or already stored (earlier chunks of this transaction included) are an error."""
    dupes = duplicates(ids)
    if dupes:
        raise ValueError(f"ids given twice: {dupes[:10]}")
    taken = store.existing_ids(db, ids)
    if taken:
        raise ValueError(f"ids already in the index: {taken[:10]} (use update to replace them)")


def stream_documents(
    db: sqlite3.Connection, batches: Iterable[DocumentBatch], vectors_for: VectorsFor
) -> Iterator[Document]:
    """Each batch checked (ids against the index first: a clash costs no encoding), then its documents."""
    for number, batch in enumerate(batches, start=1):
        try:
            texts, ids, metadata = check_batch(batch.texts, batch.ids, batch.metadata)
            refuse_taken(db, ids)
            vectors = vectors_for(texts, batch.vectors)
        except ValueError as error:
            raise ValueError(f"batch {number}: {error}") from None
        yield from documents(texts, ids, metadata, vectors)


# ----------------------------------------------------------------- transactions and segments
class Writer:
    """The writing side of one open index: its transactions and the segments written in them."""

    def __init__(
        self,
        db: sqlite3.Connection,
        folder: Path,
        dimensions: int,
        nbits: int,
        lock: threading.RLock,
        memory_budget_mb: float,
    ):
        self.db, self.folder, self.dimensions, self.nbits = db, folder, dimensions, nbits
        self.lock = lock  # the index's: one thread at a time uses the connection for a transaction
        self.replaced_files = False  # set by a rebuild: delete the old segment files after the commit
        self.memory_budget_mb = memory_budget_mb

    @property
    def memory_budget_mb(self) -> float:
        """MiB of token vectors that writing and compaction may hold at once (``params.MEMORY_BUDGET_MB``)."""
        return self._memory_budget_mb

    @memory_budget_mb.setter
    def memory_budget_mb(self, value: float) -> None:
        P.chunk_tokens(value, self.dimensions)  # raises on a bad value
        self._memory_budget_mb = float(value)

    @property
    def chunk_tokens(self) -> int:
        """Most tokens per chunk written (one longer document alone may exceed it)."""
        return P.chunk_tokens(self._memory_budget_mb, self.dimensions)

    def transaction(self, collecting: bool = False) -> Transaction:
        return Transaction(self, collecting)

    def remove_orphans(self, db: sqlite3.Connection) -> None:
        """Delete files of writers killed before their commit and of replaced segments (write lock held).

        Only here, at the start of a write transaction: files that the committed state still refers to
        must survive until a commit that drops them has landed (a rollback would otherwise lose them).
        """
        referenced = store.segment_names(db) | {store.get_meta(db)["codec"]}
        store.remove_unreferenced(self.folder, referenced)

    def collect_garbage(self) -> None:
        """Delete unreferenced files now, in a transaction of their own: after the commit that dropped
        them, never before (a failed commit must still find them), and under the write lock (another
        writer's new, not yet committed files must survive)."""
        with self.transaction(collecting=True):
            pass

    def write_documents(self, db: sqlite3.Connection, docs: Iterable[Document], rebuild: Rebuild) -> int:
        """Write documents chunk by chunk (at most ``chunk_tokens`` tokens each); returns how many.

        When the codec gets trained part-way, documents given as a list (``add``, ``update``: all in the
        caller's memory already) are sampled for it too, those still to be written included, so one big
        ``add`` trains on its whole batch as before; a stream keeps its chunks exact until it ends (or
        reaches ``STREAM_RAW_TOKENS``) and then trains on a sample of all of them.
        """
        known = docs if isinstance(docs, list) else None
        added = 0
        deferred = False  # a stream owes the codec training it postponed (``STREAM_RAW_TOKENS``)
        for chunk in _grouped(docs, self.chunk_tokens):
            needs_codec = self._append(db, chunk)
            added += len(chunk)
            chunk.clear()  # the grouping generator holds this list too: free the vectors before a rebuild
            if not needs_codec:
                continue
            if known is not None:
                rebuild(db, [doc.vectors for doc in known[added:]])
            elif store.live_tokens(db) >= P.STREAM_RAW_TOKENS:
                rebuild(db, ())
                deferred = False
            else:
                deferred = True
        if deferred:
            rebuild(db, ())
        return added

    def replace_documents(self, db: sqlite3.Connection, docs: list[Document], rebuild: Rebuild) -> None:
        """Replace stored documents by id (an unknown id is an error)."""
        ids = [doc.id for doc in docs]
        known = set(store.existing_ids(db, ids))
        missing = [i for i in ids if i not in known]
        if missing:
            raise ValueError(f"unknown ids: {missing[:10]} (use add for new documents)")
        store.delete_documents(db, ids)
        self.write_documents(db, docs, rebuild)

    def _append(self, db: sqlite3.Connection, chunk: list[Document]) -> bool:
        """Write one chunk of new documents as one segment plus its rows, inside the caller's transaction
        (SQLite sees the transaction's own earlier writes, so chunk after chunk reads current meta).

        Returns True when the index has no codec and now holds enough tokens to train one: the caller
        then rebuilds, once this chunk's vectors are no longer held.
        """
        texts, ids, metadata, vectors = (list(column) for column in zip(*chunk, strict=True))
        refuse_taken(db, ids)
        meta = store.get_meta(db)
        first = int(meta["next_doc"])
        docs = np.arange(first, first + len(texts), dtype=np.int64)
        lengths = np.array([len(v) for v in vectors], np.int32)
        codec = store.load_codec(self.folder, meta["codec"]) if meta["codec"] is not None else None
        name, mse = self.write_segment(db, docs, lengths, np.concatenate(vectors), codec, meta["codec"])
        store.insert_documents(
            db,
            [
                DocumentRow(int(d), i, t, m, name, len(v))
                for d, i, t, m, v in zip(docs, ids, texts, metadata, vectors, strict=True)
            ],
        )
        store.set_meta(db, next_doc=first + len(texts))
        if codec is None:
            # No codec yet: keep exact vectors until there are enough tokens to train a good one, then
            # compress everything at once (a codec fitted to a handful of tokens would encode every
            # later token badly, and that loss could never be undone). The rebuild reads this chunk
            # back from the raw segment just written, so its float32 copy need not be held meanwhile.
            return store.live_tokens(db) >= P.MIN_CODEC_TOKENS
        n_new = int(lengths.sum())
        n = meta["drift_tokens"] + n_new
        store.set_meta(
            db, drift_tokens=n, drift_mse=(meta["drift_mse"] * meta["drift_tokens"] + mse * n_new) / n
        )
        return False

    def write_segment(
        self,
        db: sqlite3.Connection,
        docs: np.ndarray,
        lengths: np.ndarray,
        flat: np.ndarray,
        codec: Codec | None,
        codec_name: str | None,
    ) -> tuple[str, float]:
        """Write and record one segment (raw without a codec); its name and mean squared residual.

        The files are written durably first, then the segment's row (the caller's transaction commits
        both)."""
        if codec is None:
            seg, mse = Segment(store.new_name("seg"), docs, lengths, vectors=flat.astype(np.float16)), 0.0
        else:
            rows = P.encode_rows(self.chunk_tokens, self.dimensions, len(codec.centroids))
            codes, residuals, mse = _encode(codec, flat, rows)
            seg = Segment(store.new_name("seg"), docs, lengths, codes, residuals)
        seg.write(self.folder)
        store.insert_segment(
            db, seg.name, codec_name or RAW, len(seg.docs), int(np.asarray(seg.lengths).sum())
        )
        return seg.name, mse


class Transaction:
    """One write transaction under SQLite's write lock; it first deletes files no commit refers to,
    and after a rollback, or a commit that replaced segments, it deletes the files left behind."""

    def __init__(self, writer: Writer, collecting: bool = False):
        self.writer = writer
        self.collecting = collecting  # only deleting files: no new version, no clean-up after it

    def __enter__(self) -> sqlite3.Connection:
        writer, db = self.writer, self.writer.db
        writer.lock.acquire()
        try:
            store.begin_write(db)
            try:
                writer.remove_orphans(db)
            except BaseException:
                store.rollback(db)
                raise
        except BaseException:
            writer.lock.release()
            raise
        return db

    def __exit__(self, exc_type: object, *rest: object) -> None:
        writer, db = self.writer, self.writer.db
        try:
            if exc_type is None:
                if not self.collecting:
                    store.set_meta(db, version=store.get_meta(db)["version"] + 1)
                store.commit(db)
            else:
                store.rollback(db)
        finally:
            writer.lock.release()
        if not self.collecting and (exc_type is not None or writer.replaced_files):
            writer.replaced_files = False
            with contextlib.suppress(sqlite3.Error, OSError):  # the next writer retries anyway
                writer.collect_garbage()


def _grouped(docs: Iterable[Document], limit: int) -> Iterator[list[Document]]:
    """Consecutive documents in lists of at most ``limit`` tokens (a longer document forms its own)."""
    group: list[Document] = []
    tokens = 0
    for doc in docs:
        if group and tokens + len(doc.vectors) > limit:
            yield group
            group, tokens = [], 0
        group.append(doc)
        tokens += len(doc.vectors)
    if group:
        yield group


def _encode(codec: Codec, flat: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray, float]:
    """``codec.encode`` over slices of ``rows`` tokens (bounds its score block); mse over all of them."""
    if len(flat) <= rows:
        return codec.encode(flat)
    parts = [codec.encode(flat[start : start + rows]) for start in range(0, len(flat), rows)]
    mse = sum(part[2] * len(part[0]) for part in parts) / len(flat)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), float(mse)
