"""Token-vector compression: a centroid code plus a product-quantised residual (1, 2 or 4 bits a dimension).

Why product quantisation instead of PLAID's per-dimension buckets: one byte codes a whole group of
``8 / nbits`` dimensions with one of 256 learned codewords (faiss' k-means), so correlated dimensions
share their bits; a PCA rotation first balances variance across the groups. At the same bytes as
per-dimension buckets it agrees better with exact MaxSim (docs/benchmarks.md measures both), and
decoding is the same one-lookup-per-byte table.

Search works in the rotated frame: queries are rotated once (``to_search_frame``) instead of every
decoded token being rotated back, which would cost a 128x128 product per token.
Codes are uint16 whenever there are at most 65,536 centroids (int32 above): a 128-dim token at 2 bits
costs 32 + 2 bytes, against PLAID's 32 + 4 (int32 codes) + 4 (int32 inverted-list entries).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit, prange

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


def assign_nearest(x: np.ndarray, centroids: np.ndarray, block_floats: int = 1 << 25) -> np.ndarray:
    """Index of the most similar centroid for every row, in chunks so the score matrix stays under
    ``block_floats`` floats (128 MiB) whatever the centroid count."""
    chunk = max(1, block_floats // max(len(centroids), 1))
    out = np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), chunk):
        out[start : start + chunk] = (x[start : start + chunk] @ centroids.T).argmax(axis=1)
    return out


@dataclass
class Codec:
    """Centroids, rotation and residual codebooks: everything needed to (de)compress token vectors."""

    centroids: np.ndarray  # [C, d] float32, unit rows, original frame
    rotation: np.ndarray  # [d, d] float32 orthogonal: x_rotated = x @ rotation
    codebooks: np.ndarray  # [d * nbits / 8, 256, 8 / nbits] float32: residual codewords per byte
    nbits: int
    residual_mse: float  # mean squared residual norm at training time (drift baseline)
    _quantiser: Any = field(default=None, init=False, repr=False, compare=False)
    _search_centroids: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)
    _rotation_t: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)
    _search_codebooks: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

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
    def train(
        cls,
        vectors: np.ndarray,
        nbits: int,
        n_centroids: int | None = None,
        seed: int = 0,
        sample: int = 65_536,
    ) -> Codec:
        """k-means centroids, then a balanced PCA rotation and product-quantiser codebooks, both fitted
        on a sample of the residuals."""
        import faiss

        if nbits not in NBITS:
            raise ValueError(f"nbits must be one of {NBITS}; got {nbits!r}")
        x = np.asarray(vectors, dtype=np.float32)
        dims = x.shape[1]
        if dims * nbits % 8:
            raise ValueError(f"dimensions x nbits must be a multiple of 8; got {dims} x {nbits}")
        # Stored as float16 (half the bytes); rounded here so residuals are measured from what decodes.
        centroids = kmeans(x, n_centroids or choose_n_centroids(len(x)), seed=seed)
        centroids = centroids.astype(np.float16).astype(np.float32)
        rng = np.random.default_rng(seed + 1)
        part = x if len(x) <= sample else x[rng.choice(len(x), sample, replace=False)]
        residual = np.ascontiguousarray(part - centroids[assign_nearest(part, centroids)])
        groups = dims * nbits // 8
        rotation = balanced_rotation(residual, groups)
        quantiser = faiss.ProductQuantizer(dims, groups, 8)
        quantiser.cp.seed = seed
        quantiser.cp.niter = 12
        quantiser.cp.min_points_per_centroid = 1  # small first codecs are fine; silences faiss' warning
        rotated = np.ascontiguousarray(residual @ rotation)
        if len(rotated) < 256:  # k-means needs at least one point per codeword; repeats change nothing
            rotated = np.resize(rotated, (256, dims))
        quantiser.train(rotated)
        codebooks = faiss.vector_to_array(quantiser.centroids).reshape(groups, 256, 8 // nbits)
        mse = float((residual**2).sum(axis=1).mean())
        codec = cls(centroids, rotation, codebooks.astype(np.float32), nbits, mse)
        codec._quantiser = quantiser
        return codec

    def encode(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Codes ``[T]``, residual codeword bytes ``[T, d*nbits/8]`` uint8, and the mean squared residual."""
        x = np.asarray(vectors, dtype=np.float32)
        codes = assign_nearest(x, self.centroids)
        residual = x - self.centroids[codes]
        mse = float((residual**2).sum(axis=1).mean()) if len(x) else 0.0
        packed = self._pq().compute_codes(np.ascontiguousarray(residual @ self.rotation))
        return codes.astype(self.code_dtype), packed.reshape(len(x), -1), mse

    def decode(self, codes: np.ndarray, packed: np.ndarray) -> np.ndarray:
        """Unit vectors ``[T, d]`` in the original frame (for re-encoding and for reading vectors back)."""
        return self.decode_for_search(codes, packed) @ self.rotation.T

    def decode_for_search(self, codes: np.ndarray, packed: np.ndarray) -> np.ndarray:
        """Unit vectors ``[T, d]`` in the rotated frame: score them with ``to_search_frame(query)``.

        Why compiled: this is the hot loop of every exact re-rank; one pass per token (centroid plus one
        ``8 / nbits``-value codeword per byte, then the norm) instead of numpy's separate passes.
        """
        out = np.empty((len(packed), self.dims), dtype=np.float32)
        books = np.ascontiguousarray(self.codebooks, dtype=np.float32)
        _decode(np.asarray(codes), np.ascontiguousarray(packed), self.search_centroids, books, out)
        return out

    @property
    def search_centroids(self) -> np.ndarray:
        """The centroids in the rotated frame (dot products with rotated queries are unchanged)."""
        if self._search_centroids is None:
            self._search_centroids = np.ascontiguousarray(self.centroids @ self.rotation)
        return self._search_centroids

    @property
    def search_codebooks(self) -> np.ndarray:
        """The codewords as ``[byte, dim, word]`` float32: the layout the scan's lookup tables are built
        from (the inner loop runs over contiguous words)."""
        if self._search_codebooks is None:
            books = np.transpose(self.codebooks, (0, 2, 1))
            self._search_codebooks = np.ascontiguousarray(books, dtype=np.float32)
        return self._search_codebooks

    def to_search_frame(self, queries: np.ndarray) -> np.ndarray:
        """Queries rotated like the residuals (compiled, like every product of a search: multi-threaded
        BLAS calls between the compiled kernels leave BLAS threads spinning on the cores those need)."""
        if self._rotation_t is None:
            self._rotation_t = np.ascontiguousarray(self.rotation.T, dtype=np.float32)
        return dot_rows(np.asarray(queries, np.float32), self._rotation_t)

    def _pq(self) -> Any:
        if self._quantiser is None:
            import faiss

            quantiser = faiss.ProductQuantizer(self.dims, self.codebooks.shape[0], 8)
            codewords = np.ascontiguousarray(self.codebooks, np.float32).ravel()
            faiss.copy_array_to_vector(codewords, quantiser.centroids)
            self._quantiser = quantiser
        return self._quantiser

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "centroids": self.centroids.astype(np.float16),
            "rotation": self.rotation,
            "codebooks": self.codebooks,
            "nbits": np.array(self.nbits),
            "residual_mse": np.array(self.residual_mse),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Codec:
        centroids = np.ascontiguousarray(arrays["centroids"], np.float32)
        nbits = int(arrays["nbits"])
        if "codebooks" in arrays:
            rotation = np.asarray(arrays["rotation"], np.float32)
            codebooks = np.asarray(arrays["codebooks"], np.float32)
        else:  # indexes written before product quantisation: per-dimension buckets are a product code too
            rotation = np.eye(centroids.shape[1], dtype=np.float32)
            codebooks = _scalar_codebooks(np.asarray(arrays["weights"], np.float32), nbits)
        return cls(centroids, rotation, codebooks, nbits, float(arrays["residual_mse"]))

    @classmethod
    def load(cls, folder: Path, name: str) -> Codec:
        """The codec saved under ``name`` by ``write_arrays`` (either generation of the format)."""
        keys = ("centroids", "rotation", "codebooks", "weights", "nbits", "residual_mse")
        files = {key: folder / f"{name}.{key}.npy" for key in keys}
        return cls.from_arrays({key: np.load(path) for key, path in files.items() if path.exists()})


