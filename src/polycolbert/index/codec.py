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
    """A power of two near ``4 sqrt(tokens)`` (PLAID uses 16 sqrt), capped by the tokens available.

    Why a quarter of PLAID's count: on a 2-core CPU, k-means and assigning every token cost time linear
    in the centroid count (PLAID's rule makes a 5M-token build spend most of an hour there), and the
    centroid table is stored with the index, which for corpora under a million tokens costs more bytes
    per token than the residuals. The residual buckets absorb the coarser centroids (see
    docs/benchmarks.md for nDCG and overlap at both counts).
    """
    if n_tokens <= 0:
        raise ValueError("cannot cluster an empty set of token vectors")
    target = 2 ** int(np.floor(np.log2(4 * np.sqrt(n_tokens))))
    return int(max(1, min(target, n_tokens, 1 << 16)))


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
        # Stored as float16 (half the bytes); rounded here so residuals are measured from what decodes.
        centroids = kmeans(x, n_centroids or choose_n_centroids(len(x)), seed=seed)
        centroids = centroids.astype(np.float16).astype(np.float32)
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
        """Unit vectors ``[T, d]`` rebuilt from codes and packed residual buckets.

        Why a byte table: each packed byte holds ``8 / nbits`` dimensions, so one lookup per byte in a
        ``[bytes, 256, 8 / nbits]`` table of bucket values replaces unpacking and a per-dimension gather
        (about 4x fewer index operations at 2 bits; this is the hot loop of every search).
        """
        lut = self._byte_table()
        index = packed.astype(np.intp) + (np.arange(packed.shape[1], dtype=np.intp) * 256)[None, :]
        out = np.take(lut, index, axis=0).reshape(len(packed), self.dims)  # np.take: ~5x fancy indexing
        out += np.take(self.centroids, codes.astype(np.intp), axis=0)
        norms = np.sqrt(np.einsum("ij,ij->i", out, out))
        out /= np.maximum(norms, 1e-12)[:, None]
        return out

    def _byte_table(self) -> np.ndarray:
        table = getattr(self, "_lut", None)
        if table is None:
            per_byte = 8 // self.nbits
            values = np.arange(256, dtype=np.uint8)[:, None]
            shifts = (np.arange(per_byte) * self.nbits).astype(np.uint8)[None, :]
            buckets = (values >> shifts) & np.uint8((1 << self.nbits) - 1)  # [256, per_byte]
            n_bytes = self.dims // per_byte
            dims = np.arange(n_bytes)[:, None, None] * per_byte + np.arange(per_byte)[None, None, :]
            table = self.weights[dims, buckets[None, :, :]].reshape(n_bytes * 256, per_byte)
            self._lut = np.ascontiguousarray(table, dtype=np.float32)
        return table

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "centroids": self.centroids.astype(np.float16),
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
