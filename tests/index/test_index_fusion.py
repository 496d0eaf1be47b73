"""BM25 fusion in the embedded index against independent references.

The references: a hand-written BM25 (FTS5's formula), exhaustive MaxSim, and ``polycolbert.fusion``'s rule
applied by hand. Also the gate, updates, old indexes and errors."""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from index_helpers import HashEncoder

from polycolbert.fusion import fuse_bm25
from polycolbert.index import Index, store
from polycolbert.lexical import tokenize

TEXTS = [
    "the cat sat on the mat",
    "dogs chase cats in the park",
    "quantum chromodynamics describes quarks and gluons",
    "a recipe for apple pie with cinnamon and apple cider",
    "zebrafish regenerate heart tissue",
    "the stock market fell on monday",
    "apple shares rose on the stock market",
    "北京大学 is a university in beijing",
]
IDS = [f"t{i}" for i in range(len(TEXTS))]


@pytest.fixture
def index(tmp_path: Path) -> Index:
    ix = Index.create(tmp_path / "ix", model=HashEncoder(), dimensions=32)
    ix.add(TEXTS, ids=IDS)
    return ix


def fts5_bm25(query: str, texts: list[str], k1: float = 1.2, b: float = 0.75) -> list[float]:
    """BM25 as SQLite documents FTS5's ``bm25()`` (k1 1.2, b 0.75, IDF floored at 1e-6), over our terms."""
    docs = [tokenize(t, None) for t in texts]
    avgdl = sum(map(len, docs)) / len(docs)
    scores = []
    for doc in docs:
        tf = Counter(doc)
        total = 0.0
        for term in dict.fromkeys(tokenize(query, None)):
            n = sum(term in d for d in docs)
            idf = max(math.log((len(docs) - n + 0.5) / (n + 0.5)), 1e-6)
            f = tf[term]
            total += idf * f * (k1 + 1) / (f + k1 * (1 - b + b * len(doc) / avgdl))
        scores.append(total)
    return scores


def test_lexicon_scores_are_fts5_bm25_over_our_terms(index: Index) -> None:
    query = "apple stock market 大学"
    expected = fts5_bm25(query, TEXTS)
    found = store.lexicon_scores(index.db, tokenize(query, None), list(range(len(TEXTS))))
    got = [found.get(d, 0.0) for d in range(len(TEXTS))]
    assert got == pytest.approx(expected, rel=1e-6)
    assert found[7] > 0  # CJK bigrams match inside an unspaced run ("北京大学" holds "大学")
    assert 4 not in found  # no shared term: absent, not zero


def test_fused_ranking_is_the_rule_applied_to_exhaustive_maxsim(index: Index) -> None:
    query = "apple market"
    plain = index.search([query], k=len(TEXTS), exhaustive=True)[0]
    maxsim = np.array([h.score for h in plain])
    bm25 = np.array(fts5_bm25(query, TEXTS))[[IDS.index(h.id) for h in plain]]
    expected = fuse_bm25(maxsim, bm25, gate_open=True)
    order = sorted(range(len(plain)), key=lambda i: -expected[i])
    fused = index.search([query], k=len(TEXTS), fusion="bm25")[0]
    assert [h.id for h in fused] == [plain[i].id for i in order]
    assert [h.score for h in fused] == pytest.approx(sorted(expected, reverse=True), rel=1e-6)
    assert fused[0].id == "t6"  # the only document with both words
    assert index.search([query], k=3, fusion="bm25")[0] == fused[:3]


def test_gate_closes_for_another_script_and_for_a_mixed_corpus(tmp_path: Path) -> None:
    ix = Index.create(tmp_path / "ix", model=HashEncoder(), dimensions=32)
    ix.add(TEXTS[:7], ids=IDS[:7])
    assert ix.info()["fusion"]["corpus_script"] == "LATIN"
    # A Cyrillic query meets a Latin corpus: BM25 stays out even where a number matches.
    plain = ix.search(["рынок 2024"], k=7)[0]
    fused = ix.search(["рынок 2024"], k=7, fusion="bm25")[0]
    assert [h.id for h in fused] == [h.id for h in plain]
    # One Cyrillic document in eight: the corpus no longer has one script, and BM25 counts for no query.
    ix.add(["акции поднялись на рынке"], ids=["ru"])
    assert ix.info()["fusion"]["corpus_script"] == "mixed"
    plain = ix.search(["apple market"], k=8)[0]
    assert [h.id for h in ix.search(["apple market"], k=8, fusion="bm25")[0]] == [h.id for h in plain]
    ix.delete(["ru"])
    assert ix.info()["fusion"]["corpus_script"] == "LATIN"


def test_updates_and_deletes_keep_the_lexicon_in_step(index: Index) -> None:
    index.update(["t6"], ["zebrafish hearts"])
    index.delete(["t3"])
    index.add(["apple apple apple"], ids=["new"])
    texts = dict(zip(IDS, TEXTS, strict=True)) | {"t6": "zebrafish hearts", "new": "apple apple apple"}
    del texts["t3"]
    numbers = dict(store.numbered_ids_of(index.db, list(texts)))
    found = store.lexicon_scores(index.db, ["apple"], list(numbers.values()))
    expected = dict(zip(texts, fts5_bm25("apple", list(texts.values())), strict=True))
    assert {i: found.get(numbers[i], 0.0) for i in texts} == pytest.approx(expected, rel=1e-6)
    assert store.count_lexicon(index.db) == len(texts) and index.check() == []
    assert sum(store.script_counts(index.db).values()) == len(texts)


def test_an_index_from_before_the_lexicon_gets_it_at_its_next_write(index: Index) -> None:
    path = index.path
    index.close()
    raw = sqlite3.connect(path / store.DB_NAME)
    raw.executescript("DROP TABLE lexicon; DROP TABLE scripts;")
    raw.close()
    old = Index.open(path, model=HashEncoder())
    assert old.info()["fusion"]["available"] == ["none"]
    assert old.check() == []
    with pytest.raises(ValueError, match=r"no BM25 lexicon.*format 3"):
        old.search(["apple"], fusion="bm25")
    old.add(["one more apple"], ids=["late"])
    assert store.count_lexicon(old.db) == len(TEXTS) + 1
    assert old.info()["fusion"]["available"] == ["none", "bm25"]
    assert old.search(["apple market"], k=1, fusion="bm25")[0][0].id == "t6"


def test_bad_fusion_requests_are_refused(index: Index) -> None:
    with pytest.raises(ValueError, match="fusion must be one of none, bm25"):
        index.search(["apple"], fusion="dense")
    vectors = HashEncoder().encode_queries(["apple"])
    with pytest.raises(ValueError, match="bm25 fusion needs the query texts"):
        index.search(query_vectors=vectors, fusion="bm25")
    with pytest.raises(ValueError, match="hybrid search or fusion"):
        index.search(["apple"], hybrid=True, fusion="bm25")
