"""BM25 fusion in the Qdrant backend (local mode) against independent references.

The references: BM25 computed here by hand (the formula ``backends/qdrant/bm25.py`` documents: Qdrant's
IDF, the term-frequency part with a fixed average length) over ``lexical.tokenize``'s terms, exhaustive
MaxSim computed here with numpy, and ``polycolbert.fusion``'s rule applied by hand. Also the gate,
updates and deletes, collections from before BM25 was stored, and what is sent to Qdrant.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("qdrant_client")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))
from index_helpers import HashEncoder

from polycolbert.backends.qdrant import QdrantBackend
from polycolbert.backends.qdrant.bm25 import AVG_LENGTH, K1, B, query_vector
from polycolbert.backends.qdrant.layout import SPARSE, collection_settings, vectors_config
from polycolbert.fusion import fuse_bm25
from polycolbert.lexical import tokenize

DIM = 32
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


class Encoder(HashEncoder):
    def check_dimensions(self, dimensions: int | None) -> int:
        return dimensions or self.dims[0]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[QdrantBackend]:
    backend = QdrantBackend.create(f"qdrant+local://{tmp_path}/q/docs", model=Encoder(), dimensions=DIM)
    backend.add(texts=TEXTS, ids=IDS)
    yield backend
    backend.close()


def hand_bm25(query: str, texts: dict[str, str]) -> dict[str, float]:
    """BM25 with Qdrant's IDF ``ln((N - df + 0.5) / (df + 0.5) + 1)`` over the documents that have terms."""
    docs = {i: tokenize(t, None) for i, t in texts.items()}
    with_terms = [d for d in docs.values() if d]
    scores = {}
    for doc_id, doc in docs.items():
        tf = Counter(doc)
        total = 0.0
        for term in dict.fromkeys(tokenize(query, None)):
            df = sum(term in d for d in with_terms)
            idf = math.log((len(with_terms) - df + 0.5) / (df + 0.5) + 1)
            f = tf[term]
            total += idf * f * (K1 + 1) / (f + K1 * (1 - B + B * len(doc) / AVG_LENGTH))
        scores[doc_id] = total
    return scores


def stored_bm25(store: QdrantBackend, query: str) -> dict[str, float]:
    """What Qdrant scores the query's sparse vector against every point (0 where no term is shared)."""
    from qdrant_client import models

    indices, values = query_vector(query)
    response = store.client.query_points(
        store.collection,
        query=models.SparseVector(indices=indices, values=values),
        using=SPARSE,
        limit=1000,
        with_payload=["id"],
    )
    found = {str(p.payload["id"]): float(p.score) for p in response.points}
    return {doc_id: found.get(doc_id, 0.0) for doc_id in store.ids()}


def by_score_then_id(hits: list) -> list[str]:
    """Hit ids best first, equal MaxSim scores (to float noise) in id order, as fusion breaks ties."""
    return [h.id for h in sorted(hits, key=lambda h: (-round(h.score, 5), h.id))]


def exhaustive_maxsim(query: str, texts: dict[str, str]) -> dict[str, float]:
    q = Encoder().encode_queries([query], DIM)[0]
    docs = Encoder().encode_documents(list(texts.values()), DIM)
    return {i: float((q @ d.T).max(axis=1).sum()) for i, d in zip(texts, docs, strict=True)}


def test_stored_bm25_is_the_formula_over_our_terms(store: QdrantBackend) -> None:
    query = "apple stock market 大学"
    expected = hand_bm25(query, dict(zip(IDS, TEXTS, strict=True)))
    assert stored_bm25(store, query) == pytest.approx(expected, rel=1e-5)
    assert expected["t7"] > 0  # CJK bigrams match inside an unspaced run ("北京大学" holds "大学")
    assert expected["t4"] == 0


