"""Exhaustive MaxSim of every query against every document, fast enough for a whole corpus on a CPU.

Documents and queries are sorted by length and cut into buckets and groups, each padded only to its own
longest member, so padding costs little. One bucket and one group of queries meet in a single GEMM
``[queries x query rows, d] @ [docs x doc rows, d]^T``; a ``max`` over the last axis of its
``[B, Lq, n, L]`` view and a ``sum`` over query rows give the scores.

Padding needs no mask: a document is padded with copies of its own first row (a duplicate never changes
a max), and a query with zero rows (each contributes exactly 0). So there is no masking pass over the
large similarity tensor and the GEMM keeps its natural width ``d``. ``benchmarks/eval_maxsim.py``
compares this with one packed ``scatter_reduce`` call per query.

>>> import numpy as np
>>> q = [np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)]
>>> d = [np.array([[1.0, 0.0]], np.float32), np.array([[0.6, 0.8], [-1.0, 0.0]], np.float32)]
>>> [[round(float(x), 3) for x in row] for row in maxsim_matrix(q, d)]
[[1.0, 1.4]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

# Work unit sizes: one GEMM multiplies QUERY_GROUP queries (padded to the longest of them, after sorting by
# length) with one bucket of at most BUCKET_ROWS padded document rows. The resulting similarity block
# (16 x 32 x 4096 floats = 8 MiB for ColBERT queries) is still in cache when ``amax`` reads it, which
# measured ~1.8x faster than 64M-float blocks (benchmarks/eval_maxsim.py).
QUERY_GROUP = 16
BUCKET_ROWS = 4096


def _pad_queries(vectors: Sequence[np.ndarray], dim: int) -> torch.Tensor:
    rows = max(max(len(v) for v in vectors), 1)
    out = torch.zeros((len(vectors), rows, dim), dtype=torch.float32)
    for i, v in enumerate(vectors):
        if len(v):
            out[i, : len(v)] = torch.from_numpy(np.asarray(v, dtype=np.float32))
    return out


def _pad_documents(vectors: Sequence[np.ndarray], rows: int, dim: int) -> torch.Tensor:
    out = torch.zeros((len(vectors), rows, dim), dtype=torch.float32)
    for i, v in enumerate(vectors):
        if len(v):
            t = torch.from_numpy(np.asarray(v, dtype=np.float32))
            out[i, : len(v)] = t
            out[i, len(v) :] = t[0]  # duplicates of a real row: never change the max
    return out


def _buckets(lengths: Sequence[int], max_rows: int) -> list[list[int]]:
    """Document indices sorted by length, cut so that ``docs x longest`` stays within ``max_rows``."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    buckets: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and (len(current) + 1) * max(lengths[i], 1) > max_rows:
            buckets.append(current)
            current = []
        current.append(i)
    if current:
        buckets.append(current)
    return buckets


def maxsim_matrix(
    queries: Sequence[np.ndarray],
    documents: Sequence[np.ndarray],
    bucket_rows: int = BUCKET_ROWS,
    on_bucket: Callable[[int], None] | None = None,
) -> np.ndarray:
    """``[len(queries), len(documents)]`` MaxSim scores; an empty document scores 0.

    ``on_bucket(n_docs)`` is called after each bucket of documents, for progress bars.
    """
    if not queries or not documents:
        return np.zeros((len(queries), len(documents)), dtype=np.float32)
    dim = int(np.asarray(queries[0]).shape[1])
    for v in (*queries, *documents):
        if v.ndim != 2 or (len(v) and v.shape[1] != dim):
            raise ValueError(f"every vector set must be [n, {dim}], got {tuple(v.shape)}")
    q_order = sorted(range(len(queries)), key=lambda i: len(queries[i]))
    groups = []
    for start in range(0, len(q_order), QUERY_GROUP):
        ids = q_order[start : start + QUERY_GROUP]
        padded = _pad_queries([queries[i] for i in ids], dim)
        groups.append((torch.tensor(ids), padded.shape[1], padded.reshape(-1, dim)))
    scores = torch.zeros((len(queries), len(documents)), dtype=torch.float32)
    with torch.inference_mode():
        for ids in _buckets([len(d) for d in documents], bucket_rows):
            d_rows = max(max(len(documents[i]) for i in ids), 1)
            flat_t = _pad_documents([documents[i] for i in ids], d_rows, dim).reshape(-1, dim).T
            index = torch.tensor(ids)
            for q_index, q_rows, q_flat in groups:
                sims = q_flat @ flat_t  # [G*Lq, n*L]
                best = sims.view(len(q_index), q_rows, len(ids), d_rows).amax(dim=3).sum(dim=1)
                scores[q_index.unsqueeze(1), index.unsqueeze(0)] = best
            if on_bucket is not None:
                on_bucket(len(ids))
    return scores.numpy()


def top_k(scores: np.ndarray, ids: Sequence[str], k: int) -> list[dict[str, float]]:
    """For each row, the ``k`` best ``{doc_id: score}`` (ties broken by corpus order, deterministic)."""
    k = min(k, scores.shape[1])
    out = []
    for row in scores:
        best = np.argsort(-row, kind="stable")[:k]
        out.append({ids[j]: float(row[j]) for j in best})
    return out
