"""Ranking documents for one query by MaxSim, with the token matches that explain each score.

One ranking for every front end: the server's ``/v1/rerank``, RAGatouille's ``rerank`` and
``search_encoded_docs``, and ``polycolbert rerank``. Scores are :func:`polycolbert.scoring.maxsim_packed`;
order is :func:`polycolbert.scoring.top_k` (higher score first, equal scores in input order).

:func:`rerank` ranks vectors a caller already has; :func:`rerank_texts` encodes with a model first and,
asked to explain, labels each match with the query token and the document span it matched.

A blank document (empty, whitespace, or only punctuation and symbols: :func:`polycolbert.encoding.recipe.
is_blank`) is still ranked, keeping its index: it scores :func:`lowest_score`, the least MaxSim of unit
vectors can give, so it comes after every real document and one such document never fails a ranking.
A blank query has nothing to rank by: :func:`check_query` refuses it, naming ``query``.

>>> import numpy as np
>>> q = np.eye(2, dtype=np.float32)
>>> docs = [np.array([[0.6, 0.8]], np.float32), np.array([[1, 0], [0, 1]], np.float32)]
>>> [(r.index, round(r.score, 3)) for r in rerank(q, docs)]
[(1, 2.0), (0, 1.4)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from polycolbert.encoding.recipe import is_blank
from polycolbert.scoring import explain_matches, maxsim_packed, top_k

if TYPE_CHECKING:
    from polycolbert.encoding.encoder import ColBERT
    from polycolbert.encoding.recipe import TokenizedText


@dataclass(frozen=True)
class Ranked:
    """One document's place: its position in the input, its score and, when asked, its alignments:
    ``(query row, document row, similarity)`` for each query row (document row -1: nothing to match)."""

    index: int
    score: float
    alignments: list[tuple[int, int, float]] | None = None


@dataclass(frozen=True)
class Match:
    """A query token and the document text it matched: ``document_start:document_end`` is a character
    span of the document ((0, 0) for a special token, whose ``document_token`` is the token itself)."""

    query_index: int
    query_token: str
    document_start: int
    document_end: int
    document_token: str
    score: float


@dataclass(frozen=True)
class RankedText:
    """:class:`Ranked` for texts: the document's text and, when asked, its labelled token matches."""

    index: int
    score: float
    text: str
    matches: list[Match] | None = None


def lowest_score(query_vectors: np.ndarray) -> float:
    """A score no document can go below: -1 for each query row (MaxSim of unit vectors).

    >>> lowest_score(np.eye(3, dtype=np.float32))
    -3.0
    """
    return -float(len(query_vectors))


def check_query(query: str) -> None:
    """Refuse a query with nothing to match (empty, whitespace, only punctuation and symbols)."""
    if is_blank(query):
        what = "empty" if not query.strip() else "only punctuation and symbols"
        raise ValueError(f"query is {what}; there is nothing to rank the documents by")


def rerank(
    query_vectors: np.ndarray,
    document_vectors: Sequence[np.ndarray],
    top_n: int | None = None,
    explain: bool = False,
    blank: Sequence[bool] | None = None,
) -> list[Ranked]:
    """The ``top_n`` best documents (all when None), best first; ``explain`` adds token alignments.

    ``blank[i]`` marks a document with nothing to match: it scores :func:`lowest_score` and, explained,
    has no alignments.
    """
    scores = maxsim_packed(query_vectors, document_vectors)
    flags = list(blank) if blank is not None else [False] * len(document_vectors)
    if len(flags) != len(document_vectors):
        raise ValueError(f"blank has {len(flags)} flags for {len(document_vectors)} documents")
    if any(flags):
        scores[np.asarray(flags)] = lowest_score(query_vectors)

    def alignments(i: int) -> list[tuple[int, int, float]] | None:
        if not explain:
            return None
        return [] if flags[i] else explain_matches(query_vectors, document_vectors[i])

    return [
        Ranked(index=i, score=float(scores[i]), alignments=alignments(i))
        for i in top_k(scores, top_n).tolist()
    ]


def token_matches(
    model: ColBERT,
    query: str,
    query_tokens: TokenizedText,
    document: str,
    document_tokens: TokenizedText,
    alignments: list[tuple[int, int, float]],
) -> list[Match]:
    """Alignments as text: each query row's token and the document span (or special token) it matched."""
    tokenizer = model.tokenizer
    found = []
    for qi, dj, score in alignments:
        q_start, q_end = query_tokens.spans[qi]
        if q_end > q_start:
            q_label = query[q_start:q_end].strip()
        else:
            q_label = tokenizer.id_to_token(query_tokens.token_ids[qi]) or ""
        d_start, d_end = document_tokens.spans[dj] if dj >= 0 else (0, 0)
        if d_end > d_start:
            d_label = document[d_start:d_end].strip()
        else:
            d_label = (tokenizer.id_to_token(document_tokens.token_ids[dj]) if dj >= 0 else None) or ""
        found.append(Match(qi, q_label, d_start, d_end, d_label, score))
    return found


def rerank_texts(
    model: ColBERT,
    query: str,
    documents: Sequence[str],
    top_n: int | None = None,
    dimensions: int | None = None,
    explain: bool = False,
) -> list[RankedText]:
    """Encode ``query`` and ``documents`` with ``model`` at ``dimensions`` (default: the model's); rank.

    A blank query is a ``ValueError`` naming ``query``; blank documents rank last (module docstring).
    """
    check_query(query)
    dim = model.check_dimensions(dimensions)
    documents = list(documents)
    query_tokens = model.tokenize([query], "query")
    document_tokens = model.tokenize(documents, "document")
    query_vectors = model.encode_tokenized(query_tokens, (dim,))[dim][0]
    document_vectors = model.encode_tokenized(document_tokens, (dim,))[dim]
    blank = [t.blank for t in document_tokens]
    out = []
    for r in rerank(query_vectors, document_vectors, top_n, explain, blank):
        matches = None
        if r.alignments is not None:
            matches = token_matches(
                model, query, query_tokens[0], documents[r.index], document_tokens[r.index], r.alignments
            )
        out.append(RankedText(r.index, r.score, documents[r.index], matches))
    return out
