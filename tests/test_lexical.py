from __future__ import annotations

from math import log

import numpy as np
import pytest

from polycolbert.lexical import BM25Index, tokenize


def test_latin_words_are_lowercased_and_stemmed_in_their_language() -> None:
    assert tokenize("Running, RUNS!", "en") == ["run", "run"]
    assert tokenize("Die Häuser", "de") == ["die", "haus"]
    assert tokenize("Die Häuser", None) == ["die", "häuser"]  # unknown language: no stemming
    assert tokenize("Πόσος χρόνος", "el") == ["ποσ", "χρον"]  # final sigma kept for the Greek stemmer


def test_scripts_without_spaces_become_bigrams() -> None:
    assert tokenize("北京大学", "zh") == ["北京", "京大", "大学"]
    assert tokenize("猫", "zh") == ["猫"]
    assert tokenize("ภาษา", "th") == ["ภา", "าษ", "ษา"]
    # a mixed text keeps its Latin words whole, around the bigrams
    assert tokenize("GPU显卡 test", "zh") == ["gpu", "显卡", "test"]


def test_no_empty_terms_even_when_the_stemmer_empties_a_word() -> None:
    # the Greek Snowball stemmer reduces some short words to "" (seen on XQuAD-el questions)
    import Stemmer

    assert Stemmer.Stemmer("greek").stemWords(["όταν"]) == [""]
    assert tokenize("όταν AFC", "el") == ["afc"]
    index = BM25Index(["the afc game", "a clock"], ["en", "en"])
    assert index.scores("όταν AFC", "el")[0] > 0


def test_marks_stay_inside_words() -> None:
    # Devanagari vowel signs are combining marks: they must not split a word
    assert len(tokenize("हिन्दी भाषा", None)) == 2


def test_scores_match_lucene_bm25_by_hand() -> None:
    docs = ["apple banana banana", "banana cherry", "apple apple apple date"]
    index = BM25Index(docs, [None] * 3)
    lengths = [3, 2, 4]
    avg = sum(lengths) / 3
    k1, b = 1.5, 0.75
    idf = log(1 + (3 - 2 + 0.5) / (2 + 0.5))  # "apple" is in 2 of 3 documents
    expected = [
        idf * tf / (tf + k1 * (1 - b + b * dl / avg)) for tf, dl in zip([1, 0, 3], lengths, strict=True)
    ]
    np.testing.assert_allclose(index.scores("Apple", None), expected, rtol=1e-5)


def test_query_sharing_no_term_scores_zero() -> None:
    index = BM25Index(["alpha beta", "gamma"], ["en", "en"])
    assert index.scores("zeta omega", "en").tolist() == [0.0, 0.0]


def test_rejects_mismatched_languages() -> None:
    with pytest.raises(ValueError, match="one language per text"):
        BM25Index(["a"], [])
