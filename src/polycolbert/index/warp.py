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
from polycolbert.index.codec import Codec
from polycolbert.index.store import Segment

# A row's scratch value for an entry it has not seen yet (finite: the scan kernel runs with fastmath,
# which assumes no infinities).
UNSEEN = np.float32(-3.0e38)


@dataclass(frozen=True)
class SegmentLists:
    """One segment's tokens grouped by centroid: centroid ``c``'s are rows ``[ptr[c], ptr[c + 1])``."""

    ptr: np.ndarray  # [n_centroids + 1] int
    entries: np.ndarray  # segment-local entry of each row
    residuals: np.ndarray  # [segment tokens, bytes] uint8 residuals (the memory-mapped file, or a copy)
    base: int  # index-wide entry number of the segment's entry 0
    n_entries: int  # entries of the segment


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
                out.append(SegmentLists(seg.ptr, seg.entries, seg.residuals, base, len(seg.lengths)))
            else:
                ptr, entries, order = layout.cluster_order(
                    np.asarray(seg.codes), np.asarray(seg.lengths), len(codec.centroids)
                )
                rows = np.ascontiguousarray(seg.residuals[order])
                out.append(SegmentLists(ptr, entries, rows, base, len(seg.lengths)))
            base += len(seg.lengths)
        return cls(tuple(out))


def candidates(
    codec: Codec,
    lists: TokenLists,
    qs: list[tuple[np.ndarray, np.ndarray]],
    allowed: np.ndarray,
    nprobe: int,
) -> np.ndarray:
    """``[queries, entries]`` estimated MaxSim of each (distinct rows in the search frame, weights)
    query against every entry: per row, the entry's best token in one of the row's ``nprobe`` best
    clusters, or the row's imputed value where it has none there; ``-inf`` for entries not allowed or
    never hit.

    Each query is one unit of work (a lone query's rows are split over two, so both cores work), with
    its own running sum over entries: a row's hits are kept in a small scratch array and folded in as
    ``weight x (best - imputed)``, so memory stays ``entries`` floats a query, not ``rows x entries``
    (which for a batch outgrew the caches and halved the scan's speed). Nothing else grows with the
    batch: no ``[rows, centroids]`` score table (the probe keeps each row's ``nprobe`` best) and no
    batch-wide lookup tables (each row's 32 KiB table is built in the scan, where it stays in L1)."""
    n_entries = len(allowed)
    q = np.ascontiguousarray(np.concatenate([rows for rows, _ in qs]), dtype=np.float32)
    weights = np.concatenate([w for _, w in qs]).astype(np.float32)
    starts = np.cumsum([0] + [len(rows) for rows, _ in qs]).astype(np.int64)
    probe = np.empty((len(q), nprobe), dtype=np.int64)
    pscore = np.empty((len(q), nprobe), dtype=np.float32)
    impute = np.empty(len(q), dtype=np.float32)
    _probe(q, codec.search_centroids, probe, pscore, impute)
    parts = 2 if len(qs) == 1 else 1
    gain = np.zeros((len(qs) * parts, n_entries), dtype=np.float32)
    found = np.zeros((len(qs) * parts, n_entries), dtype=np.bool_)
    every = bool(allowed.all())  # no filter and no deletion: the per-token check is skipped
    shape = (q, codec.search_codebooks, probe, pscore, starts, weights, impute, parts)
    for seg in lists.segments:
        lists_of = (seg.ptr, seg.entries, seg.base, seg.n_entries, seg.residuals)
        _scan(*shape, *lists_of, allowed, every, gain, found)
    out = np.empty((len(qs), n_entries), dtype=np.float32)
    _finish(gain, found, parts, starts, weights, impute, out)
    return out


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _fill_table(row, books, out):  # type: ignore[no-untyped-def]
    """``out[g, word]`` = the row's dims of byte ``g`` dotted with that codeword; ``books`` is ``[byte,
    dim, word]`` so the inner loop is one vector multiply-add over contiguous words."""
    groups, width, n_words = books.shape
    for g in range(groups):
        line = out[g]
        for c in range(n_words):
            line[c] = np.float32(0.0)
        for j in range(width):
            x = row[g * width + j]
            for c in range(n_words):
                line[c] += x * books[g, j, c]