def balanced_rotation(residual: np.ndarray, groups: int) -> np.ndarray:
    """PCA rotation whose principal directions are dealt out so each byte group gets a similar share of the
    variance (faiss ``PCAMatrix`` with ``balanced_bins``: eigenvalue allocation, the closed-form OPQ).

    Why: the groups are quantised independently with 256 codewords each, so a group holding only the
    high-variance directions would be starved while another spends its codewords on noise. Unlike
    iterative OPQ (faiss ``OPQMatrix``: minutes on 2 cores at 4 bits) it costs one eigendecomposition.
    """
    import faiss

    dims = residual.shape[1]
    pca = faiss.PCAMatrix(dims, dims, 0.0, False)
    pca.balanced_bins = groups
    pca.train(np.ascontiguousarray(residual, np.float32))
    return np.ascontiguousarray(faiss.vector_to_array(pca.A).reshape(dims, dims).T, np.float32)


def _scalar_codebooks(weights: np.ndarray, nbits: int) -> np.ndarray:
    """``[bytes, 256, 8 / nbits]`` codewords equal to the old per-dimension bucket values, so an index whose
    bytes hold packed bucket numbers (low bits first) decodes exactly as before."""
    per_byte = 8 // nbits
    values = np.arange(256, dtype=np.uint8)[:, None]
    shifts = (np.arange(per_byte) * nbits).astype(np.uint8)[None, :]
    buckets = (values >> shifts) & np.uint8((1 << nbits) - 1)  # [256, per_byte]
    n_bytes = weights.shape[0] // per_byte
    dims = np.arange(n_bytes)[:, None, None] * per_byte + np.arange(per_byte)[None, None, :]
    return np.ascontiguousarray(weights[dims, buckets[None, :, :]], np.float32)  # [bytes, 256, per_byte]


