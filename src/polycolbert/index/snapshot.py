"""What a reader sees: one committed state of the index, as arrays, read in one SQLite snapshot.

Every segment's arrays are concatenated in the order the segments were written, so an *entry* (one
document's run of tokens in one segment) is a row number across the whole index and a token a position
in the packed token arrays. Entries of deleted or replaced documents stay in their segments until a
compaction (``live`` marks the others). A ``Snapshot`` is immutable: a search keeps using the one it
started with while a writer commits, and ``Reader`` loads a new one only when the committed version
has moved.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from polycolbert.index import integrity, store
from polycolbert.index.codec import Codec
from polycolbert.index.errors import IndexBusy, IndexDamaged, retry_after
from polycolbert.index.store import RAW, SEGMENTS, Segment, token_positions
from polycolbert.index.warp import TokenLists


class Tokens:
    """Every compressed segment's tokens, addressed by position in document order across the index (the
    positions ``offsets`` and ``lengths`` count); the arrays stay memory-mapped and a read touches only
    the rows it asks for, so the residuals never need to fit in memory."""

    def __init__(self, segments: list[Segment], width: int):
        self.segments = tuple(segments)
        self.width = width
        self.starts = np.cumsum([0] + [s.n_tokens for s in segments]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def gather(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centroid codes and residual rows of the tokens at these positions."""
        positions = np.asarray(positions, dtype=np.int64)
        codes = np.empty(len(positions), dtype=np.int64)
        rows = np.empty((len(positions), self.width), dtype=np.uint8)
        part = np.searchsorted(self.starts, positions, side="right") - 1
        slots = np.argsort(part, kind="stable")
        ends = np.cumsum(np.bincount(part, minlength=len(self.segments)))
        for p, (a, b) in enumerate(zip(np.concatenate([[0], ends[:-1]]), ends, strict=True)):
            if b > a:
                mine = slots[a:b]
                self.segments[p].tokens_into(positions[mine] - self.starts[p], mine, codes, rows)
        return codes, rows


@dataclass(frozen=True)
class Snapshot:
    version: int  # the committed version it was read at
    codec: Codec | None  # None: a raw index (exact float16 vectors, no codec trained yet)
    docs: np.ndarray  # [entries] int64 document number
    ids: np.ndarray  # [entries] str document id ("" for a dead entry)
    live: np.ndarray  # [entries] bool: the document is still stored
    lengths: np.ndarray  # [entries] int64 tokens
    offsets: np.ndarray  # [entries] int64 first token
    tokens: Tokens  # every token's centroid code and residual bytes, memory-mapped (empty when raw)
    vectors: np.ndarray  # [tokens, dims] float16 exact vectors (empty unless raw)

    @property
    def raw(self) -> bool:
        return self.codec is None

    @property
    def n_centroids(self) -> int:
        return 0 if self.codec is None else len(self.codec.centroids)

    def positions(self, entries: np.ndarray) -> np.ndarray:
        """The token positions of these entries, concatenated."""
        return token_positions(self.offsets, self.lengths, entries)

    def decode(self, positions: np.ndarray, search_frame: bool = False) -> np.ndarray:
        """Float32 token vectors at these positions: exact for a raw index, decompressed otherwise (in
        the codec's rotated frame with ``search_frame``, to score queries put through ``to_search_frame``)."""
        if self.codec is None:
            return np.asarray(self.vectors[positions], dtype=np.float32)
        decode = self.codec.decode_for_search if search_frame else self.codec.decode
        return decode(*self.tokens.gather(positions))

    @functools.cached_property
    def decoded(self) -> np.ndarray:
        """Every stored token decoded in the search frame, kept while this snapshot is in use (only
        asked for on small indexes: ``params.BRUTE_FORCE_TOKENS`` x dims floats at most)."""
        return self.decode(self.positions(np.arange(len(self.lengths))), search_frame=True)

    @functools.cached_property
    def token_lists(self) -> TokenLists:
        """Every segment's tokens grouped by centroid, for the cluster scan (``warp``): the segments'
        own files where they are stored that way, a copy in RAM for older ones; built on first use."""
        assert self.codec is not None, "a raw index has no clusters"
        return TokenLists.build(self.codec, self.tokens.segments)

    @functools.cached_property
    def id_order(self) -> np.ndarray:
        """Entries sorted by document id: search ranks candidates in this order, so equal scores fall
        back to the id (tiny or freshly re-clustered indexes decode different tokens to one vector, and
        results must not depend on insertion order)."""
        return np.argsort(self.ids, kind="stable")

    @functools.cached_property
    def id_rank(self) -> np.ndarray:
        """Each entry's place in :attr:`id_order`."""
        rank = np.empty(len(self.ids), dtype=np.int64)
        rank[self.id_order] = np.arange(len(self.ids))
        return rank


