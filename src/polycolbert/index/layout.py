"""How a compressed segment's tokens lie on disk: grouped by centroid, and the way back to documents.

Why grouped by centroid (index format 4): the cluster scan (``warp``) reads, for each query row, every
token of a few clusters. Stored in document order those tokens are scattered over the whole file; stored
cluster by cluster each probed cluster is one contiguous run of the memory-mapped file, so a search
reads only the clusters it probes and nothing is copied into RAM.

A segment in this layout holds, besides its documents' numbers and token counts:

- ``ptr`` ``[centroids + 1]`` int32: centroid ``c``'s tokens are rows ``ptr[c]:ptr[c + 1]``;
- ``entries`` ``[tokens]`` (uint16 when the segment has at most 65,536 documents, else int32): the
  segment-local entry (document run) each row belongs to, ascending within a cluster;
- ``residuals`` ``[tokens, bytes]`` uint8: each row's product-quantised residual.

The centroid code of a row is implied by ``ptr``, so no codes are stored: ``entries`` costs what the
codes cost in document order (2 bytes a token), and bytes per token on disk are unchanged.

A document's tokens are found again through :func:`rows_by_entry` (a stable counting sort of
``entries``, 4 bytes a token in RAM, built when a segment is first read). Its tokens then come back
grouped by centroid, not in the order they were given: MaxSim does not depend on token order, and
keeping the order would cost 2 more bytes a token on disk.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

UINT16_ENTRIES = 1 << 16  # segments with at most this many documents store entries as uint16


def cluster_order(codes: np.ndarray, lengths: np.ndarray, n_centroids: int) -> tuple[np.ndarray, ...]:
    """``(ptr, entries, order)`` for tokens given in document order (``codes`` of ``lengths`` tokens
    per entry): ``order`` puts them in the stored order (by centroid, then by entry, then by position),
    ``residuals[order]`` are the rows to store."""
    codes = np.asarray(codes).astype(np.int64, copy=False)
    lengths = np.asarray(lengths, np.int64)
    if len(codes) != int(lengths.sum()):
        raise ValueError(f"{len(codes)} codes for {int(lengths.sum())} tokens")
    if len(codes) and (int(codes.min()) < 0 or int(codes.max()) >= n_centroids):
        raise ValueError(f"codes must lie in [0, {n_centroids})")
    order = np.argsort(codes, kind="stable")  # tokens arrive by entry, so each cluster keeps entry order
    ptr = np.zeros(n_centroids + 1, dtype=np.int64)
    np.cumsum(np.bincount(codes, minlength=n_centroids), out=ptr[1:])
    ptr = ptr.astype(np.int32) if len(codes) < 2**31 else ptr
    entry_of_token = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    return ptr, entry_of_token[order].astype(entry_dtype(len(lengths))), order


def entry_dtype(n_entries: int) -> type:
    return np.uint16 if n_entries <= UINT16_ENTRIES else np.int32


def rows_by_entry(entries: np.ndarray) -> np.ndarray:
    """``[tokens]`` int32 (int64 past 2^31 tokens): the stored rows of entry 0's tokens, then entry 1's,
    and so on (document order across entries; within one, by centroid). A stable sort of small integers
    (numpy's radix sort for 16-bit keys)."""
    kind = np.int32 if len(entries) < 2**31 else np.int64
    return np.argsort(np.asarray(entries), kind="stable").astype(kind)


def gather_into(
    ptr: np.ndarray,
    residuals: np.ndarray,
    rows: np.ndarray,
    positions: np.ndarray,
    slots: np.ndarray,
    codes: np.ndarray,
    out: np.ndarray,
) -> None:
    """``codes[slots[k]]`` and ``out[slots[k]]``: the code and residual row of the token at document-order
    ``positions[k]`` (``rows``: the segment's :func:`rows_by_entry`), read straight from the memory-mapped
    file in one compiled pass into the caller's arrays (a batch's tokens come from several segments)."""
    _gather(ptr, residuals, rows, np.asarray(positions, np.int64), np.asarray(slots, np.int64), codes, out)


@njit(cache=True, nogil=True, parallel=True)
def _gather(ptr, residuals, rows, positions, slots, codes, out):  # type: ignore[no-untyped-def]
    for k in prange(len(positions)):
        r = rows[positions[k]]
        lo, hi = 0, len(ptr) - 1  # ptr[lo] <= r < ptr[hi]: the last cluster starting at or before r
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if ptr[mid] <= r:
                lo = mid
            else:
                hi = mid
        codes[slots[k]] = lo
        out[slots[k], :] = residuals[r, :]
