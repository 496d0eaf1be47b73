"""BM25 in Qdrant: each document's term weights as a sparse vector, with the IDF left to Qdrant.

This is how fastembed's ``Bm25`` and Qdrant split BM25 between them. A document's sparse vector holds,
for each of its terms, BM25's term-frequency part

    tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / AVG_LENGTH))

and the collection's sparse vector is declared with ``modifier=IDF``, so Qdrant multiplies each query
term by ``ln((N - df + 0.5) / (df + 0.5) + 1)`` over the points that hold the vector, kept current by
every upsert and delete. A query's sparse vector is 1 for each distinct term, so a document's score is
BM25 with that IDF. The one departure from textbook BM25 is ``AVG_LENGTH``: Qdrant cannot re-weigh
stored vectors as the corpus's average length moves, so it is a constant (fastembed's 256, within the
range of terms per document of our evaluation corpora, about 80 to 310). It is written into the
collection's settings, so a later default never mixes two lengths in one collection.

Terms are :func:`polycolbert.lexical.tokenize`'s (language unknown: no stemming), as the embedded index's
lexicon has them; a term's index is the first 32 bits of its BLAKE2b digest (stable across processes and
versions; two terms that share an index count as one: about a hundred pairs in a million-term vocabulary).

>>> vector = document_vector("the cat and the hat")
>>> len(vector[0]), round(max(vector[1]), 4)  # four distinct terms; "the" twice
(4, 1.8985)
>>> query_vector("the the cat")[1]
[1.0, 1.0]
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

from polycolbert.lexical import tokenize

K1 = 1.2
B = 0.75
AVG_LENGTH = 256  # terms; fastembed's Bm25 default


def settings() -> dict[str, Any]:
    """What a new collection records about its BM25 vectors (read back by :func:`document_vector`)."""
    return {"k1": K1, "b": B, "avg_length": AVG_LENGTH, "terms": "lexical.tokenize, blake2b-32"}


def term_id(term: str) -> int:
    """The sparse index of a term: an unsigned 32-bit number, the same in every process.

    >>> term_id("cat") == term_id("cat") != term_id("hat")
    True
    """
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest(), "little")


def document_vector(text: str, params: dict[str, Any] | None = None) -> tuple[list[int], list[float]]:
    """``(indices, values)`` of a document: BM25's term-frequency part per distinct term index
    (``params``: a collection's stored BM25 settings; empty lists for a text without terms)."""
    params = params or settings()
    k1, b, avg_length = float(params["k1"]), float(params["b"]), float(params["avg_length"])
    terms = tokenize(text, None)
    counts = Counter(term_id(t) for t in terms)
    norm = k1 * (1 - b + b * len(terms) / avg_length)
    indices = sorted(counts)
    return indices, [counts[i] * (k1 + 1) / (counts[i] + norm) for i in indices]


def query_vector(text: str) -> tuple[list[int], list[float]]:
    """``(indices, values)`` of a query: 1 per distinct term index (Qdrant's IDF weighs each)."""
    indices = sorted({term_id(t) for t in tokenize(text, None)})
    return indices, [1.0] * len(indices)