def test_fused_ranking_is_the_rule_applied_to_exhaustive_maxsim(store: QdrantBackend) -> None:
    query = "apple market"
    texts = dict(zip(IDS, TEXTS, strict=True))
    maxsim, bm25 = exhaustive_maxsim(query, texts), hand_bm25(query, texts)
    expected = fuse_bm25(np.array([maxsim[i] for i in IDS]), np.array([bm25[i] for i in IDS]), gate_open=True)
    order = sorted(range(len(IDS)), key=lambda i: (-expected[i], IDS[i]))
    fused = store.search([query], k=len(IDS), fusion="bm25")[0]
    assert [h.id for h in fused] == [IDS[i] for i in order]
    assert [h.score for h in fused] == pytest.approx([expected[i] for i in order], rel=1e-4)
    assert fused[0].id == "t6"  # the only document with both words
    assert fused[0].text == TEXTS[6]
    top3 = store.search([query], k=3, fusion="bm25")[0]
    assert [(h.id, h.text) for h in top3] == [(h.id, h.text) for h in fused[:3]]
    assert [h.score for h in top3] == pytest.approx([h.score for h in fused[:3]], rel=1e-6)
    assert [h.id for h in store.search([query], k=3, fusion="bm25", exhaustive=True)[0]] == [
        h.id for h in fused[:3]
    ]


def test_gate_closes_for_another_script_and_for_a_mixed_corpus(tmp_path: Path) -> None:
    store = QdrantBackend.create(f"qdrant+local://{tmp_path}/q/docs", model=Encoder(), dimensions=DIM)
    store.add(texts=TEXTS[:7], ids=IDS[:7])
    assert store.script_counts() == {"LATIN": 7}
    assert store.info().fusion == {"available": ["none", "bm25"], "corpus_script": "LATIN"}
    # A Cyrillic query meets a Latin corpus: BM25 stays out even where a number matches.
    store.add(texts=["the stock market in 2024"], ids=["num"])
    plain = store.search(["рынок 2024"], k=8)[0]
    fused = store.search(["рынок 2024"], k=8, fusion="bm25")[0]
    assert stored_bm25(store, "рынок 2024")["num"] > 0
    assert [h.id for h in fused] == by_score_then_id(plain)
    # One Cyrillic document in nine: the corpus no longer has one script, and BM25 counts for no query.
    store.add(texts=["акции поднялись на рынке"], ids=["ru"])
    assert store.info().fusion["corpus_script"] == "mixed"
    plain = store.search(["apple market"], k=9)[0]
    assert [h.id for h in store.search(["apple market"], k=9, fusion="bm25")[0]] == by_score_then_id(plain)
    store.delete(["ru"])
    assert store.info().fusion["corpus_script"] == "LATIN"
    assert store.search(["apple market"], k=1, fusion="bm25")[0][0].id == "t6"
    store.close()


def test_updates_and_deletes_keep_bm25_in_step(store: QdrantBackend) -> None:
    store.update(texts=["zebrafish hearts"], ids=["t6"])
    store.delete(["t3"])
    store.add(texts=["apple apple apple", "", "42"], ids=["new", "blank", "number"])
    texts = dict(zip(IDS, TEXTS, strict=True)) | {"t6": "zebrafish hearts", "new": "apple apple apple"}
    texts |= {"blank": "", "number": "42"}
    del texts["t3"]
    for query in ("apple", "zebrafish stock", "42 cat"):
        assert stored_bm25(store, query) == pytest.approx(hand_bm25(query, texts), rel=1e-5)
    # "" has no terms and no letters; "42" has a term but no script: neither counts towards the gate.
    assert store.script_counts() == {"LATIN": 8}  # t7 has more Latin letters than CJK ones
    fused = store.search(["apple"], k=len(texts), fusion="bm25")[0]
    assert fused[0].id == "new" and {h.id for h in fused} == set(texts)


