"""Scoring kernels: exact MaxSim over packed documents and PLAID's centroid interaction."""

from __future__ import annotations

import numpy as np

CHUNK_TOKENS = 1 << 16


def token_positions(offsets: np.ndarray, lengths: np.ndarray, entries: np.ndarray) -> np.ndarray:
    """Concatenated token indices of the given entries (vectorised ``arange`` per entry)."""
    lens = lengths[entries]
    starts = offsets[entries]
    total = int(lens.sum())
    shift = np.repeat(starts - (np.cumsum(lens) - lens), lens)
    return shift + np.arange(total, dtype=np.int64)


def chunks(lengths: np.ndarray, limit: int = CHUNK_TOKENS) -> list[tuple[int, int]]:
    """Split consecutive entries into runs of at most ``limit`` tokens (one entry may exceed it alone)."""
    bounds, start, acc = [], 0, 0
    for i, n in enumerate(lengths.tolist()):
        if acc and acc + n > limit:
            bounds.append((start, i))
            start, acc = i, 0
        acc += n
    if start < len(lengths):
        bounds.append((start, len(lengths)))
    return bounds


def segment_maxsim(
    sims: np.ndarray, lengths: np.ndarray, query_rows: list[int], weights: np.ndarray | None = None
) -> np.ndarray:
    """``[n_queries, n_docs]`` MaxSim from a ``[sum(query_rows), tokens]`` similarity block.

    ``weights`` (one per row) count rows that stand for several identical query rows.
    """
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    best = np.maximum.reduceat(sims, starts, axis=1)  # [rows, docs]
    if weights is not None:
        best *= weights[:, None]
    bounds = np.concatenate([[0], np.cumsum(query_rows)]).astype(np.int64)
    return np.add.reduceat(best, bounds[:-1], axis=0)


def top_k(scores: np.ndarray, k: int, keys: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``k`` best scores, best first; equal scores ordered by ``keys`` (document ids).

    Why the tie rule matters: tiny or freshly re-clustered indexes decode different tokens to the same
    vector, so exact ties happen, and results must not depend on insertion order.
    """
    tie = np.arange(len(scores)) if keys is None else keys
    if len(scores) > k:
        threshold = scores[np.argpartition(-scores, k - 1)[k - 1]]
        cand = np.flatnonzero(scores >= threshold)
    else:
        cand = np.arange(len(scores))
    return cand[np.lexsort((tie[cand], -scores[cand]))][:k]


def rrf(rankings: list[list[int]], k0: int = 60) -> dict[int, float]:
    """Reciprocal rank fusion: ``sum 1 / (k0 + rank)`` over the rankings each item appears in."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k0 + rank)
    return fused
