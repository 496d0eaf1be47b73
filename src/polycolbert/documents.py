"""What goes into a store and what comes out of it: the types every backend and the index share.

A ``DocumentBatch`` is some documents as ``add`` takes them (texts, optional ids, metadata and
pre-computed token vectors); a ``SearchHit`` is one ranked answer. They live at the bottom layer so the
embedded index and the backends speak the same types without importing each other.

>>> SearchHit(id="d1", score=12.5).metadata
{}
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class DocumentBatch:
    """Some documents for ``add_stream``, as ``add`` takes them (no ``vectors``: the store encodes them)."""

    texts: Sequence[str]
    ids: Sequence[str] | None = None
    metadata: Sequence[dict[str, Any]] | None = None
    vectors: Sequence[np.ndarray] | None = None


@dataclass
class SearchHit:
    """One ranked answer: the document's id, its MaxSim score, and its stored text and metadata."""

    id: str
    score: float
    text: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def as_list(values: Any, what: str) -> list[Any]:
    """``values`` as a list; one string (a common slip for a list of one) is an error, not its letters."""
    if isinstance(values, str | bytes):
        raise ValueError(f"{what} must be a list, not one string")
    try:
        return list(values)
    except TypeError:
        raise ValueError(f"{what} must be a list, not {type(values).__name__}") from None


def check_vectors(vectors: Any, what: str, dimensions: int, model_name: str) -> list[np.ndarray]:
    """Float32 ``[tokens, dimensions]`` arrays, each with at least one token and only finite values: the
    one rule every store applies to vectors it is given (documents' and queries').

    >>> check_vectors([np.ones((2, 4))], "vectors", 4, "toy")[0].dtype
    dtype('float32')
    """
    out = []
    for i, v in enumerate(as_list(vectors, what)):
        a = np.asarray(v, dtype=np.float32)
        if a.ndim != 2 or a.shape[1] != dimensions:
            raise ValueError(
                f"{what}[{i}] has shape {a.shape}; this index ({model_name}) needs [tokens, {dimensions}]"
            )
        if len(a) == 0:
            raise ValueError(f"{what}[{i}] has no token vectors")
        if not np.isfinite(a).all():
            raise ValueError(f"{what}[{i}] contains NaN or infinite values")
        out.append(a)
    return out


def duplicates(ids: Iterable[str]) -> list[str]:
    """The ids that occur more than once, sorted."""
    seen: set[str] = set()
    repeated: set[str] = set()
    for i in ids:
        (repeated if i in seen else seen).add(i)
    return sorted(repeated)
