"""The ``Backend`` protocol every store implements (embedded index, Qdrant).

Code above this layer (CLI, server routes, compat wrappers) talks only to this protocol, so moving a corpus
from the embedded index to a Qdrant cluster changes a path into a URL and nothing else. The filter language
is ``polycolbert.filters``; the shared document types are ``polycolbert.documents``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from polycolbert.documents import SearchHit
from polycolbert.filters import Filter
from polycolbert.index.params import K

QDRANT_SCHEMES = ("qdrant://", "qdrants://", "qdrant+local://")


@runtime_checkable
class Backend(Protocol):
    """A searchable collection of multi-vector documents, encoded by one model at one size."""

    model_name: str
    dimensions: int

    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadata: Sequence[dict[str, Any]] | None = None,
        vectors: Sequence[np.ndarray] | None = None,
    ) -> list[str]:
        """Insert new documents (an id already present is an error); returns their ids."""
        ...

    def update(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadata: Sequence[dict[str, Any]] | None = None,
        vectors: Sequence[np.ndarray] | None = None,
    ) -> None:
        """Replace existing documents by id (an unknown id is an error)."""
        ...

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id; returns how many existed."""
        ...

    def search(
        self,
        queries: Sequence[str],
        k: int = K,
        filter: Filter | None = None,
        hybrid: bool = False,
        query_vectors: Sequence[np.ndarray] | None = None,
        exhaustive: bool = False,
    ) -> list[list[SearchHit]]:
        """Top-``k`` hits per query, best first (``k`` of them whenever ``k`` live documents match).

        ``exhaustive`` scores every document with exact MaxSim (no candidate generation): for checking.
        """
        ...

    def existing(self, ids: Sequence[str]) -> set[str]:
        """Which of these ids are stored (so a caller can refuse a batch before paying to encode it)."""
        ...

    def compact(self) -> dict[str, Any]:
        """Reclaim deleted space and re-fit the compression where the store needs it done by hand."""
        ...

    def info(self) -> dict[str, Any]:
        """Documents, tokens, bytes on disk, settings (JSON-able)."""
        ...

    def close(self) -> None: ...


def is_qdrant(location: str) -> bool:
    return location.startswith(QDRANT_SCHEMES)
