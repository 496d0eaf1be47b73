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

BM25 fusion (opt-in, ``fusion="bm25"``): the documents given are the candidates, BM25 is computed over them
(:func:`bm25_over`: their own term statistics, :mod:`polycolbert.lexical`'s terms) and
:func:`polycolbert.fusion.fuse_bm25` ranks them again, with the script gate read from the documents. The
score is then the fused one: z-scores relative to the documents given, not a MaxSim.

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
from polycolbert.fusion import SEARCH_FUSIONS, dominant, fuse_bm25, query_passes, script_of
from polycolbert.lexical import BM25Index
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


def bm25_over(query: str, documents: Sequence[str]) -> tuple[np.ndarray, bool]:
    """BM25 of each document for ``query`` with the documents as the corpus, and whether the script gate
    lets it count (the documents share one script and the query is written in it)."""
    gate_open = query_passes(query, dominant([script_of(d) for d in documents]))
    index = BM25Index(documents, [None] * len(documents))
    return index.scores(query, None).astype(np.float64), gate_open


def check_fusion(fusion: str) -> None:
    if fusion not in SEARCH_FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(SEARCH_FUSIONS)}; got {fusion!r}")


def rerank(
    query_vectors: np.ndarray,
    document_vectors: Sequence[np.ndarray],
    top_n: int | None = None,
    explain: bool = False,
    blank: Sequence[bool] | None = None,
    bm25: tuple[np.ndarray, bool] | None = None,
) -> list[Ranked]:
    """The ``top_n`` best documents (all when None), best first; ``explain`` adds token alignments.

    ``blank[i]`` marks a document with nothing to match: it scores :func:`lowest_score` and, explained,
    has no alignments. ``bm25`` (:func:`bm25_over`'s scores and gate) fuses BM25 into the ranking of the
    other documents; blank ones still come last.
    """
    scores = maxsim_packed(query_vectors, document_vectors)
    flags = list(blank) if blank is not None else [False] * len(document_vectors)
    if len(flags) != len(document_vectors):
        raise ValueError(f"blank has {len(flags)} flags for {len(document_vectors)} documents")
    mask = np.asarray(flags, dtype=bool)
    if bm25 is not None and (~mask).any():
        lexical, gate_open = bm25
        fused = fuse_bm25(scores[~mask], lexical[~mask], gate_open).astype(np.float32)
        scores = np.zeros(len(flags), dtype=np.float32)
        scores[~mask] = fused
        if mask.any():
            scores[mask] = fused.min() - 1.0  # below every fused score: blank documents stay last
    elif mask.any():
        scores[mask] = lowest_score(query_vectors)

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
    fusion: str = "none",
) -> list[RankedText]:
    """Encode ``query`` and ``documents`` with ``model`` at ``dimensions`` (default: the model's); rank
    (``fusion="bm25"``: with BM25 fused in, see the module docstring).

    A blank query is a ``ValueError`` naming ``query``; blank documents rank last (module docstring).
    """
    check_query(query)
    check_fusion(fusion)
    dim = model.check_dimensions(dimensions)
    documents = list(documents)
    query_tokens = model.tokenize([query], "query")
    document_tokens = model.tokenize(documents, "document")
    query_vectors = model.encode_tokenized(query_tokens, (dim,))[dim][0]
    document_vectors = model.encode_tokenized(document_tokens, (dim,))[dim]
    blank = [t.blank for t in document_tokens]
    out = []
    bm25 = bm25_over(query, documents) if fusion == "bm25" else None
    for r in rerank(query_vectors, document_vectors, top_n, explain, blank, bm25):
        matches = None
        if r.alignments is not None:
            matches = token_matches(
                model, query, query_tokens[0], documents[r.index], document_tokens[r.index], r.alignments
            )
        out.append(RankedText(r.index, r.score, documents[r.index], matches))
    return out
