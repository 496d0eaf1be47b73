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

Layout: per segment, its tokens grouped by centroid (local position, entry and inverse norm of each:
12 bytes a token, in RAM, built from the codes when a snapshot is first searched this way); residual
bytes are read from the memory-mapped segment files, so a search touches only the pages of the probed
clusters and the re-ranked documents.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from polycolbert.index.codec import Codec

# Rows of one scan's ``[rows, entries]`` best-similarity table at most (float32: 64 MiB): a batch of
# queries is scanned in groups that fit.
SCAN_FLOATS = 1 << 24


@dataclass(frozen=True)
class SegmentLists:
    """One segment's tokens grouped by centroid: centroid ``c``'s are ``[ptr[c], ptr[c + 1])``."""

    ptr: np.ndarray  # [n_centroids + 1] int64
    entries: np.ndarray  # int32 entry (index-wide) of each token
    inv_norms: np.ndarray  # float32 1 / norm of each token's centroid + residual (decode normalises)
    residuals: np.ndarray  # [segment tokens, bytes] uint8 residuals, in cluster order (a copy in RAM)


@dataclass(frozen=True)
class TokenLists:
    segments: tuple[SegmentLists, ...]

    @classmethod
    def build(
        cls,
        codec: Codec,
        codes: np.ndarray,
        residual_parts: tuple[np.ndarray, ...],
        lengths: np.ndarray,
    ) -> TokenLists:
        """From every token's centroid code (entries packed in order, ``lengths`` tokens each) and the
        segments' residual arrays (in the same order: their tokens are consecutive in ``codes``)."""
        n_c = len(codec.centroids)
        entry_of_token = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)
        centroids = codec.search_centroids.astype(np.float32)
        books = np.ascontiguousarray(codec.codebooks, np.float32)
        out, start = [], 0
        for part in residual_parts:
            n = len(part)
            seg_codes = np.asarray(codes[start : start + n]).astype(np.int64)
            order = np.argsort(seg_codes, kind="stable")
            ptr = np.concatenate([[0], np.cumsum(np.bincount(seg_codes, minlength=n_c))]).astype(np.int64)
            norms = _inv_norms(seg_codes, part, centroids, books)
            out.append(
                SegmentLists(
                    ptr,
                    entry_of_token[start : start + n][order],
                    norms[order],
                    np.ascontiguousarray(part[order]),
                )
            )
            start += n
        return cls(tuple(out))


def lookup_tables(codec: Codec, q: np.ndarray) -> np.ndarray:
    """``[rows, bytes, 256]``: each query row (search frame) dotted with every residual codeword of each
    byte, so a token's residual similarity is the sum of one entry per byte."""
    groups, _, width = codec.codebooks.shape
    parts = np.ascontiguousarray(q.reshape(len(q), groups, width).transpose(1, 0, 2))  # [G, rows, w]
    tables = np.matmul(parts, codec.codebooks.transpose(0, 2, 1))  # [G, rows, 256]
    return np.ascontiguousarray(tables.transpose(1, 0, 2), dtype=np.float32)


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
        cscores = np.ascontiguousarray(q @ codec.search_centroids.T, dtype=np.float32)  # [rows, C]
        probe = np.argpartition(-cscores, nprobe - 1, axis=1)[:, :nprobe].astype(np.int64)
        impute = np.take_along_axis(cscores, probe, axis=1).min(axis=1)
        tables = lookup_tables(codec, q)
        best = np.full((len(q), n_entries), -np.inf, dtype=np.float32)
        for seg in lists.segments:
            _scan(
                tables,
                cscores,
                probe,
                seg.ptr,
                seg.entries,
                seg.inv_norms,
                seg.residuals,
                allowed,
                best,
            )
        _reduce(best, starts, weights, impute, allowed, out[g : g + len(group)])
    return out


@njit(cache=True, nogil=True)
def _inv_norms(
    codes: np.ndarray, residuals: np.ndarray, centroids: np.ndarray, books: np.ndarray
) -> np.ndarray:
    n, groups = residuals.shape
    width = books.shape[2]
    out = np.empty(n, dtype=np.float32)
    for t in range(n):
        c = codes[t]
        acc = 0.0
        for g in range(groups):
            b = residuals[t, g]
            for j in range(width):
                v = centroids[c, g * width + j] + books[g, b, j]
                acc += v * v
        out[t] = 1.0 / max(np.sqrt(acc), 1e-12)
    return out


@njit(cache=True, parallel=True, nogil=True)
def _scan(tables, cscores, probe, ptr, entries, inv_norms, residuals, allowed, best):  # type: ignore[no-untyped-def]
    """``best[i, e]``: the best similarity of row ``i`` to a token of entry ``e`` in its probed clusters."""
    groups = residuals.shape[1]
    for i in prange(tables.shape[0]):
        table = tables[i]
        row = best[i]
        for p in range(probe.shape[1]):
            c = probe[i, p]
            base = cscores[i, c]
            for j in range(ptr[c], ptr[c + 1]):
                e = entries[j]
                if not allowed[e]:
                    continue
                s = base
                for g in range(groups):
                    s += table[g, residuals[j, g]]
                s *= inv_norms[j]
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