@njit(cache=True, parallel=True, nogil=True, fastmath=True)
def _probe(q, centroids, probe, pscore, impute):  # type: ignore[no-untyped-def]
    """Per row: the ``probe.shape[1]`` best centroids (any order), their scores, and the weakest of
    them. Rows are scored four per pass over a centroid into a scratch block, never a ``[rows,
    centroids]`` table (at 300 queries and 16k centroids that table alone was 600 MB)."""
    n, dims = q.shape
    n_centroids = centroids.shape[0]
    keep = probe.shape[1]
    for block in prange((n + 3) // 4):
        i0 = 4 * block
        i1, i2, i3 = min(i0 + 1, n - 1), min(i0 + 2, n - 1), min(i0 + 3, n - 1)
        scores = np.empty((4, n_centroids), dtype=np.float32)
        for c in range(n_centroids):
            s0 = s1 = s2 = s3 = np.float32(0.0)
            for k in range(dims):
                x = centroids[c, k]
                s0 += q[i0, k] * x
                s1 += q[i1, k] * x
                s2 += q[i2, k] * x
                s3 += q[i3, k] * x
            scores[0, c], scores[1, c], scores[2, c], scores[3, c] = s0, s1, s2, s3
        for x in range(min(4, n - i0)):
            row = scores[x]
            top = np.full(keep, -np.inf, dtype=np.float32)
            which = np.zeros(keep, dtype=np.int64)
            low = 0  # the slot holding the weakest of the kept scores
            for c in range(n_centroids):
                if row[c] > top[low]:
                    top[low], which[low] = row[c], c
                    for j in range(keep):
                        if top[j] < top[low]:
                            low = j
            probe[i0 + x] = which
            pscore[i0 + x] = top
            impute[i0 + x] = top[low]


@njit(cache=True, parallel=True, nogil=True, fastmath=True)
def _scan(
    q,
    books,
    probe,
    pscore,
    starts,
    weights,
    impute,
    parts,
    ptr,
    entries,
    base,
    local,
    residuals,
    allowed,
    every,
    gain,
    found,
):  # type: ignore[no-untyped-def]
    """For each unit of work of queries ``first <= query < last`` (query ``u // parts``, its ``u %
    parts``-th share of rows) and each of its rows: the best similarity of each entry's tokens in the
    row's probed clusters (one table read per residual byte; row ``i``'s table is ``tables[i - row0]``),
    folded into ``gain[u, e] += weight x (best - imputed)`` and ``found[u, e]``."""
    groups = residuals.shape[1]
    for u in prange(gain.shape[0]):
        query, share = u // parts, u % parts
        r0, r1 = starts[query], starts[query + 1]
        a = r0 + (r1 - r0) * share // parts
        b = r0 + (r1 - r0) * (share + 1) // parts
        scratch = np.full(local, UNSEEN, dtype=np.float32)
        touched = np.empty(local + 1, dtype=np.int64)
        table = np.empty((groups, books.shape[2]), dtype=np.float32)
        for i in range(a, b):
            _fill_table(q[i], books, table)
            n = 0
            for p in range(probe.shape[1]):
                c = probe[i, p]
                centroid = pscore[i, p]
                for j in range(ptr[c], ptr[c + 1]):
                    e = np.int64(entries[j])
                    if not every and not allowed[base + e]:
                        continue
                    s = centroid  # scalar table reads: vector gathers measured 1.1x slower here
                    for g in range(groups):
                        s += table[g, residuals[j, g]]
                    # branch-free (whether an entry is new is unpredictable; 1.3x the branchy scan):
                    # the slot after the last new entry is written every time, kept only when new
                    seen = scratch[e]
                    touched[n] = e
                    n += int(seen == UNSEEN)
                    scratch[e] = max(seen, s)
            w, low = weights[i], impute[i]
            for t in range(n):
                e = touched[t]
                gain[u, base + e] += w * (scratch[e] - low)
                found[u, base + e] = True
                scratch[e] = UNSEEN


@njit(cache=True, parallel=True, nogil=True)
def _finish(gain, found, parts, starts, weights, impute, out):  # type: ignore[no-untyped-def]
    """``out[q, e]``: the query's imputed total plus the gains of its shares; ``-inf`` where no row of
    the query found the entry."""
    for q in prange(out.shape[0]):
        floor = np.float32(0.0)
        for i in range(starts[q], starts[q + 1]):
            floor += weights[i] * impute[i]
        for e in range(out.shape[1]):
            total = floor
            hit = False
            for h in range(parts):
                total += gain[q * parts + h, e]
                hit = hit or found[q * parts + h, e]
            out[q, e] = total if hit else -np.inf


def maxsim(
    codec: Codec,
    q: np.ndarray,
    rows: list[int],
    weights: np.ndarray,
    codes: np.ndarray,
    packed: np.ndarray,
    lengths: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Exact MaxSim of the queries' stacked search-frame ``rows`` (``rows[i]`` each, weighted) against
    documents given as their tokens' codes and residual bytes (``lengths`` each, one document after
    another). Each token is decoded once, in registers, and scored against the rows of every query that
    asks for its document: a batch whose queries share candidates decodes them once.

    ``pairs`` = (query, document) arrays: only those are scored, ``[pairs]`` in their order. ``None``:
    every query against every document, ``[queries, docs]``."""
    n_docs, n_queries = len(lengths), len(rows)
    if pairs is None:
        query = np.tile(np.arange(n_queries, dtype=np.int64), n_docs)
        doc = np.repeat(np.arange(n_docs, dtype=np.int64), n_queries)
    else:
        query, doc = (np.asarray(a, dtype=np.int64) for a in pairs)
    order = np.argsort(doc, kind="stable")
    owner_ptr = np.concatenate([[0], np.cumsum(np.bincount(doc, minlength=n_docs))]).astype(np.int64)
    out = np.zeros(len(query), dtype=np.float32)
    _maxsim(
        np.ascontiguousarray(q, dtype=np.float32),
        np.asarray(weights, dtype=np.float32),
        np.concatenate([[0], np.cumsum(rows)]).astype(np.int64),
        np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        owner_ptr,
        query[order],
        order.astype(np.int64),
        np.asarray(codes),
        np.ascontiguousarray(packed),
        codec.search_centroids,
        np.ascontiguousarray(codec.codebooks, dtype=np.float32),
        out,
    )
    return out if pairs is not None else out.reshape(n_docs, n_queries).T


@njit(cache=True, parallel=True, nogil=True, fastmath=True)
def _maxsim(q, weights, bounds, starts, owner_ptr, owners, slot, codes, packed, centroids, books, out):  # type: ignore[no-untyped-def]
    """``out[slot[x]]`` for each query ``owners[x]`` asking for document ``d`` (``owner_ptr[d] <= x <
    owner_ptr[d + 1]``); an empty document scores 0."""
    dims = q.shape[1]
    groups = packed.shape[1]
    width = books.shape[2]
    for d in prange(len(starts) - 1):
        o0, o1 = owner_ptr[d], owner_ptr[d + 1]
        if o0 == o1 or starts[d + 1] == starts[d]:
            continue
        n_rows = 0
        for x in range(o0, o1):
            n_rows += bounds[owners[x] + 1] - bounds[owners[x]]
        best = np.full(n_rows, UNSEEN, dtype=np.float32)
        v = np.empty(dims, dtype=np.float32)
        for t in range(starts[d], starts[d + 1]):
            c = codes[t]
            for g in range(groups):
                b = packed[t, g]
                for j in range(width):
                    v[g * width + j] = centroids[c, g * width + j] + books[g, b, j]
            acc = np.float32(0.0)
            for j in range(dims):
                acc += v[j] * v[j]
            inv = np.float32(1.0) / max(np.sqrt(acc), np.float32(1e-12))
            at = 0
            for x in range(o0, o1):
                r0, r1 = bounds[owners[x]], bounds[owners[x] + 1]
                _score_token(q, v, inv, r0, r1, best[at:])
                at += r1 - r0
        at = 0
        for x in range(o0, o1):
            r0, r1 = bounds[owners[x]], bounds[owners[x] + 1]
            total = np.float32(0.0)
            for i in range(r0, r1):
                total += weights[i] * best[at + i - r0]
            out[slot[x]] = total
            at += r1 - r0


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _score_token(q, v, scale, r0, r1, best):  # type: ignore[no-untyped-def]
    """``best[i - r0] = max(best[i - r0], scale x q[i] . v)`` for rows ``r0 <= i < r1``, four rows per
    pass over ``v`` (1.8x the speed of one row at a time: the token is loaded once for four sums)."""
    dims = q.shape[1]
    i = r0
    while i + 4 <= r1:
        s0 = s1 = s2 = s3 = np.float32(0.0)
        for j in range(dims):
            x = v[j]
            s0 += q[i, j] * x
            s1 += q[i + 1, j] * x
            s2 += q[i + 2, j] * x
            s3 += q[i + 3, j] * x
        best[i - r0] = max(best[i - r0], s0 * scale)
        best[i + 1 - r0] = max(best[i + 1 - r0], s1 * scale)
        best[i + 2 - r0] = max(best[i + 2 - r0], s2 * scale)
        best[i + 3 - r0] = max(best[i + 3 - r0], s3 * scale)
        i += 4
    while i < r1:
        s0 = np.float32(0.0)
        for j in range(dims):
            s0 += q[i, j] * v[j]
        best[i - r0] = max(best[i - r0], s0 * scale)
        i += 1


def maxsim_vectors(
    q: np.ndarray, rows: list[int], weights: np.ndarray, vectors: np.ndarray, lengths: np.ndarray
) -> np.ndarray:
    """``[queries, docs]`` exact MaxSim of the queries' stacked ``rows`` (weighted) against documents
    given as float32 token vectors (``lengths`` each, one document after another): brute force, compiled
    like the re-rank (a BLAS product between numba kernels measured 4x slower: its threads spin on the
    cores numba's need)."""
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    bounds = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
    out = np.zeros((len(rows), len(lengths)), dtype=np.float32)
    _maxsim_vectors(
        np.ascontiguousarray(q, dtype=np.float32),
        np.asarray(weights, dtype=np.float32),
        bounds,
        starts,
        np.ascontiguousarray(vectors, dtype=np.float32),
        out,
    )
    return out


@njit(cache=True, parallel=True, nogil=True, fastmath=True)
def _maxsim_vectors(q, weights, bounds, starts, vectors, out):  # type: ignore[no-untyped-def]
    """``out[k, d]`` for every query ``k``; an empty document scores 0."""
    n_rows = q.shape[0]
    for d in prange(len(starts) - 1):
        best = np.full(n_rows, UNSEEN, dtype=np.float32)
        for t in range(starts[d], starts[d + 1]):
            _score_token(q, vectors[t], np.float32(1.0), 0, n_rows, best)
        if starts[d + 1] > starts[d]:
            for k in range(len(bounds) - 1):
                total = np.float32(0.0)
                for i in range(bounds[k], bounds[k + 1]):
                    total += weights[i] * best[i]
                out[k, d] = total
