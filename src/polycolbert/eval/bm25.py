"""The BM25 baseline: ``bm25s`` over :func:`polycolbert.lexical.tokenize` (script- and language-aware terms).

A mixed-language corpus is tokenised text by text, each with its own stemmer.
"""

from __future__ import annotations

from collections.abc import Sequence

import bm25s
import numpy as np

from polycolbert.lexical import tokenize


class BM25Index:
    """An exhaustive BM25 scorer over one corpus (Lucene's BM25 variant, k1=1.5, b=0.75 as bm25s ships)."""

    def __init__(
        self, texts: Sequence[str], languages: Sequence[str | None], k1: float = 1.5, b: float = 0.75
    ):
        if len(texts) != len(languages):
            raise ValueError("one language per text is required")
        if not texts:
            raise ValueError("cannot index an empty corpus")
        self._model = bm25s.BM25(k1=k1, b=b)
        tokens = [tokenize(t, lang) for t, lang in zip(texts, languages, strict=True)]
        self._model.index(tokens, show_progress=False)
        self._vocab = set(self._model.vocab_dict)

    def scores(self, query: str, language: str | None) -> np.ndarray:
        """BM25 score of every document (0 where no query term occurs)."""
        terms = [t for t in tokenize(query, language) if t in self._vocab]
        if not terms:
            return np.zeros(self._model.scores["num_docs"], dtype=np.float32)
        return np.asarray(self._model.get_scores(terms), dtype=np.float32)
