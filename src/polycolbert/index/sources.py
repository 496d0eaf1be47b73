"""Stored segments read back as sources of live token vectors, for writing them anew in bounded memory.

Re-encoding (a compaction, a write that trains the first codec, a write whose codec was replaced while
it prepared) reads the live entries of some segments, decodes them (exact where a segment is raw) and
writes them again; ``groups`` hands them out in runs of at most one chunk of tokens, and ``sample``
decodes only the sampled tokens to train a codec on. Why in groups: the whole index decoded to float32
costs ``4 x dims`` bytes per token, far beyond the memory budget on a big index.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from polycolbert.index import store
from polycolbert.index.codec import Codec
from polycolbert.index.store import RAW, Segment, token_positions


@dataclass
class Source:
    """One segment (memory-mapped) and which of its entries are live."""

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
        return self.codec.decode(*seg.tokens(pos))


def source(segment: Segment, codec: Codec | None, live: np.ndarray | None = None) -> Source | None:
    """A source over ``segment`` whose live entries hold the ``live`` document numbers (all when None);
    None when the segment is empty."""
    docs = np.asarray(segment.docs, np.int64)
    if len(docs) == 0:
        return None
    entries = np.arange(len(docs)) if live is None else np.flatnonzero(np.isin(docs, live))
    return Source(segment, codec, docs, np.asarray(segment.lengths, np.int64), entries)


def live_sources(
    db: sqlite3.Connection,
    folder: Path,
    segments: Sequence[tuple[str, str]],
    codec_of: Callable[[str], Codec],
    exclude: Sequence[int] = (),
) -> list[Source]:
    """These committed segments (name, codec column), memory-mapped, with their live entries (documents
    still stored, except the ``exclude`` numbers), in the given order. The caller holds a transaction."""
    codecs: dict[str, Codec] = {}
    out = []
    for name, column in segments:
        seg = Segment.load(folder / store.SEGMENTS, name, raw=column == RAW)
        docs = np.asarray(seg.docs, np.int64)
        if len(docs) == 0:
            continue
        live = np.asarray(store.live_docs_between(db, int(docs.min()), int(docs.max())), np.int64)
        if len(exclude):
            live = np.setdiff1d(live, np.asarray(exclude, np.int64))
        if column != RAW and column not in codecs:
            codecs[column] = codec_of(column)
        found = source(seg, codecs.get(column), live)
        if found is not None:
            out.append(found)
    return out


def groups(sources: list[Source], limit: int) -> Iterator[list[tuple[Source, np.ndarray]]]:
    """The live entries of all sources, in order, in groups of at most ``limit`` tokens (a longer
    entry forms its own), each group a list of (source, entries) spans."""
    group: list[tuple[Source, np.ndarray]] = []
    tokens = 0
    for src in sources:
        start = 0
        for i, n in enumerate(src.lengths[src.entries].tolist()):
            if tokens and tokens + n > limit:
                if i > start:
                    group.append((src, src.entries[start:i]))
                yield group
                group, tokens, start = [], 0, i
            tokens += n
        if start < len(src.entries):
            group.append((src, src.entries[start:]))
    if group:
        yield group


def read_group(group: list[tuple[Source, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One group's document numbers, token counts (int32) and float32 tokens, concatenated."""
    docs = np.concatenate([src.docs[entries] for src, entries in group])
    lengths = np.concatenate([src.lengths[entries] for src, entries in group]).astype(np.int32)
    reads = [src.read(entries) for src, entries in group]
    flat = reads[0] if len(reads) == 1 else np.concatenate(reads)
    return docs, lengths, flat


def sample(
    sources: list[Source], ahead: Sequence[np.ndarray], total: int, size: int, limit: int, dims: int
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
    for group in groups(sources, limit):
        for src, entries in group:
            n = int(src.lengths[entries].sum())
            lo, hi = np.searchsorted(picks, (start, start + n))
            if hi > lo:
                out[lo:hi] = src.read(entries, picks[lo:hi] - start)
            start += n
    for vectors in ahead:
        lo, hi = np.searchsorted(picks, (start, start + len(vectors)))
        out[lo:hi] = vectors[picks[lo:hi] - start]
        start += len(vectors)
    if start != total:
        raise RuntimeError(f"live tokens changed while sampling ({start} != {total}); run check()")
    return out
