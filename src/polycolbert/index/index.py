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
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polycolbert.backends.base import Filter, SearchHit
from polycolbert.index import params as P
from polycolbert.index.codec import Codec
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

FORMAT_VERSION = 1
NO_MODEL = "none"


class Index:
    """An embedded index; safe for many reader processes and one writer at a time (SQLite's lock)."""

    def __init__(self, path: Path, db: sqlite3.Connection, model: Any = None):
        self.path = path
        self.db = db
        meta = get_meta(db)
        self.model_name: str = meta["model"]
        self.dimensions: int = int(meta["dimensions"])
        self.nbits: int = int(meta["nbits"])
        self._model = model
        self._lock = threading.RLock()
        self._version = -1
        self._codec: Codec | None = None
        self._brute_cache: np.ndarray | None = None

    # ----------------------------------------------------------------- lifecycle
    @classmethod
    def create(
        cls, path: str | Path, model: Any = None, dimensions: int | None = None, nbits: int = 2
    ) -> Index:
        """A new empty index; ``model`` is a ColBERT, a model name, or None (vectors supplied by caller)."""
        path = Path(path)
        if path.exists() and any(path.iterdir()):
            raise ValueError(f"{path} already exists and is not empty; choose a new folder")
        if nbits not in (1, 2, 4):
            raise ValueError(f"nbits must be 1, 2 or 4; got {nbits!r}")
        if isinstance(model, str) and model != NO_MODEL:
            from polycolbert import ColBERT

            model = ColBERT.load(model)
        if model is not None and model != NO_MODEL:
            dimensions = (
                model.check_dimensions(dimensions)
                if hasattr(model, "check_dimensions")
                else (dimensions or model.dims[0])
            )
            if dimensions not in model.dims:
                raise ValueError(f"dimensions must be one of {list(model.dims)} for {model.name}")
            name = model.name
        else:
            model, name = None, NO_MODEL
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
        return cls(path, db, model)

    @classmethod
    def open(cls, path: str | Path, model: Any = None) -> Index:
        path = Path(path)
        if not (path / "index.sqlite").is_file():
            raise FileNotFoundError(f"no index at {path} (create one with `polycolbert index create {path}`)")
        db = connect(path)
        meta = get_meta(db)
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported index format {meta.get('format')!r}")
        return cls(path, db, model)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- encoding
    def _encoder(self) -> Any:
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
        """Insert new documents atomically (all or none); an id already present is an error."""
        texts, ids, metadata = self._check_batch(texts, ids, metadata)
        vectors = self._vectors_for(texts, vectors)
        with self._write() as db:
            taken = self._existing(db, ids)
            if taken:
                raise ValueError(f"ids already in the index: {taken[:10]} (use update to replace them)")
            self._append(db, texts, ids, metadata, vectors)
        self._maybe_compact()
        return list(ids)

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
            self._append(db, texts, ids, metadata, vectors)
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
        seen: set[str] = set()
        dupes = sorted({i for i in ids if i in seen or seen.add(i)})  # type: ignore[func-returns-value]
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
            vectors = self._encoder().encode_documents(texts, dimensions=self.dimensions)
        vectors = self._check_vectors(vectors, "vectors")
        if len(vectors) != len(texts):
            raise ValueError(f"{len(vectors)} vector arrays for {len(texts)} texts")
        return vectors

    class _Tx:
        def __init__(self, index: Index):
            self.index = index

        def __enter__(self) -> sqlite3.Connection:
            self.index._lock.acquire()
            self.index.db.execute("BEGIN IMMEDIATE")
            return self.index.db

        def __exit__(self, exc_type: object, *rest: object) -> None:
            try:
                if exc_type is None:
                    set_meta(self.index.db, version=get_meta(self.index.db)["version"] + 1)
                    self.index.db.execute("COMMIT")
                else:
                    self.index.db.execute("ROLLBACK")
            finally:
                self.index._lock.release()

    def _write(self) -> Index._Tx:
        return Index._Tx(self)

    @staticmethod
    def _existing(db: sqlite3.Connection, ids: list[str]) -> list[str]:
        found: list[str] = []
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            rows = db.execute(f"SELECT id FROM docs WHERE id IN ({','.join('?' * len(part))})", part)
            found += [r[0] for r in rows]
        return found

    @staticmethod
    def _remove(db: sqlite3.Connection, ids: list[str]) -> int:
        removed = 0
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            db.execute(f"DELETE FROM fts WHERE rowid IN (SELECT doc FROM docs WHERE id IN ({marks}))", part)
            removed += db.execute(f"DELETE FROM docs WHERE id IN ({marks})", part).rowcount
        return removed

    def _append(
        self,
        db: sqlite3.Connection,
        texts: list[str],
        ids: list[str],
        metadata: list[dict[str, Any]],
        vectors: list[np.ndarray],
    ) -> None:
        meta = get_meta(db)
        referenced = {r[0] for r in db.execute("SELECT name FROM segments")} | {meta["codec"]}
        remove_unreferenced(self.path, referenced)  # files of writers killed before their commit
        flat = np.concatenate(vectors)
        first = int(meta["next_doc"])
        docs = np.arange(first, first + len(texts), dtype=np.int64)
        lengths = np.array([len(v) for v in vectors], np.int32)
        if meta["codec"] is None:
            # No codec yet: keep exact vectors until there are enough tokens to train a good one, then
            # compress everything at once (a codec fitted to a handful of tokens would encode every
            # later token badly, and that loss could never be undone).
            live_tokens = db.execute("SELECT COALESCE(SUM(n_tokens), 0) FROM docs").fetchone()[0]
            if live_tokens + len(flat) < P.MIN_CODEC_TOKENS:
                segment_name = self._commit_segment(
                    db, Segment(new_name("seg"), docs, lengths, vectors=flat.astype(np.float16)), RAW
                )
            else:
                segment_name = self._rebuild(db, (docs, lengths, flat))
        else:
            codec = self._load_codec(meta["codec"])
            codes, residuals, mse = codec.encode(flat)
            segment_name = self._commit_segment(
                db, Segment(new_name("seg"), docs, lengths, codes, residuals), meta["codec"]
            )
            n = meta["drift_tokens"] + len(flat)
            set_meta(
                db, drift_tokens=n, drift_mse=(meta["drift_mse"] * meta["drift_tokens"] + mse * len(flat)) / n
            )
        db.executemany(
            "INSERT INTO docs VALUES (?, ?, ?, ?, ?, ?)",
            [
                (int(d), i, t, json.dumps(m), segment_name, len(v))
                for d, i, t, m, v in zip(docs, ids, texts, metadata, vectors, strict=True)
            ],
        )
        db.executemany("INSERT INTO fts (rowid, text) VALUES (?, ?)", zip(docs.tolist(), texts, strict=True))
        set_meta(db, next_doc=first + len(texts))

    def _rebuild(
        self, db: sqlite3.Connection, extra: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    ) -> str:
        """Rewrite every live document (plus ``extra`` new ones) into ONE segment; returns its name.

        With at least ``MIN_CODEC_TOKENS`` tokens a new codec is trained on them (exact vectors where the
        index still holds them, decoded ones otherwise) and the segment is compressed; below that the
        segment stays raw. Dead entries are dropped. Runs inside the caller's write transaction.
        """
        state = self._read_state(db)
        live_entries = np.flatnonzero(state["live"])
        pos = token_positions(state["offsets"], state["lengths"], live_entries)
        parts_docs = [state["docs"][live_entries].astype(np.int64)]
        parts_lengths = [state["lengths"][live_entries].astype(np.int32)]
        parts_vectors = [_decode(state, pos)]
        if extra is not None:
            parts_docs.append(extra[0])
            parts_lengths.append(extra[1].astype(np.int32))
            parts_vectors.append(np.asarray(extra[2], np.float32))
        docs, lengths = np.concatenate(parts_docs), np.concatenate(parts_lengths)
        flat = np.concatenate(parts_vectors)
        if len(flat) < P.MIN_CODEC_TOKENS:
            seg = Segment(new_name("seg"), docs, lengths, vectors=flat.astype(np.float16))
            codec_name = None
        else:
            codec = Codec.train(flat, self.nbits)
            codes, residuals, _ = codec.encode(flat)
            codec_name = new_name("codec")
            write_arrays(self.path / SEGMENTS, codec_name, codec.arrays())
            seg = Segment(new_name("seg"), docs, lengths, codes, residuals)
        db.execute("DELETE FROM segments")
        self._commit_segment(db, seg, codec_name or RAW)
        db.execute("UPDATE docs SET segment = ?", (seg.name,))
        set_meta(
            db,
            codec=codec_name,
            clustered_tokens=len(flat) if codec_name else 0,
            drift_tokens=0,
            drift_mse=0.0,
        )
        return seg.name

    def _commit_segment(self, db: sqlite3.Connection, seg: Segment, codec_column: str) -> str:
        """Write the segment's files durably, then record it (the caller's transaction commits both)."""
        seg.write(self.path)
        db.execute(
            "INSERT INTO segments VALUES (?, ?, ?, ?)",
            (seg.name, codec_column, len(seg.docs), int(np.asarray(seg.lengths).sum())),
        )
        return seg.name

    def _load_codec(self, name: str) -> Codec:
        keys = ("centroids", "cutoffs", "weights", "nbits", "residual_mse")
        return Codec.from_arrays({k: np.load(self.path / SEGMENTS / f"{name}.{k}.npy") for k in keys})

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
        """Re-cluster on the live tokens, re-encode them into one segment, drop dead entries and files."""
        with self._write() as db:
            if db.execute("SELECT COUNT(*) FROM docs").fetchone()[0] == 0:
                db.execute("DELETE FROM segments")
                set_meta(db, codec=None, clustered_tokens=0, drift_tokens=0, drift_mse=0.0)
                keep: set[str] = set()
            else:
                keep = {self._rebuild(db), get_meta(db)["codec"]}
            set_meta(db, compactions=get_meta(db)["compactions"] + 1)
        remove_unreferenced(self.path, keep)

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
        k: int = 10,
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
            query_vectors = self._encoder().encode_queries(list(queries), dimensions=self.dimensions)
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
        cscores = q @ codec.centroids.T  # [rows, C]
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
                self._brute_cache = _decode(state, pos)
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
                block = _decode(state, pos)
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


def _decode(state: dict[str, Any], positions: np.ndarray) -> np.ndarray:
    """Float32 token vectors at these positions: exact for a raw index, decompressed otherwise."""
    if state["raw"]:
        return np.asarray(state["vectors"][positions], dtype=np.float32)
    return state["codec"].decode(state["codes"][positions], state["residuals"][positions])


def _distinct_rows(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A query's distinct rows and how often each occurs: MaxSim sums over rows, so a repeated row
    (queries padded by repetition, or a repeated word) is scored once and counted twice."""
    rows, counts = np.unique(q, axis=0, return_counts=True)
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
