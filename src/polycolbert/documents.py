"""What goes into a store and what comes out of it: the types every backend and the index share.

A ``DocumentBatch`` is some documents as ``add`` takes them (texts, optional ids, metadata and
pre-computed token vectors); a ``SearchHit`` is one ranked answer. They live at the bottom layer so the
embedded index and the backends speak the same types without importing each other.

>>> SearchHit(id="d1", score=12.5).metadata
{}
"""

from __future__ import annotations

from collections.abc import Sequence
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
