"""Late-interaction (MaxSim) scoring, the one ``top_k``, and the token alignments that explain a score.

``score(Q, D) = sum_i max_j q_i . d_j`` over unit vectors, exactly Stanford ColBERT's ``colbert_score``
(no normalisation by query length), which is also what Jina's ``/v1/rerank`` returns. An empty
document scores 0.

Every MaxSim in the project is one of these kernels; they differ only in the layout they take, which
their names say:

=========================  ===================================================  ======================
kernel                     takes                                                used by
=========================  ===================================================  ======================
:func:`maxsim`             one query ``[n, d]``, one document ``[m, d]``        the definition; tests
:func:`maxsim_packed`      one query, a ragged list of documents (rows are      rerank, compat
                           concatenated, chunk by chunk)
:func:`maxsim_segments`    a similarity block whose columns are consecutive     the index, packed
                           documents' tokens (segments of given lengths)
:func:`maxsim_buckets`     many queries, many documents (padded in buckets of   evaluation
                           similar length)
:func:`maxsim_padded`      padded torch tensors ``[B, Lq, d]``, ``[N, Ld, d]``  training (has gradients)
=========================  ===================================================  ======================

>>> import numpy as np
>>> q = np.eye(2, dtype=np.float32); d = np.array([[1, 0], [0.6, 0.8]], dtype=np.float32)
>>> round(maxsim(q, d), 3)
1.8
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

# Document tokens scored by one GEMM in :func:`maxsim_packed` (bounds the similarity block's memory).
PACKED_CHUNK_TOKENS = 1 << 20
# Work unit sizes of :func:`maxsim_buckets`: one GEMM multiplies QUERY_GROUP queries (padded to the
# longest of them, after sorting by length) with one bucket of at most BUCKET_ROWS padded document rows,
# so the similarity block is still in cache when ``amax`` reads it (sizes measured in docs/benchmarks.md).
QUERY_GROUP = 16
BUCKET_ROWS = 4096


def without_padding_rows(query: np.ndarray) -> np.ndarray:
    """A query's rows minus all-zero ones: zero padding (``query_padding="zero"``) scores 0 against any
    token, so search can skip it, and a store that normalises vectors (Qdrant cosine) never sees a
    zero vector. A query with no nonzero row is returned unchanged (it scores 0 everywhere either way).

    >>> without_padding_rows(np.array([[0.6, 0.8], [0, 0]], np.float32)).shape
    (1, 2)
    """
    keep = np.asarray(query).any(axis=1)
    return query[keep] if keep.any() else query


def maxsim(query: np.ndarray, document: np.ndarray) -> float:
    """MaxSim of one query against one document (both ``[n, d]``): the definition the kernels agree with."""
    if len(document) == 0:
        return 0.0
    sims = np.asarray(query, np.float32) @ np.asarray(document, np.float32).T
    return float(sims.max(axis=1).sum())


def token_chunks(lengths: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Split consecutive documents into runs of at most ``limit`` tokens (one document may exceed it alone).

    >>> token_chunks(np.array([3, 0, 2, 5, 1]), 5)
    [(0, 3), (3, 4), (4, 5)]
    """
    bounds, start, acc = [], 0, 0
    for i, n in enumerate(np.asarray(lengths).tolist()):
        if acc and acc + n > limit:
            bounds.append((start, i))
            start, acc = i, 0
        acc += n
    if start < len(lengths):
        bounds.append((start, len(lengths)))
    return bounds


