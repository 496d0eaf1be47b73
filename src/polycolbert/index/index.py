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

Waiting: writes encode and compact without the write lock and take it only to commit; a commit waits
at most ``lock_timeout`` seconds (``params.LOCK_TIMEOUT``) for another writer's, then raises
``IndexBusy`` (with ``retry_after``). Readers never wait for writers. A file that is not what its commit
recorded raises ``IndexDamaged`` naming it; ``check()`` verifies everything, checksums included.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from polycolbert.documents import DocumentBatch, SearchHit, check_vectors
from polycolbert.encoding.protocol import TokenEncoder
from polycolbert.filters import Filter
from polycolbert.fusion import SEARCH_FUSIONS, dominant_of_counts
from polycolbert.index import compaction, integrity, search, snapshot, store
from polycolbert.index import params as P
from polycolbert.index.errors import IndexBusy, IndexDamaged, from_sqlite
from polycolbert.index.writer import (
    FORMAT_VERSION,
    FORMATS,
    Writer,
    check_batch,
    documents,
    stream_documents,
)

NO_MODEL = "none"
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def _translated(method: F) -> F:
    """SQLite's exceptions as the index's own: ``IndexBusy``, ``IndexDamaged`` (a damaged database)."""

    @functools.wraps(method)
    def wrapper(self: Index, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as error:
            translated = from_sqlite(error, self.path, self.lock_timeout)
            if translated is error:
                raise
            raise translated from None

    return wrapper  # type: ignore[return-value]


def _connect(path: Path, lock_timeout: float) -> tuple[sqlite3.Connection, dict[str, Any]]:
    """A connection to an index folder and its meta, or ``IndexDamaged`` / ``IndexBusy``."""
    db = None
    try:
        db = store.connect(path, lock_timeout)
        return db, store.get_meta(db)
    except sqlite3.Error as error:
        if db is not None:
            db.close()
        translated = from_sqlite(error, path, lock_timeout)
        if translated is error:
            raise
        raise translated from None


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
        lock_timeout: float | None = None,
    ):
        self.path = path
        self.db = db  # the readers' connection (each write opens its own)
        meta = store.get_meta(db)
        self.model_name: str = meta["model"]
        self.dimensions: int = int(meta["dimensions"])
        self.nbits: int = int(meta["nbits"])
        self._model = model
        timeout = P.LOCK_TIMEOUT if lock_timeout is None else lock_timeout
        self._writer = Writer(path, self.dimensions, self.nbits, memory_budget_mb, timeout)
        # One thread at a time runs a read transaction on ``db`` (a second BEGIN on it would fail).
        self._read_lock = threading.RLock()
        self._reader = snapshot.Reader(db, path, self.dimensions, self.nbits, self._read_lock)

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

    @property
    def lock_timeout(self) -> float:
        """Seconds a write waits for another writer's lock before ``IndexBusy`` (``params.LOCK_TIMEOUT``)."""
        return self._writer.lock_timeout

    @lock_timeout.setter
    def lock_timeout(self, value: float) -> None:
        self._writer.lock_timeout = value

    # ----------------------------------------------------------------- lifecycle
    @classmethod
    def create(
        cls,
        path: str | Path,
        model: TokenEncoder | str | None = None,
        dimensions: int | None = None,
        nbits: int = P.NBITS,
        memory_budget_mb: float = P.MEMORY_BUDGET_MB,
        lock_timeout: float | None = None,
    ) -> Index:
        """A new empty index; ``model`` is a ColBERT, a model name, or None (vectors supplied by caller).

        ``lock_timeout``: seconds a write waits for another writer (default ``params.LOCK_TIMEOUT``)."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} exists and is not a folder; choose a new folder for the index")
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
        P.check_lock_timeout(P.LOCK_TIMEOUT if lock_timeout is None else lock_timeout)
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
        return cls(path, db, model, memory_budget_mb, lock_timeout)

    @classmethod
    def open(
        cls,
        path: str | Path,
        model: TokenEncoder | None = None,
        memory_budget_mb: float = P.MEMORY_BUDGET_MB,
        lock_timeout: float | None = None,
    ) -> Index:
        """An existing index folder; ``IndexDamaged`` when its database is unreadable or a file its last
        commit recorded is missing or has another size (cheap: one ``stat`` a file, no reading).

        ``lock_timeout``: seconds a write waits for another writer (default ``params.LOCK_TIMEOUT``)."""
        path = Path(path)
        if not store.exists(path):
            raise FileNotFoundError(f"no index at {path} (create one with `polycolbert index create {path}`)")
        timeout = P.check_lock_timeout(P.LOCK_TIMEOUT if lock_timeout is None else lock_timeout)
        db, meta = _connect(path, timeout)
        try:
            if meta.get("format") not in FORMATS or not {"model", "dimensions", "nbits"} <= meta.keys():
                raise ValueError(f"{path}: unsupported index format {meta.get('format')!r}")
            index = cls(path, db, model, memory_budget_mb, timeout)
            index._verify_files()
        except BaseException:
            db.close()
            raise
        return index

    @_translated
    def _verify_files(self) -> None:
        self._consistent(lambda: integrity.verify_files(self.db, self.path))

    def _consistent(self, read: Callable[[], T]) -> T:
        """``read()`` in one read transaction on the readers' connection (``snapshot.consistent``)."""
        with self._read_lock:
            return snapshot.consistent(self.db, self.path, read)

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
    @_translated
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
        with self._writer.write() as write:
            write.begin()
            write.stage_documents(documents(texts, ids, metadata, vectors))
            write.commit_documents(replace=False, rebuild=compaction.rebuild)
        self._maybe_compact()
        return list(ids)

    @_translated
    def add_stream(self, batches: Iterable[DocumentBatch]) -> int:
        """Insert the documents of many batches in ONE commit (all or none); returns how many were added.

        Why: a corpus larger than memory. Documents are grouped into chunks of at most ``chunk_tokens``
        tokens (from ``memory_budget_mb``); each chunk is encoded and written as a segment into a private
        staging folder WITHOUT the write lock, so at most about one chunk of vectors is held at a time and
        other writers and readers carry on meanwhile. The lock is taken once, at the end, to commit them
        all; a bad batch (or an id already present, or a crash) anywhere leaves the index exactly at its
        last commit. A batch without ``vectors`` is encoded by the index's model when it is reached.
        Without a codec yet, the chunks stay exact until the stream ends (or ``STREAM_RAW_TOKENS`` have
        arrived), then one codec is trained on a sample of all of them and they are re-encoded, chunk by
        chunk. Readers keep seeing the previous commit until this one lands.
        """
        with self._writer.write() as write:
            write.begin()
            added = write.stage_documents(stream_documents(write, batches, self._vectors_for))
            if added == 0:
                raise ValueError("no documents given: the stream had no batches")
            write.commit_documents(replace=False, rebuild=compaction.rebuild)
        self._maybe_compact()
        return added

    @_translated
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
        with self._writer.write() as write:
            write.begin()
            write.refuse_unknown(ids)
            write.stage_documents(documents(texts, ids, metadata, vectors), new=False)
            write.commit_documents(replace=True, rebuild=compaction.rebuild)
        self._maybe_compact()

    @_translated
    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id; returns how many existed."""
        ids = [str(i) for i in ids]
        with self._writer.write() as write, write.locked() as db:
            return store.delete_documents(db, ids)

    # ----------------------------------------------------------------- drift and compaction
    @_translated
    def drift(self) -> dict[str, float]:
        """How badly new tokens fit the centroids, and how far the index grew past its clustering sample."""
        return self._consistent(lambda: compaction.drift(self.db, self.path, self.dimensions, self.nbits))

    def _maybe_compact(self) -> None:
        """Compact when drift calls for it; a busy index leaves it to a later write (this one landed)."""
        if compaction.due(self.drift()):
            with contextlib.suppress(IndexBusy):
                self.compact()

    @_translated
    def compact(self) -> None:
        """Re-cluster on a sample of the live tokens, re-encode them into segments of at most
        ``chunk_tokens`` tokens (memory bounded by ``memory_budget_mb``), drop dead entries, then the
        files nothing refers to any more. Prepared without the write lock (see ``compaction``)."""
        compaction.compact(self._writer)

    # ----------------------------------------------------------------- reading
    @_translated
    def search(
        self,
        queries: Sequence[str] | None = None,
        k: int = P.K,
        filter: Filter | None = None,
        hybrid: bool = False,
        query_vectors: Sequence[np.ndarray] | None = None,
        exhaustive: bool = False,
        fusion: str = "none",
    ) -> list[list[SearchHit]]:
        """Top-``k`` hits per query, best first; ``k`` of them whenever ``k`` live documents match.

        ``fusion="bm25"`` ranks MaxSim's best 100 again with BM25 (:mod:`polycolbert.fusion`; needs the
        query texts); where the script gate lets BM25 count, the hits carry the fused score, else MaxSim's."""
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise ValueError(f"k must be a positive integer; got {k!r}")
        if query_vectors is None:
            if queries is None:
                raise ValueError("give queries (texts) or query_vectors")
            query_vectors = self.encoder().encode_queries(list(queries), dimensions=self.dimensions)
        qs = check_vectors(query_vectors, "query_vectors", self.dimensions, self.model_name)
        if (hybrid or fusion != "none") and (queries is None or len(queries) != len(qs)):
            raise ValueError(f"{'hybrid search' if hybrid else f'{fusion} fusion'} needs the query texts")
        if hybrid and fusion != "none":
            raise ValueError("choose hybrid search or fusion, not both")
        current = self._reader.current()
        texts = queries if hybrid else None
        return search.search(self.db, current, qs, k, filter, texts, exhaustive, fusion, queries)

    # ----------------------------------------------------------------- inspection
    @_translated
    def __len__(self) -> int:
        return store.count_documents(self.db)

    @_translated
    def existing(self, ids: Sequence[str]) -> set[str]:
        """Which of these ids are stored (lets callers refuse a batch before they spend time encoding it)."""
        return set(store.existing_ids(self.db, [str(i) for i in ids]))

    @_translated
    def ids(self) -> list[str]:
        return store.ids(self.db)

    @_translated
    def get_vectors(self, id: str) -> np.ndarray:
        """The decompressed token vectors of one document (what search scores against), grouped by
        centroid as they are stored (``layout``): MaxSim does not depend on their order."""
        current = self._reader.current()
        doc = store.doc_number(self.db, id)
        if doc is None:
            raise KeyError(id)
        entry = np.flatnonzero((current.docs == doc) & current.live)
        return current.decode(current.positions(entry))

    @_translated
    def info(self) -> dict[str, Any]:
        meta = store.get_meta(self.db)
        n_docs, n_tokens = store.document_totals(self.db)
        stored = store.stored_tokens(self.db)
        size = store.disk_bytes(self.path)
        drift = self.drift()

        def centroids() -> int:
            name = store.get_meta_value(self.db, "codec")
            return 0 if name is None else len(self._writer.codec(name).centroids)

        n_centroids = self._consistent(centroids)
        path = P.derive(P.K, n_tokens, n_centroids)
        return {
            "path": str(self.path),
            "model": self.model_name,
            "dimensions": self.dimensions,
            "nbits": self.nbits,
            "documents": n_docs,
            "tokens": n_tokens,
            "stored_tokens": stored,
            "centroids": n_centroids,
            "bytes_on_disk": size,
            "bytes_per_token": size["total"] / max(stored, 1),
            "vector_bytes_per_token": size["vectors"] / max(stored, 1),
            "drift": drift,
            "compactions": meta["compactions"],
            "version": meta["version"],
            # how an unfiltered search for the default k runs now (params.derive): every token scored
            # ("exhaustive"), or the cluster scan with its parameters ("clusters")
            "search": {"path": path.path, "nprobe": path.nprobe, "ndecode": path.ndecode},
            # compressed segments grouped by centroid on disk (format 4) vs in document order (older:
            # the cluster scan copies those into RAM; `compact` rewrites them)
            "layout": self._consistent(lambda: store.segment_layouts(self.db)),
            "fusion": self._consistent(lambda: self._fusion_info(n_docs)),
        }

    def _fusion_info(self, n_docs: int) -> dict[str, Any]:
        """Which fusions this index can search with, what the BM25 lexicon costs, and the script the
        BM25 gate reads (``"mixed"``: BM25 never counts)."""
        if not store.has_lexicon(self.db):
            return {"available": ["none"], "lexicon_bytes": 0, "corpus_script": None}
        lexicon = store.lexicon_bytes(self.db)
        return {
            "available": list(SEARCH_FUSIONS),
            "lexicon_bytes": lexicon,
            "lexicon_bytes_per_document": lexicon / max(n_docs, 1),
            "corpus_script": dominant_of_counts(store.script_counts(self.db)),
        }

    def check(self) -> list[str]:
        """Integrity problems (empty list when healthy): SQLite's own check, every file's SHA-256 against
        the one recorded at its commit, shapes, NaN or infinite values, codes past the centroids, and
        documents <-> segment entries (reads every byte of the index)."""
        try:
            db = store.connect(self.path, self.lock_timeout)  # its own: the hashing takes a while
            try:
                return snapshot.problems(db, self.path, self.dimensions, self.nbits)
            finally:
                db.close()
        except sqlite3.Error as error:
            translated = from_sqlite(error, self.path, self.lock_timeout)
            if isinstance(translated, IndexDamaged):
                return [translated.problem]
            if translated is error:
                raise
            raise translated from None


def check_folder(path: str | Path) -> list[str]:
    """``Index.check`` for the index at ``path``, or the problem that keeps it from opening at all."""
    try:
        index = Index.open(path)
    except IndexDamaged as damage:
        return [damage.problem]
    with index:
        return index.check()