@njit(cache=True, parallel=True, nogil=True)
def _decode(codes, packed, centroids, books, out):  # type: ignore[no-untyped-def]
    """``out[t]``: centroid ``codes[t]`` plus the codeword of each of ``packed[t]``'s bytes, normalised."""
    groups = packed.shape[1]
    width = books.shape[2]
    for t in prange(len(packed)):
        c = codes[t]
        acc = 0.0
        for g in range(groups):
            b = packed[t, g]
            for j in range(width):
                v = centroids[c, g * width + j] + books[g, b, j]
                out[t, g * width + j] = v
                acc += v * v
        inv = np.float32(1.0 / max(np.sqrt(acc), 1e-12))
        for j in range(out.shape[1]):
            out[t, j] *= inv


def dot_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` (float32), compiled and split over rows of ``a``: for the small products of a search."""
    out = np.empty((len(a), len(b)), dtype=np.float32)
    _dot_rows(np.ascontiguousarray(a, dtype=np.float32), np.ascontiguousarray(b, dtype=np.float32), out)
    return out


@njit(cache=True, parallel=True, nogil=True, fastmath=True)
def _dot_rows(a, b, out):  # type: ignore[no-untyped-def]
    """Four rows of ``a`` per pass over each row of ``b`` (loaded once for four sums: 1.8x one row)."""
    n, dims = a.shape
    for block in prange((n + 3) // 4):
        i = 4 * block
        if i + 4 <= n:
            for j in range(b.shape[0]):
                s0 = s1 = s2 = s3 = np.float32(0.0)
                for k in range(dims):
                    x = b[j, k]
                    s0 += a[i, k] * x
                    s1 += a[i + 1, k] * x
                    s2 += a[i + 2, k] * x
                    s3 += a[i + 3, k] * x
                out[i, j], out[i + 1, j], out[i + 2, j], out[i + 3, j] = s0, s1, s2, s3
        else:
            for r in range(i, n):
                for j in range(b.shape[0]):
                    s = np.float32(0.0)
                    for k in range(dims):
                        s += a[r, k] * b[j, k]
                    out[r, j] = s
