"""The embedded index behind the ``Backend`` protocol (no service to run: a folder on disk)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polycolbert.documents import SearchHit
from polycolbert.encoding.protocol import TokenEncoder
from polycolbert.filters import Filter, validate_filter
from polycolbert.index import Index
from polycolbert.index.params import NBITS, K


class LocalBackend:
    """``Backend`` over :class:`polycolbert.index.Index`; creates the folder when asked to with ``create``."""

    def __init__(self, index: Index):
        self.index = index
        self.model_name = index.model_name
        self.dimensions = index.dimensions

    @classmethod
    def open(
        cls,
        location: str | Path,
        model: TokenEncoder | str | None = None,
        dimensions: int | None = None,
        nbits: int = NBITS,
        create: bool = False,
    ) -> LocalBackend:
        path = Path(location)
        if create and not (path / "index.sqlite").exists():
            return cls(Index.create(path, model=model, dimensions=dimensions, nbits=nbits))
        index = Index.open(path, model=None if isinstance(model, str) else model)
        name = model if isinstance(model, str) else getattr(model, "name", None)
        problem = None
        if dimensions is not None and int(dimensions) != index.dimensions:
            problem = f"{path}: the index stores {index.dimensions}-dim vectors, not {dimensions}"
        elif name is not None and name != index.model_name:
            problem = f"{path}: the index was encoded by {index.model_name}, not {name}"
        if problem:
            index.close()
            raise ValueError(problem)
        return cls(index)

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
        k: int = K,
        filter: Filter | None = None,
        hybrid: bool = False,
        query_vectors: Sequence[np.ndarray] | None = None,
        exhaustive: bool = False,
    ) -> list[list[SearchHit]]:
        if filter is not None:
            validate_filter(filter)
        return self.index.search(
            queries if queries else None,
            k=k,
            filter=filter,
            hybrid=hybrid,
            query_vectors=query_vectors,
            exhaustive=exhaustive,
        )

    def existing(self, ids: Sequence[str]) -> set[str]:
        return self.index.existing(ids)

    def compact(self) -> dict[str, Any]:
        self.index.compact()
        problems = self.index.check()
        if problems:
            raise ValueError("integrity check failed after compaction: " + "; ".join(problems))
        return {"compacted": True, "compactions": self.index.info()["compactions"]}

    def info(self) -> dict[str, Any]:
        return {"backend": "local", **self.index.info()}

    def close(self) -> None:
        self.index.close()
