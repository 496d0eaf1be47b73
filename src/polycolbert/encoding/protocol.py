"""``TokenEncoder``: what the index, the backends and the server need of a model.

They type against this protocol rather than :class:`polycolbert.ColBERT`, so any object with these
members encodes for them (tests use small deterministic stand-ins); a store fed precomputed vectors
needs no encoder at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from polycolbert.encoding.recipe import TokenizedText


class TokenEncoder(Protocol):
    """A named model that turns texts into one ``[tokens, dimensions]`` float32 array per text."""

    @property
    def name(self) -> str: ...

    @property
    def dims(self) -> tuple[int, ...]:
        """The output sizes offered, largest first."""
        ...

    def check_dimensions(self, dimensions: int | None) -> int:
        """``dimensions`` if offered (``None``: the model's default size); otherwise ``ValueError``."""
        ...

    def encode_queries(self, texts: Sequence[str], dimensions: int | None = None) -> list[np.ndarray]: ...

    def encode_documents(self, texts: Sequence[str], dimensions: int | None = None) -> list[np.ndarray]: ...


class TokenizedEncoder(Protocol):
    """A named model that encodes texts it has already tokenised (what the server's batcher merges):
    :class:`polycolbert.ColBERT` and :class:`polycolbert.encoding.dense.DenseEncoder`."""

    @property
    def name(self) -> str: ...

    def encode_tokenized(
        self, tokenized: list[TokenizedText], dims: Iterable[int]
    ) -> dict[int, list[np.ndarray]]: ...
