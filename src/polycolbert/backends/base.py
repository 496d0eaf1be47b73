"""The ``Backend`` protocol every store implements (embedded index, Qdrant), and ``BackendInfo``.

Code above this layer (CLI, server routes, compat wrappers) talks only to this protocol, so moving a corpus
from the embedded index to a Qdrant cluster changes a path into a URL and nothing else. Every method that
takes documents takes them by keyword (``add(texts=..., ids=...)``, ``update(texts=..., ids=...)``), so
no caller can swap two lists by position; search takes query texts, query vectors, or both (texts for
hybrid ranking, vectors already encoded). The input rules both stores apply are ``backends/checks.py``;
the filter language is ``polycolbert.filters``; the document types are ``polycolbert.documents``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from polycolbert.documents import DocumentBatch, SearchHit
from polycolbert.encoding.protocol import TokenEncoder
from polycolbert.filters import Filter
from polycolbert.index.params import K

QDRANT_SCHEMES = ("qdrant://", "qdrants://", "qdrant+local://")


@dataclass(frozen=True)
class BackendInfo:
    """What a store holds and how it was made: the same fields for every backend (JSON via ``to_dict``).

    ``settings`` are the choices made at creation (embedded: ``nbits``; Qdrant: distance, prefetch,
    quantization, sharding); ``details`` are the store's own counters (embedded: centroids, drift,
    compactions; Qdrant: collection status), for people reading ``polycolbert index info``.
    """

    backend: str
    """``"local"`` (an embedded index folder) or ``"qdrant"``."""
    location: str
    """The folder or the ``qdrant://`` / ``qdrant+local://`` location it was opened from."""
    model: str
    dimensions: int
    documents: int
    tokens: int | None
    """Token vectors of the live documents; None where counting them would read too much (Qdrant)."""
    bytes_on_disk: dict[str, int] | None
    """``{"total": ...}`` plus the store's own breakdown; None where the disk is not visible (a server)."""
    settings: dict[str, Any]
    details: dict[str, Any]
    fusion: dict[str, Any] = dataclasses.field(default_factory=lambda: {"available": ["none"]})
    """``available``: the ``search(fusion=...)`` values this store answers; plus what BM25 costs it (bytes)
    and the script its gate reads (``"mixed"``: BM25 never counts)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@runtime_checkable
class Backend(Protocol):
    """A searchable collection of multi-vector documents, encoded by one model at one size."""

    model_name: str
    dimensions: int

    def encoder(self) -> TokenEncoder:
        """The model that encodes for this store, loaded on first use (its stored model name)."""
        ...

    def add(
        self,
        *,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadata: Sequence[dict[str, Any]] | None = None,
        vectors: Sequence[np.ndarray] | None = None,
    ) -> list[str]:
        """Insert new documents (an id already present is an error, and nothing is written); returns
        their ids (random hex ids where none are given). ``vectors`` skips encoding."""
        ...

    def add_stream(self, batches: Iterable[DocumentBatch], *, memory_budget_mb: float | None = None) -> int:
        """Insert many batches, each encoded when it is reached (unless it carries vectors); returns how
        many documents were added.

        The embedded index commits the whole stream at once (all or nothing), holding about
        ``memory_budget_mb`` MiB of token vectors at a time; Qdrant stores batch after batch (a failure
        part-way keeps the batches before it) and holds one batch at a time, so the budget is the caller's
        batch size there. A bad batch is an error naming its number (``batch 3: ...``).
        """
        ...

    def update(
        self,
        *,
        texts: Sequence[str],
        ids: Sequence[str],
        metadata: Sequence[dict[str, Any]] | None = None,
        vectors: Sequence[np.ndarray] | None = None,
    ) -> None:
        """Replace existing documents by id (an unknown id is an error, and nothing is written)."""
        ...

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id; returns how many existed (unknown ids are counted, not an error)."""
        ...

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
        """Top-``k`` hits per query, best first (``k`` of them whenever ``k`` live documents match).

        Give ``queries`` (texts, encoded by :meth:`encoder`), ``query_vectors`` (already encoded), or
        both (``hybrid`` keyword ranking and ``fusion`` read the texts). ``exhaustive`` scores every
        document with exact MaxSim (no candidate generation): for checking. ``hybrid`` is the embedded
        index's. ``fusion="bm25"`` ranks MaxSim's best 100 again with BM25 by :mod:`polycolbert.fusion`'s
        rule (hits then carry the fused score).
        """
        ...

    def existing(self, ids: Sequence[str]) -> set[str]:
        """Which of these ids are stored (so a caller can refuse a batch before paying to encode it)."""
        ...

    def ids(self) -> list[str]:
        """Every stored document id (the embedded index: in insertion order; Qdrant: in point order)."""
        ...

    def compact(self) -> dict[str, Any]:
        """Reclaim deleted space and re-fit the compression where the store needs it done by hand;
        ``{"compacted": bool, ...}``."""
        ...

    def info(self) -> BackendInfo: ...

    def close(self) -> None: ...


def is_qdrant(location: str) -> bool:
    return location.startswith(QDRANT_SCHEMES)