def read(db: sqlite3.Connection, folder: Path, dimensions: int, nbits: int) -> Snapshot:
    """The committed state, verified cheaply (``integrity``), without its inverted file (the caller
    holds a read transaction: see ``consistent``).

    Raises ``FileNotFoundError`` when a file the commit refers to is absent (a compaction may have
    deleted it since the caller's snapshot began) and ``IndexDamaged`` when a file is not what its
    commit recorded.
    """
    meta = store.get_meta(db)
    recorded = store.recorded_files(db)
    codec = None
    if meta["codec"] is not None:
        integrity.verify_sizes(folder, store.codec_files(folder, meta["codec"]), recorded)
        codec = integrity.load_codec(folder, meta["codec"], dimensions, nbits)
    segs = []
    for name, column, n_docs, n_tokens in store.segment_rows(db):
        if column != (meta["codec"] or RAW):
            problem = f"encoded by {column}; the index's codec is {meta['codec'] or 'none (raw)'}"
            raise IndexDamaged(folder / SEGMENTS / f"{name}.*.npy", problem, folder)
        integrity.verify_sizes(folder, store.segment_files(name, column), recorded)
        seg = Segment.load(folder / SEGMENTS, name, raw=column == RAW)
        integrity.verify_segment(folder, seg, n_docs, n_tokens, codec, dimensions, nbits)
        segs.append(seg)
    rows = store.numbered_ids(db)
    live_docs = np.array([r[0] for r in rows], dtype=np.int64)
    live_ids = np.array([r[1] for r in rows] or [""], dtype=str)

    def cat(key: str, dt: Any) -> np.ndarray:
        if not segs:
            return np.zeros(0, dt)
        return np.concatenate([np.asarray(getattr(s, key)) for s in segs]).astype(dt, copy=False)

    docs = cat("docs", np.int64)
    lengths = cat("lengths", np.int64)
    width = dimensions * nbits // 8
    if codec is None:
        vectors = cat("vectors", np.float16).reshape(-1, dimensions)
        tokens = Tokens([], width)
    else:
        vectors = np.zeros((0, dimensions), np.float16)
        tokens = Tokens(segs, width)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(lengths) else lengths
    live = np.isin(docs, live_docs)
    where = np.clip(np.searchsorted(live_docs, docs), 0, max(len(live_docs) - 1, 0))
    ids = np.where(live, live_ids[where], "") if len(live_docs) else np.full(len(docs), "")
    return Snapshot(meta["version"], codec, docs, ids, live, lengths, offsets, tokens, vectors)


T = TypeVar("T")


def consistent(db: sqlite3.Connection, folder: Path, read: Callable[[], T], attempts: int = 5) -> T:
    """``read()`` inside one read transaction, again when a compaction deleted a file it needed meanwhile.

    A file the LATEST commit refers to is never deleted (garbage is collected only after the commit that
    dropped it), so a file missing while the committed version stands still is damage: ``IndexDamaged``.
    """
    for _ in range(attempts):
        version = None
        try:
            with store.read_transaction(db):
                version = store.get_meta_value(db, "version")
                return read()
        except FileNotFoundError as error:
            if store.get_meta_value(db, "version") == version:
                raise IndexDamaged(error.filename or "a file", "missing", folder) from None
    raise IndexBusy(folder, 0.0, retry_after(1.0), f"compactions kept replacing the files of {folder}")


class Reader:
    """The latest committed snapshot of one open index, read again only when the version has moved."""

    def __init__(
        self, db: sqlite3.Connection, folder: Path, dimensions: int, nbits: int, lock: threading.RLock
    ):
        self.db, self.folder, self.dimensions, self.nbits = db, folder, dimensions, nbits
        self._lock = lock  # the index's: one thread at a time uses the connection for a transaction
        self._version = -1
        self._snapshot: Snapshot | None = None

    def current(self) -> Snapshot:
        with self._lock:
            version = store.get_meta_value(self.db, "version")
            snapshot = self._snapshot
            if snapshot is None or version != self._version:
                loaded = consistent(
                    self.db, self.folder, lambda: read(self.db, self.folder, self.dimensions, self.nbits)
                )
                snapshot = self._snapshot = loaded
                self._version = loaded.version
            return snapshot


def problems(db: sqlite3.Connection, folder: Path, dimensions: int, nbits: int) -> list[str]:
    """Integrity problems (empty list when healthy): SQLite's own check, every file's checksum, the cheap
    checks of ``read``, and documents <-> segment entries."""
    found = [f"{folder / store.DB_NAME}: {p}" for p in store.integrity_problems(db)]
    with store.read_transaction(db):
        referenced = store.referenced_files(db, folder)
        recorded = store.recorded_files(db)
        try:
            snapshot: Snapshot | None = read(db, folder, dimensions, nbits)
        except IndexDamaged as damage:
            found.append(damage.problem)
            snapshot = None
        except FileNotFoundError:
            snapshot = None  # named by the checksum pass below
        rows = store.token_counts(db)
        n_fts = store.count_full_text(db)
        n_lexicon = store.count_lexicon(db) if store.has_lexicon(db) else len(rows)
    sums = integrity.checksum_problems(folder, referenced, recorded)
    if any(p.endswith(": missing") for p in sums):  # a compaction may have replaced them meanwhile
        still = store.referenced_files(db, folder)
        sums = [p for p in sums if not p.endswith(": missing") or Path(p[: -len(": missing")]).name in still]
    found += sums
    if snapshot is None:
        return found or ["segments unreadable; run check() again"]
    stored = len(snapshot.vectors) if snapshot.raw else len(snapshot.tokens)
    if stored != int(snapshot.lengths.sum()):
        found.append("segment arrays disagree on the token count")
    live = snapshot.docs[snapshot.live]
    if len(np.unique(live)) != len(live) or set(live.tolist()) != set(rows):
        found.append("documents and segment entries do not match one to one")
    for d, n in zip(live.tolist(), snapshot.lengths[snapshot.live].tolist(), strict=True):
        if rows.get(d) != n:
            found.append(f"document {d}: token count differs")
            break
    if n_fts != len(rows):
        found.append(f"full-text index has {n_fts} rows for {len(rows)} documents")
    if n_lexicon != len(rows):
        found.append(f"BM25 lexicon has {n_lexicon} rows for {len(rows)} documents")
    return found