def maxsim_segments(
    sims: np.ndarray,
    lengths: np.ndarray | Sequence[int],
    query_rows: Sequence[int] | None = None,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """``[n_queries, n_docs]`` MaxSim from a ``[sum(query_rows), sum(lengths)]`` similarity block.

    The block's columns are the documents' tokens one document after another (``lengths`` each), its
    rows the queries' rows one query after another (``query_rows`` each; None: one query, every row).
    ``weights`` (one per row) count rows that stand for several identical query rows.

    >>> sims = np.array([[0.5, 0.9, 0.1], [0.2, 0.3, 0.7]], np.float32)
    >>> maxsim_segments(sims, [2, 0, 1]).astype(float).round(3).tolist()
    [[1.2, 0.0, 0.8]]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n_queries = 1 if query_rows is None else len(query_rows)
    nonempty = lengths > 0
    if not nonempty.all():  # ``reduceat`` has no empty segments: score those 0 and reduce the rest
        out = np.zeros((n_queries, len(lengths)), dtype=np.result_type(sims, np.float32))
        if nonempty.any():
            out[:, nonempty] = maxsim_segments(sims, lengths[nonempty], query_rows, weights)
        return out
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    best = np.maximum.reduceat(sims, starts, axis=1)  # [rows, docs]
    if weights is not None:
        best *= weights[:, None]
    if query_rows is None:
        return best.sum(axis=0, keepdims=True)
    bounds = np.concatenate([[0], np.cumsum(query_rows)]).astype(np.int64)
    return np.add.reduceat(best, bounds[:-1], axis=0)


def maxsim_packed(
    query: np.ndarray, documents: Sequence[np.ndarray], chunk_tokens: int = PACKED_CHUNK_TOKENS
) -> np.ndarray:
    """MaxSim of one query against each of a ragged list of documents (``[len(documents)]`` float32).

    The documents' rows are concatenated a chunk at a time, so one GEMM scores a whole chunk whatever
    the lengths (no padding), and :func:`maxsim_segments` reduces it.
    """
    scores = np.zeros(len(documents), dtype=np.float32)
    q = np.asarray(query, np.float32)
    lengths = np.array([len(d) for d in documents], dtype=np.int64)
    for start, stop in token_chunks(lengths, chunk_tokens):
        chunk = [np.asarray(d, np.float32) for d in documents[start:stop] if len(d)]
        if chunk:
            sims = q @ np.concatenate(chunk, axis=0).T  # [nq, tokens]
            scores[start:stop] = maxsim_segments(sims, lengths[start:stop])[0]
    return scores


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


def maxsim_buckets(
    queries: Sequence[np.ndarray],
    documents: Sequence[np.ndarray],
    bucket_rows: int = BUCKET_ROWS,
    on_bucket: Callable[[int], None] | None = None,
) -> np.ndarray:
    """``[len(queries), len(documents)]`` MaxSim of every query against every document.

    Documents and queries are sorted by length and cut into buckets and groups, each padded only to its
    own longest member, so padding costs little. One bucket and one group of queries meet in a single
    GEMM ``[queries x query rows, d] @ [docs x doc rows, d]^T``; a ``max`` over the last axis of its
    ``[B, Lq, n, L]`` view and a ``sum`` over query rows give the scores. Padding needs no mask: a
    document is padded with copies of its own first row (a duplicate never changes a max), a query with
    zero rows (each contributes exactly 0).

    ``on_bucket(n_docs)`` is called after each bucket of documents, for progress bars.

    >>> q = [np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)]
    >>> d = [np.array([[1.0, 0.0]], np.float32), np.array([[0.6, 0.8], [-1.0, 0.0]], np.float32)]
    >>> maxsim_buckets(q, d).astype(float).round(3).tolist()
    [[1.0, 1.4]]
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


def maxsim_padded(
    queries: torch.Tensor, documents: torch.Tensor, doc_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``[B, Lq, d]`` x ``[N, Ld, d]`` -> ``[B, N]`` MaxSim scores, differentiable (the training kernel).

    ``doc_mask`` marks real rows; pass None when padding rows repeat a real row of their document
    (as :func:`polycolbert.train.trainer.pad_rows` does), which leaves every max unchanged and saves a
    masking pass over the largest tensor of the step. Padded query rows must be zero.
    """
    sims = torch.einsum("bqd,nkd->bnqk", queries, documents)
    if doc_mask is not None:
        sims = sims.masked_fill(~doc_mask.bool()[None, :, None, :], float("-inf"))
    return sims.max(dim=-1).values.sum(dim=-1)


def top_k(scores: np.ndarray | Sequence[float], k: int | None = None) -> np.ndarray:
    """Positions of the ``k`` highest scores (all of them when ``k`` is None), best first.

    The one tie rule of the project: equal scores keep the order the caller passed them in (the lower
    position first, a stable sort). A caller that wants another tie order (say, by document id) passes
    the candidates in that order. Scores must not be NaN.

    >>> top_k(np.array([0.1, 0.9, 0.5, 0.9]), 3).tolist()
    [1, 3, 2]
    >>> top_k([2.0, 2.0, 2.0], 2).tolist()
    [0, 1]
    """
    scores = np.asarray(scores)
    n = len(scores)
    k = n if k is None else max(0, min(k, n))
    if k == 0:
        return np.zeros(0, dtype=np.intp)
    if k < n:  # only scores reaching the k-th best can be kept: sort just those
        threshold = np.partition(scores, n - k)[n - k]
        candidates = np.flatnonzero(scores >= threshold)
    else:
        candidates = np.arange(n)
    return candidates[np.argsort(-scores[candidates], kind="stable")][:k]


def explain_matches(query: np.ndarray, document: np.ndarray) -> list[tuple[int, int, float]]:
    """For each query row, the document row it matched and the similarity it contributed.

    An empty document matches nothing: row ``-1`` and 0.

    >>> explain_matches(np.eye(2, dtype=np.float32), np.array([[0.6, 0.8], [1, 0]], np.float32))
    [(0, 1, 1.0), (1, 0, 0.800000011920929)]
    """
    if len(document) == 0:
        return [(i, -1, 0.0) for i in range(len(query))]
    sims = np.asarray(query, np.float32) @ np.asarray(document, np.float32).T
    best = sims.argmax(axis=1)
    return [(i, int(j), float(sims[i, j])) for i, j in enumerate(best)]
