"""``Index``: create, open, add, update, delete, search, compact and check an embedded index folder.

>>> import numpy as np, tempfile, os
>>> rng = np.random.default_rng(0)
>>> raw = rng.normal(size=(20, 5, 16)).astype("float32")
>>> docs = list(raw / np.linalg.norm(raw, axis=2, keepdims=True))
>>> index = Index.create(os.path.join(tempfile.mkdtemp(), "ix"), dimensions=16)
>>> index.add(["doc"] * 20, ids=[f"d{i}" for i in range(20)], vectors=docs)[:2]
['d0', 'd1']
>>> index.search(query_vectors=[docs[3][:2]], k=3)[0][0].id
'd3'
>>> index.add_stream(DocumentBatch([""] * 2, ids=[f"s{i}-{j}" for j in range(2)], vectors=docs[:2])
...                  for i in range(3))
6

Memory: writing (``add``, ``add_stream``, ``update``) and ``compact`` hold about ``memory_budget_mb`` MiB of
token vectors at a time besides the caller's own arrays (chunks of ``chunk_tokens`` tokens, see
``params.chunk_tokens``), whatever the index's size; searching memory-maps the segments.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polycolbert.documents import DocumentBatch, SearchHit
from polycolbert.encoding.protocol import TokenEncoder
from polycolbert.filters import Filter
from polycolbert.index import params as P
from polycolbert.index.codec import Codec, choose_n_centroids
from polycolbert.index.filters import compile_filter
from polycolbert.index.search import chunks, rrf, segment_maxsim, token_positions, top_k
from polycolbert.index.store import (
    RAW,
    SCHEMA,
    SEGMENTS,
    Segment,
    connect,
    disk_bytes,
    get_meta,
    new_name,
    remove_unreferenced,
    set_meta,
    write_arrays,
)
from polycolbert.scoring import without_padding_rows

FORMAT_VERSION = 1
NO_MODEL = "none"


_Doc = tuple[str, str, dict[str, Any], np.ndarray]  # text, id, metadata, token vectors


class Index:
    """An embedded index; safe for many reader processes and one writer at a time (SQLite's lock)."""

    def __init__(
        self,
        path: Path,
        db: sqlite3.Connection,
        model: TokenEncoder | None = None,
        memory_budget_mb: float = P.MEMORY_BUDGET_MB,
    ):
        self.path = path
        self.db = db
        meta = get_meta(db)
        self.model_name: str = meta["model"]
        self.dimensions: int = int(meta["dimensions"])
        self.nbits: int = int(meta["nbits"])
        self._model = model
        self._lock = threading.RLock()
        self._version = -1
        self._brute_cache: np.ndarray | None = None
        self._replaced_files = False  # set by a rebuild: delete the old segment files after the commit
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

    # ----------------------------------------------------------------- lifecycle
    @classmethod
    def create(
        cls,
        path: str | Path,
        model: TokenEncoder | str | None = None,
        dimensions: int | None = None,
        nbits: int = P.NBITS,
        memory_budget_mb: float = P.MEMORY_BUDGET_MB,
    ) -> Index:
        """A new empty index; ``model`` is a ColBERT, a model name, or None (vectors supplied by caller)."""
        path = Path(path)
        if path.exists() and any(path.iterdir()):
            raise ValueError(f"{path} already exists and is not empty; choose a new folder")
        if nbits not in (1, 2, 4):
            raise ValueError(f"nbits must be 1, 2 or 4; got {nbits!r}")
        if isinstance(model, str):
            from polycolbert import ColBERT

            model = None if model == NO_MODEL else ColBERT.load(model)
        if model is not None:
            dimensions = (
                model.check_dimensions(dimensions)
                if hasattr(model, "check_dimensions")
                else (dimensions or model.dims[0])
            )
            if dimensions not in model.dims:
                raise ValueError(f"dimensions must be one of {list(model.dims)} for {model.name}")
            name = model.name
        else:
            name = NO_MODEL
            if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions <= 0:
                raise ValueError("an index without a model needs dimensions= (a positive integer)")
        if dimensions * nbits % 8:
            raise ValueError(f"dimensions x nbits must be a multiple of 8; got {dimensions} x {nbits}")
        path.mkdir(parents=True, exist_ok=True)
        db = connect(path)
        db.executescript(SCHEMA)
        db.execute("BEGIN IMMEDIATE")
        set_meta(
            db,
            format=FORMAT_VERSION,
            model=name,
            dimensions=dimensions,
            nbits=nbits,
            version=0,
            next_doc=0,
            codec=None,
            clustered_tokens=0,
            drift_tokens=0,
            drift_mse=0.0,
            compactions=0,
        )
        db.execute("COMMIT")
        return cls(path, db, model, memory_budget_mb)

    @classmethod
    def open(
        cls, path: str | Path, model: TokenEncoder | None = None, memory_budget_mb: float = P.MEMORY_BUDGET_MB
    ) -> Index:
        path = Path(path)
        if not (path / "index.sqlite").is_file():
            raise FileNotFoundError(f"no index at {path} (create one with `polycolbert index create {path}`)")
        db = connect(path)
        meta = get_meta(db)
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported index format {meta.get('format')!r}")
        return cls(path, db, model, memory_budget_mb)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- encoding
    def encoder(self) -> TokenEncoder:
        """The model that encodes for this index, loaded on first use (an index fed vectors needs none)."""
        if self._model is None:
            if self.model_name == NO_MODEL:
                raise ValueError("this index has no model: pass vectors= / query_vectors=")
            from polycolbert import ColBERT

            self._model = ColBERT.load(self.model_name)
        return self._model

    def _check_vectors(self, vectors: Sequence[np.ndarray], what: str) -> list[np.ndarray]:
        out = []
        for i, v in enumerate(vectors):
            a = np.asarray(v, dtype=np.float32)
            if a.ndim != 2 or a.shape[1] != self.dimensions:
                raise ValueError(
                    f"{what}[{i}] has shape {a.shape}; this index ({self.model_name}) needs [tokens, "
                    f"{self.dimensions}]"
                )
            if len(a) == 0:
                raise ValueError(f"{what}[{i}] has no token vectors")
            if not np.isfinite(a).all():
                raise ValueError(f"{what}[{i}] contains NaN or infinite values")
            out.append(a)
        return out

    # ----------------------------------------------------------------- writing
    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadata: Sequence[dict[str, Any]] | None = None,
        vectors: Sequence[np.ndarray] | None = None,
    ) -> list[str]:
        """Insert new documents atomically (all or none); an id already present is an error.

        Written in segments of at most ``chunk_tokens`` tokens, like :meth:`add_stream`, so the index's
        own working memory stays within ``memory_budget_mb`` (the caller's arrays are the caller's).
        """
        texts, ids, metadata = self._check_batch(texts, ids, metadata)
        vectors = self._vectors_for(texts, vectors)
        with self._write() as db:
            self._write_documents(db, list(zip(texts, ids, metadata, vectors, strict=True)))
        self._maybe_compact()
        return list(ids)

    def add_stream(self, batches: Iterable[DocumentBatch]) -> int:
        """Insert the documents of many batches in ONE commit (all or none); returns how many were added.

        Why: a corpus larger than memory. Documents are grouped into chunks of at most ``chunk_tokens``
        tokens (from ``memory_budget_mb``); each chunk is written as its own segment inside one SQLite
        write transaction, so at most about one chunk of vectors is held at a time, and a bad batch (or an
        id already present, or a crash) anywhere leaves the index exactly at its last commit: the chunks
        already written become unreferenced files that the next writer deletes. A batch without
        ``vectors`` is encoded by the index's model when it is reached. Without a codec yet, the chunks
        stay exact until the stream ends (or ``STREAM_RAW_TOKENS`` have arrived), then one codec is trained
        on a sample of all of them and they are re-encoded, chunk by chunk.
        Readers keep seeing the previous commit until this one lands; other writers wait for it.
        """
        with self._write() as db:
            added = self._write_documents(db, self._stream_documents(db, batches))
            if added == 0:
                raise ValueError("no documents given: the stream had no batches")
        self._maybe_compact()
        return added

    def update(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadata: Sequence[dict[str, Any]] | None = None,
        vectors: Sequence[np.ndarray] | None = None,
    ) -> None:
        """Replace documents by id in one commit (an unknown id is an error)."""
        texts, ids, metadata = self._check_batch(texts, ids, metadata)
        vectors = self._vectors_for(texts, vectors)
        with self._write() as db:
            known = set(self._existing(db, ids))
            missing = [i for i in ids if i not in known]
            if missing:
                raise ValueError(f"unknown ids: {missing[:10]} (use add for new documents)")
            self._remove(db, ids)
            self._write_documents(db, list(zip(texts, ids, metadata, vectors, strict=True)))
        self._maybe_compact()

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id; returns how many existed."""
        ids = [str(i) for i in ids]
        with self._write() as db:
            return self._remove(db, ids)

    def _check_batch(
        self, texts: Sequence[str], ids: Sequence[str] | None, metadata: Sequence[dict[str, Any]] | None
    ) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        texts = list(texts)
        if not texts:
            raise ValueError("no documents given: pass at least one text")
        if not all(isinstance(t, str) for t in texts):
            raise ValueError("texts must be strings")
        ids = [uuid.uuid4().hex for _ in texts] if ids is None else [str(i) for i in ids]
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        dupes = _duplicates(ids)
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

    def _vectors_for(self, texts: list[str], vectors: Sequence[np.ndarray] | None) -> list[np.ndarray]:
        if vectors is None:
            vectors = self.encoder().encode_documents(texts, dimensions=self.dimensions)
        vectors = self._check_vectors(vectors, "vectors")
        if len(vectors) != len(texts):
            raise ValueError(f"{len(vectors)} vector arrays for {len(texts)} texts")
        return vectors

    def _stream_documents(self, db: sqlite3.Connection, batches: Iterable[DocumentBatch]) -> Iterator[_Doc]:
        """Each batch checked (ids against the index first: a clash costs no encoding), then its documents."""
        for number, batch in enumerate(batches, start=1):
            try:
                texts, ids, metadata = self._check_batch(batch.texts, batch.ids, batch.metadata)
                self._refuse_taken(db, ids)
                vectors = self._vectors_for(texts, batch.vectors)
            except ValueError as error:
                raise ValueError(f"batch {number}: {error}") from None
            yield from zip(texts, ids, metadata, vectors, strict=True)

    class _Tx:
        """One write transaction under SQLite's write lock; it first deletes files no commit refers to,
        and after a rollback, or a commit that replaced segments, it deletes the files left behind."""

        def __init__(self, index: Index, collecting: bool = False):
            self.index = index
            self.collecting = collecting  # only deleting files: no new version, no clean-up after it

        def __enter__(self) -> sqlite3.Connection:
            db = self.index.db
            self.index._lock.acquire()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    self.index._remove_orphans(db)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            except BaseException:
                self.index._lock.release()
                raise
            return db

        def __exit__(self, exc_type: object, *rest: object) -> None:
            try:
                if exc_type is None:
                    if not self.collecting:
                        set_meta(self.index.db, version=get_meta(self.index.db)["version"] + 1)
                    self.index.db.execute("COMMIT")
                else:
                    self.index.db.execute("ROLLBACK")
            finally:
                self.index._lock.release()
            if not self.collecting and (exc_type is not None or self.index._replaced_files):
                self.index._replaced_files = False
                with contextlib.suppress(sqlite3.Error, OSError):  # the next writer retries anyway
                    self.index._collect_garbage()

    def _write(self) -> Index._Tx:
        return Index._Tx(self)

    def _remove_orphans(self, db: sqlite3.Connection) -> None:
        """Delete files of writers killed before their commit and of replaced segments (write lock held).

        Only here, at the start of a write transaction: files that the committed state still refers to
        must survive until a commit that drops them has landed (a rollback would otherwise lose them).
        """
        referenced = {r[0] for r in db.execute("SELECT name FROM segments")} | {get_meta(db)["codec"]}
        remove_unreferenced(self.path, referenced)

    @staticmethod
    def _existing(db: sqlite3.Connection, ids: list[str]) -> list[str]:
        found: list[str] = []
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            rows = db.execute(f"SELECT id FROM docs WHERE id IN ({','.join('?' * len(part))})", part)
            found += [r[0] for r in rows]
        return found

    def _refuse_taken(self, db: sqlite3.Connection, ids: list[str]) -> None:
        """Ids repeated or already stored (earlier chunks of this transaction included) are an error."""
        dupes = _duplicates(ids)
        if dupes:
            raise ValueError(f"ids given twice: {dupes[:10]}")
        taken = self._existing(db, ids)
        if taken:
            raise ValueError(f"ids already in the index: {taken[:10]} (use update to replace them)")

    @staticmethod
    def _remove(db: sqlite3.Connection, ids: list[str]) -> int:
        removed = 0
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            db.execute(f"DELETE FROM fts WHERE rowid IN (SELECT doc FROM docs WHERE id IN ({marks}))", part)
            removed += db.execute(f"DELETE FROM docs WHERE id IN ({marks})", part).rowcount
        return removed

    def _write_documents(self, db: sqlite3.Connection, documents: Iterable[_Doc]) -> int:
        """Write documents chunk by chunk (at most ``chunk_tokens`` tokens each); returns how many.

        When the codec gets trained part-way, documents given as a list (``add``, ``update``: all in the
        caller's memory already) are sampled for it too, those still to be written included, so one big
        ``add`` trains on its whole batch as before; a stream keeps its chunks exact until it ends (or
        reaches ``STREAM_RAW_TOKENS``) and then trains on a sample of all of them.
        """
        known = documents if isinstance(documents, list) else None
        added = 0
        deferred = False  # a stream owes the codec training it postponed (``STREAM_RAW_TOKENS``)
        for chunk in _grouped(documents, self.chunk_tokens):
            needs_codec = self._append(db, chunk)
            added += len(chunk)
            chunk.clear()  # the grouping generator holds this list too: free the vectors before a rebuild
            if not needs_codec:
                continue
            if known is not None:
                self._rebuild(db, ahead=[doc[3] for doc in known[added:]])
            elif _live_tokens(db) >= P.STREAM_RAW_TOKENS:
                self._rebuild(db)
                deferred = False
            else:
                deferred = True
        if deferred:
            self._rebuild(db)
        return added

    def _append(self, db: sqlite3.Connection, chunk: list[_Doc]) -> bool:
        """Write one chunk of new documents as one segment plus its rows, inside the caller's transaction
        (SQLite sees the transaction's own earlier writes, so chunk after chunk reads current meta).

        Returns True when the index has no codec and now holds enough tokens to train one: the caller
        then calls ``_rebuild``, once this chunk's vectors are no longer held.
        """
        texts, ids, metadata, vectors = (list(column) for column in zip(*chunk, strict=True))
        self._refuse_taken(db, ids)
        meta = get_meta(db)
        first = int(meta["next_doc"])
        docs = np.arange(first, first + len(texts), dtype=np.int64)
        lengths = np.array([len(v) for v in vectors], np.int32)
        codec = self._load_codec(meta["codec"]) if meta["codec"] is not None else None
        name, mse = self._write_segment(db, docs, lengths, np.concatenate(vectors), codec, meta["codec"])
        db.executemany(
            "INSERT INTO docs VALUES (?, ?, ?, ?, ?, ?)",
            [
                (int(d), i, t, json.dumps(m), name, len(v))
                for d, i, t, m, v in zip(docs, ids, texts, metadata, vectors, strict=True)
            ],
        )
        db.executemany("INSERT INTO fts (rowid, text) VALUES (?, ?)", zip(docs.tolist(), texts, strict=True))
        set_meta(db, next_doc=first + len(texts))
        if codec is None:
            # No codec yet: keep exact vectors until there are enough tokens to train a good one, then
            # compress everything at once (a codec fitted to a handful of tokens would encode every
            # later token badly, and that loss could never be undone). The rebuild reads this chunk
            # back from the raw segment just written, so its float32 copy need not be held meanwhile.
            return _live_tokens(db) >= P.MIN_CODEC_TOKENS
        n_new = int(lengths.sum())
        n = meta["drift_tokens"] + n_new
        set_meta(db, drift_tokens=n, drift_mse=(meta["drift_mse"] * meta["drift_tokens"] + mse * n_new) / n)
        return False

    def _write_segment(
        self,
        db: sqlite3.Connection,
        docs: np.ndarray,
        lengths: np.ndarray,
        flat: np.ndarray,
        codec: Codec | None,
        codec_name: str | None,
    ) -> tuple[str, float]:
        """Write and record one segment (raw without a codec); its name and mean squared residual."""
        if codec is None:
            seg, mse = Segment(new_name("seg"), docs, lengths, vectors=flat.astype(np.float16)), 0.0
        else:
            rows = P.encode_rows(self.chunk_tokens, self.dimensions, len(codec.centroids))
            codes, residuals, mse = _encode(codec, flat, rows)
            seg = Segment(new_name("seg"), docs, lengths, codes, residuals)
        return self._commit_segment(db, seg, codec_name or RAW), mse

    def _rebuild(self, db: sqlite3.Connection, ahead: Sequence[np.ndarray] = ()) -> None:
        """Rewrite every live document into new segments (and a new codec when there are enough tokens).

        With at least ``MIN_CODEC_TOKENS`` tokens (live ones plus ``ahead``: vectors about to be added,
        sampled but not written here) a new codec is trained on a uniform sample of them
        (``codec_sample_tokens``; exact vectors where the index still holds them, decoded otherwise), then
        the live tokens are decoded and re-encoded one group of at most ``chunk_tokens`` tokens at a time,
        one segment per group; below that the segments stay raw. Dead entries are dropped. Why in groups: the
        whole index decoded to float32 costs ``4 x dims`` bytes per token, far beyond the budget on a big
        index. Runs inside the caller's write transaction; the replaced files stay for readers until that
        commits (``_Tx`` then deletes them).
        """
        limit = self.chunk_tokens
        sources = self._live_sources(db)
        total = sum(s.live_tokens for s in sources) + sum(len(v) for v in ahead)
        codec, codec_name = None, None
        if total >= P.MIN_CODEC_TOKENS:
            sample = _sample(sources, ahead, total, P.codec_sample_tokens(limit), limit, self.dimensions)
            codec = Codec.train(sample, self.nbits, n_centroids=choose_n_centroids(total))
            del sample
            codec_name = new_name("codec")
            write_arrays(self.path / SEGMENTS, codec_name, codec.arrays())
        db.execute("DELETE FROM segments")
        self._replaced_files = True
        for group in _groups(sources, limit):
            self._rewrite_group(db, group, codec, codec_name)
        set_meta(db, codec=codec_name, clustered_tokens=total if codec else 0, drift_tokens=0, drift_mse=0.0)

    def _live_sources(self, db: sqlite3.Connection) -> list[_Source]:
        """Every recorded segment (memory-mapped) with its live entries, in the order they were written."""
        codecs: dict[str, Codec] = {}
        sources = []
        for name, column in db.execute("SELECT name, codec FROM segments ORDER BY rowid").fetchall():
            seg = Segment.load(self.path, name, raw=column == RAW)
            if column != RAW and column not in codecs:
                codecs[column] = self._load_codec(column)
            docs = np.asarray(seg.docs, np.int64)
            if len(docs) == 0:
                continue
            span = (int(docs.min()), int(docs.max()))
            live = [r[0] for r in db.execute("SELECT doc FROM docs WHERE doc BETWEEN ? AND ?", span)]
            lengths = np.asarray(seg.lengths, np.int64)
            entries = np.flatnonzero(np.isin(docs, np.asarray(live, np.int64)))
            sources.append(_Source(seg, codecs.get(column), docs, lengths, entries))
        return sources

    def _rewrite_group(
        self,
        db: sqlite3.Connection,
        group: list[tuple[_Source, np.ndarray]],
        codec: Codec | None,
        codec_name: str | None,
    ) -> None:
        """Decode one group of live entries (old codec or raw) and write it as one new segment."""
        docs = np.concatenate([source.docs[entries] for source, entries in group])
        lengths = np.concatenate([source.lengths[entries] for source, entries in group]).astype(np.int32)
        reads = [source.read(entries) for source, entries in group]
        flat = reads[0] if len(reads) == 1 else np.concatenate(reads)
        del reads
        name, _ = self._write_segment(db, docs, lengths, flat, codec, codec_name)
        db.executemany("UPDATE docs SET segment = ? WHERE doc = ?", ((name, d) for d in docs.tolist()))

    def _commit_segment(self, db: sqlite3.Connection, seg: Segment, codec_column: str) -> str:
        """Write the segment's files durably, then record it (the caller's transaction commits both)."""
        seg.write(self.path)
        db.execute(
            "INSERT INTO segments VALUES (?, ?, ?, ?)",
            (seg.name, codec_column, len(seg.docs), int(np.asarray(seg.lengths).sum())),
        )
        return seg.name

    def _load_codec(self, name: str) -> Codec:
        return Codec.load(self.path / SEGMENTS, name)

    # ----------------------------------------------------------------- drift and compaction
    def drift(self) -> dict[str, float]:
        """How badly new tokens fit the centroids, and how far the index grew past its clustering sample."""
        meta = get_meta(self.db)
        if meta["codec"] is None:
            return {"residual_ratio": 0.0, "growth": 0.0}
        codec = self._load_codec(meta["codec"])
        live = self.db.execute("SELECT COALESCE(SUM(n_tokens), 0) FROM docs").fetchone()[0]
        ratio = meta["drift_mse"] / codec.residual_mse if meta["drift_tokens"] and codec.residual_mse else 0.0
        return {"residual_ratio": float(ratio), "growth": float(live / max(meta["clustered_tokens"], 1))}

    def _maybe_compact(self) -> None:
        d = self.drift()
        if d["residual_ratio"] > P.DRIFT_THRESHOLD or d["growth"] > P.GROWTH_THRESHOLD:
            self.compact()

    def compact(self) -> None:
        """Re-cluster on a sample of the live tokens, re-encode them into segments of at most
        ``chunk_tokens`` tokens (memory bounded by ``memory_budget_mb``), drop dead entries, then the
        files nothing refers to any more."""
        with self._write() as db:
            if db.execute("SELECT COUNT(*) FROM docs").fetchone()[0] == 0:
                db.execute("DELETE FROM segments")
                set_meta(db, codec=None, clustered_tokens=0, drift_tokens=0, drift_mse=0.0)
                self._replaced_files = True
            else:
                self._rebuild(db)
            set_meta(db, compactions=get_meta(db)["compactions"] + 1)

    def _collect_garbage(self) -> None:
        """Delete unreferenced files now, in a transaction of their own: after the commit that dropped
        them, never before (a failed commit must still find them), and under the write lock (another
        writer's new, not yet committed files must survive)."""
        with Index._Tx(self, collecting=True):
            pass

    # ----------------------------------------------------------------- reading
    def _read_state(self, db: sqlite3.Connection) -> dict[str, Any]:
        """Everything a search needs, from one consistent snapshot (caller holds a transaction)."""
        meta = get_meta(db)
        rows_ = db.execute("SELECT name, codec FROM segments ORDER BY rowid").fetchall()
        segs = [Segment.load(self.path, name, raw=codec == RAW) for name, codec in rows_]
        raw = meta["codec"] is None
        rows = db.execute("SELECT doc, id FROM docs ORDER BY doc").fetchall()
        live_docs = np.array([r[0] for r in rows], dtype=np.int64)
        live_ids = np.array([r[1] for r in rows] or [""], dtype=str)

        def cat(key: str, dt: Any) -> np.ndarray:
            if not segs:
                return np.zeros(0, dt)
            return np.concatenate([np.asarray(getattr(s, key)) for s in segs]).astype(dt, copy=False)

        docs = cat("docs", np.int64)
        lengths = cat("lengths", np.int64)
        width = self.dimensions * self.nbits // 8
        codec = None if raw else self._load_codec(meta["codec"])
        if raw:
            vectors = cat("vectors", np.float16).reshape(-1, self.dimensions)
            codes, residuals = np.zeros(0, np.uint16), np.zeros((0, width), np.uint8)
        else:
            vectors = np.zeros((0, self.dimensions), np.float16)
            codes = cat("codes", codec.code_dtype if codec else np.uint16)
            residuals = (
                np.concatenate([np.asarray(s.residuals) for s in segs])
                if segs
                else np.zeros((0, width), np.uint8)
            )
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(lengths) else lengths
        live = np.isin(docs, live_docs)
        where = np.clip(np.searchsorted(live_docs, docs), 0, max(len(live_docs) - 1, 0))
        ids = np.where(live, live_ids[where], "") if len(live_docs) else np.full(len(docs), "")
        return {
            "ids": ids,
            "version": meta["version"],
            "codec": codec,
            "docs": docs,
            "lengths": lengths,
            "codes": codes,
            "residuals": residuals,
            "raw": raw,
            "vectors": vectors,
            "offsets": offsets,
            "live": live,
        }

    def _refresh(self) -> dict[str, Any]:
        with self._lock:
            version = get_meta_value(self.db, "version")
            if version != self._version:
                for _ in range(5):  # a compaction may delete files between our read and our load
                    try:
                        self.db.execute("BEGIN")
                        try:
                            state = self._read_state(self.db)
                        finally:
                            self.db.execute("COMMIT")
                        break
                    except FileNotFoundError:
                        continue
                else:
                    raise RuntimeError(f"{self.path}: segments keep disappearing; is a compaction looping?")
                if state["raw"]:
                    state["ivf"] = state["doc_centroids"] = None
                else:
                    state["ivf"], state["doc_centroids"] = _build_ivf(state)
                self._state, self._version, self._brute_cache = state, state["version"], None
            return self._state

    def search(
        self,
        queries: Sequence[str] | None = None,
        k: int = P.K,
        filter: Filter | None = None,
        hybrid: bool = False,
        query_vectors: Sequence[np.ndarray] | None = None,
        exhaustive: bool = False,
    ) -> list[list[SearchHit]]:
        """Top-``k`` hits per query, best first; ``k`` of them whenever ``k`` live documents match."""
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise ValueError(f"k must be a positive integer; got {k!r}")
        if query_vectors is None:
            if queries is None:
                raise ValueError("give queries (texts) or query_vectors")
            query_vectors = self.encoder().encode_queries(list(queries), dimensions=self.dimensions)
        qs = self._check_vectors(query_vectors, "query_vectors")
        if hybrid and (queries is None or len(queries) != len(qs)):
            raise ValueError("hybrid search needs the query texts")
        state = self._refresh()
        allowed = state["live"].copy()
        if filter is not None:
            where, args = compile_filter(filter)
            keep = np.fromiter(
                (r[0] for r in self.db.execute(f"SELECT doc FROM docs WHERE {where}", args)), dtype=np.int64
            )
            allowed &= np.isin(state["docs"], keep)
        depth = max(k, 100) if hybrid else k
        ranked = self._dense(state, qs, allowed, depth, exhaustive)
        if hybrid:
            assert queries is not None
            ranked = [
                self._fuse(state, q, r, allowed, depth, filter, k)
                for q, r in zip(queries, ranked, strict=True)
            ]
        return [self._hits(state, r[:k]) for r in ranked]

    def _dense(
        self, state: dict[str, Any], qs: list[np.ndarray], allowed: np.ndarray, k: int, exhaustive: bool
    ) -> list[list[tuple[int, float]]]:
        entries = np.flatnonzero(allowed)
        if len(entries) == 0:
            return [[] for _ in qs]
        live_tokens = int(state["lengths"][entries].sum())
        n_centroids = 0 if state["raw"] else len(state["codec"].centroids)
        p = P.derive(k, live_tokens, n_centroids, exhaustive or state["raw"])
        distinct = [_distinct_rows(q) for q in qs]
        if not state["raw"]:  # compressed tokens are scored in the codec's rotated frame
            distinct = [(state["codec"].to_search_frame(rows), weights) for rows, weights in distinct]
        if p.brute_force:
            scores = self._exact(
                state,
                np.concatenate([rows for rows, _ in distinct]),
                [len(rows) for rows, _ in distinct],
                np.concatenate([weights for _, weights in distinct]),
                entries,
                cache=bool(allowed.all()) and live_tokens <= P.BRUTE_FORCE_TOKENS,
            )
            out = []
            for row in scores:
                best = top_k(row, k, state["ids"][entries])
                out.append([(int(entries[i]), float(row[i])) for i in best])
            return out
        return [self._staged(state, rows, weights, allowed, entries, k, p) for rows, weights in distinct]

    def _staged(
        self,
        state: dict[str, Any],
        q: np.ndarray,
        weights: np.ndarray,
        allowed: np.ndarray,
        entries: np.ndarray,
        k: int,
        p: P.SearchParams,
    ) -> list[tuple[int, float]]:
        """PLAID's stages: probe lists, centroid interaction (twice, cheap then full), exact on the rest."""
        codec: Codec = state["codec"]
        cscores = q @ codec.search_centroids.T  # [rows, C]; q is in the codec's search frame
        probe = np.argpartition(-cscores, p.nprobe - 1, axis=1)[:, : p.nprobe]  # [rows, nprobe]
        ptr, lists = state["ivf"]
        # Stage 2 through the inverted lists, without touching tokens: a document's approximate score for
        # query row i is the best probed centroid it contains; where it contains none, row i's weakest
        # probed score stands in (an upper bound on what its other centroids can score).
        rows = np.repeat(np.arange(len(q)), p.nprobe)
        cents = probe.reshape(-1)
        sizes = ptr[cents + 1] - ptr[cents]
        hit_entries = (
            np.concatenate([lists[ptr[c] : ptr[c + 1]] for c in cents])
            if sizes.sum()
            else np.zeros(0, np.int64)
        )
        hit_rows = np.repeat(rows, sizes)
        hit_vals = np.repeat(cscores[rows, cents], sizes)
        ok = allowed[hit_entries]
        hit_entries, hit_rows, hit_vals = hit_entries[ok], hit_rows[ok], hit_vals[ok]
        cand, inverse = np.unique(hit_entries, return_inverse=True)
        if len(cand) < max(k, p.ndocs):
            # too few documents in the probed lists: score every allowed one this way (always k results)
            cand = entries
            inverse = np.searchsorted(entries, hit_entries)
        floor = cscores[np.arange(len(q))[:, None], probe].min(axis=1)  # [rows]
        best = np.repeat(floor[:, None], len(cand), axis=1).astype(np.float32)
        np.maximum.at(best, (hit_rows, inverse), hit_vals)
        cand = cand[top_k(weights @ best, p.ndocs, state["ids"][cand])]
        # Stage 3: full centroid interaction over each survivor's distinct centroids.
        dptr, dcodes = state["doc_centroids"]
        distinct = np.diff(dptr)
        pos = token_positions(dptr[:-1], distinct, cand)
        approx = segment_maxsim(
            np.take(cscores, dcodes[pos].astype(np.intp), axis=1), distinct[cand], [len(q)], weights
        )[0]
        keep = cand[top_k(approx, p.ndecode, state["ids"][cand])]
        # Stage 4: decompress the last few and score them exactly.
        exact = self._exact(state, q, [len(q)], weights, keep, cache=False)[0]
        return [(int(keep[i]), float(exact[i])) for i in top_k(exact, k, state["ids"][keep])]

    def _exact(
        self,
        state: dict[str, Any],
        q: np.ndarray,
        rows: list[int],
        weights: np.ndarray,
        entries: np.ndarray,
        cache: bool,
    ) -> np.ndarray:
        lengths = state["lengths"][entries]
        if cache:  # small index: keep every decoded token (<= BRUTE_FORCE_TOKENS x dims floats)
            if self._brute_cache is None:
                pos = token_positions(state["offsets"], state["lengths"], entries)
                self._brute_cache = _decode(state, pos, search_frame=True)
            decoded_all: np.ndarray | None = self._brute_cache
        else:
            decoded_all = None
        out = np.empty((len(rows), len(entries)), dtype=np.float32)
        tok_start = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        for a, b in chunks(lengths):
            if decoded_all is not None:
                block = decoded_all[tok_start[a] : tok_start[b]]
            else:
                pos = token_positions(state["offsets"], state["lengths"], entries[a:b])
                block = _decode(state, pos, search_frame=True)
            out[:, a:b] = segment_maxsim(q @ block.T, lengths[a:b], rows, weights)
        return out

    def _fuse(
        self,
        state: dict[str, Any],
        query: str,
        dense: list[tuple[int, float]],
        allowed: np.ndarray,
        depth: int,
        filter: Filter | None,
        k: int,
    ) -> list[tuple[int, float]]:
        words = re.findall(r"\w+", query)
        keyword: list[int] = []
        if words:
            match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
            rows = self.db.execute(
                "SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY bm25(fts) LIMIT ?", (match, depth * 4)
            )
            entry_of = dict(
                zip(state["docs"][allowed].tolist(), np.flatnonzero(allowed).tolist(), strict=True)
            )
            keyword = [entry_of[r[0]] for r in rows if r[0] in entry_of][:depth]
        fused = rrf([[e for e, _ in dense], keyword])
        order = sorted(fused, key=lambda e: (-fused[e], state["ids"][e]))
        return [(e, fused[e]) for e in order]

    def _hits(self, state: dict[str, Any], ranked: list[tuple[int, float]]) -> list[SearchHit]:
        if not ranked:
            return []
        docs = [int(state["docs"][e]) for e, _ in ranked]
        rows = {
            r[0]: r
            for r in self.db.execute(
                f"SELECT doc, id, text, metadata FROM docs WHERE doc IN ({','.join('?' * len(docs))})", docs
            )
        }
        hits = []
        for d, (_, score) in zip(docs, ranked, strict=True):
            if d in rows:  # deleted after our snapshot: drop rather than return a dead document
                _, id_, text, meta = rows[d]
                hits.append(SearchHit(id=id_, score=score, text=text, metadata=json.loads(meta)))
        return hits

    # ----------------------------------------------------------------- inspection
    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM docs").fetchone()[0])

    def existing(self, ids: Sequence[str]) -> set[str]:
        """Which of these ids are stored (lets callers refuse a batch before they spend time encoding it)."""
        return set(self._existing(self.db, [str(i) for i in ids]))

    def ids(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM docs ORDER BY doc")]

    def get_vectors(self, id: str) -> np.ndarray:
        """The decompressed token vectors of one document (what search scores against)."""
        state = self._refresh()
        row = self.db.execute("SELECT doc FROM docs WHERE id = ?", (id,)).fetchone()
        if row is None:
            raise KeyError(id)
        entry = np.flatnonzero((state["docs"] == row[0]) & state["live"])
        pos = token_positions(state["offsets"], state["lengths"], entry)
        return _decode(state, pos)

    def info(self) -> dict[str, Any]:
        meta = get_meta(self.db)
        n_docs, n_tokens = self.db.execute("SELECT COUNT(*), COALESCE(SUM(n_tokens), 0) FROM docs").fetchone()
        stored = self.db.execute("SELECT COALESCE(SUM(n_tokens), 0) FROM segments").fetchone()[0]
        size = disk_bytes(self.path)
        codec = self._load_codec(meta["codec"]) if meta["codec"] else None
        return {
            "path": str(self.path),
            "model": self.model_name,
            "dimensions": self.dimensions,
            "nbits": self.nbits,
            "documents": int(n_docs),
            "tokens": int(n_tokens),
            "stored_tokens": int(stored),
            "centroids": len(codec.centroids) if codec else 0,
            "bytes_on_disk": size,
            "bytes_per_token": size["total"] / max(stored, 1),
            "vector_bytes_per_token": size["vectors"] / max(stored, 1),
            "drift": self.drift(),
            "compactions": meta["compactions"],
            "version": meta["version"],
        }

    def check(self) -> list[str]:
        """Integrity problems (empty list when healthy): database, segment shapes, docs <-> entries."""
        problems: list[str] = []
        if self.db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            problems.append("SQLite integrity_check failed")
        self.db.execute("BEGIN")
        try:
            try:
                state = self._read_state(self.db)
            except (FileNotFoundError, ValueError) as exc:
                return problems + [f"segment unreadable: {exc}"]
            rows = dict(self.db.execute("SELECT doc, n_tokens FROM docs").fetchall())
            n_fts = self.db.execute("SELECT COUNT(*) FROM fts").fetchone()[0]
        finally:
            self.db.execute("COMMIT")
        codec = state["codec"]
        if rows and codec is None and not state["raw"]:
            problems.append("documents but no codec")
        stored = len(state["vectors"]) if state["raw"] else len(state["codes"])
        if stored != int(state["lengths"].sum()) or (not state["raw"] and len(state["residuals"]) != stored):
            problems.append("segment arrays disagree on the token count")
        if codec is not None and len(state["codes"]) and int(state["codes"].max()) >= len(codec.centroids):
            problems.append("a code points past the centroids")
        live = state["docs"][state["live"]]
        if len(np.unique(live)) != len(live) or set(live.tolist()) != set(rows):
            problems.append("documents and segment entries do not match one to one")
        for d, n in zip(
            state["docs"][state["live"]].tolist(), state["lengths"][state["live"]].tolist(), strict=True
        ):
            if rows.get(d) != n:
                problems.append(f"document {d}: token count differs")
                break
        if n_fts != len(rows):
            problems.append(f"full-text index has {n_fts} rows for {len(rows)} documents")
        return problems


def get_meta_value(db: sqlite3.Connection, key: str) -> Any:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return json.loads(row[0]) if row else None


def _live_tokens(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COALESCE(SUM(n_tokens), 0) FROM docs").fetchone()[0])


def _decode(state: dict[str, Any], positions: np.ndarray, search_frame: bool = False) -> np.ndarray:
    """Float32 token vectors at these positions: exact for a raw index, decompressed otherwise (in the
    codec's rotated frame with ``search_frame``, for scoring queries passed through ``to_search_frame``)."""
    if state["raw"]:
        return np.asarray(state["vectors"][positions], dtype=np.float32)
    codec: Codec = state["codec"]
    decode = codec.decode_for_search if search_frame else codec.decode
    return decode(state["codes"][positions], state["residuals"][positions])


def _distinct_rows(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A query's distinct rows and how often each occurs: MaxSim sums over rows, so a repeated row
    (queries padded by repetition, or a repeated word) is scored once and counted twice. Zero rows
    (``query_padding="zero"``) score 0 against everything, so they are dropped before any centroid is
    probed for them."""
    rows, counts = np.unique(without_padding_rows(q), axis=0, return_counts=True)
    return rows, counts.astype(np.float32)


def _build_ivf(state: dict[str, Any]) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Both directions of the (centroid, entry) incidence, deduplicated, as CSR pointers + members:
    centroid -> entries (the inverted lists) and entry -> distinct centroids (centroid interaction)."""
    codec = state["codec"]
    n_c = len(codec.centroids) if codec is not None else 1
    n_e = max(len(state["lengths"]), 1)
    entry_of_token = np.repeat(np.arange(len(state["lengths"]), dtype=np.int64), state["lengths"])
    by_entry = np.unique(entry_of_token * n_c + state["codes"].astype(np.int64))
    entries, cents = by_entry // n_c, by_entry % n_c
    dptr = np.concatenate([[0], np.cumsum(np.bincount(entries, minlength=n_e))]).astype(np.int64)
    order = np.argsort(cents, kind="stable")
    ptr = np.concatenate([[0], np.cumsum(np.bincount(cents, minlength=n_c))]).astype(np.int64)
    return (ptr, entries[order]), (dptr, cents.astype(codec.code_dtype if codec is not None else np.int64))


def _duplicates(ids: list[str]) -> list[str]:
    seen: set[str] = set()
    return sorted({i for i in ids if i in seen or seen.add(i)})  # type: ignore[func-returns-value]


def _grouped(documents: Iterable[_Doc], limit: int) -> Iterator[list[_Doc]]:
    """Consecutive documents in lists of at most ``limit`` tokens (a longer document forms its own)."""
    group: list[_Doc] = []
    tokens = 0
    for doc in documents:
        if group and tokens + len(doc[3]) > limit:
            yield group
            group, tokens = [], 0
        group.append(doc)
        tokens += len(doc[3])
    if group:
        yield group


def _encode(codec: Codec, flat: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray, float]:
    """``codec.encode`` over slices of ``rows`` tokens (bounds its score block); mse over all of them."""
    if len(flat) <= rows:
        return codec.encode(flat)
    parts = [codec.encode(flat[start : start + rows]) for start in range(0, len(flat), rows)]
    mse = sum(part[2] * len(part[0]) for part in parts) / len(flat)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), float(mse)


@dataclass
class _Source:
    """One stored segment (memory-mapped) and which of its entries are live, for a rebuild."""

    segment: Segment
    codec: Codec | None  # None: a raw segment
    docs: np.ndarray
    lengths: np.ndarray
    entries: np.ndarray  # live entries, in order
    offsets: np.ndarray = field(init=False)  # first token of each entry

    def __post_init__(self) -> None:
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    @property
    def live_tokens(self) -> int:
        return int(self.lengths[self.entries].sum())

    def read(self, entries: np.ndarray, subset: np.ndarray | None = None) -> np.ndarray:
        """Float32 tokens of these entries (only the ``subset`` of their concatenated tokens if given)."""
        pos = token_positions(self.offsets, self.lengths, entries)
        if subset is not None:
            pos = pos[subset]
        seg = self.segment
        if self.codec is None:
            return np.asarray(seg.vectors[pos], dtype=np.float32)  # type: ignore[index]
        return self.codec.decode(seg.codes[pos], seg.residuals[pos])  # type: ignore[index]


def _groups(sources: list[_Source], limit: int) -> Iterator[list[tuple[_Source, np.ndarray]]]:
    """The live entries of all sources, in order, in groups of at most ``limit`` tokens (a longer
    entry forms its own), each group a list of (source, entries) spans."""
    group: list[tuple[_Source, np.ndarray]] = []
    tokens = 0
    for source in sources:
        start = 0
        for i, n in enumerate(source.lengths[source.entries].tolist()):
            if tokens and tokens + n > limit:
                if i > start:
                    group.append((source, source.entries[start:i]))
                yield group
                group, tokens, start = [], 0, i
            tokens += n
        if start < len(source.entries):
            group.append((source, source.entries[start:]))
    if group:
        yield group


def _sample(
    sources: list[_Source], ahead: Sequence[np.ndarray], total: int, size: int, limit: int, dims: int
) -> np.ndarray:
    """A uniform sample of ``size`` of the ``total`` tokens of the sources' live entries and of the
    ``ahead`` arrays (all of them if fewer), in that order; only the sampled stored tokens are decoded,
    one group of at most ``limit`` tokens at a time."""
    if total <= size:
        picks = np.arange(total, dtype=np.int64)
    else:
        picks = np.sort(np.random.default_rng(0).choice(total, size, replace=False))
    out = np.empty((len(picks), dims), dtype=np.float32)
    start = 0
    for group in _groups(sources, limit):
        for source, entries in group:
            n = int(source.lengths[entries].sum())
            lo, hi = np.searchsorted(picks, (start, start + n))
            if hi > lo:
                out[lo:hi] = source.read(entries, picks[lo:hi] - start)
            start += n
    for vectors in ahead:
        lo, hi = np.searchsorted(picks, (start, start + len(vectors)))
        out[lo:hi] = vectors[picks[lo:hi] - start]
        start += len(vectors)
    if start != total:
        raise RuntimeError(f"live tokens changed while sampling ({start} != {total}); run check()")
    return out
