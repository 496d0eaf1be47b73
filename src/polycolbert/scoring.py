"""Late-interaction (MaxSim) scoring and the token alignments that explain a score.

``score(Q, D) = sum_i max_j q_i . d_j`` over unit vectors, exactly Stanford ColBERT's ``colbert_score``
(no normalisation by query length), which is also what Jina's ``/v1/rerank`` returns.

>>> import numpy as np
>>> q = np.eye(2, dtype=np.float32); d = np.array([[1, 0], [0.6, 0.8]], dtype=np.float32)
>>> round(maxsim(q, d), 3)
1.8
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


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
    """MaxSim of one query against one document (both ``[n, d]``)."""
    if len(document) == 0:
        return 0.0
    sims = np.asarray(query, np.float32) @ np.asarray(document, np.float32).T
    return float(sims.max(axis=1).sum())


def maxsim_many(
    query: np.ndarray, documents: Sequence[np.ndarray], chunk_tokens: int = 1 << 20
) -> np.ndarray:
    """MaxSim of one query against many documents, packed into one matmul per chunk.

    Packing (concatenating document rows) avoids padding waste when lengths vary a lot, and a
    segment-max over the packed similarity matrix keeps it to one BLAS call per chunk.
    """
    scores = np.zeros(len(documents), dtype=np.float32)
    q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32))
    start = 0
    while start < len(documents):
        stop, tokens = start, 0
        while stop < len(documents) and (tokens == 0 or tokens + len(documents[stop]) <= chunk_tokens):
            tokens += len(documents[stop])
            stop += 1
        chunk = [np.asarray(d, np.float32) for d in documents[start:stop]]
        lengths = torch.tensor([len(d) for d in chunk])
        nonempty = lengths > 0
        if bool(nonempty.any()):
            packed = torch.from_numpy(np.concatenate([d for d in chunk if len(d)], axis=0))
            sims = q @ packed.T  # [nq, tokens]
            segment = torch.repeat_interleave(torch.arange(len(chunk))[nonempty], lengths[nonempty])
            best = torch.full((q.shape[0], len(chunk)), float("-inf"))
            best.scatter_reduce_(1, segment.expand(q.shape[0], -1), sims, reduce="amax")
            best[:, ~nonempty] = 0.0
            scores[start:stop] = best.sum(dim=0).numpy()
        start = stop
    return scores


def explain_matches(query: np.ndarray, document: np.ndarray) -> list[tuple[int, int, float]]:
    """For each query vector, the document row it matched and the similarity it contributed."""
    if len(document) == 0:
        return [(i, -1, 0.0) for i in range(len(query))]
    sims = np.asarray(query, np.float32) @ np.asarray(document, np.float32).T
    best = sims.argmax(axis=1)
    return [(i, int(j), float(sims[i, j])) for i, j in enumerate(best)]
