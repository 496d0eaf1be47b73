"""MUVERA fixed-dimensional encodings: one single vector per multi-vector, for cheap candidate prefetch.

MUVERA (Dhulipala et al., 2024) hashes every token vector into one of ``2**k_sim`` buckets by the signs of
``k_sim`` random hyperplanes (SimHash), then keeps one block per bucket: the *sum* of the query tokens that
fell into it, and the *mean* of the document tokens that did (an empty document bucket borrows the
document token nearest to it in Hamming distance). Each block is squeezed to ``dim_proj`` dims by a random
±1 projection, and ``r_reps`` independent repetitions are concatenated. ``fde(query) . fde(doc)``
then approximates ``MaxSim(query, doc)`` with one dot product, so an ordinary single-vector index can
find candidates that exact MaxSim rescoring puts in order.

Why written here: fastembed's ``Muvera`` post-processor would pull ONNX Runtime and model downloads into
every install; this is 40 lines of numpy, seeded so that the same parameters give the same encoding in
every process (queries must be encoded exactly like the stored documents).

>>> import numpy as np
>>> enc = Muvera(dim=4, k_sim=2, dim_proj=4, r_reps=2, seed=0)
>>> enc.size
32
>>> rng = np.random.default_rng(1)
>>> q, d = rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
>>> enc.encode_document(d).shape, enc.encode_query(q).shape
((32,), (32,))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Muvera:
    dim: int
    k_sim: int = 4
    dim_proj: int = 16
    r_reps: int = 10
    seed: int = 42
    _planes: np.ndarray = field(init=False, repr=False)
    _projections: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self._planes = rng.standard_normal((self.r_reps, self.dim, self.k_sim)).astype(np.float32)
        signs = rng.choice(np.array([-1.0, 1.0], np.float32), size=(self.r_reps, self.dim, self.dim_proj))
        self._projections = signs / np.sqrt(self.dim_proj)
        self._codes = np.arange(2**self.k_sim)

    @property
    def size(self) -> int:
        return self.r_reps * (2**self.k_sim) * self.dim_proj

    def settings(self) -> dict[str, Any]:
        return {"k_sim": self.k_sim, "dim_proj": self.dim_proj, "r_reps": self.r_reps, "seed": self.seed}

    def _buckets(self, vectors: np.ndarray, rep: int) -> np.ndarray:
        bits = (vectors @ self._planes[rep]) > 0
        return (bits * (1 << np.arange(self.k_sim))).sum(axis=1)

    def _encode(self, vectors: np.ndarray, document: bool) -> np.ndarray:
        vectors = np.asarray(vectors, np.float32)
        n_buckets = 2**self.k_sim
        out = np.zeros((self.r_reps, n_buckets, self.dim_proj), np.float32)
        if len(vectors) == 0:
            return out.reshape(-1)
        for rep in range(self.r_reps):
            buckets = self._buckets(vectors, rep)
            blocks = np.zeros((n_buckets, self.dim), np.float32)
            np.add.at(blocks, buckets, vectors)
            if document:
                counts = np.bincount(buckets, minlength=n_buckets)
                filled = counts > 0
                blocks[filled] /= counts[filled, None]
                for empty in np.flatnonzero(~filled):
                    # Hamming distance from the empty bucket's code to each token's code.
                    distance = np.array([bin(int(b) ^ int(empty)).count("1") for b in buckets])
                    blocks[empty] = vectors[int(np.argmin(distance))]
            out[rep] = blocks @ self._projections[rep]
        return out.reshape(-1)

    def encode_query(self, vectors: np.ndarray) -> np.ndarray:
        return self._encode(vectors, document=False)

    def encode_document(self, vectors: np.ndarray) -> np.ndarray:
        return self._encode(vectors, document=True)
