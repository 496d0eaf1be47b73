"""Compaction: re-cluster, re-encode and drop dead entries, in bounded memory; and when it is due.

A rebuild rewrites every live document into new segments, with a new codec trained on a uniform sample
of the live tokens once there are ``params.MIN_CODEC_TOKENS`` of them (raw segments below that). It
runs inside a write transaction: the replaced files stay for readers until that commits, and the
transaction then deletes them. ``drift`` measures how badly new tokens fit the centroids and how far
the index has grown past the tokens they were trained on; past ``params.DRIFT_THRESHOLD`` or
``params.GROWTH_THRESHOLD`` a write ends with a compaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from polycolbert.index import params as P
from polycolbert.index import store
from polycolbert.index.codec import Codec, choose_n_centroids
from polycolbert.index.store import RAW, Segment, token_positions
from polycolbert.index.writer import Writer


def compact(writer: Writer) -> None:
    """Rebuild in a transaction of its own (an empty index just forgets its segments and codec)."""
    with writer.transaction() as db:
        if store.count_documents(db) == 0:
            store.delete_segments(db)
            store.set_meta(db, codec=None, clustered_tokens=0, drift_tokens=0, drift_mse=0.0)
            writer.replaced_files = True
        else:
            rebuild(writer, db)
        store.set_meta(db, compactions=store.get_meta(db)["compactions"] + 1)


def rebuild(writer: Writer, db: sqlite3.Connection, ahead: Sequence[np.ndarray] = ()) -> None:
    """Rewrite every live document into new segments (and a new codec when there are enough tokens).

    With at least ``MIN_CODEC_TOKENS`` tokens (live ones plus ``ahead``: vectors about to be added,
    sampled but not written here) a new codec is trained on a uniform sample of them
    (``codec_sample_tokens``; exact vectors where the index still holds them, decoded otherwise), then
    the live tokens are decoded and re-encoded one group of at most ``chunk_tokens`` tokens at a time,
    one segment per group; below that the segments stay raw. Dead entries are dropped. Why in groups: the
    whole index decoded to float32 costs ``4 x dims`` bytes per token, far beyond the budget on a big
    index. Runs inside the caller's write transaction.
    """
    limit = writer.chunk_tokens
    sources = _live_sources(db, writer.folder)
    total = sum(s.live_tokens for s in sources) + sum(len(v) for v in ahead)
    codec, codec_name = None, None
    if total >= P.MIN_CODEC_TOKENS:
        sample = _sample(sources, ahead, total, P.codec_sample_tokens(limit), limit, writer.dimensions)
        codec = Codec.train(sample, writer.nbits, n_centroids=choose_n_centroids(total))
        del sample
        codec_name = store.new_name("codec")
        store.write_codec(writer.folder, codec_name, codec)
    store.delete_segments(db)
    writer.replaced_files = True
    for group in _groups(sources, limit):
        _rewrite_group(writer, db, group, codec, codec_name)
    store.set_meta(
        db, codec=codec_name, clustered_tokens=total if codec else 0, drift_tokens=0, drift_mse=0.0
    )


def drift(db: sqlite3.Connection, folder: Path) -> dict[str, float]:
    """How badly new tokens fit the centroids, and how far the index grew past its clustering sample."""
    meta = store.get_meta(db)
    if meta["codec"] is None:
        return {"residual_ratio": 0.0, "growth": 0.0}
    codec = store.load_codec(folder, meta["codec"])
    live = store.live_tokens(db)
    ratio = meta["drift_mse"] / codec.residual_mse if meta["drift_tokens"] and codec.residual_mse else 0.0
    return {"residual_ratio": float(ratio), "growth": float(live / max(meta["clustered_tokens"], 1))}


def due(drift: dict[str, float]) -> bool:
    """Whether this drift calls for a compaction."""
    return drift["residual_ratio"] > P.DRIFT_THRESHOLD or drift["growth"] > P.GROWTH_THRESHOLD


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


def _live_sources(db: sqlite3.Connection, folder: Path) -> list[_Source]:
    """Every recorded segment (memory-mapped) with its live entries, in the order they were written."""
    codecs: dict[str, Codec] = {}
    sources = []
    for name, column in store.segments(db):
        seg = Segment.load(folder, name, raw=column == RAW)
        if column != RAW and column not in codecs:
            codecs[column] = store.load_codec(folder, column)
        docs = np.asarray(seg.docs, np.int64)
        if len(docs) == 0:
            continue
        live = store.live_docs_between(db, int(docs.min()), int(docs.max()))
        lengths = np.asarray(seg.lengths, np.int64)
        entries = np.flatnonzero(np.isin(docs, np.asarray(live, np.int64)))
        sources.append(_Source(seg, codecs.get(column), docs, lengths, entries))
    return sources


def _rewrite_group(
    writer: Writer,
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
    name, _ = writer.write_segment(db, docs, lengths, flat, codec, codec_name)
    store.move_documents(db, name, docs.tolist())


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
