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

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polycolbert.documents import DocumentBatch, SearchHit, check_vectors
from polycolbert.encoding.protocol import TokenEncoder
from polycolbert.filters import Filter
from polycolbert.index import compaction, search, snapshot, store
from polycolbert.index import params as P
from polycolbert.index.writer import (
    Writer,
    check_batch,
    documents,
    stream_documents,
)

FORMAT_VERSION = 1
NO_MODEL = "none"


class Index:
    """An embedded index; safe for many reader processes and one writer at a time (SQLite's lock).

    The stages live in their own modules: ``writer`` (checks, transactions, segments), ``compaction``,
    ``snapshot`` (what a reader sees), ``search`` (over a snapshot) and ``store`` (every SQL statement
    and file); this class opens the folder, loads the model and hands each call to them.
    """

    def __init__(
        self,
        path: Path,
        db: sqlite3.Connection,
        model: TokenEncoder | None = None,
        memory_budget_mb: float = P.MEMORY_BUDGET_MB,
    ):
        self.path = path
        self.db = db
        meta = store.get_meta(db)
        self.model_name: str = meta["model"]
        self.dimensions: int = int(meta["dimensions"])
        self.nbits: int = int(meta["nbits"])
        self._model = model
        lock = threading.RLock()
        self._writer = Writer(db, path, self.dimensions, self.nbits, lock, memory_budget_mb)
        self._reader = snapshot.Reader(db, path, self.dimensions, self.nbits, lock)

    @property
    def memory_budget_mb(self) -> float:
        """MiB of token vectors that writing and compaction may hold at once (``params.MEMORY_BUDGET_MB``)."""
        return self._writer.memory_budget_mb

    @memory_budget_mb.setter
    def memory_budget_mb(self, value: float) -> None:
        self._writer.memory_budget_mb = value

    @property
    def chunk_tokens(self) -> int:
        """Most tokens per chunk written (one longer document alone may exceed it)."""
        return self._writer.chunk_tokens

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
        db = store.connect(path)
        store.create(
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
        return cls(path, db, model, memory_budget_mb)

    @classmethod
    def open(
        cls, path: str | Path, model: TokenEncoder | None = None, memory_budget_mb: float = P.MEMORY_BUDGET_MB
    ) -> Index:
        path = Path(path)
        if not store.exists(path):
            raise FileNotFoundError(f"no index at {path} (create one with `polycolbert index create {path}`)")
        db = store.connect(path)
        meta = store.get_meta(db)
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

    def _vectors_for(self, texts: list[str], vectors: Sequence[np.ndarray] | None) -> list[np.ndarray]:
        if vectors is None:
            vectors = self.encoder().encode_documents(texts, dimensions=self.dimensions)
        vectors = check_vectors(vectors, "vectors", self.dimensions, self.model_name)
        if len(vectors) != len(texts):
            raise ValueError(f"{len(vectors)} vector arrays for {len(texts)} texts")
        return vectors

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
        texts, ids, metadata = check_batch(texts, ids, metadata)
        vectors = self._vectors_for(texts, vectors)
        with self._writer.transaction() as db:
            self._writer.write_documents(db, documents(texts, ids, metadata, vectors), self._rebuild)
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
        with self._writer.transaction() as db:
            docs = stream_documents(db, batches, self._vectors_for)
            added = self._writer.write_documents(db, docs, self._rebuild)
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
        texts, ids, metadata = check_batch(texts, ids, metadata)
        vectors = self._vectors_for(texts, vectors)
        with self._writer.transaction() as db:
            self._writer.replace_documents(db, documents(texts, ids, metadata, vectors), self._rebuild)
        self._maybe_compact()

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id; returns how many existed."""
        ids = [str(i) for i in ids]
        with self._writer.transaction() as db:
            return store.delete_documents(db, ids)

    def _rebuild(self, db: sqlite3.Connection, ahead: Sequence[np.ndarray]) -> None:
        compaction.rebuild(self._writer, db, ahead)

    # ----------------------------------------------------------------- drift and compaction
    def drift(self) -> dict[str, float]:
        """How badly new tokens fit the centroids, and how far the index grew past its clustering sample."""
        return compaction.drift(self.db, self.path)

    def _maybe_compact(self) -> None:
        if compaction.due(self.drift()):
            self.compact()

    def compact(self) -> None:
        """Re-cluster on a sample of the live tokens, re-encode them into segments of at most
        ``chunk_tokens`` tokens (memory bounded by ``memory_budget_mb``), drop dead entries, then the
        files nothing refers to any more."""
        compaction.compact(self._writer)

    # ----------------------------------------------------------------- reading
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
        qs = check_vectors(query_vectors, "query_vectors", self.dimensions, self.model_name)
        if hybrid and (queries is None or len(queries) != len(qs)):
            raise ValueError("hybrid search needs the query texts")
        current = self._reader.current()
        texts = queries if hybrid else None
        return search.search(self.db, current, qs, k, filter, texts, exhaustive)

    # ----------------------------------------------------------------- inspection
    def __len__(self) -> int:
        return store.count_documents(self.db)

    def existing(self, ids: Sequence[str]) -> set[str]:
        """Which of these ids are stored (lets callers refuse a batch before they spend time encoding it)."""
        return set(store.existing_ids(self.db, [str(i) for i in ids]))

    def ids(self) -> list[str]:
        return store.ids(self.db)

    def get_vectors(self, id: str) -> np.ndarray:
        """The decompressed token vectors of one document (what search scores against)."""
        current = self._reader.current()
        doc = store.doc_number(self.db, id)
        if doc is None:
            raise KeyError(id)
        entry = np.flatnonzero((current.docs == doc) & current.live)
        return current.decode(current.positions(entry))

    def info(self) -> dict[str, Any]:
        meta = store.get_meta(self.db)
        n_docs, n_tokens = store.document_totals(self.db)
        stored = store.stored_tokens(self.db)
        size = store.disk_bytes(self.path)
        codec = store.load_codec(self.path, meta["codec"]) if meta["codec"] else None
        return {
            "path": str(self.path),
            "model": self.model_name,
            "dimensions": self.dimensions,
            "nbits": self.nbits,
            "documents": n_docs,
            "tokens": n_tokens,
            "stored_tokens": stored,
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
        return snapshot.problems(self.db, self.path, self.dimensions, self.nbits)
