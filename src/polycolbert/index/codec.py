"""Token-vector compression: a centroid code plus a 1/2/4-bit residual per dimension.

Why per-dimension buckets: Matryoshka-truncated vectors have very different spread per dimension, so
cutoffs computed per dimension (quantiles of the residuals seen at clustering time) waste no levels on
dimensions that hardly vary. Codes are uint16 whenever there are at most 65,536 centroids (int32 above),
so a 128-dim token at 2 bits costs 32 + 2 bytes, against PLAID's 32 + 8 (int64 codes) + padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NBITS = (1, 2, 4)


def choose_n_centroids(n_tokens: int) -> int:
    """PLAID's rule of thumb (a power of two near 16 sqrt(tokens)), capped by the tokens available."""
    if n_tokens <= 0:
        raise ValueError("cannot cluster an empty set of token vectors")
    target = 2 ** int(np.floor(np.log2(16 * np.sqrt(n_tokens))))
    return int(max(1, min(target, n_tokens, 1 << 18)))


def kmeans(
    vectors: np.ndarray, n_centroids: int, iterations: int = 8, seed: int = 0, sample: int = 262_144
) -> np.ndarray:
    """Spherical k-means (unit vectors, cosine assignment) over a bounded sample; returns unit centroids."""
    rng = np.random.default_rng(seed)
    x = np.asarray(vectors, dtype=np.float32)
    if len(x) > sample:
        x = x[rng.choice(len(x), sample, replace=False)]
    n_centroids = min(n_centroids, len(x))
    centroids = x[rng.choice(len(x), n_centroids, replace=False)].copy()
    for _ in range(iterations):
        assign = assign_nearest(x, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, x)
        counts = np.bincount(assign, minlength=n_centroids)
        empty = counts == 0
        if empty.any():  # re-seed empty clusters on random points so no centroid is wasted
            sums[empty] = x[rng.choice(len(x), int(empty.sum()), replace=False)]
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centroids = (sums / np.maximum(norms, 1e-12)).astype(np.float32)
    return centroids


def assign_nearest(x: np.ndarray, centroids: np.ndarray, chunk: int = 32_768) -> np.ndarray:
    """Index of the most similar centroid for every row, in chunks to bound the score matrix."""
    out = np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), chunk):
        out[start : start + chunk] = (x[start : start + chunk] @ centroids.T).argmax(axis=1)
    return out


@dataclass
class Codec:
    """Centroids, per-dimension bucket cutoffs and bucket values; everything needed to (de)compress."""

    centroids: np.ndarray  # [C, d] float32, unit rows
    cutoffs: np.ndarray  # [d, 2**nbits - 1] float32
    weights: np.ndarray  # [d, 2**nbits] float32: the value each bucket decodes to
    nbits: int
    residual_mse: float  # mean squared residual norm at training time (drift baseline)

    @property
    def dims(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def code_dtype(self) -> type:
        return np.uint16 if len(self.centroids) <= 65_536 else np.int32

    @property
    def bytes_per_token(self) -> int:
        return self.dims * self.nbits // 8 + np.dtype(self.code_dtype).itemsize

    @classmethod
    def train(cls, vectors: np.ndarray, nbits: int, n_centroids: int | None = None, seed: int = 0) -> Codec:
        if nbits not in NBITS:
            raise ValueError(f"nbits must be one of {NBITS}; got {nbits!r}")
        x = np.asarray(vectors, dtype=np.float32)
        if x.shape[1] * nbits % 8:
            raise ValueError(f"dimensions x nbits must be a multiple of 8; got {x.shape[1]} x {nbits}")
        centroids = kmeans(x, n_centroids or choose_n_centroids(len(x)), seed=seed)
        rng = np.random.default_rng(seed + 1)
        sample = x if len(x) <= 65_536 else x[rng.choice(len(x), 65_536, replace=False)]
        residual = sample - centroids[assign_nearest(sample, centroids)]
        levels = 2**nbits
        qs = np.arange(1, levels) / levels
        cutoffs = np.quantile(residual, qs, axis=0).T.astype(np.float32)  # [d, levels-1]
        buckets = _bucketize(residual, cutoffs)
        weights = np.zeros((x.shape[1], levels), dtype=np.float32)
        for b in range(levels):  # bucket value = mean residual that fell into it (per dimension)
            mask = buckets == b
            counts = mask.sum(axis=0)
            sums = np.where(mask, residual, 0).sum(axis=0)
            mid = np.quantile(residual, (b + 0.5) / levels, axis=0)
            weights[:, b] = np.where(counts > 0, sums / np.maximum(counts, 1), mid)
        mse = float((residual**2).sum(axis=1).mean())
        return cls(centroids, cutoffs, weights, nbits, mse)

    def encode(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Codes ``[T]``, packed residuals ``[T, d*nbits/8]`` uint8, and the mean squared residual."""
        x = np.asarray(vectors, dtype=np.float32)
        codes = assign_nearest(x, self.centroids)
        residual = x - self.centroids[codes]
        buckets = _bucketize(residual, self.cutoffs)
        mse = float((residual**2).sum(axis=1).mean()) if len(x) else 0.0
        return codes.astype(self.code_dtype), _pack(buckets, self.nbits), mse

    def decode(self, codes: np.ndarray, packed: np.ndarray) -> np.ndarray:
        """Unit vectors ``[T, d]`` rebuilt from codes and packed residual buckets."""
        buckets = _unpack(packed, self.nbits, self.dims)
        out = self.centroids[codes.astype(np.int64)]
        out += self.weights[np.arange(self.dims), buckets]
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "centroids": self.centroids,
            "cutoffs": self.cutoffs,
            "weights": self.weights,
            "nbits": np.array(self.nbits),
            "residual_mse": np.array(self.residual_mse),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Codec:
        return cls(
            np.ascontiguousarray(arrays["centroids"], np.float32),
            np.asarray(arrays["cutoffs"], np.float32),
            np.asarray(arrays["weights"], np.float32),
            int(arrays["nbits"]),
            float(arrays["residual_mse"]),
        )


def _bucketize(residual: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
    """Bucket index per value: how many of its dimension's cutoffs it exceeds (uint8)."""
    out = np.zeros(residual.shape, dtype=np.uint8)
    for j in range(cutoffs.shape[1]):
        out += residual > cutoffs[:, j]
    return out


def _pack(buckets: np.ndarray, nbits: int) -> np.ndarray:
    per_byte = 8 // nbits
    t, d = buckets.shape
    grouped = buckets.reshape(t, d // per_byte, per_byte).astype(np.uint8)
    shifts = (np.arange(per_byte) * nbits).astype(np.uint8)
    return np.bitwise_or.reduce(grouped << shifts, axis=2).astype(np.uint8)


def _unpack(packed: np.ndarray, nbits: int, dims: int) -> np.ndarray:
    per_byte = 8 // nbits
    shifts = (np.arange(per_byte) * nbits).astype(np.uint8)
    mask = np.uint8((1 << nbits) - 1)
    return ((packed[:, :, None] >> shifts) & mask).reshape(len(packed), dims)
