"""The ``Backend`` protocol over the embedded index: a folder on disk, searched in this process.

A thin adapter: ``polycolbert.index.Index`` already speaks the protocol's verbs; this class fixes the
construction (``create`` / ``open`` from a location string, as ``open_backend`` passes it) and keeps the
surface to exactly the protocol so code above it cannot come to depend on index internals.

>>> import tempfile, numpy as np
>>> store = LocalBackend.create(tempfile.mkdtemp() + "/ix", dimensions=8)
>>> v = np.eye(8, dtype=np.float32)
>>> store.add(["a", "b"], ids=["a", "b"], vectors=[v[:2], v[2:5]])
['a', 'b']
>>> [h.id for h in store.search(["q"], k=1, query_vectors=[v[3:4]])[0]]
['b']
>>> store.close()
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polycolbert.backends.base import Filter, SearchHit
from polycolbert.index import Index


class LocalBackend:
    """An embedded index folder behind the ``Backend`` protocol."""

    def __init__(self, index: Index):
        self.index = index
        self.model_name: str = index.model_name
        self.dimensions: int = index.dimensions

    @classmethod
    def create(
        cls, location: str | Path, model: Any = None, dimensions: int | None = None, nbits: int = 2
    ) -> LocalBackend:
        return cls(Index.create(location, model=model, dimensions=dimensions, nbits=nbits))

    @classmethod
    def open(cls, location: str | Path, model: Any = None, **options: Any) -> LocalBackend:
        if options:
            raise ValueError(f"unknown options for an embedded index: {sorted(options)}")
        return cls(Index.open(location, model=model))

    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadata: Sequence[dict[str, Any]] | None = None,
        vectors: Sequence[np.ndarray] | None = None,
    ) -> list[str]:
        return self.index.add(texts, ids=ids, metadata=metadata, vectors=vectors)

    def update(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadata: Sequence[dict[str, Any]] | None = None,
        vectors: Sequence[np.ndarray] | None = None,
    ) -> None:
        self.index.update(ids, texts, metadata=metadata, vectors=vectors)

    def delete(self, ids: Sequence[str]) -> int:
        return self.index.delete(ids)

    def search(
        self,
        queries: Sequence[str],
        k: int = 10,
        filter: Filter | None = None,
        hybrid: bool = False,
        query_vectors: Sequence[np.ndarray] | None = None,
        exhaustive: bool = False,
    ) -> list[list[SearchHit]]:
        return self.index.search(
            queries, k=k, filter=filter, hybrid=hybrid, query_vectors=query_vectors, exhaustive=exhaustive
        )

    def info(self) -> dict[str, Any]:
        return {"backend": "local", **self.index.info()}

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
