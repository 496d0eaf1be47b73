"""Deterministic stand-ins for the model and an independent exhaustive-MaxSim reference."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np


class HashEncoder:
    """Each word maps to a fixed random unit vector (seeded by its CRC32): same text, same vectors."""

    name = "hash-test-encoder"
    dims = (32, 16)

    def _encode(self, texts: Sequence[str], dimensions: int | None) -> list[np.ndarray]:
        d = dimensions or self.dims[0]
        out = []
        for text in texts:
            words = re.findall(r"\w+", text.lower()) or ["[empty]"]
            rows = [np.random.default_rng(zlib.crc32(w.encode())).normal(size=d) for w in words]
            v = np.asarray(rows, dtype=np.float32)
            out.append(v / np.linalg.norm(v, axis=1, keepdims=True))
        return out

    def encode_documents(self, texts: Sequence[str], dimensions: int | None = None) -> list[np.ndarray]:
        return self._encode(texts, dimensions)

    def encode_queries(self, texts: Sequence[str], dimensions: int | None = None) -> list[np.ndarray]:
        return self._encode(texts, dimensions)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clustered_docs(n: int, dims: int = 32, seed: int = 0, topics: int = 12) -> list[np.ndarray]:
    """Documents whose tokens come from a few topic directions plus noise (like real token clouds)."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(topics, dims)))
    docs = []
    for _ in range(n):
        length = int(rng.integers(3, 25))
        picks = centres[rng.integers(0, topics, size=length)]
        docs.append(unit(picks + 0.35 * rng.normal(size=(length, dims))))
    return docs


def reference_top(query: np.ndarray, docs: dict[str, np.ndarray], k: int) -> list[str]:
    """Exhaustive MaxSim, written independently of the index code."""
    scored = [(float((query @ v.T).max(axis=1).sum()), i) for i, v in docs.items()]
    scored.sort(key=lambda s: -s[0])
    return [i for _, i in scored[:k]]
