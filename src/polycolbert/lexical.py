"""BM25 terms of a text, by the rules of its script (and, when known, its language).

Words in scripts written with spaces are lower-cased and, when the text's language has a Snowball stemmer
(PyStemmer), stemmed; runs of scripts written without spaces (Chinese, Japanese kana, Thai, Lao, Khmer,
Myanmar) become overlapping character bigrams, the usual dictionary-free choice (Lucene's CJK analyzer does
the same). ``polycolbert eval``'s BM25 (languages known per dataset), ``/v1/rerank``'s BM25 fusion and the
embedded index's lexicon (language unknown: no stemming) all tokenise here, so a term means the same thing
in each. :class:`BM25Index` scores a corpus held in memory (``bm25s``; Lucene's BM25 variant).

>>> tokenize("Die Häuser stehen", "de")
['die', 'haus', 'steh']
>>> tokenize("Die Häuser stehen", None)
['die', 'häuser', 'stehen']
>>> tokenize("北京大学", "zh")
['北京', '京大', '大学']
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from functools import cache

import numpy as np
import regex
import Stemmer

# ISO 639-1 -> Snowball algorithm name (PyStemmer); languages absent here are only lower-cased.
SNOWBALL = {
    "ar": "arabic",
    "ca": "catalan",
    "da": "danish",
    "de": "german",
    "el": "greek",
    "en": "english",
    "es": "spanish",
    "eu": "basque",
    "fi": "finnish",
    "fr": "french",
    "ga": "irish",
    "hi": "hindi",
    "hu": "hungarian",
    "hy": "armenian",
    "id": "indonesian",
    "it": "italian",
    "lt": "lithuanian",
    "ne": "nepali",
    "nl": "dutch",
    "no": "norwegian",
    "pl": "polish",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sr": "serbian",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
}

_NO_SPACE = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}"
_TOKEN = regex.compile(
    rf"(?P<run>[{_NO_SPACE}]+)|(?P<word>[[\p{{L}}\p{{M}}\p{{N}}]--[{_NO_SPACE}]]+)",
    flags=regex.V1,
)


@cache
def _stemmer(language: str | None) -> Stemmer.Stemmer | None:
    algorithm = SNOWBALL.get(language or "")
    return Stemmer.Stemmer(algorithm) if algorithm else None


def tokenize(text: str, language: str | None) -> list[str]:
    """BM25 terms of one text (see the module docstring for the rules)."""
    # lower(), not casefold(): casefold rewrites Greek final sigma and German sharp s, which the
    # Snowball stemmers of those languages expect to see.
    text = unicodedata.normalize("NFKC", text).lower()
    stemmer = _stemmer(language)
    words: list[str] = []
    terms: list[str] = []
    for match in _TOKEN.finditer(text):
        run = match.group("run")
        if run is None:
            words.append(match.group("word"))
            continue
        if words:
            terms.extend(stemmer.stemWords(words) if stemmer else words)
            words = []
        if len(run) == 1:
            terms.append(run)
        else:
            terms.extend(run[i : i + 2] for i in range(len(run) - 1))
    if words:
        terms.extend(stemmer.stemWords(words) if stemmer else words)
    # Snowball can stem a short word to nothing (Greek does); an empty term would match bm25s's own
    # placeholder token, so drop it.
    return [t for t in terms if t]


class BM25Index:
    """An exhaustive BM25 scorer over one corpus (Lucene's BM25 variant, k1=1.5, b=0.75 as bm25s ships)."""

    def __init__(
        self, texts: Sequence[str], languages: Sequence[str | None], k1: float = 1.5, b: float = 0.75
    ):
        if len(texts) != len(languages):
            raise ValueError("one language per text is required")
        if not texts:
            raise ValueError("cannot index an empty corpus")
        import bm25s  # imported here: the index imports this module and never builds a BM25Index

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
