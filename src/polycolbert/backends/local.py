"""The embedded index behind the ``Backend`` protocol (no service to run: a folder on disk).

Inputs are checked by ``backends/checks.py`` (the rules and words Qdrant's backend uses too) before the
index encodes or writes anything; the index then commits them as it always does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polycolbert.backends.base import BackendInfo
from polycolbert.backends.checks import (
    check_batch,
    check_search,
    check_stream,
    refuse_taken,
    refuse_unknown,
)
from polycolbert.documents import DocumentBatch, SearchHit
from polycolbert.encoding.protocol import TokenEncoder
from polycolbert.filters import Filter
from polycolbert.index import Index
from polycolbert.index.params import NBITS, K

# Index.info() keys that BackendInfo holds in its own fields or settings; the rest go to ``details``.
_SHARED = ("path", "model", "dimensions", "documents", "tokens", "bytes_on_disk", "nbits", "fusion")


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
        lock_timeout: float | None = None,
    ) -> LocalBackend:
        """``lock_timeout``: seconds a write waits for another writer before ``IndexBusy``."""
        path = Path(location)
        if create and not (path / "index.sqlite").exists():
            return cls.create(path, model=model, dimensions=dimensions, nbits=nbits)
        index = Index.open(path, model=None if isinstance(model, str) else model, lock_timeout=lock_timeout)
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

    @classmethod
    def create(
        cls,
        location: str | Path,
        model: TokenEncoder | str | None = None,
        dimensions: int | None = None,
        nbits: int = NBITS,
    ) -> LocalBackend:
        """A new index folder; a file in its place is an error worded for people (not an OS error)."""
        path = Path(location)
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} is a file, not a folder: choose a new folder for the index")
        return cls(Index.create(path, model=model, dimensions=dimensions, nbits=nbits))

    def encoder(self) -> TokenEncoder:
        return self.index.encoder()

    def add(
        self,
        *,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadata: Sequence[dict[str, Any]] | None = None,
        vectors: Sequence[np.ndarray] | None = None,
    ) -> list[str]:
        batch = check_batch(DocumentBatch(texts, ids, metadata, vectors), self.dimensions, self.model_name)
        refuse_taken(batch.ids, self.index.existing(batch.ids))
        return self.index.add(batch.texts, ids=batch.ids, metadata=batch.metadata, vectors=batch.vectors)

    def add_stream(self, batches: Iterable[DocumentBatch], *, memory_budget_mb: float | None = None) -> int:
        """One commit for the whole stream (all or nothing), about ``memory_budget_mb`` MiB held at once."""

        checked = (
            DocumentBatch(batch.texts, batch.ids, batch.metadata, batch.vectors)
            for batch in check_stream(batches, self.dimensions, self.model_name, self.index.existing)
        )
        budget = self.index.memory_budget_mb
        if memory_budget_mb is not None:
            self.index.memory_budget_mb = memory_budget_mb
        try:
            return self.index.add_stream(checked)
        finally:
            self.index.memory_budget_mb = budget

    def update(
        self,
        *,
        texts: Sequence[str],
        ids: Sequence[str],
        metadata: Sequence[dict[str, Any]] | None = None,
        vectors: Sequence[np.ndarray] | None = None,
    ) -> None:
        batch = check_batch(DocumentBatch(texts, ids, metadata, vectors), self.dimensions, self.model_name)
        refuse_unknown(batch.ids, self.index.existing(batch.ids))
        self.index.update(batch.ids, batch.texts, metadata=batch.metadata, vectors=batch.vectors)

    def delete(self, ids: Sequence[str]) -> int:
        if isinstance(ids, str):
            raise ValueError("ids must be a list, not one string")
        return self.index.delete(ids)

    def search(
        self,
        queries: Sequence[str] | None = None,
        *,
        query_vectors: Sequence[np.ndarray] | None = None,
        k: int = K,
        filter: Filter | None = None,
        hybrid: bool = False,
        exhaustive: bool = False,
        fusion: str = "none",
    ) -> list[list[SearchHit]]:
        request = check_search(queries, query_vectors, k, filter, self.dimensions, self.model_name, fusion)
        if hybrid and request.queries is None:
            raise ValueError("hybrid search needs the query texts")
        return self.index.search(
            request.queries,
            k=k,
            filter=filter,
            hybrid=hybrid,
            query_vectors=request.vectors,
            exhaustive=exhaustive,
            fusion=fusion,
        )

    def existing(self, ids: Sequence[str]) -> set[str]:
        return self.index.existing(ids)

    def ids(self) -> list[str]:
        return self.index.ids()

    def compact(self) -> dict[str, Any]:
        self.index.compact()
        problems = self.index.check()
        if problems:
            raise ValueError("integrity check failed after compaction: " + "; ".join(problems))
        return {"compacted": True, "compactions": self.index.info()["compactions"]}

    def info(self) -> BackendInfo:
        raw = self.index.info()
        return BackendInfo(
            backend="local",
            location=str(raw["path"]),
            model=raw["model"],
            dimensions=int(raw["dimensions"]),
            documents=int(raw["documents"]),
            tokens=int(raw["tokens"]),
            bytes_on_disk=raw["bytes_on_disk"],
            settings={"nbits": raw["nbits"]},
            details={key: value for key, value in raw.items() if key not in _SHARED},
            fusion=raw["fusion"],
        )

    def __len__(self) -> int:
        return len(self.index)

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