def test_one_sparse_query_per_text_restricted_to_the_candidates(
    store: QdrantBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[list] = []
    real = store.client.query_batch_points

    def spy(collection: str, requests: list) -> list:
        sent.append(requests)
        return real(collection, requests=requests)

    monkeypatch.setattr(store.client, "query_batch_points", spy)
    hits = store.search(["apple market", "cat", "!!!"], k=2, fusion="bm25")
    maxsim, sparse = sent
    assert [r.limit for r in maxsim] == [100] * 3  # MaxSim's best 100 (all 8 documents here)
    assert [r.prefetch.limit for r in maxsim] == [1000] * 3  # the default prefetch for that depth
    assert [r.with_payload for r in maxsim] == [["id"]] * 3  # the winners' payloads come afterwards
    assert len(sparse) == 2  # "!!!" has no terms: BM25 is 0 for it, and nothing is asked
    candidates = {p for condition in sparse[0].filter.must for p in condition.has_id}
    assert len(candidates) == 8 and sparse[0].using == SPARSE and sparse[0].limit == 8
    assert [len(found) for found in hits] == [2, 2, 2] and hits[0][0].id == "t6"
    assert all(h.text == TEXTS[IDS.index(h.id)] for found in hits for h in found)


def test_a_filter_limits_the_candidates_bm25_sees(tmp_path: Path) -> None:
    store = QdrantBackend.create(f"qdrant+local://{tmp_path}/q/docs", model=Encoder(), dimensions=DIM)
    store.add(texts=TEXTS, ids=IDS, metadata=[{"keep": i != 6} for i in range(len(IDS))])
    hits = store.search(["apple market"], k=3, fusion="bm25", filter={"keep": True})[0]
    assert len(hits) == 3 and all(h.metadata["keep"] for h in hits)
    assert hits[0].id == "t3"  # the best allowed one: apple twice (t6 has both words, but is filtered out)
    store.close()


def test_a_collection_from_before_bm25_says_how_to_get_fusion(tmp_path: Path) -> None:
    location = f"qdrant+local://{tmp_path}/q/old"
    made = QdrantBackend.create(f"qdrant+local://{tmp_path}/q/new", model=Encoder(), dimensions=DIM)
    settings = collection_settings("hash-test-encoder", DIM, "cosine", None, "mean", {})
    del settings["bm25"]  # what create wrote before BM25 was stored: no sparse vector, no bm25 settings
    made.client.create_collection(
        "old", vectors_config=vectors_config(settings, False), metadata={"polycolbert": settings}
    )
    made.close()
    old = QdrantBackend.open(location, model=Encoder())
    old.add(texts=TEXTS, ids=IDS)  # writes as before: no sparse vector, no script
    assert old.search(["apple market"], k=1)[0][0].id
    assert old.info().fusion == {"available": ["none"], "corpus_script": None}
    assert old.info().settings["bm25"] is None
    with pytest.raises(ValueError, match=r"no BM25 vectors .* create a new collection and add the documents"):
        old.search(["apple market"], fusion="bm25")
    records, _ = old.client.scroll("old", limit=100, with_vectors=True)
    assert all("script" not in (r.payload or {}) and SPARSE not in (r.vector or {}) for r in records)
    old.close()


def test_add_stream_writes_bm25_in_the_same_upserts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from polycolbert.documents import DocumentBatch

    store = QdrantBackend.create(f"qdrant+local://{tmp_path}/q/docs", model=Encoder(), dimensions=DIM)
    upserts: list[list] = []
    real = store.client.upsert

    def spy(collection: str, points: list, wait: bool) -> object:
        upserts.append(points)
        return real(collection, points=points, wait=wait)

    monkeypatch.setattr(store.client, "upsert", spy)
    added = store.add_stream([DocumentBatch(TEXTS[:5], ids=IDS[:5]), DocumentBatch(TEXTS[5:], ids=IDS[5:])])
    assert added == len(TEXTS) and len(upserts) == 2
    assert all(SPARSE in p.vector and p.payload["script"] == "LATIN" for batch in upserts for p in batch)
    expected = hand_bm25("apple market", dict(zip(IDS, TEXTS, strict=True)))
    assert stored_bm25(store, "apple market") == pytest.approx(expected, rel=1e-5)
    store.close()
