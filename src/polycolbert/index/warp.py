"""Search by scanning centroid clusters (XTR-WARP's candidate stage), then exact MaxSim on the best few.

Why: PLAID's stages decode whole candidate documents, ``tokens x dims`` work per candidate. WARP instead
walks, for each query row, the few clusters whose centroids score best, and scores every token in them
straight from its residual bytes with a per-row lookup table (product quantisation's asymmetric
scoring: one table read per residual byte), in compiled code. A document holding a token in a probed
cluster of row ``i`` gets that token's exact (decoded) similarity for the row; one holding none gets an
imputed value, the row's weakest probed centroid score, as WARP does. Unlike WARP, the ``ndecode`` best
documents by that estimate are then decoded and scored exactly, so the scores that come back are MaxSim
over the stored vectors (what ``exhaustive=True`` computes): the imputation only decides which
documents reach that last stage.

Layout: per segment, its tokens grouped by centroid (``layout``): a probed cluster is one contiguous run
of the memory-mapped residual file, read in place. Segments written before format 4 keep their tokens in
document order; for those a copy grouped by centroid is built in RAM on first use (``4 + dims * nbits /
8`` bytes a token) until a compaction rewrites them. The scan's estimate leaves out the norm of each
decoded token (decoding normalises): dropping it changed no top-10 on xquad-de@mixed, and it would have
cost a pass over every residual or a stored byte a token (docs/benchmarks.md). The exact re-rank decodes
its documents, normalised, from the same files.

Every product of the scan path is a compiled kernel here or in ``codec`` (none goes through BLAS): a
multi-threaded BLAS call between the compiled kernels leaves its threads spinning on the two cores those
kernels need, which measured 2-3x slower (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from polycolbert.index import layout
from polycolbert.index.codec import Codec, dot_rows
from polycolbert.index.store import Segment

# Rows of one scan's ``[rows, entries]`` best-similarity table at most (float32: 64 MiB): a batch of
# queries is scanned in groups that fit.
SCAN_FLOATS = 1 << 24


@dataclass(frozen=True)
class SegmentLists:
    """One segment's tokens grouped by centroid: centroid ``c``'s are rows ``[ptr[c], ptr[c + 1])``."""

    ptr: np.ndarray  # [n_centroids + 1] int
    entries: np.ndarray  # segment-local entry of each row
    residuals: np.ndarray  # [segment tokens, bytes] uint8 residuals (the memory-mapped file, or a copy)
    base: int  # index-wide entry number of the segment's entry 0


@dataclass(frozen=True)
class TokenLists:
    segments: tuple[SegmentLists, ...]

    @classmethod
    def build(cls, codec: Codec, segments: Sequence[Segment]) -> TokenLists:
        """The scan's view of compressed segments (their entries numbered in this order): a clustered
        segment's own arrays; for one in document order, a copy grouped by centroid."""
        out, base = [], 0
        for seg in segments:
            assert seg.residuals is not None, "a raw segment has no clusters"
            if seg.clustered:
                assert seg.ptr is not None and seg.entries is not None
                out.append(SegmentLists(seg.ptr, seg.entries, seg.residuals, base))
            else:
                ptr, entries, order = layout.cluster_order(
                    np.asarray(seg.codes), np.asarray(seg.lengths), len(codec.centroids)
                )
                out.append(SegmentLists(ptr, entries, np.ascontiguousarray(seg.residuals[order]), base))
            base += len(seg.lengths)
        return cls(tuple(out))


def lookup_tables(codec: Codec, q: np.ndarray) -> np.ndarray:
    """``[rows, bytes, 256]``: each query row (search frame) dotted with every residual codeword of each
    byte, so a token's residual similarity is the sum of one entry per byte."""
    groups, n_words, _ = codec.codebooks.shape
    out = np.empty((len(q), groups, n_words), dtype=np.float32)
    books = np.ascontiguousarray(codec.codebooks, dtype=np.float32)
    _tables(np.ascontiguousarray(q, dtype=np.float32), books, out)
    return out


