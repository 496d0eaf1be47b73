"""Compaction: re-cluster, re-encode and drop dead entries, in bounded memory and mostly without the
write lock; and when it is due.

A rebuild rewrites every live document into new segments, with a new codec trained on a uniform sample
of the live tokens once there are ``params.MIN_CODEC_TOKENS`` of them (raw segments below that).
``compact`` plans it from one committed snapshot WITHOUT the write lock (training and re-encoding are
the slow part: ``prepare``), then takes the lock only to apply it (``apply``): the segments it read are
replaced, segments other writers committed meanwhile are re-encoded with the new codec
(``Write.convert``), and documents deleted meanwhile stay as dead entries until the next compaction.
If another compaction replaced those segments first, this one is dropped: its work is done already.
The replaced files stay for readers until the commit, which then deletes them.

``drift`` measures how badly new tokens fit the centroids and how far the index has grown past the
tokens they were trained on; past ``params.DRIFT_THRESHOLD`` or ``params.GROWTH_THRESHOLD`` a write
ends with a compaction.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from polycolbert.index import integrity, snapshot, sources, store
from polycolbert.index import params as P
from polycolbert.index.codec import Codec, choose_n_centroids
from polycolbert.index.sources import Source
from polycolbert.index.writer import Staged, Write, Writer


@dataclass
class Plan:
    """A rebuild written into the staging folder, waiting to replace the segments it was read from."""

    segments: list[str]  # the segments it read (and replaces)
    before: str | None  # the codec committed when it read them
    column: str | None  # its own codec (None: raw segments)
    staged: list[Staged]


def compact(writer: Writer) -> bool:
    """Rebuild from a snapshot, then commit it (an empty index just forgets its segments and codec);
    False when another compaction got there first."""
    with writer.write() as write:
        write.begin()
        plan = prepare(write)
        with write.locked() as db:
            if store.count_documents(db) == 0:
                store.delete_segments(db)
                store.set_meta(db, codec=None, clustered_tokens=0, drift_tokens=0, drift_mse=0.0)
                write.replaced_files = True
            elif not apply(write, db, plan):
                write.abandon()
                return False
            store.set_meta(db, compactions=store.get_meta(db)["compactions"] + 1)
    return True


def prepare(write: Write) -> Plan:
    """Read the committed segments in one snapshot and rebuild them into the staging folder (no lock)."""

    def read() -> tuple[str | None, list[tuple[str, str]], list[Source]]:
        rows = store.segments(write.db)
        found = sources.live_sources(write.db, write.folder, rows, write.writer.codec)
        return store.get_meta_value(write.db, "codec"), rows, found

    before, rows, srcs = snapshot.consistent(write.db, write.folder, read)
    return _plan(write, before, rows, srcs)


def rebuild(write: Write, db: sqlite3.Connection) -> None:
    """Rebuild inside the caller's write transaction (a raw index that grew past ``MIN_CODEC_TOKENS``)."""
    rows = store.segments(db)
    srcs = sources.live_sources(db, write.folder, rows, write.writer.codec)
    plan = _plan(write, store.get_meta(db)["codec"], rows, srcs)
    if not apply(write, db, plan):
        raise RuntimeError("a rebuild under the write lock found its segments replaced")


def _plan(write: Write, before: str | None, rows: list[tuple[str, str]], srcs: list[Source]) -> Plan:
    """Train a codec on a sample of the live tokens when there are enough (``codec_sample_tokens``:
    exact vectors where the index still holds them, decoded otherwise), then re-encode the live tokens
    one group of at most ``chunk_tokens`` tokens at a time, one staged segment per group."""
    writer = write.writer
    limit = writer.chunk_tokens
    total = sum(s.live_tokens for s in srcs)
    codec: Codec | None = None
    column = None
    if total >= P.MIN_CODEC_TOKENS:
        sample = sources.sample(srcs, (), total, P.codec_sample_tokens(limit), limit, writer.dimensions)
        codec = Codec.train(sample, writer.nbits, n_centroids=choose_n_centroids(total))
        del sample
        column = store.new_name("codec")
        write.own_sums = store.write_codec(write.staging.folder, column, codec)
        write.codec, write.column, write.own, write.clustered = codec, column, True, total
    staged = write.rewrite(srcs, codec, column, local=False)
    return Plan([name for name, _ in rows], before, column, staged)


def apply(write: Write, db: sqlite3.Connection, plan: Plan) -> bool:
    """Replace the planned segments by the rebuilt ones (write lock held); False, changing nothing, when
    another writer replaced them or the codec first."""
    if store.get_meta(db)["codec"] != plan.before or not set(plan.segments) <= store.segment_names(db):
        return False
    store.delete_segments(db, plan.segments)
    if plan.column is not None:
        write.publish_codec(db)
    else:
        store.set_meta(db, codec=None, clustered_tokens=0, drift_tokens=0, drift_mse=0.0)
    write.publish(db, plan.staged)
    write.convert(db, plan.column)
    write.replaced_files = True
    return True


def drift(db: sqlite3.Connection, folder: Path, dimensions: int, nbits: int) -> dict[str, float]:
    """How badly new tokens fit the centroids, and how far the index grew past its clustering sample
    (the caller holds a read transaction: ``snapshot.consistent``)."""
    meta = store.get_meta(db)
    codec = integrity.load_codec(folder, meta["codec"], dimensions, nbits) if meta["codec"] else None
    live = store.live_tokens(db)
    if codec is None:
        return {"residual_ratio": 0.0, "growth": 0.0}
    ratio = meta["drift_mse"] / codec.residual_mse if meta["drift_tokens"] and codec.residual_mse else 0.0
    return {"residual_ratio": float(ratio), "growth": float(live / max(meta["clustered_tokens"], 1))}


def due(drift: dict[str, float]) -> bool:
    """Whether this drift calls for a compaction."""
    return drift["residual_ratio"] > P.DRIFT_THRESHOLD or drift["growth"] > P.GROWTH_THRESHOLD
