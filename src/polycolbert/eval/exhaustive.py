"""Exhaustive MaxSim of every query against every document, fast enough for a whole corpus on a CPU.

Documents are sorted by length and cut into buckets, each padded only to its own longest document, so
padding costs little. One bucket and one block of queries meet in a single GEMM
``[queries x query rows, d] @ [docs x doc rows, d]^T``; a ``max`` over the last axis of its
``[B, Lq, n, L]`` view and a ``sum`` over query rows give the scores.

Padding needs no mask: a document is padded with copies of its own first row (a duplicate never changes
a max), and a query with zero rows (each contributes exactly 0). So there is no masking pass over the
large similarity tensor and the GEMM keeps its natural width ``d``. ``benchmarks/eval_maxsim.py``
compares this with one packed ``scatter_reduce`` call per query.

>>> import numpy as np
>>> q = [np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)]
>>> d = [np.array([[1.0, 0.0]], np.float32), np.array([[0.6, 0.8], [-1.0, 0.0]], np.float32)]
>>> maxsim_matrix(q, d).round(3).tolist()
[[1.0, 1.4]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

# One similarity block, in float32 elements (8 MiB): small enough to stay in cache between the GEMM and the
# max, which measured ~1.8x faster than 64M-element blocks (benchmarks/eval_maxsim.py).
BLOCK_ELEMENTS = 2 * 1024 * 1024


def _pad_queries(vectors: Sequence[np.ndarray], rows: int, dim: int) -> torch.Tensor:
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


def maxsim_matrix(
    queries: Sequence[np.ndarray],
    documents: Sequence[np.ndarray],
    bucket_docs: int = 32,
    on_bucket: Callable[[int], None] | None = None,
) -> np.ndarray:
    """``[len(queries), len(documents)]`` MaxSim scores; an empty document scores 0.

    ``on_bucket(n_docs)`` is called after each bucket, for progress bars.
    """
    if not queries or not documents:
        return np.zeros((len(queries), len(documents)), dtype=np.float32)
    dim = int(np.asarray(queries[0]).shape[1])
    for v in (*queries, *documents):
        if v.ndim != 2 or (len(v) and v.shape[1] != dim):
            raise ValueError(f"every vector set must be [n, {dim}], got {tuple(v.shape)}")
    q_rows = max(max(len(q) for q in queries), 1)
    q_flat = _pad_queries(queries, q_rows, dim).reshape(-1, dim)  # [nq*Lq, d]
    n_q = len(queries)
    scores = torch.zeros((n_q, len(documents)), dtype=torch.float32)
    order = sorted(range(len(documents)), key=lambda i: len(documents[i]))
    with torch.inference_mode():
        for start in range(0, len(order), bucket_docs):
            ids = order[start : start + bucket_docs]
            d_rows = max(max(len(documents[i]) for i in ids), 1)
            flat = _pad_documents([documents[i] for i in ids], d_rows, dim).reshape(-1, dim)  # [n*L, d]
            block = max(1, BLOCK_ELEMENTS // (q_rows * flat.shape[0]))
            index = torch.tensor(ids)
            for q0 in range(0, n_q, block):
                q_block = q_flat[q0 * q_rows : (q0 + block) * q_rows]
                n_block = q_block.shape[0] // q_rows
                sims = q_block @ flat.T  # [B*Lq, n*L]
                best = sims.view(n_block, q_rows, len(ids), d_rows).amax(dim=3).sum(dim=1)
                scores[q0 : q0 + n_block, index] = best
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