def candidates(
    codec: Codec,
    lists: TokenLists,
    qs: list[tuple[np.ndarray, np.ndarray]],
    allowed: np.ndarray,
    nprobe: int,
) -> np.ndarray:
    """``[queries, entries]`` estimated MaxSim of each (distinct rows in the search frame, weights)
    query against every entry: exact per row where the entry has a token in one of the row's
    ``nprobe`` best clusters, imputed elsewhere; ``-inf`` for entries not allowed or never hit."""
    n_entries = len(allowed)
    out = np.full((len(qs), n_entries), -np.inf, dtype=np.float32)
    per_group = max(1, SCAN_FLOATS // max(1, n_entries * max(len(r) for r, _ in qs)))
    for g in range(0, len(qs), per_group):
        group = qs[g : g + per_group]
        q = np.concatenate([rows for rows, _ in group])
        weights = np.concatenate([w for _, w in group]).astype(np.float32)
        starts = np.cumsum([0] + [len(rows) for rows, _ in group]).astype(np.int64)
        cscores = dot_rows(q, codec.search_centroids)  # [rows, C]
        probe = np.empty((len(q), nprobe), dtype=np.int64)
        impute = np.empty(len(q), dtype=np.float32)
        _probe(cscores, probe, impute)
        tables = lookup_tables(codec, q)
        best = np.full((len(q), n_entries), -np.inf, dtype=np.float32)
        for seg in lists.segments:
            _scan(tables, cscores, probe, seg.ptr, seg.entries, seg.base, seg.residuals, allowed, best)
        _reduce(best, starts, weights, impute, allowed, out[g : g + len(group)])
    return out


@njit(cache=True, parallel=True, nogil=True, fastmath=True)
def _tables(q, books, out):  # type: ignore[no-untyped-def]
    groups, n_words, width = books.shape
    for i in prange(q.shape[0]):
        for g in range(groups):
            for c in range(n_words):
                s = np.float32(0.0)
                for j in range(width):
                    s += q[i, g * width + j] * books[g, c, j]
                out[i, g, c] = s


@njit(cache=True, parallel=True, nogil=True)
def _probe(cscores, probe, impute):  # type: ignore[no-untyped-def]
    """Per row, the ``probe.shape[1]`` best centroids (any order) and the weakest of their scores."""
    n = probe.shape[1]
    for i in prange(cscores.shape[0]):
        row = cscores[i]
        top = np.full(n, -np.inf, dtype=np.float32)
        which = np.zeros(n, dtype=np.int64)
        low = 0  # the slot holding the weakest of the kept scores
        for c in range(len(row)):
            if row[c] > top[low]:
                top[low], which[low] = row[c], c
                for j in range(n):
                    if top[j] < top[low]:
                        low = j
        probe[i] = which
        impute[i] = top[low]


@njit(cache=True, parallel=True, nogil=True, fastmath=True)
def _scan(tables, cscores, probe, ptr, entries, base, residuals, allowed, best):  # type: ignore[no-untyped-def]
    """``best[i, e]``: the best similarity of row ``i`` to a token of entry ``e`` in its probed clusters."""
    groups = residuals.shape[1]
    for i in prange(tables.shape[0]):
        table = tables[i]
        row = best[i]
        for p in range(probe.shape[1]):
            c = probe[i, p]
            centroid = cscores[i, c]
            for j in range(ptr[c], ptr[c + 1]):
                e = base + np.int64(entries[j])
                if not allowed[e]:
                    continue
                s = centroid
                for g in range(groups):
                    s += table[g, residuals[j, g]]
                if s > row[e]:
                    row[e] = s


@njit(cache=True, parallel=True, nogil=True)
def _reduce(best, starts, weights, impute, allowed, out):  # type: ignore[no-untyped-def]
    """Per query, the weighted sum over its rows of each entry's best similarity (imputed where the row
    found none); entries no row found, or not allowed, stay ``-inf``."""
    n_entries = best.shape[1]
    for q in prange(len(starts) - 1):
        for e in range(n_entries):
            if not allowed[e]:
                continue
            total = 0.0
            found = False
            for i in range(starts[q], starts[q + 1]):
                v = best[i, e]
                if v == -np.inf:
                    total += weights[i] * impute[i]
                else:
                    total += weights[i] * v
                    found = True
            if found:
                out[q, e] = total


def maxsim(
    codec: Codec,
    q: np.ndarray,
    rows: list[int],
    weights: np.ndarray,
    codes: np.ndarray,
    packed: np.ndarray,
    lengths: np.ndarray,
    owner: np.ndarray | None = None,
) -> np.ndarray:
    """``[queries, docs]`` exact MaxSim of the queries' stacked search-frame ``rows`` (``rows[i]`` each,
    weighted) against documents given as their tokens' codes and residual bytes (``lengths`` each, one
    document after another): each token is decoded once, in registers, and scored against the rows.
    With ``owner`` (the query of each document), a document is scored for its own query only (a batch
    re-ranks every query's candidates in one call); the other cells are 0."""
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    bounds = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
    out = np.zeros((len(rows), len(lengths)), dtype=np.float32)
    books = np.ascontiguousarray(codec.codebooks, dtype=np.float32)
    first = np.zeros(len(lengths), np.int64) if owner is None else np.asarray(owner, np.int64)
    last = np.full(len(lengths), len(rows), np.int64) if owner is None else first + 1
    _maxsim(
        np.ascontiguousarray(q, dtype=np.float32),
        np.asarray(weights, dtype=np.float32),
        bounds,
        starts,
        first,
        last,
        np.asarray(codes),
        np.ascontiguousarray(packed),
        codec.search_centroids,
        books,
        out,
    )
    return out


@njit(cache=True, parallel=True, nogil=True, fastmath=True)
def _maxsim(q, weights, bounds, starts, first, last, codes, packed, centroids, books, out):  # type: ignore[no-untyped-def]
    """``out[k, d]`` for queries ``first[d] <= k < last[d]``; an empty document scores 0."""
    dims = q.shape[1]
    groups = packed.shape[1]
    width = books.shape[2]
    for d in prange(len(starts) - 1):
        r0, r1 = bounds[first[d]], bounds[last[d]]
        best = np.full(r1 - r0, -np.inf, dtype=np.float32)
        v = np.empty(dims, dtype=np.float32)
        for t in range(starts[d], starts[d + 1]):
            c = codes[t]
            acc = np.float32(0.0)
            for g in range(groups):
                b = packed[t, g]
                for j in range(width):
                    x = centroids[c, g * width + j] + books[g, b, j]
                    v[g * width + j] = x
                    acc += x * x
            inv = np.float32(1.0) / max(np.sqrt(acc), np.float32(1e-12))
            for j in range(dims):
                v[j] *= inv
            for i in range(r0, r1):
                s = np.float32(0.0)
                for j in range(dims):
                    s += q[i, j] * v[j]
                if s > best[i - r0]:
                    best[i - r0] = s
        if starts[d + 1] > starts[d]:
            for k in range(first[d], last[d]):
                total = np.float32(0.0)
                for i in range(bounds[k], bounds[k + 1]):
                    total += weights[i] * best[i - r0]
                out[k, d] = total
