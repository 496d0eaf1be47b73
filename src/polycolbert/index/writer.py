"""Writing: input checks, and each write prepared without the write lock, then committed under it.

A write (``Write``: add, update, compaction) does its slow work first, holding no lock: it takes the
documents chunk by chunk (at most ``chunk_tokens`` tokens each), encodes each chunk with the committed
codec (or keeps it exact while the index has none) and writes it as a segment into a private staging
folder, with its rows in a staging table. Only then does it take SQLite's write lock
(``Write.locked``, waiting at most ``lock_timeout`` seconds, else ``IndexBusy``) to commit: move the
files into place, copy the rows, record every file's checksum, in one transaction. So a reader is never
held up by a writer's encoding, another writer waits only for commits, and a crash or an error at any
point leaves the index at its last commit (the staging folder and any moved but unreferenced files are
deleted by the next writer, ``remove_orphans``).

Codecs: an index without one keeps exact vectors until it holds ``params.MIN_CODEC_TOKENS`` tokens; the
write that gets there trains one on a sample of the committed and staged tokens (``train``), also
without the lock. If another writer changed the codec while this one prepared, the commit re-encodes
what it brings to the codec it finds (``convert``), so one codec always encodes every segment.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from polycolbert.documents import DocumentBatch, duplicates
from polycolbert.index import integrity, snapshot, sources, store
from polycolbert.index import params as P
from polycolbert.index.codec import Codec, choose_n_centroids
from polycolbert.index.errors import IndexBusy, IndexDamaged
from polycolbert.index.sources import Source
from polycolbert.index.store import RAW, SEGMENTS, FileSum, Segment, Staging

# 4: new compressed segments grouped by centroid (``layout``); 3: a BM25 lexicon beside the full-text
# table; 2: every file's size and SHA-256 recorded at its commit
FORMAT_VERSION = 4
# What opens. An older index gets its checksums and its lexicon at its next write; its compressed
# segments stay in document order (searched through a copy grouped by centroid, built in RAM) until a
# compaction rewrites them grouped by centroid on disk (``layout``).
FORMATS = (1, 2, 3, 4)


class Document(NamedTuple):
    """One checked document on its way in."""

    text: str
    id: str
    metadata: dict[str, Any]
    vectors: np.ndarray  # [tokens, dims] float32


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


def stream_documents(
    write: Write, batches: Iterable[DocumentBatch], vectors_for: VectorsFor
) -> Iterator[Document]:
    """Each batch checked (ids against the index and the stream so far first: a clash costs no
    encoding), then its documents."""
    for number, batch in enumerate(batches, start=1):
        try:
            texts, ids, metadata = check_batch(batch.texts, batch.ids, batch.metadata)
            write.refuse_taken(ids)
            vectors = vectors_for(texts, batch.vectors)
        except ValueError as error:
            raise ValueError(f"batch {number}: {error}") from None
        yield from documents(texts, ids, metadata, vectors)


# ----------------------------------------------------------------- the writing side of an index
class Writer:
    """The writing side of one open index: its settings, and a ``Write`` per operation."""

    def __init__(
        self, folder: Path, dimensions: int, nbits: int, memory_budget_mb: float, lock_timeout: float
    ):
        self.folder, self.dimensions, self.nbits = folder, dimensions, nbits
        self.memory_budget_mb = memory_budget_mb
        self.lock_timeout = lock_timeout

    @property
    def memory_budget_mb(self) -> float:
        """MiB of token vectors that writing and compaction may hold at once (``params.MEMORY_BUDGET_MB``)."""
        return self._memory_budget_mb

    @memory_budget_mb.setter
    def memory_budget_mb(self, value: float) -> None:
        P.chunk_tokens(value, self.dimensions)  # raises on a bad value
        self._memory_budget_mb = float(value)

    @property
    def lock_timeout(self) -> float:
        """Seconds a commit waits for another writer's lock before ``IndexBusy`` (``params.LOCK_TIMEOUT``)."""
        return self._lock_timeout

    @lock_timeout.setter
    def lock_timeout(self, value: float) -> None:
        self._lock_timeout = P.check_lock_timeout(value)

    @property
    def chunk_tokens(self) -> int:
        """Most tokens per chunk written (one longer document alone may exceed it)."""
        return P.chunk_tokens(self._memory_budget_mb, self.dimensions)

    def write(self) -> Write:
        """A new write operation (its own database connection; use it in a ``with`` block)."""
        return Write(self)

    def codec(self, name: str) -> Codec:
        """The committed codec ``name``, verified."""
        return integrity.load_codec(self.folder, name, self.dimensions, self.nbits)


