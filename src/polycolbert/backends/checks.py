"""The one set of rules documents and searches meet before any backend touches them.

Both backends call these first (before encoding, before writing), so the same bad input is refused with
the same ``ValueError``, worded the same, whichever store is behind the protocol. The wording is the
embedded index's own, so where the index refuses something itself (an id taken by a concurrent writer,
found inside its write transaction) the caller reads the same sentence.

>>> batch = check_batch(DocumentBatch(["a b"], ids=["d1"]), dimensions=4, model_name="toy")
>>> batch.ids, batch.metadata, batch.vectors
(['d1'], [{}], None)
>>> check_batch(DocumentBatch(["a", "b"], ids=["d1", "d1"]), dimensions=4, model_name="toy")
Traceback (most recent call last):
...
ValueError: duplicate ids in the batch: ['d1']
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from polycolbert.documents import DocumentBatch, as_list, check_vectors, duplicates
from polycolbert.filters import Expr, Filter, parse_filter
from polycolbert.fusion import SEARCH_FUSIONS

SHOWN = 10  # ids named in an error message


@dataclass
class CheckedBatch:
    """A batch that passed :func:`check_batch`: lists, one entry per document, vectors float32 or None."""

    texts: list[str]
    ids: list[str]
    metadata: list[dict[str, Any]]
    vectors: list[np.ndarray] | None


@dataclass
class CheckedSearch:
    """A search that passed :func:`check_search`; ``filter`` is the parsed tree (None: no filter)."""

    queries: list[str] | None
    vectors: list[np.ndarray] | None
    filter: Expr | None


def check_batch(batch: DocumentBatch, dimensions: int, model_name: str) -> CheckedBatch:
    """Texts are strings, ids unique non-empty strings (random hex ids when none are given), one JSON
    object of metadata per text, and vectors (if given) one finite ``[tokens, dimensions]`` array per text.
    """
    texts = as_list(batch.texts, "texts")
    if not texts:
        raise ValueError("no documents given: pass at least one text")
    if not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must be strings")
    ids = [uuid.uuid4().hex for _ in texts] if batch.ids is None else as_list(batch.ids, "ids")
    if len(ids) != len(texts):
        raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
    if not all(isinstance(i, str) and i for i in ids):
        raise ValueError("ids must be non-empty strings")
    repeated = duplicates(ids)
    if repeated:
        raise ValueError(f"duplicate ids in the batch: {repeated[:SHOWN]}")
    metadata = [{} for _ in texts] if batch.metadata is None else as_list(batch.metadata, "metadata")
    if len(metadata) != len(texts) or not all(isinstance(m, dict) for m in metadata):
        raise ValueError("metadata must be one JSON object per text")
    for i, m in enumerate(metadata):
        try:
            json.dumps(m, allow_nan=False)
        except ValueError:
            raise ValueError(f"metadata[{i}] holds NaN or Infinity, which are not JSON numbers") from None
        except TypeError as error:
            raise ValueError(f"metadata[{i}] is not JSON-serialisable: {error}") from None
    vectors = None
    if batch.vectors is not None:
        vectors = check_vectors(batch.vectors, "vectors", dimensions, model_name)
        if len(vectors) != len(texts):
            raise ValueError(f"{len(vectors)} vector arrays for {len(texts)} texts")
    return CheckedBatch(texts, ids, metadata, vectors)


def check_stream(
    batches: Iterable[DocumentBatch],
    dimensions: int,
    model_name: str,
    stored: Callable[[list[str]], Collection[str]],
) -> Iterator[CheckedBatch]:
    """``add_stream``'s batches, each checked when it is reached: :func:`check_batch`, then its ids
    against ``stored(ids)`` (which of them the store holds) and the stream's earlier batches. A refusal
    names the batch (``batch 3: ...``); a stream without batches is an error once it ends.
    """
    earlier: set[str] = set()
    number = 0
    for number, given in enumerate(batches, start=1):
        try:
            batch = check_batch(given, dimensions, model_name)
            refuse_taken(batch.ids, earlier | set(stored(batch.ids)))
        except ValueError as error:
            raise ValueError(f"batch {number}: {error}") from None
        earlier.update(batch.ids)
        yield batch
    if number == 0:
        raise ValueError("no documents given: the stream had no batches")


def check_search(
    queries: Sequence[str] | None,
    query_vectors: Sequence[np.ndarray] | None,
    k: int,
    filter: Filter | None,
    dimensions: int,
    model_name: str,
    fusion: str = "none",
) -> CheckedSearch:
    """``k`` a positive integer, query texts and/or query vectors (as many of each), a valid filter, a
    known fusion (given the query texts it reads)."""
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    if fusion not in SEARCH_FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(SEARCH_FUSIONS)}; got {fusion!r}")
    if fusion != "none" and queries is None:
        raise ValueError(f"{fusion} fusion needs the query texts")
    if queries is None and query_vectors is None:
        raise ValueError("give queries (texts) or query_vectors")
    texts = None if queries is None else as_list(queries, "queries")
    if texts is not None and not all(isinstance(q, str) for q in texts):
        raise ValueError("queries must be strings")
    vectors = None
    if query_vectors is not None:
        vectors = check_vectors(query_vectors, "query_vectors", dimensions, model_name)
        if texts is not None and len(texts) != len(vectors):
            raise ValueError(f"{len(vectors)} query vector arrays for {len(texts)} queries")
    parsed = None if filter is None else parse_filter(filter)
    return CheckedSearch(texts, vectors, parsed)


def refuse_taken(ids: Sequence[str], stored: Collection[str]) -> None:
    """``add``: an id already stored is an error (``stored``: which of ``ids`` the store holds)."""
    taken = [i for i in ids if i in stored]
    if taken:
        raise ValueError(f"ids already in the index: {taken[:SHOWN]} (use update to replace them)")


def refuse_unknown(ids: Sequence[str], stored: Collection[str]) -> None:
    """``update``: an id not stored is an error."""
    missing = [i for i in ids if i not in stored]
    if missing:
        raise ValueError(f"unknown ids: {missing[:SHOWN]} (use add for new documents)")
