"""The ``Backend`` protocol every store implements (embedded index, Qdrant), and the filter language.

Code above this layer (CLI, server routes, compat wrappers) talks only to this protocol, so moving a corpus
from the embedded index to a Qdrant cluster changes a path into a URL and nothing else.

Filters are JSON-able dicts, the same for every backend (compiled to SQL over the metadata JSON by the
embedded index, to ``qdrant_client.models.Filter`` by Qdrant):

* ``{"lang": "de"}``: equality; ``{"year": {"$gte": 2020, "$lt": 2024}}``: ranges (``$gt $gte $lt $lte``);
* ``{"lang": {"$in": ["de", "en"]}}``, ``{"lang": {"$ne": "fr"}}``, ``{"lang": {"$nin": [...]}}``;
* ``{"$and": [f1, f2]}``, ``{"$or": [f1, f2]}``, ``{"$not": f}``; several keys in one dict mean AND.
Field names are metadata keys (dots reach into nested objects).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

Filter = dict[str, Any]
COMPARISONS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin")
LOGICAL = ("$and", "$or", "$not")
QDRANT_SCHEMES = ("qdrant://", "qdrants://", "qdrant+local://")


@dataclass
class SearchHit:
    id: str
    score: float
    text: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


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
        k: int = 10,
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


def validate_filter(value: Any, path: str = "filter") -> Filter:
    """Check a filter's shape so every backend can rely on it; errors name the offending part."""
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{path} must be a non-empty JSON object")
    for key, item in value.items():
        where = f"{path}.{key}"
        if key in ("$and", "$or"):
            if not isinstance(item, list) or not item:
                raise ValueError(f"{where} must be a non-empty list of filters")
            for i, sub in enumerate(item):
                validate_filter(sub, f"{where}[{i}]")
        elif key == "$not":
            validate_filter(item, where)
        elif key.startswith("$"):
            raise ValueError(f"{where}: unknown operator (use {', '.join(LOGICAL)} or a field name)")
        elif isinstance(item, dict):
            if not item:
                raise ValueError(f"{where} has no condition")
            for op, operand in item.items():
                if op not in COMPARISONS:
                    raise ValueError(f"{where}.{op}: unknown comparison (use {', '.join(COMPARISONS)})")
                if op in ("$in", "$nin") and not isinstance(operand, list):
                    raise ValueError(f"{where}.{op} needs a list")
                if op in ("$gt", "$gte", "$lt", "$lte") and not isinstance(operand, int | float | str):
                    raise ValueError(f"{where}.{op} needs a number or a string")
        elif not isinstance(item, str | int | float | bool) and item is not None:
            raise ValueError(f"{where}: equality needs a string, number, boolean or null")
    return value


def is_qdrant(location: str) -> bool:
    return location.startswith(QDRANT_SCHEMES)


def create_backend(
    location: str, model: Any = None, dimensions: int | None = None, nbits: int = 2, **qdrant_options: Any
) -> Backend:
    """A new, empty store at ``location``; an existing one is an error (nothing is overwritten).

    ``nbits`` is the embedded index's residual compression; ``qdrant_options`` (prefetch, distance,
    quantization, on_disk, shard_number, replication_factor, write_consistency_factor, api_key, timeout)
    configure a Qdrant collection and are refused for a folder, where they would silently mean nothing.
    """
    if is_qdrant(location):
        from polycolbert.backends.qdrant import QdrantBackend

        return QdrantBackend.create(location, model=model, dimensions=dimensions, **qdrant_options)
    given = sorted(qdrant_options)
    if given:
        raise ValueError(f"{', '.join(given)}: Qdrant settings; {location} is an embedded index folder")
    from polycolbert.backends.local import LocalBackend
    from polycolbert.index import Index

    return LocalBackend(Index.create(location, model=model, dimensions=dimensions, nbits=nbits))


def open_backend(location: str, **options: Any) -> Backend:
    """``qdrant://host:port/collection``, ``qdrant+local://path/collection``, or an embedded index folder."""
    if is_qdrant(location):
        from polycolbert.backends.qdrant import QdrantBackend

        return QdrantBackend.open(location, **options)
    from polycolbert.backends.local import LocalBackend

    return LocalBackend.open(location, **options)
