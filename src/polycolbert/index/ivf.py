"""The inverted file: which segment entries hold each centroid, and which centroids each entry holds.

Staged search needs both directions of the (centroid, entry) incidence: the inverted lists to find
candidates from a query's nearest centroids without touching any token, and each entry's distinct
centroids to score candidates by centroid interaction. Both are deduplicated (a document holding a
centroid five times is listed once) and stored as CSR pointers + members, rebuilt from the codes of
every snapshot a reader loads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from polycolbert.index.codec import Codec
from polycolbert.index.store import token_positions


@dataclass(frozen=True)
class InvertedFile:
    """Centroid ``c``'s entries are ``members[ptr[c] : ptr[c + 1]]`` (ascending); entry ``e``'s distinct
    centroids are ``centroids[entry_ptr[e] : entry_ptr[e + 1]]`` (ascending)."""

    ptr: np.ndarray  # [n_centroids + 1] int64
    members: np.ndarray  # int64 entry numbers, grouped by centroid
    entry_ptr: np.ndarray  # [n_entries + 1] int64
    centroids: np.ndarray  # centroid codes (the codec's code dtype), grouped by entry

    @classmethod
    def build(cls, codes: np.ndarray, lengths: np.ndarray, codec: Codec) -> InvertedFile:
        """From every stored token's centroid code (entries packed in order, ``lengths`` tokens each)."""
        n_c = len(codec.centroids)
        n_e = max(len(lengths), 1)
        entry_of_token = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        by_entry = np.unique(entry_of_token * n_c + codes.astype(np.int64))
        entries, cents = by_entry // n_c, by_entry % n_c
        entry_ptr = np.concatenate([[0], np.cumsum(np.bincount(entries, minlength=n_e))]).astype(np.int64)
        order = np.argsort(cents, kind="stable")
        ptr = np.concatenate([[0], np.cumsum(np.bincount(cents, minlength=n_c))]).astype(np.int64)
        return cls(ptr, entries[order], entry_ptr, cents.astype(codec.code_dtype))

    def lists(self, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The inverted lists of these centroids, concatenated in their order, and each list's size."""
        ptr = self.ptr
        sizes = ptr[centroids + 1] - ptr[centroids]
        members = (
            np.concatenate([self.members[ptr[c] : ptr[c + 1]] for c in centroids])
            if sizes.sum()
            else np.zeros(0, np.int64)
        )
        return members, sizes

    def centroids_of(self, entries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The distinct centroids of these entries, concatenated in their order, and how many each has."""
        counts = np.diff(self.entry_ptr)
        return self.centroids[token_positions(self.entry_ptr[:-1], counts, entries)], counts[entries]