@dataclass
class Staged:
    """A segment written into the staging folder, waiting for the commit."""

    name: str
    column: str  # the codec that encoded it, or RAW
    sums: dict[str, FileSum]
    n_docs: int
    n_tokens: int
    local: bool  # its docs are staged-row numbers: the commit adds the index's next document number
    mse: float = 0.0  # mean squared residual of its tokens
    drift: bool = False  # its tokens count towards the drift measure (new tokens, not re-encoded ones)


class Write:
    """One write: prepared in a private staging folder without the lock, committed under it.

    It has its own SQLite connection, so writes in several threads of one process wait for each other
    exactly as writes in several processes do, and never use a connection a reader is using.
    """

    def __init__(self, writer: Writer):
        self.writer, self.folder = writer, writer.folder
        self.db = store.connect(writer.folder, writer.lock_timeout)
        self._staging: Staging | None = None
        self.staged: list[Staged] = []  # new documents' segments, in order
        self.codec: Codec | None = None  # what encodes the staged segments (None: they are raw)
        self.column: str | None = None  # its name
        self.own = False  # trained by this write (its files wait in the staging folder)
        self.own_sums: dict[str, FileSum] = {}
        self.clustered = 0  # tokens the own codec was trained for
        self.replaced: set[int] = set()  # document numbers an update replaces
        self.known_sums: dict[str, FileSum] = {}  # checksums of unrecorded committed files (format 1)
        self.replaced_files = False  # the commit dropped segments: collect their files afterwards
        self.abandoned = False

    def __enter__(self) -> Write:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._staging is not None:
            self._staging.close()
            self._staging = None
        self.db.close()

    @property
    def staging(self) -> Staging:
        if self._staging is None:
            self._staging = Staging(self.folder)
        return self._staging

    @property
    def staged_tokens(self) -> int:
        return sum(s.n_tokens for s in self.staged)

    # ------------------------------------------------------------- preparing (no lock held)
    def begin(self) -> None:
        """Read what the preparation builds on: the committed codec, and checksums a format 1 index lacks."""

        def read() -> tuple[str | None, dict[str, str], dict[str, FileSum]]:
            name = store.get_meta_value(self.db, "codec")
            if name is not None:
                self.codec = self.writer.codec(name)
            return name, store.referenced_files(self.db, self.folder), store.recorded_files(self.db)

        self.column, referenced, recorded = snapshot.consistent(self.db, self.folder, read)
        for file in referenced.keys() - recorded.keys():
            with contextlib.suppress(FileNotFoundError):
                self.known_sums[file] = store.hash_file(self.folder / SEGMENTS / file)

    def refuse_taken(self, ids: list[str]) -> None:
        """Ids repeated, stored already, or staged already by this write are an error."""
        dupes = duplicates(ids)
        if dupes:
            raise ValueError(f"ids given twice: {dupes[:10]}")
        taken = store.existing_ids(self.db, ids) + self.staging.staged(ids)
        if taken:
            raise ValueError(f"ids already in the index: {taken[:10]} (use update to replace them)")

    def refuse_unknown(self, ids: list[str]) -> None:
        """For an update: every id must be stored; their documents are the ones replaced."""
        found = dict(store.numbered_ids_of(self.db, ids))
        missing = [i for i in ids if i not in found]
        if missing:
            raise ValueError(f"unknown ids: {missing[:10]} (use add for new documents)")
        self.replaced = set(found.values())

    def stage_documents(self, docs: Iterable[Document], new: bool = True) -> int:
        """Encode and stage documents chunk by chunk (at most ``chunk_tokens`` tokens each); returns how many.

        When the index has no codec and the committed and staged tokens reach ``MIN_CODEC_TOKENS``, one
        is trained (``train``): documents given as a list (``add``, ``update``: all in memory already)
        are sampled for it too, those still to be staged included, so one big ``add`` trains on its
        whole batch; a stream keeps its chunks exact until it ends (or reaches ``STREAM_RAW_TOKENS``)
        and then trains on a sample of all of them.
        """
        known = docs if isinstance(docs, list) else None
        base = 0 if self.codec is not None else self._committed_tokens()
        added = 0
        deferred = False  # a stream owes the codec training it postponed
        for chunk in _grouped(docs, self.writer.chunk_tokens):
            self._stage_chunk(chunk, new)
            added += len(chunk)
            chunk.clear()  # the grouping generator holds this list too: free the vectors before training
            if self.codec is not None or base + self.staged_tokens < P.MIN_CODEC_TOKENS:
                continue
            if known is not None:
                self.train([doc.vectors for doc in known[added:]])
            elif base + self.staged_tokens >= P.STREAM_RAW_TOKENS:
                self.train(())
                deferred = False
            else:
                deferred = True
        if deferred:
            self.train(())
        return added

    def _committed_tokens(self) -> int:
        tokens = store.live_tokens(self.db)
        if self.replaced:
            tokens -= store.tokens_of(self.db, sorted(self.replaced))
        return tokens

    def _stage_chunk(self, chunk: list[Document], new: bool) -> None:
        texts, ids, metadata, vectors = (list(column) for column in zip(*chunk, strict=True))
        if new:
            self.refuse_taken(ids)
        else:
            repeated = duplicates(ids) or self.staging.staged(ids)
            if repeated:
                raise ValueError(f"ids given twice: {repeated[:10]}")
        first = self.staging.count
        docs = np.arange(first, first + len(ids), dtype=np.int64)
        lengths = np.array([len(v) for v in vectors], np.int32)
        flat = np.concatenate(vectors)
        staged = self.write_segment(docs, lengths, flat, self.codec, self.column, local=True, drift=True)
        names = [staged.name] * len(ids)
        self.staging.add_rows(list(zip(ids, texts, metadata, names, lengths.tolist(), strict=True)))
        self.staged.append(staged)

    def write_segment(
        self,
        docs: np.ndarray,
        lengths: np.ndarray,
        flat: np.ndarray,
        codec: Codec | None,
        column: str | None,
        local: bool,
        drift: bool = False,
    ) -> Staged:
        """Encode ``flat`` with ``codec`` (named ``column``; raw without one) and write it as a segment
        into the staging folder."""
        if codec is None or column is None:
            name = store.new_name("seg")
            seg, mse, column = Segment(name, docs, lengths, vectors=flat.astype(np.float16)), 0.0, RAW
            drift = False
        else:
            rows = P.encode_rows(self.writer.chunk_tokens, self.writer.dimensions, len(codec.centroids))
            codes, residuals, mse = _encode(codec, flat, rows)
            name = store.new_name(store.CLUSTERED)
            seg = Segment.compressed(name, docs, lengths, codes, residuals, len(codec.centroids))
        sums = seg.write(self.staging.folder)
        return Staged(name, column, sums, len(docs), int(lengths.sum()), local, mse, drift)

    def staged_sources(self) -> list[Source]:
        """The staged new-document segments, as sources (every entry live)."""
        out = []
        for st in self.staged:
            seg = Segment.load(self.staging.folder, st.name, raw=st.column == RAW)
            found = sources.source(seg, None if st.column == RAW else self.codec)
            if found is not None:
                out.append(found)
        return out

    def train(self, ahead: Sequence[np.ndarray]) -> None:
        """Train this write's own codec on a uniform sample of the committed live tokens (all raw: the
        index has no codec), the staged ones and ``ahead`` (vectors about to be staged), then re-encode
        the staged segments with it. The committed tokens are re-encoded at the commit."""
        limit = self.writer.chunk_tokens
        exclude = sorted(self.replaced)

        def committed() -> list[Source]:
            rows = [(name, column) for name, column in store.segments(self.db)]
            return sources.live_sources(self.db, self.folder, rows, self.writer.codec, exclude)

        stored = snapshot.consistent(self.db, self.folder, committed)
        mine = self.staged_sources()
        every = stored + mine
        total = sum(s.live_tokens for s in every) + sum(len(v) for v in ahead)
        size = P.codec_sample_tokens(limit)
        picked = sources.sample(every, ahead, total, size, limit, self.writer.dimensions)
        codec = Codec.train(picked, self.writer.nbits, n_centroids=choose_n_centroids(total))
        del picked, stored, every
        name = store.new_name("codec")
        self.own_sums = store.write_codec(self.staging.folder, name, codec)
        self.codec, self.column, self.own, self.clustered = codec, name, True, total
        old, self.staged = self.staged, []
        self.staged = self.rewrite(mine, codec, name, local=True)
        for st in old:
            for file in st.sums:
                (self.staging.folder / file).unlink(missing_ok=True)

    def rewrite(
        self, srcs: list[Source], codec: Codec | None, column: str | None, local: bool
    ) -> list[Staged]:
        """The sources' live entries encoded with ``codec`` (raw without one), one staged segment per
        group of at most ``chunk_tokens`` tokens."""
        out = []
        for group in sources.groups(srcs, self.writer.chunk_tokens):
            docs, lengths, flat = sources.read_group(group)
            staged = self.write_segment(docs, lengths, flat, codec, column, local)
            del flat
            if local:
                self.staging.move_rows(staged.name, int(docs.min()), int(docs.max()) + 1)
            out.append(staged)
        return out

    # ------------------------------------------------------------- committing (the write lock held)
    @contextlib.contextmanager
    def locked(self, bump: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction: SQLite's write lock (waiting at most ``lock_timeout``), files of dead
        writers removed first; at the end (``bump``: a change, not only garbage collection) every
        referenced file's checksum recorded and the version moved; then the commit, or a rollback on
        any error or when the body called ``abandon``.
        Files left behind (a rollback, replaced segments) are deleted afterwards in a transaction of
        their own."""
        db = self.db
        store.begin_write(db, self.folder, self.writer.lock_timeout)
        self.abandoned = False
        try:
            store.ensure_files_table(db)
            store.ensure_lexicon(db)
            self.remove_orphans(db)
            yield db
            if self.abandoned:
                store.rollback(db)
                return
            if bump:
                self._record_files(db)
                store.set_meta(db, version=store.get_meta(db)["version"] + 1, format=FORMAT_VERSION)
            store.commit(db)
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                store.rollback(db)
            if bump:
                self.collect_garbage()
            raise
        if bump and self.replaced_files:
            self.replaced_files = False
            self.collect_garbage()

    def abandon(self) -> None:
        """Inside ``locked``: roll back instead of committing (the work turned out to be unneeded)."""
        self.abandoned = True

    def remove_orphans(self, db: sqlite3.Connection) -> None:
        """Delete files of writers killed before their commit and of replaced segments (write lock held).

        Only at the start of a write transaction: files that the committed state still refers to must
        survive until a commit that drops them has landed (a rollback would otherwise lose them).
        """
        referenced = store.segment_names(db) | {store.get_meta(db)["codec"]}
        store.remove_unreferenced(self.folder, {r for r in referenced if r})

    def collect_garbage(self) -> None:
        """Delete unreferenced files now, in a transaction of their own: after the commit that dropped
        them, never before (a failed commit must still find them), and under the write lock (another
        writer's new, not yet committed files must survive). A busy index is left for the next writer."""
        with contextlib.suppress(sqlite3.Error, OSError, IndexBusy), self.locked(bump=False):
            pass

    def _record_files(self, db: sqlite3.Connection) -> None:
        """Checksums of committed files that have none (an index written before format 2), then forget
        those of files no longer referenced."""
        referenced = store.referenced_files(db, self.folder)
        recorded = store.recorded_files(db)
        missing: dict[str, dict[str, FileSum]] = {}
        for file, owner in referenced.items():
            if file not in recorded:
                path = self.folder / SEGMENTS / file
                try:
                    found = self.known_sums.get(file) or store.hash_file(path)
                except FileNotFoundError:
                    raise IndexDamaged(path, "missing", self.folder) from None
                missing.setdefault(owner, {})[file] = found
        for owner, sums in missing.items():
            store.record_files(db, owner, sums)
        store.forget_files(db, set(referenced.values()))

    def publish(self, db: sqlite3.Connection, staged: list[Staged], first: int | None = None) -> None:
        """Move staged segments into the segments folder and record them (numbering local documents
        from ``first``; a rewritten segment's documents are recorded as living in it)."""
        for st in staged:
            if st.local:
                assert first is not None
                docs = store.load_array(self.staging.folder / f"{st.name}.docs.npy", mmap=False) + first
                st.sums.update(store.write_arrays(self.staging.folder, st.name, {"docs": docs}))
            self.staging.publish(st.sums, self.folder / SEGMENTS)
            store.insert_segment(db, st.name, st.column, st.n_docs, st.n_tokens)
            store.record_files(db, st.name, st.sums)
            if not st.local:
                docs = store.load_array(self.folder / SEGMENTS / f"{st.name}.docs.npy", mmap=False)
                store.move_documents(db, st.name, docs.tolist())

    def publish_codec(self, db: sqlite3.Connection) -> None:
        """Install this write's own codec (its files, their checksums, and the meta that names it)."""
        assert self.own and self.column is not None
        self.staging.publish(self.own_sums, self.folder / SEGMENTS)
        store.record_files(db, self.column, self.own_sums)
        store.set_meta(db, codec=self.column, clustered_tokens=self.clustered, drift_tokens=0, drift_mse=0.0)

    def commit_documents(self, replace: bool, rebuild: Callable[[Write, sqlite3.Connection], None]) -> int:
        """Commit the staged documents (an update first removes the documents with their ids); returns how
        many. ``rebuild`` trains a codec under the lock for a raw index that this write took past
        ``MIN_CODEC_TOKENS`` without training one (another writer's documents arrived meanwhile)."""
        store.attach_staging(self.db, self.staging)
        try:
            with self.locked() as db:
                if replace:
                    unknown = store.staged_ids_unknown(db)
                    if unknown:
                        raise ValueError(f"unknown ids: {unknown} (use add for new documents)")
                    store.delete_staged_ids(db)
                else:
                    taken = store.staged_ids_stored(db)
                    if taken:
                        raise ValueError(f"ids already in the index: {taken} (use update to replace them)")
                meta = store.get_meta(db)
                current = meta["codec"]
                drift_tokens, drift_mse = meta["drift_tokens"], meta["drift_mse"]
                if self.own and current is None:
                    self.publish_codec(db)
                    current, drift_tokens, drift_mse = self.column, 0, 0.0
                first = int(meta["next_doc"])
                self.publish(db, self.staged, first)
                added = store.insert_staged_documents(db, first)
                for st in self.staged:
                    if st.drift and st.column == current and st.n_tokens:
                        n = drift_tokens + st.n_tokens
                        drift_mse = (drift_mse * drift_tokens + st.mse * st.n_tokens) / n
                        drift_tokens = n
                store.set_meta(db, next_doc=first + added, drift_tokens=drift_tokens, drift_mse=drift_mse)
                self.convert(db, current)
                if current is None and store.live_tokens(db) >= P.MIN_CODEC_TOKENS:
                    rebuild(self, db)
        finally:
            store.detach_staging(self.db)
        return added

    def convert(self, db: sqlite3.Connection, target: str | None) -> None:
        """Re-encode every recorded segment not encoded by ``target`` (RAW when None) with it: segments
        this write brings from a codec replaced while it prepared, or committed raw ones when this write
        installs the first codec. Under the lock; normally a few segments or none."""
        foreign = [(name, column) for name, column in store.segments(db) if column != (target or RAW)]
        if not foreign:
            return

        def codec_of(name: str) -> Codec:
            return self.codec if name == self.column and self.codec is not None else self.writer.codec(name)

        srcs = sources.live_sources(db, self.folder, foreign, codec_of)
        codec = None if target is None else codec_of(target)
        staged = self.rewrite(srcs, codec, target, local=False)
        store.delete_segments(db, [name for name, _ in foreign])
        self.publish(db, staged)
        self.replaced_files = True


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
